// The desk pages' pure functions, run in a real Chromium by test_pure_js.py. Each check
// records {name, ok, detail}; the Python side fails on any that is not ok.

import {
  backoffDelay, dayTable, dispositionChoices, escapeHtml, fillScript, formatDuration, IdWindow,
  interpolate, isoWithOffset, newId, normalizeCallbacks, normalizeContext, normalizeHours,
  parseRetryAfter, quickCode, zoneOffsetMinutes, zonedWallTimeToIso,
} from "/static/js/util.js";
import { localeFor, pickLanguage } from "/static/js/i18n.js";
import { AgentSocket } from "/static/js/ws.js";

const results = [];
function eq(name, got, want) {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  results.push({ name, ok, detail: ok ? "" : `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}` });
}
function truthy(name, cond, detail = "") {
  results.push({ name, ok: Boolean(cond), detail: cond ? "" : detail });
}

// ---- escaping and the script
eq("escapeHtml", escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
eq("escapeHtml null", escapeHtml(null), "");
const lead = { name: "Ann <b>", company: "A&B", phone: "+46701234567", custom_fields: { city: "Umeå", seats: 12, note: null } };
eq("fillScript fills and escapes values",
  fillScript("Hi {name} of {company}, {city} {seats}", lead),
  `Hi <span class="fill">Ann &lt;b&gt;</span> of <span class="fill">A&amp;B</span>, ` +
  `<span class="fill">Umeå</span> <span class="fill">12</span>`);
eq("fillScript escapes the template itself", fillScript("<script>x</script> {name}", { name: "Z" }),
  `&lt;script&gt;x&lt;/script&gt; <span class="fill">Z</span>`);
eq("fillScript keeps unknown placeholders", fillScript("{nope} {company}", { name: "Z", company: null }),
  "{nope} {company}");
eq("fillScript null custom field is empty", fillScript("[{note}]", lead), `[<span class="fill"></span>]`);
eq("fillScript line breaks", fillScript("a\nb\r\nc", {}), "a<br>b<br>c");
eq("fillScript placeholder with spaces", fillScript("{ name }", { name: "Q" }), `<span class="fill">Q</span>`);
eq("fillScript no script", fillScript(undefined, lead), "");
const hostile = fillScript("{x}", { custom_fields: { x: `"><img src=x onerror=alert(1)>` } });
const probe = document.createElement("div");
probe.innerHTML = hostile;
truthy("fillScript never makes elements from data", probe.querySelectorAll("img").length === 0, hostile);

// ---- durations
eq("formatDuration 0", formatDuration(0), "0:00");
eq("formatDuration 65.9", formatDuration(65.9), "1:05");
eq("formatDuration 3661", formatDuration(3661), "1:01:01");
eq("formatDuration negative", formatDuration(-5), "0:00");
eq("formatDuration NaN", formatDuration("x"), "0:00");

// ---- reconnect backoff
eq("backoff first, no jitter", backoffDelay(0, { random: () => 0 }), 250);
eq("backoff first, full jitter", backoffDelay(0, { random: () => 1 }), 500);
eq("backoff doubles", backoffDelay(3, { random: () => 1 }), 4000);
eq("backoff capped", backoffDelay(20, { random: () => 1 }), 15000);
eq("backoff capped low", backoffDelay(50, { random: () => 0 }), 7500);
truthy("backoff within bounds", [0, 1, 2, 5, 9].every((n) => {
  const d = backoffDelay(n);
  const c = Math.min(15000, 500 * 2 ** n);
  return d >= c / 2 && d <= c;
}));

// ---- ids and timestamps
const id = newId();
truthy("newId is a v4 uuid", /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id), id);
truthy("newId fits the session pattern", /^[A-Za-z0-9_.:-]{8,64}$/.test(id), id);
truthy("newId differs", newId() !== newId());
const now = new Date();
const iso = isoWithOffset(now);
truthy("isoWithOffset has an offset", /[+-]\d{2}:\d{2}$/.test(iso), iso);
eq("isoWithOffset is the same instant", Date.parse(iso), now.getTime());

// ---- wall time in a zone -> ISO with that zone's offset
eq("zoned winter Stockholm", zonedWallTimeToIso("2026-12-01", "15:00", "Europe/Stockholm"), "2026-12-01T15:00:00+01:00");
eq("zoned summer Stockholm", zonedWallTimeToIso("2026-07-01", "09:30", "Europe/Stockholm"), "2026-07-01T09:30:00+02:00");
eq("zoned New York", zonedWallTimeToIso("2026-12-01", "08:00", "America/New_York"), "2026-12-01T08:00:00-05:00");
eq("zoned Kolkata", zonedWallTimeToIso("2026-12-01", "08:00", "Asia/Kolkata"), "2026-12-01T08:00:00+05:30");
eq("zoned DST gap moves forward", zonedWallTimeToIso("2026-03-29", "02:30", "Europe/Stockholm"), "2026-03-29T03:30:00+02:00");
eq("zoned DST overlap", zonedWallTimeToIso("2026-10-25", "02:30", "Europe/Stockholm").slice(0, 19), "2026-10-25T02:30:00");
eq("zoned malformed", zonedWallTimeToIso("2026-12-1", "15:00", "UTC"), null);
eq("zone offset UTC", zoneOffsetMinutes(Date.UTC(2026, 0, 1), "UTC"), 0);

