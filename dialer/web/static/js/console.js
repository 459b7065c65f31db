// The supervisor console (docs/console.md): wallboard polled every few seconds, campaign and
// agent controls, listen-in on a talking agent's call, campaigns, agents, lead upload, DNC,
// companies and the audit log.

import { ApiError, csrf, request, setCsrf, signOutAndLeave } from "./api.js";
import { $, clear, h } from "./dom.js";
import { applyI18n, formatDateTime, formatNumber, initI18n, t } from "./i18n.js";
import { formatDuration } from "./util.js";
import {
  LISTEN_MODES, abandonKind, campaignActions, canListen, companyEdit, intervalsText, listensByAttempt,
  percent, phoneKey, secondsSince, sortAgents, splitNumbers, validPhone,
} from "./console_util.js";

const enc = encodeURIComponent;
const api = {
  me: () => request("GET", "/api/me"),
  snapshot: () => request("GET", "/api/console/snapshot"),
  campaignControl: (name, action, reason) =>
    request("POST", `/api/console/campaigns/${enc(name)}/${action}`, { reason }),
  setDial: (name, body) => request("PUT", `/api/console/campaigns/${enc(name)}/dial`, body),
  campaigns: () => request("GET", "/api/console/campaigns"),
  agents: () => request("GET", "/api/console/agents"),
  agentControl: (login, action, body) =>
    request("POST", `/api/console/agents/${enc(login)}/${action}`, body),
  addAgent: (body) => request("POST", "/api/console/agents", body),
  setGroups: (login, groups) => request("PUT", `/api/console/agents/${enc(login)}/groups`, { groups }),
  audit: (beforeId) => request("GET", `/api/console/audit?limit=50${beforeId ? `&before_id=${beforeId}` : ""}`),
  companies: () => request("GET", "/api/console/companies"),
  company: (key) => request("GET", `/api/console/companies/${enc(key)}`),
  editCompany: (key, body) => request("PUT", `/api/console/companies/${enc(key)}`, body),
  dnc: (body) => request("POST", "/api/console/dnc", body),
  listens: () => request("GET", "/api/console/listen"),
  // answers once the supervisor's phone is connected (it rings up to 20 s)
  listen: (body) => request("POST", "/api/console/listen", body, { timeoutMs: 35000 }),
  listenMode: (id, mode) => request("PUT", `/api/console/listen/${enc(id)}`, { mode }),
  listenStop: (id) => request("DELETE", `/api/console/listen/${enc(id)}`),
};

let snapshot = null;
let listens = [];
let myLogin = null;
let pollTimer = null;
let oldestAudit = null;

