// The agent desktop: state and controls, the screen pop, call controls, the disposition
// form, preview, reminders and the side panel, over /ws/agent (docs/web.md).

import { api, ApiError, setCsrf, signOutAndLeave } from "./api.js";
import { contextFailed, renderContext, renderLead, setTalkTimer, tickClocks } from "./callcard.js";
import { DispositionForm } from "./dispoform.js";
import { $, clear, h, isTyping } from "./dom.js";
import { applyI18n, formatTime, has, initI18n, t } from "./i18n.js";
import { callbackFor, refreshSide, startSide } from "./sidepanel.js";
import { backoffDelay, formatDuration, newId, normalizeContext, quickCode } from "./util.js";
import { loadTransferTargets } from "./transferpanel.js";
import { renderManual, wireManual } from "./manualpanel.js";
import { AgentSocket } from "./ws.js";

const CALL_STATES = new Set(["reserved", "talking", "wrap_up"]);
const RETRY_CODES = new Set(["not_saved", "overloaded", "internal", "timeout"]);
const LATER_CODES = new Set(["offline", "disconnected", "stopped"]);

const S = {
  me: null,
  session: null,
  sessionOk: false, // our `login` was acked on this connection
  loginPending: false, // our `login` is on its way (its `state` reply comes before the ack)
  stale: false, // another window took over: we send nothing more
  state: null,
  reason: null,
  stateAttempt: null,
  stateSince: Date.now(),
  stateOnHold: false, // the state message says the call is on hold (on_hold)
  catalog: [],
  pauseReasons: [],
  pendingLeave: null, // "pause" | "logout" asked for, applied after the call
  holdBusy: false, // a hold / resume is on its way
  keypadOpen: false,
  transferOpen: false,
  lastLead: null, // {id, name, phone} of the last call: a paused agent may dial it itself
  manualBusy: false,
  transfer: null, // {attemptId, to, mode, phase: "ringing" | "consulting" | "busy"}
  conference: null, // {attemptId, who, phase: "ringing" | "on" | "busy"}: a third party joined
  call: null, // {attemptId, lead, history, script, ended, talkS, startedAt, endedAt}
  preview: null, // {lead, history, script, accepted}
  needsOutcome: [], // from the state's needs_outcome
  ended: new Set(), // calls that ended (call_ended) this session
  saved: new Set(), // dispositions acked
  outbox: new Map(), // attemptId -> {payload, tries, timer}
  preselect: new Map(), // attemptId -> code (quick outcomes)
  contexts: new Map(), // attemptId -> normalized context | "loading" | "failed"
  leadLoading: new Set(), // leadIds whose preview context is being read
  conn: { kind: "connecting" },
};

let sock = null;
let form = null;

// ---------------------------------------------------------------- session id & outbox

function tabSession() {
  let id = sessionStorage.getItem("dialer.session");
  if (!id || !/^[A-Za-z0-9_.:-]{8,64}$/.test(id)) {
    id = newId();
    sessionStorage.setItem("dialer.session", id);
  }
  return id;
}

function outboxKey() {
  return `dialer.outbox.${S.me?.login ?? ""}`;
}

function saveOutbox() {
  const list = [...S.outbox.values()].map((e) => e.payload);
  if (list.length) sessionStorage.setItem(outboxKey(), JSON.stringify(list));
  else sessionStorage.removeItem(outboxKey());
}

function loadOutbox() {
  try {
    for (const p of JSON.parse(sessionStorage.getItem(outboxKey()) ?? "[]")) {
      if (p && p.attempt_id && !S.outbox.has(p.attempt_id)) S.outbox.set(p.attempt_id, { payload: p, tries: 0 });
    }
  } catch {
    sessionStorage.removeItem(outboxKey());
  }
}

// ---------------------------------------------------------------- messages to the person

let bannerTimer = null;

function showBanner(kind, text, { takeover = false, reload = false, sticky = false } = {}) {
  clearTimeout(bannerTimer);
  $("banner").dataset.kind = kind;
  $("banner-text").textContent = text;
  $("btn-takeover").hidden = !takeover;
  $("btn-reload").hidden = !reload;
  $("btn-banner-close").hidden = sticky;
  $("banner").hidden = false;
  if (!sticky && !takeover && !reload) bannerTimer = setTimeout(hideBanner, kind === "error" ? 15000 : 6000);
}

function hideBanner() {
  clearTimeout(bannerTimer);
  $("banner").hidden = true;
}

/** A command's error in plain words. */
function errorText(e) {
  const code = e?.code ?? "internal";
  if (has(`errors.${code}`)) return t(`errors.${code}`, { message: e.serverMessage || "" });
  return t("errors.generic", { message: e.serverMessage || code });
}

