// The supervisor console's pure functions (tested in Chromium by tests/web_static).

/** The campaign controls a state offers: a paused campaign resumes or stops, a stopped one starts. */
export function campaignActions(state) {
  switch (state) {
    case "paused": return ["resume", "stop"];
    case "stopped": return ["start"];
    case "not_running": return [];
    default: return ["pause", "stop"];
  }
}

/** How an abandon rate stands against its cap: ok, near (80 % of the cap or more) or over. */
export function abandonKind(rate, cap) {
  if (!(cap > 0)) return "ok";
  if (rate > cap) return "over";
  if (rate >= 0.8 * cap) return "near";
  return "ok";
}

/** A 0..1 ratio as a percentage with one decimal ("2.5 %"), "–" when absent. */
export function percent(x, format = (n) => n.toFixed(1)) {
  if (x === null || x === undefined || Number.isNaN(Number(x))) return "\u2013";
  return `${format(Number(x) * 100)} %`;
}

/** Whole seconds from an ISO time to `nowMs` (never negative; null without a time). */
export function secondsSince(iso, nowMs) {
  if (!iso) return null;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return null;
  return Math.max(0, Math.floor((nowMs - t) / 1000));
}

/** "[["09:00","12:00"],["13:00","17:00"]]" as "09:00–12:00, 13:00–17:00"; "" when closed. */
export function intervalsText(pairs) {
  return (pairs ?? []).map(([a, b]) => `${a}\u2013${b}`).join(", ");
}

/** Numbers typed one per line or separated by commas/semicolons, blanks dropped. */
export function splitNumbers(text) {
  return String(text ?? "").split(/[\n,;]+/).map((s) => s.trim()).filter(Boolean);
}

/** The calendar edit the companies form describes: only the fields filled in. */
export function companyEdit(fields) {
  const out = {};
  for (const k of ["timezone", "hours", "days_off", "holidays"]) {
    const v = (fields[k] ?? "").trim();
    if (v) out[k] = v;
  }
  const closure = (fields.closure ?? "").trim();
  if (closure) out.add_closures = [closure];
  if (fields.clear_closures) out.clear_closures = true;
  const special = (fields.special ?? "").trim();
  if (special) out.special_days = [special];
  return out;
}

/** Agents of a wallboard sorted for the eye: talking first, then reserved, wrap-up, ready, paused, out. */
const STATE_ORDER = ["talking", "reserved", "wrap_up", "ready", "paused", "logged_out"];
export function sortAgents(agents) {
  return [...(agents ?? [])].sort((a, b) =>
    (STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state)) || a.login.localeCompare(b.login));
}

/** Listen-in modes in the order the console offers them (docs/console.md). */
export const LISTEN_MODES = ["monitor", "whisper", "barge"];

/** Whether `uri` looks like a phone's SIP URI (sip:user@host[:port]); the server checks it too. */
export function validPhone(uri) {
  return /^sips?:[^@\s:;?]+@[^@\s?]+$/.test(String(uri ?? "").trim());
}

/** Where the browser remembers a supervisor's phone URI (one entry per login). */
export function phoneKey(login) {
  return `dialer.console.listen_phone.${login}`;
}

/** The live listen-in sessions by the attempt they listen to: attempt id -> [sessions]. */
export function listensByAttempt(sessions) {
  const out = new Map();
  for (const s of sessions ?? []) {
    if (!out.has(s.attempt_id)) out.set(s.attempt_id, []);
    out.get(s.attempt_id).push(s);
  }
  return out;
}

/** Whether an agent row of the wallboard can be listened to: talking on a call. */
export function canListen(agent) {
  return agent?.state === "talking" && Number.isInteger(agent.attempt_id);
}
