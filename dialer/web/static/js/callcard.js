// The lead card: who is on the line (or offered in preview), the history, the script with
// the lead's fields filled in, and the local times of the company and the callee.

import { $, clear, h } from "./dom.js";
import { explainClosed, explainWhy, formatDateTime, formatNumber, has, locale, t } from "./i18n.js";
import { fillScript, formatDuration } from "./util.js";

/** A catalog label, else the code. */
function dispositionLabel(code, catalog) {
  if (!code) return "";
  const d = (catalog ?? []).find((x) => x.code === code);
  return d ? d.label : code;
}

function fieldValue(v) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v === "boolean") return t(v ? "common.yes" : "common.no");
  if (typeof v === "number") return formatNumber(v);
  return String(v);
}

/** Fill the card for a call (`kind` "call") or a preview ("preview"). */
export function renderLead({ kind, lead, history, script, catalog }) {
  $("call-kind").textContent = t(kind === "preview" ? "call.kind_preview" : "call.kind_call");
  $("lead-name").textContent = lead.name || "–";
  $("lead-company").textContent = lead.company ?? "";
  $("lead-company").hidden = !lead.company;
  $("lead-phone").textContent = lead.phone ?? "";
  const status = $("lead-status");
  status.textContent = has(`status.${lead.status}`) ? t(`status.${lead.status}`) : lead.status;
  status.dataset.status = lead.status;

  const fields = clear($("lead-fields"));
  const custom = Object.entries(lead.custom_fields ?? {});
  if (custom.length === 0) fields.append(h("div", { class: "hint" }, t("call.no_fields")));
  for (const [k, v] of custom) {
    fields.append(h("div", { class: "fieldrow" }, h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, fieldValue(v))));
  }

  // escaped template, escaped values: see util.fillScript
  const scriptHtml = fillScript(script ?? "", lead);
  $("script-text").innerHTML = scriptHtml || "";
  if (!scriptHtml) $("script-text").append(h("span", { class: "hint" }, t("call.no_script")));

  const body = clear($("history-body"));
  for (const e of history ?? []) {
    body.append(h("tr", {},
      h("td", { class: "nowrap" }, formatDateTime(e.at, { dateStyle: "short", timeStyle: "short" })),
      h("td", {}, has(`result.${e.result}`) ? t(`result.${e.result}`) : e.result),
      h("td", {}, dispositionLabel(e.disposition, catalog)),
      h("td", {}, e.agent ?? ""),
      h("td", { class: "notes" }, e.notes ?? "")));
  }
  $("history-table").hidden = !(history ?? []).length;
  $("history-empty").hidden = (history ?? []).length > 0;
  resetContext();
}

let zones = { callee: null, company: null };

export function resetContext() {
  zones = { callee: null, company: null };
  $("company-clock").textContent = "…";
  $("callee-clock").textContent = "…";
  $("company-zone").textContent = "";
  $("callee-zone").textContent = "";
  $("company-open").textContent = "";
  $("company-open").dataset.open = "";
  $("company-hours").textContent = "";
  $("callee-open").textContent = "";
  $("callee-open").dataset.open = "";
  $("callee-hours").textContent = "";
}

export function contextFailed() {
  $("company-clock").textContent = "–";
  $("callee-clock").textContent = "–";
  $("company-open").textContent = t("call.context_unavailable");
}

function zoneName(zone) {
  return zone.replace(/_/g, " ");
}

/** Show a normalized context (util.normalizeContext). */
export function renderContext(ctx) {
  zones = { callee: ctx.calleeZone, company: ctx.companyZone };
  $("callee-zone").textContent = ctx.calleeZone ? zoneName(ctx.calleeZone) : "";
  $("company-zone").textContent = ctx.companyZone ? zoneName(ctx.companyZone) : "";
  const open = $("company-open");
  if (ctx.openNow === true) {
    open.textContent = t("call.open_now");
    open.dataset.open = "yes";
  } else if (ctx.openNow === false) {
    // the reason's code in the page's language; the server's English words only without one
    const state = explainClosed(ctx.closedWhy);
    const why = ctx.closedWhy ? explainWhy(ctx.closedWhy) : (ctx.closedReason ?? "");
    open.textContent = state ?? (why ? t("call.closed_because", { reason: why }) : t("call.closed_now"));
    open.dataset.open = "no";
  } else {
    open.textContent = "";
    open.dataset.open = "";
  }
  const callee = $("callee-open");
  if (ctx.calleeCallable === true) {
    callee.textContent = t("call.callable_now");
    callee.dataset.open = "yes";
  } else if (ctx.calleeCallable === false) {
    const calleeWhy = ctx.calleeWhy ? explainWhy(ctx.calleeWhy) : ctx.calleeReason;
    callee.textContent = calleeWhy ? t("call.not_callable_because", { reason: calleeWhy })
      : t("call.not_callable");
    callee.dataset.open = "no";
  }
  $("callee-hours").textContent = ctx.calleeHours && ctx.calleeHours.length
    ? t("call.window_today", { hours: ctx.calleeHours.map(([a, b]) => `${a}–${b}`).join(", ") }) : "";
  const hours = ctx.hoursToday;
  $("company-hours").textContent = hours === null ? ""
    : hours.length === 0 ? t("call.hours_closed_today")
      : t("call.hours_today", { hours: hours.map(([a, b]) => `${a}–${b}`).join(", ") });
  if (!ctx.companyZone && ctx.openNow === null && hours === null) {
    $("company-clock").textContent = "–";
    $("company-open").textContent = t("call.no_company");
  }
  tickClocks();
}

const clockFormats = new Map();
function clockText(zone, now) {
  let f = clockFormats.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(locale, { timeZone: zone, weekday: "short", hour: "numeric", minute: "2-digit" });
    } catch {
      f = null;
    }
    clockFormats.set(zone, f);
  }
  return f ? f.format(now) : "–";
}

/** Once a second: the live clocks. */
export function tickClocks(now = new Date()) {
  if (zones.callee) $("callee-clock").textContent = clockText(zones.callee, now);
  if (zones.company) $("company-clock").textContent = clockText(zones.company, now);
}

export function setTalkTimer(seconds) {
  $("talk-timer").textContent = seconds === null ? "" : formatDuration(seconds);
}