function showError(e) {
  if (e?.code === "stale_session") {
    enterStale();
    return;
  }
  showBanner("error", errorText(e));
}

// ---------------------------------------------------------------- connection & session

async function prepare() {
  let me;
  try {
    me = await api.me();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      window.location.assign("/login");
      throw e;
    }
    if (e instanceof ApiError && e.status === 403) {
      window.location.assign("/");
      throw e;
    }
    throw e;
  }
  if (me.role && me.role !== "agent") {
    window.location.assign("/");
    throw new Error("not an agent");
  }
  const first = S.me === null;
  S.me = me;
  setCsrf(me.csrf);
  sock.login = me.login;
  S.pauseReasons = Array.isArray(me.pause_reasons) ? me.pause_reasons : [];
  $("agent-name").textContent = me.display_name || me.login;
  $("campaign-name").textContent = me.campaign ? (me.campaign.name ?? me.campaign) : "";
  if (first) {
    loadOutbox();
    startSide({ onUnauthorized: () => window.location.assign("/login") });
  }
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/ws/agent?csrf=${encodeURIComponent(me.csrf)}`;
}

function sendLogin(takeover = false) {
  S.sessionOk = false;
  S.loginPending = true;
  render();
  sock.send("login", { takeover }).then(() => {
    S.loginPending = false;
    S.sessionOk = true;
    if (["session", "connection"].includes($("banner").dataset.kind)) hideBanner();
    for (const id of S.outbox.keys()) sendDisposition(id);
    refreshSide();
    render();
  }).catch((e) => {
    S.loginPending = false;
    if (e.code === "session_active") {
      showBanner("session", t("session.active"), { takeover: true, sticky: true });
    } else if (e.code === "stale_session") {
      enterStale();
    } else if (!LATER_CODES.has(e.code) && e.code !== "timeout") {
      showError(e);
    }
    render();
  });
}

function enterStale() {
  if (S.stale) return;
  S.stale = true;
  S.sessionOk = false;
  sock.stop();
  for (const e of S.outbox.values()) clearTimeout(e.timer);
  showBanner("session", t("session.stale"), { reload: true, sticky: true });
  render();
}

function onStatus(status) {
  S.conn = status;
  if (status.kind !== "online") S.sessionOk = false;
  renderConn();
  render();
}

function renderConn() {
  const c = S.conn;
  $("conn").dataset.kind = S.stale ? "stopped" : c.kind;
  let text;
  if (S.stale || c.kind === "stopped") text = t("conn.stopped");
  else if (c.kind === "online") text = t("conn.online");
  else if (c.kind === "connecting") text = t("conn.connecting");
  else text = t("conn.offline", { seconds: Math.max(0, Math.ceil((c.retryAt - Date.now()) / 1000)) });
  $("conn-text").textContent = text;
}

// ---------------------------------------------------------------- events from the dialer

function onEvent(m) {
  // another window's session: its events reach every socket of the login; not ours to show
  if (!S.sessionOk && !S.loginPending && m.type !== "error") return;
  switch (m.type) {
    case "state": onState(m); break;
    case "screen_pop": onScreenPop(m); break;
    case "call_ended": onCallEnded(m); break;
    case "preview": onPreview(m); break;
    case "callback_reminder": onReminder(m); break;
    case "error": showError({ code: m.code, serverMessage: m.message }); break;
    default: break;
  }
}

function onState(m) {
  const reason = m.reason ?? null;
  const changed = m.state !== S.state;
  // the dialer says when the state began (`since`), so a reloaded page shows the real time
  const since = m.since ? Date.parse(m.since) : NaN;
  if (Number.isFinite(since)) S.stateSince = Math.min(since, Date.now());
  else if (changed || reason !== S.reason) S.stateSince = Date.now();
  S.state = m.state;
  S.reason = reason;
  S.stateAttempt = m.attempt_id ?? null;
  if (Array.isArray(m.dispositions) && m.dispositions.length) S.catalog = m.dispositions;
  if (Array.isArray(m.needs_outcome)) S.needsOutcome = m.needs_outcome.filter((id) => !S.saved.has(id));
  if (m.state === "wrap_up" && S.stateAttempt) S.ended.add(S.stateAttempt);
  if ((m.state === "paused" && S.pendingLeave === "pause") || m.state === "logged_out") S.pendingLeave = null;
  if (S.preview && m.state !== "reserved" && changed) S.preview = null;
  if (CALL_STATES.has(m.state) && S.call && S.stateAttempt && S.call.attemptId !== S.stateAttempt
      && !outcomeQueue().includes(S.call.attemptId)) {
    S.call = null; // a call we no longer need on screen
  }
  if (!CALL_STATES.has(m.state) && S.call && !outcomeQueue().includes(S.call.attemptId)) S.call = null;
  if (S.transfer && (!S.call || S.call.attemptId !== S.transfer.attemptId)) S.transfer = null;
  if (!S.call) S.transferOpen = false;
  if (S.conference && (!S.call || S.call.attemptId !== S.conference.attemptId)) S.conference = null;
  // the dialer says whether the call is on hold (a reloaded page learns it here); a warm
  // transfer's consultation holds the customer by itself and keeps its own flag
  S.stateOnHold = m.on_hold === true;
  if (S.call && S.call.attemptId === S.stateAttempt && typeof m.on_hold === "boolean"
      && !S.transfer) {
    S.call.onHold = m.on_hold;
  }
  render();
}

function onScreenPop(m) {
  const same = S.call && S.call.attemptId === m.attempt_id;
  if (Array.isArray(m.dispositions) && m.dispositions.length) S.catalog = m.dispositions;
  S.preview = null;
  const card = $("call-card");
  if (m.lead) S.lastLead = { id: m.lead.id, name: m.lead.name, phone: m.lead.phone };
  if (!same) {
    S.call = {
      attemptId: m.attempt_id, lead: m.lead, history: m.history ?? [], script: m.script ?? "",
      ended: S.ended.has(m.attempt_id), talkS: null, startedAt: Date.now(), endedAt: null,
      transfer: m.transfer ?? null,
      onHold: S.stateAttempt === m.attempt_id && Boolean(S.stateOnHold),
    };
  } else {
    Object.assign(S.call, { lead: m.lead, history: m.history ?? [], script: m.script ?? "",
      transfer: m.transfer ?? S.call.transfer ?? null });
  }
  renderLead({ kind: "call", lead: m.lead, history: m.history, script: m.script, catalog: S.catalog });
  render();
  if (!same || !card.dataset.popShownMs) {
    card.dataset.popAttempt = String(m.attempt_id);
    card.dataset.popSentMs = String(Date.parse(m.ts));
    card.dataset.popShownMs = String(Date.now());
  }
  loadContext(m.attempt_id, true);
}

function onCallEnded(m) {
  S.ended.add(m.attempt_id);
  if (S.call && S.call.attemptId === m.attempt_id) {
    S.call.ended = true;
    S.call.talkS = m.talk_s ?? null;
    S.call.endedAt = Date.now();
  }
  render();
}

function onPreview(m) {
  S.preview = { lead: m.lead, history: m.history ?? [], script: m.script ?? "", accepted: false };
  if (S.call && !outcomeQueue().includes(S.call.attemptId)) S.call = null;
  if (!S.call) renderLead({ kind: "preview", lead: m.lead, history: m.history, script: m.script, catalog: S.catalog });
  render();
  if (!S.call) $("btn-accept").focus();
  loadLeadContext(m.lead.id);
}

/**
 * The local times of a lead offered in preview (a `preview` has no attempt id yet). Read at
 * every offer, not kept: a lead offered again later is open or closed by then.
 */
async function loadLeadContext(leadId) {
  if (S.leadLoading.has(leadId)) return;
  S.leadLoading.add(leadId);
  let ctx = "failed";
  try {
    ctx = normalizeContext(await api.leadContext(leadId));
  } catch {
    // shown as "not available" below
  } finally {
    S.leadLoading.delete(leadId);
  }
  if (S.call || S.preview?.lead.id !== leadId) return; // the offer is gone or a call is on
  if (ctx === "failed") contextFailed();
  else renderContext(ctx);
}

function onReminder(m) {
  const cb = callbackFor(m.lead_id);
  const who = cb?.name ? (cb.company ? `${cb.name}, ${cb.company}` : cb.name) : t("reminder.lead", { id: m.lead_id });
  const note = h("div", { class: "reminder", role: "status" },
    h("span", { class: "reminder-text" }, t("reminder.due", { who, time: formatTime(m.due_at) })),
    h("button", { class: "btn btn-quiet", type: "button", onclick: () => note.remove() }, t("common.dismiss")));
  $("reminders").append(note);
  refreshSide();
}

async function loadContext(attemptId, forCard) {
  const known = S.contexts.get(attemptId);
  if (known && known !== "failed") {
    if (known !== "loading" && forCard) renderContext(known);
    return;
  }
  S.contexts.set(attemptId, "loading");
  try {
    const ctx = normalizeContext(await api.context(attemptId));
    S.contexts.set(attemptId, ctx);
  } catch {
    S.contexts.set(attemptId, "failed");
  }
  const ctx = S.contexts.get(attemptId);
  // the card shows its own call's context only (a queued outcome's is for the form's title
  // and zone)
  if (S.call?.attemptId === attemptId) {
    if (ctx === "failed") contextFailed();
    else renderContext(ctx);
  }
  render();
}

// ---------------------------------------------------------------- the outcome queue

/** Calls waiting for this agent's disposition, the one on screen first. */
function outcomeQueue() {
  const ids = [];
  const add = (id) => {
    if (id && !S.saved.has(id) && !ids.includes(id)) ids.push(id);
  };
  if (S.call && (S.call.ended || S.preselect.has(S.call.attemptId))) add(S.call.attemptId);
  if (S.state === "wrap_up") add(S.stateAttempt);
  for (const id of S.ended) add(id);
  for (const id of S.outbox.keys()) add(id);
  for (const id of S.needsOutcome) add(id);
  return ids;
}

function zoneFor(attemptId) {
  const ctx = S.contexts.get(attemptId);
  return ctx && typeof ctx === "object" ? ctx.calleeZone : null;
}

/** Who a call was with: its context's lead name (calls known only by id after a restart). */
function leadNameFor(attemptId) {
  const ctx = S.contexts.get(attemptId);
  return ctx && typeof ctx === "object" ? ctx.leadName : null;
}

function renderForm() {
  const queue = outcomeQueue();
  const onCall = S.call && !S.call.ended && CALL_STATES.has(S.state) && S.state !== "wrap_up";
  const target = queue[0];
  // while a call is live, only that call's (quick) outcome is shown
  if (!target || (onCall && target !== S.call.attemptId) || S.stale) {
    if (form.isOpen) form.close();
    return;
  }
  const isCall = S.call && S.call.attemptId === target;
  const name = isCall ? S.call.lead.name : leadNameFor(target);
  const title = name ? t("dispo.heading_call", { name }) : t("dispo.heading_missing", { id: target });
  const entry = S.outbox.get(target);
  const fresh = form.open({
    attemptId: target, title, catalog: S.catalog, preselect: S.preselect.get(target) ?? null,
    zone: zoneFor(target), queue: queue.length - 1, ready: !isCall || S.call.ended,
    saved: entry ? entry.payload : null,
  });
  if (fresh) {
    if (entry) {
      form.setBusy(true);
      form.setStatus("info", t("dispo.saving"));
    } else if (isCall && !S.call.ended) {
      form.setStatus("info", t("dispo.wait_call_end"));
    }
    if (!S.contexts.has(target)) loadContext(target, false);
    if (!entry) form.focusFirst();
  } else if (isCall && S.call.ended && $("dispo-status").dataset.kind === "info" && !entry) {
    form.setStatus("", "");
  }
}

function submitDisposition(payload) {
  S.outbox.set(payload.attempt_id, { payload, tries: 0, timer: null });
  saveOutbox();
  sendDisposition(payload.attempt_id);
}

function sendDisposition(attemptId) {
  const entry = S.outbox.get(attemptId);
  if (!entry || S.stale) return;
  clearTimeout(entry.timer);
  const visible = () => form.isOpen && form.attemptId === attemptId;
  if (visible()) {
    form.setBusy(true);
    if (entry.tries === 0) form.setStatus("info", t("dispo.saving"));
  }
  const retry = () => {
    entry.timer = setTimeout(() => sendDisposition(attemptId), backoffDelay(entry.tries++, { baseMs: 2000, maxMs: 30000 }));
  };
  sock.send("disposition", entry.payload).then(() => dispositionSaved(attemptId)).catch((e) => {
    if (e.code === "already_disposed") {
      dispositionSaved(attemptId);
    } else if (e.code === "stale_session") {
      enterStale();
    } else if (RETRY_CODES.has(e.code)) {
      if (visible()) form.setStatus("warn", t("dispo.not_saved"));
      retry();
    } else if (LATER_CODES.has(e.code)) {
      // re-sent after the next `login` is acked
      if (visible()) form.setStatus("warn", t("dispo.offline_kept"));
    } else {
      S.outbox.delete(attemptId);
      saveOutbox();
      if (["unknown_attempt", "not_your_attempt"].includes(e.code)) {
        S.saved.add(attemptId); // nothing this desktop can record for it
        showError(e);
        render();
        return;
      }
      if (visible()) {
        form.setBusy(false);
        form.setStatus("error", errorText(e));
      } else {
        showError(e);
      }
    }
  });
}

function dispositionSaved(attemptId) {
  const entry = S.outbox.get(attemptId);
  if (entry) clearTimeout(entry.timer);
  S.outbox.delete(attemptId);
  saveOutbox();
  S.saved.add(attemptId);
  S.ended.delete(attemptId);
  S.preselect.delete(attemptId);
  S.needsOutcome = S.needsOutcome.filter((id) => id !== attemptId);
  if (form.attemptId === attemptId) form.close();
  if (S.call && S.call.attemptId === attemptId && !CALL_STATES.has(S.state)) S.call = null;
  if (S.call && S.call.attemptId === attemptId && S.state === "wrap_up" && S.stateAttempt !== attemptId) S.call = null;
  showBanner("ok", t("dispo.saved"));
  refreshSide();
  render();
}

// ---------------------------------------------------------------- rendering

function stateText() {
  if (!S.state) return t("state.unknown");
  return has(`state.${S.state}`) ? t(`state.${S.state}`) : S.state;
}

function reasonText() {
  if (!S.reason) return "";
  return has(`reasons.${S.reason}`) ? t(`reasons.${S.reason}`) : S.reason;
}

function render() {
  if (!form) return;
  document.body.dataset.state = S.state ?? "";
  $("state-badge").textContent = stateText();
  $("state-badge").dataset.state = S.state ?? "";
  $("state-reason").textContent = reasonText();
  $("leave-note").hidden = !S.pendingLeave;
  $("leave-note").textContent = S.pendingLeave ? t(`leave.${S.pendingLeave}`) : "";
  const live = S.sessionOk && !S.stale;
  $("btn-ready").disabled = !live || !(S.state === "paused" || S.state === "logged_out" || S.pendingLeave);
  $("btn-pause").disabled = !live || S.state === "logged_out";
  renderConn();

  const card = $("call-card");
  const showCall = Boolean(S.call);
  const showPreview = !showCall && Boolean(S.preview);
  card.hidden = !(showCall || showPreview);
  card.dataset.kind = showCall ? "call" : showPreview ? "preview" : "";
  const talking = showCall && !S.call.ended && S.stateAttempt === S.call.attemptId && CALL_STATES.has(S.state);
  $("call-controls").hidden = !talking;
  $("btn-hangup").disabled = !live || S.state !== "talking";
  $("btn-machine").disabled = !live || S.state !== "talking";
  $("btn-wrong").disabled = !live || S.state !== "talking";
  // call controls (docs/call-controls.md): hold / resume and the keypad
  const onHold = Boolean(talking && S.call.onHold);
  $("btn-hold").disabled = !live || S.state !== "talking" || S.holdBusy;
  $("btn-hold").setAttribute("aria-pressed", String(onHold));
  $("hold-label").textContent = onHold ? t("call.resume") : t("call.hold");
  $("btn-keypad").disabled = !live || S.state !== "talking";
  $("btn-keypad").setAttribute("aria-expanded", String(Boolean(S.keypadOpen && talking)));
  $("keypad").hidden = !(S.keypadOpen && talking);
  renderTransfer(live, talking, showCall);
  renderManual({ live, state: S.state, lead: S.lastLead, busy: S.manualBusy });
  $("preview-controls").hidden = !showPreview;
  $("btn-accept").disabled = !live || (S.preview?.accepted ?? false);
  $("btn-skip").disabled = !live || (S.preview?.accepted ?? false);
  if (showCall && S.call.ended) {
    $("call-kind").textContent = S.call.talkS !== null
      ? t("call.kind_ended_talk", { talk: formatDuration(S.call.talkS) }) : t("call.kind_ended");
  } else if (showCall) {
    $("call-kind").textContent = S.call.onHold ? t("call.on_hold") : t("call.kind_call");
  } else if (showPreview) {
    $("call-kind").textContent = S.preview.accepted ? t("preview.dialing") : t("call.kind_preview");
  }
  if (!showCall) {
    delete card.dataset.popAttempt;
    delete card.dataset.popShownMs;
    delete card.dataset.popSentMs;
  }

  renderForm();

  const idle = $("idle");
  idle.hidden = card.hidden === false || form.isOpen;
  let title;
  let hint = "";
  if (S.stale) {
    title = t("idle.stale");
  } else if (!S.sessionOk) {
    title = t("idle.connecting");
  } else if (S.state === "ready") {
    title = S.pendingLeave ? t(`leave.${S.pendingLeave}`) : t("idle.ready");
    hint = t("idle.ready_hint");
  } else if (S.state === "paused") {
    title = t("idle.paused");
    hint = t("idle.paused_hint");
  } else if (S.state === "logged_out") {
    title = t("idle.logged_out");
    hint = t("idle.paused_hint");
  } else if (S.state === "reserved") {
    title = t("idle.reserved");
  } else {
    title = stateText();
  }
  $("idle-title").textContent = title;
  $("idle-hint").textContent = hint;
}

function tick() {
  $("state-timer").textContent = formatDuration((Date.now() - S.stateSince) / 1000);
  if (S.call && !S.call.ended) setTalkTimer((Date.now() - S.call.startedAt) / 1000);
  else setTalkTimer(null);
  tickClocks();
  if (S.conn.kind === "offline") renderConn();
}

// ---------------------------------------------------------------- actions

function command(type, fields = {}) {
  if (S.stale) return Promise.reject(new Error("stale"));
  const p = sock.send(type, fields);
  p.catch((e) => showError(LATER_CODES.has(e.code) ? { code: "offline" } : e));
  return p;
}

async function goReady() {
  if ($("btn-ready").disabled) return;
  if (S.state === "logged_out") {
    try {
      await sock.send("login", {});
    } catch (e) {
      showError(e);
      return;
    }
  }
  command("ready").then(() => {
    S.pendingLeave = null;
    render();
  }, () => {});
}

function openPause() {
  if ($("btn-pause").disabled) return;
  const box = clear($("pause-reasons"));
  const reasons = S.pauseReasons.length ? S.pauseReasons : ["break"];
  reasons.slice(0, 20).forEach((r, i) => {
    const code = typeof r === "string" ? r : (r.code ?? r.reason ?? r.label);
    const label = typeof r === "object" && r.label ? r.label
      : has(`reasons.${code}`) ? t(`reasons.${code}`) : code;
    box.append(h("button", {
      type: "button", class: "btn reason-btn", dataset: { reason: code, key: i < 9 ? String(i + 1) : "" },
      onclick: () => choosePause(code),
    }, i < 9 ? h("kbd", {}, String(i + 1)) : null, h("span", {}, label)));
  });
  $("pause-during-call").hidden = !CALL_STATES.has(S.state);
  $("pause-dialog").showModal();
  box.querySelector("button")?.focus();
}

function choosePause(reason) {
  $("pause-dialog").close();
  command("pause", { reason }).then(() => {
    if (S.state !== "paused") S.pendingLeave = "pause";
    render();
  }, () => {});
}

async function logOut() {
  if (S.call || outcomeQueue().length) {
    showBanner("warn", t("errors.finish_first"));
    return;
  }
  $("btn-logout").disabled = true;
  if (sock.online && S.sessionOk) {
    try {
      await sock.send("logout");
    } catch (e) {
      if (e.code === "invalid_state") {
        showBanner("warn", t("errors.finish_first"));
        $("btn-logout").disabled = false;
        return;
      }
    }
  }
  sock.stop();
  await signOutAndLeave();
}

function hangup() {
  if (!S.call || $("btn-hangup").disabled || $("call-controls").hidden) return;
  command("hangup", { attempt_id: S.call.attemptId }).catch(() => {});
}

function toggleHold() {
  if (!S.call || $("btn-hold").disabled || $("call-controls").hidden) return;
  const call = S.call;
  const resume = Boolean(call.onHold);
  S.holdBusy = true;
  render();
  command(resume ? "resume" : "hold", { attempt_id: call.attemptId }).then(() => {
    call.onHold = !resume;
  }, () => {}).finally(() => {
    S.holdBusy = false;
    render();
  });
}

function toggleKeypad() {
  if (!S.call || $("btn-keypad").disabled || $("call-controls").hidden) return;
  S.keypadOpen = !S.keypadOpen;
  render();
  if (S.keypadOpen) $("keypad-input").focus();
}

function sendDigits(digits) {
  const d = String(digits).toUpperCase();
  if (!S.call || $("btn-keypad").disabled || !/^[0-9*#A-D]{1,32}$/.test(d)) return false;
  command("dtmf", { attempt_id: S.call.attemptId, digits: d }).catch(() => {});
  return true;
}

function sendTypedDigits() {
  const input = $("keypad-input");
  if (sendDigits(input.value.trim())) input.value = "";
}

// transfer to another agent (docs/call-controls.md): blind, or warm with complete / cancel
function renderTransfer(live, talking, showCall) {
  const tr = S.transfer && S.call && S.transfer.attemptId === S.call.attemptId ? S.transfer : null;
  $("btn-transfer").disabled = !live || S.state !== "talking";
  $("btn-transfer").setAttribute("aria-expanded", String(Boolean((S.transferOpen || tr) && talking)));
  $("transfer-panel").hidden = !((S.transferOpen || tr) && talking);
  $("btn-transfer-send").hidden = Boolean(tr);
  $("btn-transfer-send").disabled = !live || Boolean(tr);
  $("btn-transfer-complete").hidden = !(tr && tr.phase === "consulting");
  $("btn-transfer-cancel").hidden = !tr;
  $("btn-transfer-complete").disabled = !live || !tr || tr.phase !== "consulting";
  $("btn-transfer-cancel").disabled = !live || !tr || tr.phase === "busy";
  const conf = S.conference && S.call && S.conference.attemptId === S.call.attemptId ? S.conference : null;
  if (conf) {
    $("transfer-panel").hidden = !talking;
    $("btn-transfer-send").hidden = true; // one thing at a time: end the conference first
  }
  $("btn-conference").hidden = Boolean(tr || conf);
  $("btn-conference").disabled = !live || Boolean(tr || conf);
  $("btn-conference-leave").hidden = !conf || conf.phase === "ringing";
  $("btn-conference-leave").disabled = !live || !conf || conf.phase !== "on";
  $("transfer-status").textContent = conf && !tr
    ? t(conf.phase === "ringing" ? "call.conference_ringing" : "call.conference_on", { who: conf.who })
    : !tr ? ""
    : tr.phase === "consulting" ? t("call.transfer_consulting", { agent: tr.to })
      : t("call.transfer_ringing", { agent: tr.to });
  const from = showCall ? S.call.transfer : null;
  $("transfer-note").hidden = !from;
  $("transfer-note").textContent = !from ? "" : from.notes
    ? t("call.transferred_from", { agent: from.from_agent, notes: from.notes })
    : t("call.transferred_from_no_notes", { agent: from.from_agent });
}

function toggleTransfer() {
  if (!S.call || $("btn-transfer").disabled || $("call-controls").hidden) return;
  S.transferOpen = !S.transferOpen;
  render();
  if (S.transferOpen) {
    $("transfer-to").focus();
    loadTransferTargets();
  }
}

function sendTransfer() {
  if (!S.call || S.transfer || $("btn-transfer-send").disabled) return;
  const typed = $("transfer-to").value.trim();
  const logins = typed.split(/[\s,]+/).filter(Boolean);
  if (!logins.length) {
    $("transfer-to").focus();
    return;
  }
  const mode = $("transfer-warm").checked ? "warm" : "blind";
  const fields = { attempt_id: S.call.attemptId, mode, notes: $("transfer-notes").value.slice(0, 4000) };
  // an outside number starts with + or a digit (as for a conference), a named group with @;
  // logins do neither
  if (/^[+\d]/.test(typed)) fields.number = typed;
  else if (typed.startsWith("@")) fields.group = typed.slice(1);
  else if (logins.length === 1) fields.to = logins[0];
  else fields.group = logins;
  const tr = { attemptId: S.call.attemptId, to: logins.join(", "), mode, phase: "ringing" };
  S.transfer = tr;
  render();
  command("transfer", fields).then(() => {
    if (S.transfer !== tr) return;
    if (mode === "warm") {
      tr.phase = "consulting";
      if (S.call) S.call.onHold = true;
    } else {
      S.transfer = null;
      S.transferOpen = false;
    }
  }, () => {
    if (S.transfer === tr) S.transfer = null;
  }).finally(render);
}

// a third party into the call (docs/call-controls.md "Conference"): the field holds a paused
// agent's login, or an outside number (it starts with + or a digit)
function startConference() {
  if (!S.call || S.transfer || S.conference || $("btn-conference").disabled) return;
  const who = $("transfer-to").value.trim();
  if (!who) {
    $("transfer-to").focus();
    return;
  }
  const fields = { attempt_id: S.call.attemptId };
  if (/^[+\d]/.test(who)) fields.number = who;
  else fields.to = who;
  const conf = { attemptId: S.call.attemptId, who, phase: "ringing" };
  S.conference = conf;
  render();
  command("conference", fields).then(() => {
    if (S.conference === conf) conf.phase = "on";
  }, () => {
    if (S.conference === conf) S.conference = null;
  }).finally(render);
}

function leaveConference() {
  const conf = S.conference;
  if (!conf || conf.phase !== "on") return;
  conf.phase = "busy";
  render();
  command("conference_leave", { attempt_id: conf.attemptId }).then(() => {
    if (S.conference === conf) S.conference = null;
  }, () => {
    if (S.conference === conf) conf.phase = "on";
  }).finally(render);
}

function endTransfer(complete) {
  const tr = S.transfer;
  if (!tr || tr.phase === "busy") return;
  const was = tr.phase;
  tr.phase = "busy";
  render();
  command(complete ? "transfer_complete" : "transfer_cancel", { attempt_id: tr.attemptId }).then(() => {
    if (S.transfer === tr) S.transfer = null;
    S.transferOpen = !complete; // after a cancel the panel stays, to try someone else
    if (complete) $("transfer-notes").value = "";
    if (S.call && S.call.attemptId === tr.attemptId) S.call.onHold = false;
  }, () => {
    tr.phase = was;
  }).finally(render);
}

function quickOutcome(kind) {
  if (!S.call || $("btn-hangup").disabled || $("call-controls").hidden) return;
  const code = quickCode(S.catalog, kind);
  const id = S.call.attemptId;
  command("hangup", { attempt_id: id }).catch(() => {});
  if (code) S.preselect.set(id, code);
  else S.preselect.set(id, null);
  render();
}

function previewAnswer(accept) {
  if (!S.preview || S.preview.accepted) return;
  const leadId = S.preview.lead.id;
  if (accept) S.preview.accepted = true;
  render();
  command(accept ? "preview_accept" : "preview_skip", { lead_id: leadId }).then(() => {
    if (!accept && S.preview?.lead.id === leadId) S.preview = null;
    render();
  }, () => {
    if (S.preview) S.preview.accepted = false;
    render();
  });
}

let manualDial = () => {};

function onKey(ev) {
  if ($("pause-dialog").open) {
    if (/^[1-9]$/.test(ev.key)) {
      const b = $("pause-reasons").querySelector(`[data-key="${ev.key}"]`);
      if (b) {
        ev.preventDefault();
        b.click();
      }
    }
    return;
  }
  if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.key === "k" || ev.key === "K")) {
    ev.preventDefault();
    toggleKeypad();
    return;
  }
  if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.key === "d" || ev.key === "D")) {
    ev.preventDefault();
    manualDial();
    return;
  }
  if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.key === "t" || ev.key === "T")) {
    ev.preventDefault();
    toggleTransfer();
    return;
  }
  if (ev.key === "Enter" && ev.target === $("keypad-input")) {
    ev.preventDefault();
    sendTypedDigits();
    return;
  }
  const actions = {
    F2: goReady, F3: openPause, F4: hangup, F10: toggleHold, F6: () => quickOutcome("machine"),
    F7: () => quickOutcome("wrong_person"), F8: () => previewAnswer(true), F9: () => previewAnswer(false),
  };
  if (actions[ev.key] && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    ev.preventDefault();
    actions[ev.key]();
    return;
  }
  if (form.isOpen && ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    form.submit();
    return;
  }
  if (form.isOpen && /^[1-9]$/.test(ev.key) && (!isTyping(ev) || ev.altKey) && !ev.ctrlKey && !ev.metaKey) {
    if (form.selectByKey(ev.key)) ev.preventDefault();
  }
}

// ---------------------------------------------------------------- start

async function main() {
  await initI18n();
  applyI18n();
  S.session = tabSession();
  form = new DispositionForm({
    onSubmit: submitDisposition,
    checkContact: (attemptId, iso) => api.checkContact(attemptId, iso),
  });
  $("btn-ready").addEventListener("click", goReady);
  $("btn-pause").addEventListener("click", openPause);
  $("btn-logout").addEventListener("click", logOut);
  $("btn-hangup").addEventListener("click", hangup);
  $("btn-machine").addEventListener("click", () => quickOutcome("machine"));
  $("btn-wrong").addEventListener("click", () => quickOutcome("wrong_person"));
  $("btn-hold").addEventListener("click", toggleHold);
  $("btn-keypad").addEventListener("click", toggleKeypad);
  $("btn-keypad-send").addEventListener("click", sendTypedDigits);
  $("btn-transfer").addEventListener("click", toggleTransfer);
  manualDial = wireManual({
    send: command, lead: () => S.lastLead,
    onBusy: (b) => {
      S.manualBusy = b;
      render();
    },
  });
  $("btn-transfer-send").addEventListener("click", sendTransfer);
  $("btn-transfer-complete").addEventListener("click", () => endTransfer(true));
  $("btn-transfer-cancel").addEventListener("click", () => endTransfer(false));
  $("btn-conference").addEventListener("click", startConference);
  $("btn-conference-leave").addEventListener("click", leaveConference);
  for (const key of "123456789*0#") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn keypad-key";
    b.textContent = key;
    b.dataset.digit = key;
    b.addEventListener("click", () => sendDigits(key));
    $("keypad-keys").append(b);
  }
  $("btn-accept").addEventListener("click", () => previewAnswer(true));
  $("btn-skip").addEventListener("click", () => previewAnswer(false));
  $("btn-takeover").addEventListener("click", () => {
    hideBanner();
    sendLogin(true);
  });
  $("btn-reload").addEventListener("click", () => window.location.reload());
  $("btn-banner-close").addEventListener("click", hideBanner);
  document.addEventListener("keydown", onKey);

  sock = new AgentSocket({
    login: "", session: S.session, prepare, onOpen: () => sendLogin(false), onEvent, onStatus,
  });
  window.addEventListener("online", () => sock.kick());
  render();
  setInterval(tick, 1000);
  tick();
  sock.start();
}

main();
