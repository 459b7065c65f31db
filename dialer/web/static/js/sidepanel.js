// The side panel: today's callbacks and the agent's day so far, refreshed every minute and
// after each disposition.

import { api, ApiError } from "./api.js";
import { $, clear, h } from "./dom.js";
import { formatNumber, formatTime, has, t } from "./i18n.js";
import { dayTable, formatDuration, normalizeCallbacks } from "./util.js";

let callbacks = [];
let timer = null;

/** The callback of a lead, if it is in today's list (to name a reminder's lead). */
export function callbackFor(leadId) {
  return callbacks.find((c) => c.leadId === leadId) ?? null;
}

function renderCallbacks() {
  const list = clear($("cb-list"));
  const now = Date.now();
  for (const c of callbacks) {
    const due = c.dueAt ? Date.parse(c.dueAt) : NaN;
    list.append(h("li", { class: "cb-item", dataset: { overdue: due < now ? "1" : "" } },
      h("span", { class: "cb-time" }, Number.isNaN(due) ? "–" : formatTime(due)),
      h("span", { class: "cb-who" },
        h("span", { class: "cb-name" }, c.name || (c.leadId ? `#${c.leadId}` : "–")),
        c.company ? h("span", { class: "cb-company" }, c.company) : null),
      c.scope === "campaign" ? h("span", { class: "chip chip-small" }, t("side.anyone")) : null));
  }
  $("cb-empty").textContent = t("side.no_callbacks");
  $("cb-empty").hidden = callbacks.length > 0;
}

function columnLabel(col) {
  return has(`day.${col}`) ? t(`day.${col}`) : col.replace(/_/g, " ");
}

function cellText(col, v) {
  if (v === null || v === undefined) return "–";
  if (/(_s|_seconds)$/.test(col)) return formatDuration(v);
  if (/(_rate|_pct|_ratio)$/.test(col)) return formatNumber(v, { maximumFractionDigits: 2 });
  return formatNumber(v, { maximumFractionDigits: 1 });
}

function renderDay(data) {
  const { columns, rows } = dayTable(data);
  const box = clear($("day-box"));
  if (columns.length === 0) {
    box.append(h("p", { class: "hint" }, t("side.no_day")));
    return;
  }
  const many = rows.length > 1;
  const totals = Object.fromEntries(columns.map((c) => [c, rows.reduce((s, r) => s + (r.values[c] ?? 0), 0)]));
  const table = h("table", { class: "table day-table" });
  if (many) {
    table.append(h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""),
      rows.map((r) => h("th", { scope: "col" }, r.label)),
      h("th", { scope: "col" }, t("day.total")))));
  }
  const body = h("tbody");
  for (const c of columns) {
    body.append(h("tr", {}, h("th", { scope: "row" }, columnLabel(c)),
      many ? rows.map((r) => h("td", { class: "num" }, cellText(c, r.values[c]))) : null,
      h("td", { class: "num strong" }, cellText(c, totals[c]))));
  }
  table.append(body);
  box.append(table);
  $("day-updated").textContent = t("side.updated", { time: formatTime(new Date()) });
}

/** Refresh both boxes; a 401 means the session ended (the caller is told). */
export async function refreshSide({ onUnauthorized } = {}) {
  const [cb, day] = await Promise.allSettled([api.callbacks(), api.day()]);
  for (const r of [cb, day]) {
    if (r.status === "rejected" && r.reason instanceof ApiError && r.reason.status === 401) onUnauthorized?.();
  }
  if (cb.status === "fulfilled") {
    callbacks = normalizeCallbacks(cb.value);
    renderCallbacks();
  } else if (callbacks.length === 0) {
    clear($("cb-list"));
    $("cb-empty").hidden = false;
    $("cb-empty").textContent = t("side.unavailable");
  }
  if (day.status === "fulfilled") renderDay(day.value);
  else if (!$("day-box").firstChild) $("day-box").append(h("p", { class: "hint" }, t("side.unavailable")));
}

export function startSide(opts) {
  refreshSide(opts);
  clearInterval(timer);
  timer = setInterval(() => refreshSide(opts), 60000);
}
