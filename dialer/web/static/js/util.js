// Small pure functions used by the pages: no DOM, no network, no globals but the
// arguments (tests/web_static runs them in Chromium).

/** Escape text for use inside HTML (element content or a quoted attribute). */
export function escapeHtml(value) {
  return String(value ?? "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** The value a script placeholder stands for, or undefined when the lead has none. */
function placeholderValue(lead, key) {
  if (key === "name" || key === "company" || key === "phone") {
    const v = lead?.[key];
    return v === null || v === undefined ? undefined : v;
  }
  const fields = lead?.custom_fields ?? {};
  if (Object.prototype.hasOwnProperty.call(fields, key)) {
    const v = fields[key];
    return v === null || v === undefined ? "" : v;
  }
  return undefined;
}

/**
 * The campaign's script as safe HTML: the whole text is escaped, `{name}`, `{company}`,
 * `{phone}` and `{<custom field>}` become the lead's (escaped) values wrapped in
 * `<span class="fill">`, line breaks become `<br>`. Unknown placeholders stay as written so
 * the script's author sees them.
 */
export function fillScript(template, lead) {
  const text = String(template ?? "");
  let out = "";
  let last = 0;
  const re = /\{([A-Za-z0-9_.\- ]{1,64})\}/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    out += escapeHtml(text.slice(last, m.index));
    const value = placeholderValue(lead, m[1].trim());
    out += value === undefined
      ? escapeHtml(m[0])
      : `<span class="fill">${escapeHtml(value)}</span>`;
    last = m.index + m[0].length;
  }
  out += escapeHtml(text.slice(last));
  return out.replace(/\r\n|\r|\n/g, "<br>");
}

/** Seconds as `m:ss`, or `h:mm:ss` from one hour on (negative counts as 0). */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/**
 * Reconnect delay in ms for the n-th consecutive failure (0-based): exponential from
 * `baseMs`, capped at `maxMs`, with "equal jitter" (half fixed, half random) so a room full
 * of desktops does not reconnect in lockstep after a server restart.
 */
export function backoffDelay(attempt, { baseMs = 500, maxMs = 15000, random = Math.random } = {}) {
  const n = Math.max(0, Math.min(30, Math.floor(attempt)));
  const ceiling = Math.min(maxMs, baseMs * 2 ** n);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A random RFC 4122 v4 id (works without a secure context, unlike crypto.randomUUID). */
export function newId(cryptoObj = globalThis.crypto) {
  const b = new Uint8Array(16);
  cryptoObj.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

function offsetText(minutes) {
  const sign = minutes < 0 ? "-" : "+";
  const a = Math.abs(minutes);
  return `${sign}${pad2(Math.floor(a / 60))}:${pad2(a % 60)}`;
}

/** ISO 8601 with the browser's own offset (the protocol's `ts`), e.g. 2026-11-23T14:05:10.123+01:00. */
export function isoWithOffset(date = new Date()) {
  const off = -date.getTimezoneOffset();
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}` +
    `T${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}` +
    `.${String(date.getMilliseconds()).padStart(3, "0")}${offsetText(off)}`;
}

const partsCache = new Map();
function zoneFormatter(timeZone) {
  let f = partsCache.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    partsCache.set(timeZone, f);
  }
  return f;
}

/** The wall clock of `timeZone` at instant `ms`: {year, month, day, hour, minute, second}. */
export function wallClock(ms, timeZone) {
  const parts = {};
  for (const p of zoneFormatter(timeZone).formatToParts(new Date(ms))) {
    if (p.type !== "literal") parts[p.type] = Number(p.value);
  }
  return parts;
}

/** The UTC offset of `timeZone` at instant `ms`, in minutes (east positive). */
export function zoneOffsetMinutes(ms, timeZone) {
  const w = wallClock(ms, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

/**
 * A wall time in a zone ("2026-12-01", "15:00", "Europe/Stockholm") as ISO 8601 with that
 * zone's offset at that moment ("2026-12-01T15:00:00+01:00"). A time skipped by a DST change
 * is moved forward by the gap, as clocks do; null for malformed input.
 */
export function zonedWallTimeToIso(dateStr, timeStr, timeZone) {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateStr ?? "");
  const t = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(timeStr ?? "");
  if (!d || !t) return null;
  const wall = Date.UTC(+d[1], +d[2] - 1, +d[3], +t[1], +t[2], +(t[3] ?? 0));
  let off = zoneOffsetMinutes(wall, timeZone);
  let instant = wall - off * 60000;
  const off2 = zoneOffsetMinutes(instant, timeZone);
  if (off2 !== off) {
    off = off2;
    instant = wall - off * 60000;
  }
  const w = wallClock(instant, timeZone);
  return `${w.year}-${pad2(w.month)}-${pad2(w.day)}T${pad2(w.hour)}:${pad2(w.minute)}:` +
    `${pad2(w.second)}${offsetText(zoneOffsetMinutes(instant, timeZone))}`;
}

/** Today's date in a zone as "YYYY-MM-DD" (for a date input's `min`). */
export function zoneDate(ms, timeZone) {
  const w = wallClock(ms, timeZone);
  return `${w.year}-${pad2(w.month)}-${pad2(w.day)}`;
}

/** Seconds to wait from a Retry-After header (delta seconds or an HTTP date); null if absent. */
export function parseRetryAfter(header, nowMs = Date.now()) {
  if (header === null || header === undefined || header === "") return null;
  const s = String(header).trim();
  if (/^\d+$/.test(s)) return Number(s);
  const at = Date.parse(s);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/** Remembers the last `size` ids: `seen(id)` is true for a repeat (at-least-once delivery). */
export class IdWindow {
  constructor(size = 500) {
    this.size = size;
    this.ids = new Set();
    this.order = [];
  }

  seen(id) {
    if (id === null || id === undefined) return false;
    if (this.ids.has(id)) return true;
    this.ids.add(id);
    this.order.push(id);
    if (this.order.length > this.size) this.ids.delete(this.order.shift());
    return false;
  }
}

/** The catalog as the form shows it: no engine-internal code, keys 1..9 for the first nine. */
export function dispositionChoices(catalog) {
  return (catalog ?? [])
    .filter((d) => d && d.code && d.code !== "wrapup_timeout")
    .map((d, i) => ({ ...d, key: i < 9 ? String(i + 1) : null }));
}

const QUICK_CODES = {
  machine: ["answering_machine", "machine", "voicemail", "amd", "answer_machine"],
  wrong_person: ["wrong_person", "not_reached"],
  dnc: ["do_not_call", "dnc"],
};

/** The catalog's code for a quick outcome ("machine", "wrong_person", "dnc"), or null. */
export function quickCode(catalog, kind) {
  const codes = new Set((catalog ?? []).map((d) => d.code));
  return (QUICK_CODES[kind] ?? []).find((c) => codes.has(c)) ?? null;
}

/**
 * The agent's day (`/api/agent/day`) as table rows: accepts one object, a list of objects,
 * or `{rows: [...]}` / `{campaigns: [...]}`; keeps number-valued columns (not ids), in
 * first-seen order. Returns {columns: [...names], rows: [{label, values: {col: n}}]}.
 */
export function dayTable(data) {
  let rows = data;
  if (rows && !Array.isArray(rows)) {
    rows = Array.isArray(rows.rows) ? rows.rows
      : Array.isArray(rows.campaigns) ? rows.campaigns : [rows];
  }
  rows = (rows ?? []).filter((r) => r && typeof r === "object");
  const skip = new Set(["campaign_id", "agent_id", "id", "date", "report_date"]);
  const columns = [];
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (!skip.has(k) && typeof v === "number" && !columns.includes(k)) columns.push(k);
    }
  }
  return {
    columns,
    rows: rows.map((r) => ({
      label: typeof r.campaign === "string" ? r.campaign : "",
      values: Object.fromEntries(columns.map((c) => [c, typeof r[c] === "number" ? r[c] : null])),
    })),
  };
}

/** Replace `{key}` in a catalog string by params[key] (missing keys stay as written). */
export function interpolate(template, params = {}) {
  return String(template).replace(/\{(\w+)\}/g, (m, k) =>
    Object.prototype.hasOwnProperty.call(params, k) ? String(params[k]) : m);
}

function firstDefined(...values) {
  return values.find((v) => v !== undefined && v !== null);
}

/** Today's opening hours in any of the shapes a server may send, as [["08:00", "12:00"], ...]. */
export function normalizeHours(hours) {
  if (hours === null || hours === undefined) return null;
  if (typeof hours === "string") {
    return hours.split(/[,;]/).map((s) => s.trim()).filter(Boolean)
      .map((s) => s.split(/\s*[-–]\s*/)).filter((p) => p.length === 2);
  }
  if (!Array.isArray(hours)) return null;
  return hours.map((h) => {
    if (Array.isArray(h)) return [String(h[0]), String(h[1])];
    if (typeof h === "string") return h.split(/\s*[-–]\s*/);
    if (h && typeof h === "object") {
      return [String(firstDefined(h.start, h.opens, h.from, "")), String(firstDefined(h.end, h.closes, h.to, ""))];
    }
    return null;
  }).filter((p) => p && p.length === 2 && p[0] && p[1]).map(([a, b]) => [a.slice(0, 5), b.slice(0, 5)]);
}

/**
 * A refusal of the server as `{code, params, text}`: from `<prefix>_code` /
 * `<prefix>_params` / `<prefix>` of `obj` (e.g. `closed_reason_code`), else its `why` object
 * (`whyKey`), else null.
 */
function coded(obj, prefix, whyKey) {
  const code = obj[`${prefix}_code`];
  if (typeof code === "string" && code) {
    const params = obj[`${prefix}_params`];
    return { code, params: params && typeof params === "object" ? params : {}, text: obj[prefix] ?? "" };
  }
  const why = obj[whyKey];
  return why && typeof why === "object" && why.code ? why : null;
}

/**
 * `/api/agent/context/{attempt_id}` (or `/api/agent/lead-context/{lead_id}`) as the desktop
 * uses it, from nested (`{lead: {name}, callee: {zone}, company: {zone, open_now,
 * hours_today, closed_reason_code}}`) or flat (`callee_zone`, `company_zone`, `open_now`, ...)
 * replies.
 */
export function normalizeContext(ctx) {
  const c = ctx ?? {};
  const callee = c.callee && typeof c.callee === "object" ? c.callee : {};
  const company = c.company && typeof c.company === "object" ? c.company : {};
  const lead = c.lead && typeof c.lead === "object" ? c.lead : {};
  const openNow = firstDefined(company.open_now, company.is_open, c.company_open_now, c.open_now, c.company_open);
  const callable = firstDefined(callee.callable_now, c.callee_callable_now);
  return {
    leadId: firstDefined(lead.id, c.lead_id) ?? null,
    leadName: firstDefined(lead.name, c.lead_name) || null,
    leadCompany: firstDefined(lead.company, c.lead_company) || null,
    endedAt: c.ended_at ?? null,
    calleeCallable: typeof callable === "boolean" ? callable : null,
    calleeReason: firstDefined(callee.reason, c.callee_reason) ?? null,
    calleeWhy: coded(callee, "reason", "why"),
    calleeHours: normalizeHours(firstDefined(callee.hours_today, c.callee_hours_today)),
    calleeZone: firstDefined(callee.zone, callee.timezone, callee.tz, c.callee_zone, c.callee_timezone, c.callee_tz) ?? null,
    companyZone: firstDefined(company.zone, company.timezone, company.tz, c.company_zone, c.company_timezone, c.company_tz) ?? null,
    companyName: firstDefined(company.name, c.company_name) ?? null,
    openNow: typeof openNow === "boolean" ? openNow : null,
    hoursToday: normalizeHours(firstDefined(company.hours_today, company.today, c.hours_today, c.company_hours_today)),
    closedReason: firstDefined(company.closed_reason, company.reason, c.closed_reason, c.company_closed_reason) ?? null,
    closedWhy: coded(company, "closed_reason", "closed_why"),
    nextOpen: firstDefined(company.next_open, company.opens_at, c.next_open, c.company_next_open) ?? null,
  };
}

/** `/api/agent/callbacks` as a list of {leadId, name, company, phone, dueAt, scope}, soonest first. */
export function normalizeCallbacks(data) {
  const list = Array.isArray(data) ? data
    : Array.isArray(data?.callbacks) ? data.callbacks : Array.isArray(data?.items) ? data.items : [];
  return list.filter((x) => x && typeof x === "object").map((x) => ({
    leadId: firstDefined(x.lead_id, x.lead?.id) ?? null,
    name: firstDefined(x.name, x.lead_name, x.lead?.name) ?? "",
    company: firstDefined(x.company, x.lead?.company) ?? "",
    phone: firstDefined(x.phone, x.lead?.phone) ?? "",
    dueAt: firstDefined(x.due_at, x.at, x.next_contact_at) ?? null,
    scope: firstDefined(x.scope, x.callback_scope) ?? "agent",
  })).sort((a, b) => String(a.dueAt).localeCompare(String(b.dueAt)));
}
