// The console's pure functions (dialer/web/static/js/console_util.js), run in Chromium by
// test_console_pure_js.py. Each check records {name, ok, detail}.

import {
  LISTEN_MODES, abandonKind, campaignActions, canListen, companyEdit, intervalsText, listensByAttempt,
  percent, phoneKey, secondsSince, sortAgents, splitNumbers, validPhone,
} from "/static/js/console_util.js";

const results = [];
function eq(name, got, want) {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  results.push({ name, ok, detail: ok ? "" : `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}` });
}

eq("dialing offers pause and stop", campaignActions("dialing"), ["pause", "stop"]);
eq("closed (calendar) may still be paused", campaignActions("closed"), ["pause", "stop"]);
eq("paused offers resume and stop", campaignActions("paused"), ["resume", "stop"]);
eq("stopped offers start only", campaignActions("stopped"), ["start"]);
eq("a campaign not on this dialer offers nothing", campaignActions("not_running"), []);
eq("abandon under the cap", abandonKind(0.01, 0.03), "ok");
eq("abandon near the cap", abandonKind(0.025, 0.03), "near");
eq("abandon at the cap is not over", abandonKind(0.03, 0.03), "near");
eq("abandon over the cap", abandonKind(0.031, 0.03), "over");
eq("no cap", abandonKind(0.5, 0), "ok");
eq("percent", percent(0.025), "2.5 %");
eq("percent of nothing", percent(null), "\u2013");
eq("seconds since", secondsSince("2026-12-04T10:00:00Z", Date.parse("2026-12-04T10:01:05.9Z")), 65);
eq("seconds since the future is 0", secondsSince("2026-12-04T10:00:10Z", Date.parse("2026-12-04T10:00:00Z")), 0);
eq("seconds since no time", secondsSince(null, 0), null);
eq("intervals", intervalsText([["09:00", "12:00"], ["13:00", "17:00"]]), "09:00\u201312:00, 13:00\u201317:00");
eq("no intervals", intervalsText([]), "");
eq("numbers split", splitNumbers("+1 212 555 0100\n\n+12125550101, +12125550102;"), ["+1 212 555 0100", "+12125550101", "+12125550102"]);
eq("company edit keeps filled fields only", companyEdit({ timezone: " ", hours: "mon-fri 09:00-12:00,13:00-17:00", days_off: "", holidays: "LV", closure: "2026-12-24", clear_closures: false, special: "" }),
  { hours: "mon-fri 09:00-12:00,13:00-17:00", holidays: "LV", add_closures: ["2026-12-24"] });
eq("company edit clears closures", companyEdit({ clear_closures: true, special: "2026-12-31=closed" }),
  { clear_closures: true, special_days: ["2026-12-31=closed"] });
eq("agents sorted by state then login", sortAgents([
  { login: "b", state: "paused" }, { login: "a", state: "ready" }, { login: "c", state: "talking" }, { login: "a2", state: "talking" },
]).map((a) => a.login), ["a2", "c", "a", "b"]);
eq("listen modes", LISTEN_MODES, ["monitor", "whisper", "barge"]);
eq("a phone URI", validPhone("sip:sue@pbx.example.com:5070"), true);
eq("a sips URI", validPhone(" sips:1001@10.0.0.5 "), true);
eq("not a SIP URI", [validPhone("tel:+14155550100"), validPhone("sue@pbx"), validPhone("sip:@pbx"), validPhone("sip:sue@"), validPhone(null)],
  [false, false, false, false, false]);
eq("phone remembered per login", phoneKey("sue"), "dialer.console.listen_phone.sue");
eq("listens by attempt", [...listensByAttempt([{ attempt_id: 7, by: "sue" }, { attempt_id: 9, by: "bo" }, { attempt_id: 7, by: "bo" }])]
  .map(([k, v]) => [k, v.map((s) => s.by)]), [[7, ["sue", "bo"]], [9, ["bo"]]]);
eq("only a talking agent can be listened to", [canListen({ state: "talking", attempt_id: 3 }), canListen({ state: "wrap_up", attempt_id: 3 }),
  canListen({ state: "talking", attempt_id: null })], [true, false, false]);

window.__results = results;