// ---------------------------------------------------------------- small helpers
function flash(text, kind = "ok") {
  const el = $("flash");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function failed(e) {
  if (e instanceof ApiError && e.status === 401) {
    window.location.assign("/login");
    return;
  }
  flash(e instanceof ApiError ? t("console.error", { detail: e.detail ?? e.status }) : String(e), "error");
}

async function act(fn, okText) {
  try {
    const out = await fn();
    if (okText) flash(okText);
    await refresh();
    return out;
  } catch (e) {
    failed(e);
    return null;
  }
}

function kpi(name, label, value, raw, kind = "") {
  return h("div", { class: `kpi ${kind}`, dataset: { kpi: name, value: String(raw ?? "") } },
    h("div", { class: "kpi-value" }, value), h("div", { class: "kpi-label" }, label));
}

// ---------------------------------------------------------------- wallboard
function campaignCard(c) {
  const own = c.abandon[c.abandon_window] ?? { rate: 0 };
  const day = c.abandon.calendar_day ?? { rate: 0 };
  const reason = h("input", { class: "reason", placeholder: t("console.wall.reason"), maxlength: "200" });
  const buttons = campaignActions(c.state).map((action) => h("button", {
    class: `btn ${action === "stop" ? "btn-danger" : action === "pause" ? "" : "btn-ok"}`,
    type: "button", dataset: { action },
    onclick: () => act(() => api.campaignControl(c.name, action, reason.value.trim()),
      t(`console.done.${action}`, { campaign: c.name })),
  }, t(`console.actions.${action}`)));
  const mode = h("select", { class: "dial-mode" },
    ...["preview", "progressive", "power", "predictive"].map((m) =>
      h("option", { value: m, selected: m === c.dial_mode }, t(`console.modes.${m}`))));
  const level = h("input", { class: "max-level", type: "number", min: "1", max: "10", step: "0.1", value: String(c.max_dial_level) });
  const apply = h("button", {
    class: "btn", type: "button", dataset: { action: "dial" },
    onclick: () => act(() => api.setDial(c.name, { dial_mode: mode.value, max_dial_level: Number(level.value) }),
      t("console.done.dial", { campaign: c.name })),
  }, t("console.actions.apply"));
  const hold = c.hold ? h("p", { class: "hold" }, t(`console.hold.${c.hold.kind}`, {
    who: c.hold.by, at: formatDateTime(c.hold.at), reason: c.hold.reason || "\u2013",
  })) : null;
  const stages = Object.entries(c.in_flight).map(([stage, n]) =>
    h("span", { class: "stage", dataset: { stage, value: String(n) } }, `${t(`console.stages.${stage}`)} ${formatNumber(n)}`));
  const byState = Object.entries(c.agents_by_state).filter(([s]) => s !== "logged_out").map(([state, n]) =>
    h("span", { class: `pill st-${state}`, dataset: { state, value: String(n) } }, `${t(`state.${state}`)} ${formatNumber(n)}`));
  const tot = c.report.totals;
  return h("article", { class: "camp card", dataset: { campaign: c.name, state: c.state } },
    h("header", { class: "camp-head" },
      h("h2", {}, c.name),
      h("span", { class: `badge st-${c.state}`, dataset: { field: "state" } }, t(`console.states.${c.state}`)),
      h("span", { class: "spacer" }),
      reason, ...buttons),
    hold,
    h("div", { class: "kpis" },
      kpi("dial_level", t("console.wall.dial_level"), formatNumber(c.dial_level, { maximumFractionDigits: 2 }), c.dial_level),
      kpi("answer_rate", t("console.wall.answer_rate"), percent(c.answer_rate), c.answer_rate),
      kpi("abandon_rate", t("console.wall.abandon", { window: t(`console.windows.${c.abandon_window}`), cap: percent(c.abandon_cap) }),
        percent(own.rate), own.rate, `ab-${abandonKind(own.rate, c.abandon_cap)}`),
      kpi("abandon_today", t("console.wall.abandon_today"), percent(day.rate), day.rate, `ab-${abandonKind(day.rate, c.abandon_cap)}`),
      kpi("hopper_depth", t("console.wall.hopper"), formatNumber(c.hopper_depth), c.hopper_depth),
      kpi("callable_leads", t("console.wall.callable"), formatNumber(c.callable_leads), c.callable_leads),
      kpi("live_calls", t("console.wall.live_calls"), formatNumber(c.live_calls), c.live_calls)),
    h("div", { class: "rowline" }, h("strong", {}, t("console.wall.agents")), ...byState),
    h("div", { class: "rowline" }, h("strong", {}, t("console.wall.in_flight")), ...stages),
    // a cluster: which dialer instances the figures come from, and how old each part is
    c.instances ? h("div", { class: "rowline instances", dataset: { instances: String(c.instances.length) } },
      h("strong", {}, t("console.wall.instances")),
      ...c.instances.map((i) => h("span", { class: "fig", dataset: { instance: i.dialer_id } },
        i.age_s > 0 ? t("console.wall.instance_age", { id: i.dialer_id, age: formatNumber(i.age_s) }) : i.dialer_id))) : null,
    h("div", { class: "rowline report", dataset: { called: String(tot.called) } },
      h("strong", {}, t("console.wall.today")),
      ...["planned", "called", "reached", "meetings", "contracts", "callbacks"].map((f) =>
        h("span", { class: "fig", dataset: { figure: f, value: String(tot[f]) } }, `${t(`console.report.${f}`)} ${formatNumber(tot[f])}`)),
      h("span", { class: "fig", dataset: { figure: "talk_s", value: String(tot.talk_s) } }, `${t("console.report.talk")} ${formatDuration(tot.talk_s)}`)),
    h("div", { class: "rowline dial" }, h("strong", {}, t("console.wall.dialing")), mode, level, apply),
    agentTable(c));
}

function agentTable(c) {
  const byAttempt = listensByAttempt(listens);
  // a cluster's snapshot also names the campaigns other instances run (move_to)
  const others = (snapshot.move_to || snapshot.campaigns.map((x) => x.name)).filter((n) => n !== c.name);
  const rows = sortAgents(c.agents).map((a) => {
    const move = others.length ? h("select", { class: "move-to" }, h("option", { value: "" }, t("console.agents.move_to")),
      ...others.map((n) => h("option", { value: n }, n))) : null;
    if (move) {
      // blur first: the board is not redrawn while one of its fields has the focus
      move.addEventListener("change", () => {
        const to = move.value;
        move.blur();
        if (to) act(() => api.agentControl(a.login, "move", { campaign: to }), t("console.done.move", { login: a.login, campaign: to }));
      });
    }
    const out = a.state === "logged_out";
    const heard = (canListen(a) && byAttempt.get(a.attempt_id)) || [];
    const listenBtn = canListen(a) ? h("button", {
      class: "btn btn-small btn-listen", type: "button", dataset: { agentAction: "listen" },
      onclick: (e) => startListen(a, e.currentTarget),
    }, t("console.listen.listen")) : null;
    return h("tr", { dataset: { login: a.login, state: a.state, attemptId: String(a.attempt_id ?? "") } },
      h("td", {}, a.display_name || a.login),
      h("td", {}, h("span", { class: `pill st-${a.state}` }, t(`state.${a.state}`)),
        a.pending ? h("span", { class: "pending" }, t(`console.agents.pending_${a.pending}`)) : null,
        ...heard.map((x) => h("span", { class: `pill listening lm-${x.mode}`, dataset: { listenMode: x.mode } },
          t("console.listen.pill", { by: x.by ?? "\u2013", mode: t(`console.listen_modes.${x.mode}`) })))),
      h("td", { class: "since", dataset: { since: a.since ?? "" } }, a.since ? formatDuration(secondsSince(a.since, Date.now())) : "\u2013"),
      h("td", {}, a.reason ? (t(`reasons.${a.reason}`) === `reasons.${a.reason}` ? a.reason : t(`reasons.${a.reason}`)) : ""),
      h("td", {}, h("div", { class: "actions" },
        h("button", { class: "btn btn-small", type: "button", disabled: out || a.state === "paused", dataset: { agentAction: "pause" },
          onclick: () => act(() => api.agentControl(a.login, "pause", { reason: "supervisor" }), t("console.done.agent_pause", { login: a.login })) },
        t("console.actions.agent_pause")),
        h("button", { class: "btn btn-small", type: "button", disabled: out, dataset: { agentAction: "logout" },
          onclick: () => act(() => api.agentControl(a.login, "logout", { reason: "" }), t("console.done.agent_logout", { login: a.login })) },
        t("console.actions.agent_logout")),
        listenBtn, move)));
  });
  return h("table", { class: "grid agents" },
    h("thead", {}, h("tr", {}, ...["name", "state", "time", "reason", "actions"].map((k) => h("th", {}, t(`console.wall.col_${k}`))))),
    h("tbody", {}, ...rows));
}

function renderWall() {
  const box = $("wall-campaigns");
  // keep what a person is typing: skip a redraw while a field of the board has the focus
  if (box.contains(document.activeElement) && document.activeElement.matches("input, select")) return;
  clear(box).append(...snapshot.campaigns.map(campaignCard));
  $("wall-at").textContent = t("console.wall.at", { at: formatDateTime(snapshot.at, { timeStyle: "medium" }) });
  document.body.dataset.snapshotAt = snapshot.at;
}

async function refresh() {
  try {
    // a web server without a dialer has no listen-in (503): the wallboard goes on without it
    const [snap, heard] = await Promise.all([api.snapshot(), api.listens().catch(() => null)]);
    snapshot = snap;
    listens = heard?.sessions ?? [];
    renderListens();
    $("conn").dataset.kind = "online";
    $("conn").textContent = t("console.conn.online");
    renderWall();
  } catch (e) {
    $("conn").dataset.kind = "offline";
    $("conn").textContent = t("console.conn.offline");
    if (e instanceof ApiError && e.status === 401) window.location.assign("/login");
  }
}

// ---------------------------------------------------------------- listen-in
function phone() {
  return $("listen-phone").value.trim();
}

async function startListen(agent, button) {
  if (!validPhone(phone())) {
    flash(t("console.listen.bad_phone"), "error");
    $("listen-phone").focus();
    return;
  }
  button.disabled = true;
  document.body.dataset.listening = "calling";
  flash(t("console.listen.calling", { agent: agent.display_name || agent.login }));
  const mode = $("listen-mode").value;
  const s = await act(() => api.listen({ attempt_id: agent.attempt_id, phone: phone(), mode }));
  document.body.dataset.listening = s ? "on" : "";
  if (s) flash(t("console.listen.started", { agent: s.agent ?? agent.login, mode: t(`console.listen_modes.${s.mode}`) }));
  button.disabled = false;
}

function renderListens() {
  const table = $("listen-sessions");
  // keep a mode being picked: no redraw while a field of the table has the focus
  if (table.contains(document.activeElement) && document.activeElement.matches("select")) return;
  const body = clear(table.querySelector("tbody"));
  table.hidden = listens.length === 0;
  $("listen-none").hidden = listens.length > 0;
  for (const x of listens) {
    const mode = h("select", { class: "listen-mode", dataset: { listenAction: "mode" } },
      ...LISTEN_MODES.map((m) => h("option", { value: m, selected: m === x.mode }, t(`console.listen_modes.${m}`))));
    mode.addEventListener("change", () => {
      const to = mode.value;
      mode.blur();
      act(() => api.listenMode(x.session_id, to), t("console.listen.changed", { mode: t(`console.listen_modes.${to}`) }));
    });
    body.append(h("tr", { dataset: { session: x.session_id, attemptId: String(x.attempt_id), agent: x.agent ?? "", mode: x.mode, by: x.by ?? "" } },
      h("td", {}, x.agent ?? "\u2013"), h("td", {}, x.campaign), h("td", {}, x.by ?? "\u2013"),
      h("td", {}, t(`console.listen_modes.${x.mode}`)),
      h("td", { class: "since", dataset: { since: x.started_at } }, formatDuration(secondsSince(x.started_at, Date.now()))),
      h("td", {}, h("div", { class: "actions" }, mode, h("button", {
        class: "btn btn-small btn-danger", type: "button", dataset: { listenAction: "stop" },
        onclick: () => act(() => api.listenStop(x.session_id), t("console.listen.stopped", { agent: x.agent ?? "" })),
      }, t("console.listen.stop"))))));
  }
}

function wireListen() {
  // the phone is remembered per supervisor in this browser
  const key = () => phoneKey(myLogin ?? "");
  if (!phone()) $("listen-phone").value = localStorage.getItem(key()) ?? "";
  $("listen-phone").addEventListener("change", () => {
    const v = phone();
    $("listen-phone").setAttribute("aria-invalid", String(Boolean(v) && !validPhone(v)));
    if (v) localStorage.setItem(key(), v);
    else localStorage.removeItem(key());
  });
  const modeKey = () => `${key()}.mode`;
  const saved = localStorage.getItem(modeKey());
  if (LISTEN_MODES.includes(saved)) $("listen-mode").value = saved;
  $("listen-mode").addEventListener("change", () => localStorage.setItem(modeKey(), $("listen-mode").value));
}

function poll() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(async () => {
    await refresh();
    poll();
  }, (snapshot?.poll_s ?? 2) * 1000);
}