// ---- Retry-After
eq("retry-after seconds", parseRetryAfter("42"), 42);
eq("retry-after date", parseRetryAfter(new Date(Date.UTC(2026, 0, 1, 0, 1, 0)).toUTCString(), Date.UTC(2026, 0, 1)), 60);
eq("retry-after absent", parseRetryAfter(null), null);
eq("retry-after junk", parseRetryAfter("soon"), null);

// ---- duplicates
const w = new IdWindow(2);
eq("IdWindow", [w.seen("a"), w.seen("a"), w.seen("b"), w.seen("c"), w.seen("a"), w.seen(null)],
  [false, true, false, false, false, false]);

// ---- the catalog
const catalog = [
  { code: "no_need", label: "No need" }, { code: "callback", label: "Callback", needs_callback: true },
  { code: "not_reached", label: "Wrong person / not reached" }, { code: "do_not_call", label: "DNC", final: true },
  { code: "wrapup_timeout", label: "x" }, ...Array.from({ length: 7 }, (_, i) => ({ code: `c${i}`, label: `C${i}` })),
];
const choices = dispositionChoices(catalog);
eq("choices drop wrapup_timeout", choices.some((c) => c.code === "wrapup_timeout"), false);
eq("choices keys", choices.map((c) => c.key), ["1", "2", "3", "4", "5", "6", "7", "8", "9", null, null]);
eq("quick wrong person", quickCode(catalog, "wrong_person"), "not_reached");
eq("quick machine absent", quickCode(catalog, "machine"), null);
eq("quick machine present", quickCode([{ code: "answering_machine" }], "machine"), "answering_machine");
eq("quick dnc", quickCode(catalog, "dnc"), "do_not_call");

// ---- server replies (shapes of dialer/web/agent_api.py)
eq("dayTable one object", dayTable({ date: "2026-12-01", campaign: "spring", agent: "web1", planned: 3, called: 2, talk_s: 61.5 }),
  { columns: ["planned", "called", "talk_s"], rows: [{ label: "spring", values: { planned: 3, called: 2, talk_s: 61.5 } }] });
eq("dayTable rows", dayTable([{ campaign: "a", called: 1 }, { campaign: "b", called: 2, meetings: 1 }]).columns, ["called", "meetings"]);
eq("dayTable nothing", dayTable(null), { columns: [], rows: [] });
const ctx = normalizeContext({
  attempt_id: 5, callee: { zone: "America/New_York", callable_now: false, reason: "outside", hours_today: [["08:00", "21:00"]] },
  company: { name: "Co", zone: "Europe/Paris", open_now: false, hours_today: [], closed_reason: "company closed on Saturdays", next_open: null },
});
eq("context callee zone", ctx.calleeZone, "America/New_York");
eq("context company", [ctx.companyZone, ctx.openNow, ctx.hoursToday, ctx.closedReason], ["Europe/Paris", false, [], "company closed on Saturdays"]);
eq("context callee", [ctx.calleeCallable, ctx.calleeReason, ctx.calleeHours], [false, "outside", [["08:00", "21:00"]]]);
// the server's codes (reason_code / closed_reason_code with their params) win over `why`
const coded = normalizeContext({
  attempt_id: 8000, lead_id: 7, ended_at: "2026-12-02T15:00:00+00:00",
  lead: { id: 7, name: "Test Lead", company: "Acme SIA", phone: "+12125550123" },
  callee: { zone: "America/New_York", callable_now: false, reason: "outside the callee's calling hours 08:00-21:00",
    reason_code: "callee_outside_hours", reason_params: { hours: "08:00-21:00", start: "08:00", end: "21:00" } },
  company: { zone: "Europe/Riga", open_now: false, closed_reason: "company closed on Saturdays",
    closed_reason_code: "company_closed_weekday", closed_reason_params: { weekday: "saturday" },
    closed_why: { code: "company_closure", params: {}, text: "old" } },
});
eq("context lead", [coded.leadId, coded.leadName, coded.leadCompany, coded.endedAt],
  [7, "Test Lead", "Acme SIA", "2026-12-02T15:00:00+00:00"]);
eq("context callee code", coded.calleeWhy, { code: "callee_outside_hours",
  params: { hours: "08:00-21:00", start: "08:00", end: "21:00" }, text: "outside the callee's calling hours 08:00-21:00" });
eq("context closed code", coded.closedWhy, { code: "company_closed_weekday", params: { weekday: "saturday" }, text: "company closed on Saturdays" });
eq("context why only", normalizeContext({ company: { closed_why: { code: "company_closure", params: {}, text: "t" } } }).closedWhy,
  { code: "company_closure", params: {}, text: "t" });