// time in state ticks between polls
setInterval(() => {
  for (const td of document.querySelectorAll("td.since[data-since]")) {
    if (td.dataset.since) td.textContent = formatDuration(secondsSince(td.dataset.since, Date.now()));
  }
}, 1000);

// ---------------------------------------------------------------- other tabs
async function loadAgents() {
  const data = await api.agents();
  const body = clear($("agents-table").querySelector("tbody"));
  for (const a of data.agents) {
    body.append(h("tr", { dataset: { login: a.login } }, h("td", {}, a.login), h("td", {}, a.display_name),
      h("td", {}, a.campaign), h("td", {}, t(`state.${a.state}`)),
      h("td", {}, a.since ? formatDuration(secondsSince(a.since, Date.now())) : "\u2013"),
      h("td", {}, a.pending ? t(`console.agents.pending_${a.pending}`) : ""),
      groupsCell(a)));
  }
  const pick = clear($("add-campaign"));
  for (const n of data.campaigns) pick.append(h("option", { value: n }, n));
}

// an agent's named groups (transfer targets): comma-separated names, saved at once
function splitGroups(text) {
  return text.split(/[\s,]+/).map((g) => g.trim()).filter(Boolean);
}

function groupsCell(a) {
  const inp = h("input", { class: "groups", value: (a.groups ?? []).join(", "),
    "aria-label": `${t("console.agents.groups")} ${a.login}` });
  const save = h("button", { class: "btn btn-small", type: "button", dataset: { action: "groups" },
    onclick: () => act(() => api.setGroups(a.login, splitGroups(inp.value)),
      t("console.agents.groups_saved", { login: a.login })),
  }, t("console.agents.groups_save"));
  return h("td", {}, inp, save);
}

async function loadCampaigns() {
  const data = await api.campaigns();
  const body = clear($("campaigns-table").querySelector("tbody"));
  for (const c of data.campaigns) {
    const buttons = c.running ? campaignActions(c.state).map((action) => h("button", {
      class: "btn btn-small", type: "button", dataset: { action },
      onclick: () => act(() => api.campaignControl(c.name, action, ""), t(`console.done.${action}`, { campaign: c.name })).then(loadCampaigns),
    }, t(`console.actions.${action}`))) : [];
    let mode = t(`console.modes.${c.dial_mode}`);
    let level = formatNumber(c.max_dial_level);
    if (c.running) {
      // the dial settings of a running campaign are edited here as on its wallboard card
      const sel = h("select", { class: "dial-mode" }, ...["preview", "progressive", "power", "predictive"].map((m) =>
        h("option", { value: m, selected: m === c.dial_mode }, t(`console.modes.${m}`))));
      const inp = h("input", { class: "max-level", type: "number", min: "1", max: "10", step: "0.1", value: String(c.max_dial_level) });
      buttons.push(h("button", {
        class: "btn btn-small", type: "button", dataset: { action: "dial" },
        onclick: () => act(() => api.setDial(c.name, { dial_mode: sel.value, max_dial_level: Number(inp.value) }),
          t("console.done.dial", { campaign: c.name })).then(loadCampaigns),
      }, t("console.actions.apply")));
      mode = sel;
      level = inp;
    }
    body.append(h("tr", { dataset: { campaign: c.name } }, h("td", {}, c.name),
      h("td", {}, t(`console.states.${c.state}`)), h("td", {}, mode),
      h("td", {}, level), h("td", {}, percent(c.abandon_cap)),
      h("td", {}, c.timezone), h("td", {}, h("div", { class: "actions" }, ...buttons))));
  }
  const pick = clear($("leads-campaign"));
  for (const c of data.campaigns) pick.append(h("option", { value: c.name }, c.name));
}