eq("context no codes", [ctx.calleeWhy, ctx.closedWhy, ctx.leadName, ctx.endedAt], [null, null, null, null]);
const noCompany = normalizeContext({ callee: { zone: "Europe/Stockholm" }, company: null });
eq("context without company", [noCompany.companyZone, noCompany.openNow, noCompany.hoursToday], [null, null, null]);
eq("hours shapes", [normalizeHours("08:00-12:00, 13:00-17:00"), normalizeHours([{ start: "08:00:00", end: "12:00:00" }])],
  [[["08:00", "12:00"], ["13:00", "17:00"]], [["08:00", "12:00"]]]);
eq("callbacks", normalizeCallbacks({ callbacks: [
  { lead_id: 2, lead_name: "B", company: null, due_at: "2026-12-01T10:00:00+00:00", scope: "campaign" },
  { lead_id: 1, lead_name: "A", company: "Co", due_at: "2026-12-01T09:00:00+00:00", scope: "agent" }] }).map((c) => [c.leadId, c.name, c.scope]),
[[1, "A", "agent"], [2, "B", "campaign"]]);

// ---- languages
eq("pick sv", pickLanguage(["sv-SE", "en-US"]), "sv");
eq("pick en before sv", pickLanguage(["en-GB", "sv"]), "en");
eq("pick fallback", pickLanguage(["de-DE", "fr"]), "en");
eq("pick none", pickLanguage([]), "en");
eq("locale keeps region", localeFor(["nb-NO", "sv-FI"], "sv"), "sv-FI");
eq("interpolate", interpolate("try again in {seconds} s {x}", { seconds: 5 }), "try again in 5 s {x}");

// ---- the socket: ids, ts, session, replies by ref_id, duplicates, reconnect
class FakeWS {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWS.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
    }, 0);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close() {
    this.readyState = 3;
    this.onclose?.({ code: 1006 });
  }

  deliver(msg) {
    this.onmessage({ data: JSON.stringify(msg) });
  }
}

const events = [];
const statuses = [];
let opened = 0;
const sock = new AgentSocket({
  login: "web1", session: "sess-12345678", prepare: async () => "ws://x/ws/agent?csrf=t",
  onOpen: () => { opened += 1; }, onEvent: (m) => events.push(m), onStatus: (s) => statuses.push(s.kind),
  WebSocketImpl: FakeWS, idleCheckMs: 60000,
});
sock.start();
await new Promise((r) => setTimeout(r, 20));
eq("socket opened", [opened, statuses], [1, ["connecting", "online"]]);
const ws1 = FakeWS.last;
const ready = sock.send("ready");
const cmd = ws1.sent[0];
eq("command envelope", [cmd.type, cmd.v, cmd.login, cmd.session, typeof cmd.id], ["ready", 1, "web1", "sess-12345678", "string"]);
truthy("command ts has an offset", /T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$/.test(cmd.ts), cmd.ts);
const pause = sock.send("pause", { reason: "lunch" });
truthy("fresh id per command", ws1.sent[1].id !== cmd.id);
ws1.deliver({ type: "ack", v: 1, id: "a1", ts: iso, ref_id: "someone-elses" });
ws1.deliver({ type: "state", v: 1, id: "e1", ts: iso, state: "ready" });
ws1.deliver({ type: "state", v: 1, id: "e1", ts: iso, state: "ready" });
ws1.deliver({ type: "ack", v: 1, id: "a2", ts: iso, ref_id: cmd.id });
ws1.deliver({ type: "error", v: 1, id: "a3", ts: iso, ref_id: ws1.sent[1].id, code: "invalid_state", message: "no" });
const got = await ready;
eq("ack resolves", got.ref_id, cmd.id);
let perr = null;
await pause.catch((e) => { perr = e; });
eq("error rejects with the code", [perr?.code, perr?.serverMessage], ["invalid_state", "no"]);
eq("events: duplicates dropped, foreign replies ignored", events.map((e) => e.id), ["e1"]);
ws1.deliver({ type: "error", v: 1, id: "a4", ts: iso, ref_id: null, code: "malformed_json", message: "bad" });
eq("error without ref_id is an event", events.at(-1)?.code, "malformed_json");
const inflight = sock.send("get_state");
ws1.close();
let lost = null;
await inflight.catch((e) => { lost = e.code; });
eq("close fails pending commands", lost, "disconnected");
eq("close schedules a reconnect", statuses.at(-1), "offline");
let offline = null;
await sock.send("ready").catch((e) => { offline = e.code; });
eq("send while offline", offline, "offline");
sock.kick();
await new Promise((r) => setTimeout(r, 20));
eq("reconnects and logs in again", [opened, statuses.at(-1), FakeWS.last !== ws1], [2, "online", true]);
sock.stop();
eq("stopped", statuses.at(-1), "stopped");

window.__results = results;