async function loadAudit(more = false) {
  const data = await api.audit(more ? oldestAudit : null);
  const body = $("audit-table").querySelector("tbody");
  if (!more) clear(body);
  for (const e of data.entries) {
    body.append(h("tr", { dataset: { action: e.action } }, h("td", {}, formatDateTime(e.at, { dateStyle: "short", timeStyle: "medium" })),
      h("td", {}, e.actor), h("td", {}, e.action), h("td", {}, e.target),
      h("td", { class: "detail" }, Object.entries(e.detail ?? {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; "))));
  }
  if (data.entries.length) oldestAudit = data.entries[data.entries.length - 1].id;
  $("audit-more").hidden = data.entries.length < 50;
}

let company = null;
async function loadCompanies() {
  const data = await api.companies();
  const pick = clear($("company-pick"));
  pick.append(h("option", { value: "" }, t("console.companies.choose")));
  for (const c of data.companies) pick.append(h("option", { value: c.name, selected: company === c.name }, `${c.name} (${c.timezone})`));
  if (company) await showCompany(company);
}

async function showCompany(key) {
  company = key;
  if (!key) {
    $("company-view").hidden = true;
    return;
  }
  const c = await api.company(key);
  $("company-view").hidden = false;
  $("company-view").dataset.company = c.name;
  $("company-name").textContent = `${c.name} \u2013 ${c.timezone} \u2013 ${c.hours}`;
  $("co-timezone").value = c.timezone;
  $("co-hours").value = c.hours;
  $("co-holidays").value = c.holidays;
  const today = c.today;
  $("company-today").textContent = today ? t(today.open_now ? "console.companies.open_now" : "console.companies.closed_now", {
    hours: intervalsText(today.open) || t("console.companies.closed"), notes: today.notes.join("; ") || "\u2013",
  }) : (c.problem ?? "");
  const week = clear($("company-week").querySelector("tbody"));
  for (const d of c.week) {
    week.append(h("tr", { dataset: { date: d.date, open: intervalsText(d.open) } }, h("td", {}, d.date), h("td", {}, formatDateTime(`${d.date}T12:00:00Z`, { weekday: "long", timeZone: "UTC" })),
      h("td", {}, intervalsText(d.open) || t("console.companies.closed")), h("td", {}, d.notes.join("; "))));
  }
  const head = clear($("company-overlap").querySelector("thead"));
  const rows = clear($("company-overlap").querySelector("tbody"));
  head.append(h("tr", {}, h("th", {}, t("console.companies.campaign")), ...c.week.map((d) => h("th", {}, d.date.slice(5)))));
  for (const o of c.overlap) {
    rows.append(h("tr", { dataset: { campaign: o.campaign } }, h("td", {}, `${o.campaign} (${o.window})`),
      ...o.days.map((d) => h("td", {}, intervalsText(d.overlap) || "\u2013"))));
  }
}

function showTab(name) {
  for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.dataset.panel !== name;
  document.body.dataset.tab = name;
  const loaders = { agents: loadAgents, campaigns: loadCampaigns, leads: loadCampaigns, audit: () => loadAudit(false), companies: loadCompanies };
  if (loaders[name]) loaders[name]().catch(failed);
}

// ---------------------------------------------------------------- forms
function wireForms() {
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("btn-signout").addEventListener("click", signOutAndLeave);
  $("audit-more").addEventListener("click", () => loadAudit(true).catch(failed));
  $("company-pick").addEventListener("change", (e) => showCompany(e.target.value).catch(failed));
  $("company-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const msg = $("co-msg");
    const body = companyEdit({
      timezone: $("co-timezone").value, hours: $("co-hours").value, days_off: $("co-days-off").value,
      holidays: $("co-holidays").value, closure: $("co-closure").value,
      clear_closures: $("co-clear-closures").checked, special: $("co-special").value,
    });
    try {
      await api.editCompany(company, body);
      msg.textContent = t("console.companies.saved");
      msg.dataset.kind = "ok";
      await showCompany(company);
    } catch (err) {
      msg.textContent = err instanceof ApiError ? err.detail : String(err);
      msg.dataset.kind = "error";
    }
    msg.hidden = false;
  });
  $("leads-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("leads-file").files[0];
    if (!file) return;
    const q = new URLSearchParams({ campaign: $("leads-campaign").value, create_companies: String($("leads-create").checked) });
    if ($("leads-region").value.trim()) q.set("region", $("leads-region").value.trim());
    $("leads-submit").disabled = true;
    try {
      const r = await fetch(`/api/console/leads/import?${q}`, {
        method: "POST", credentials: "same-origin", body: file,
        headers: { "Content-Type": "text/csv", "X-CSRF-Token": csrf() },
      });
      const data = await r.json();
      if (!r.ok) throw new ApiError(r.status, data.detail);
      showImport(data);
    } catch (err) {
      failed(err);
    } finally {
      $("leads-submit").disabled = false;
    }
  });
  $("dnc-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const r = await api.dnc({ numbers: splitNumbers($("dnc-numbers").value), region: $("dnc-region").value.trim() || "US", reason: $("dnc-reason").value.trim() || null });
      $("dnc-result").textContent = t("console.dnc.result", r);
      $("dnc-result").dataset.added = String(r.added);
      return r;
    });
  });
  $("agent-add").addEventListener("submit", (e) => {
    e.preventDefault();
    act(() => api.addAgent({
      login: $("add-login").value.trim(), display_name: $("add-name").value.trim(), sip_uri: $("add-sip").value.trim(),
      campaign: $("add-campaign").value || null, password: $("add-password").value,
      groups: splitGroups($("add-groups").value),
    }), t("console.agents.added")).then(() => loadAgents().catch(failed));
  });
}

function showImport(r) {
  $("leads-report").hidden = false;
  $("leads-report").dataset.imported = String(r.imported);
  $("leads-report").dataset.rejected = String(r.rejected);
  $("leads-report").dataset.skipped = String(r.skipped);
  $("leads-summary").textContent = t("console.leads.summary", r);
  const body = clear($("leads-issues").querySelector("tbody"));
  for (const i of r.issues) {
    body.append(h("tr", { dataset: { line: String(i.line), reason: i.reason } }, h("td", {}, String(i.line)),
      h("td", {}, i.outcome), h("td", {}, i.reason), h("td", {}, i.detail)));
  }
}

// ---------------------------------------------------------------- start
await initI18n();
applyI18n();
wireForms();
try {
  const me = await api.me();
  setCsrf(me.csrf);
  $("who").textContent = me.display_name || me.login;
  document.body.dataset.role = me.role;
  $("agent-add").hidden = me.role !== "admin";
  myLogin = me.login;
} catch (e) {
  if (e instanceof ApiError && e.status === 401) window.location.assign("/login");
}
wireListen();
showTab("wallboard");
await refresh();
poll();
