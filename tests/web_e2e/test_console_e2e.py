"""The supervisor console in a real browser against a live `dialer run` (issue #14).

The fault harness's stack (a `dialer run` process with its pjsua2 node, SIPp callees behind a
Kamailio proxy, SIPp agent phones, SQLite and the embedded broker) with its web server and
/metrics on, one simulated MQTT agent taking calls, one person at the agent desktop and one
supervisor at the console, both in headless Chromium:

* the wallboard's figures equal the dialer's /metrics (Prometheus text) and the database,
  read at the same moment (live, then with the campaign paused and quiet);
* pause from the wallboard: no new attempt (no INVITE: every INVITE has its attempt row
  first) leaves; resume: dialing restarts;
* a lead file uploaded through the page gets the same row-by-row report as `dialer leads
  import` of the same file;
* a lunch break set on the companies page: the calling rules (scheduling's own
  `refresh_callability`, the code the hopper runs at every claim) move the company's leads
  past lunch, and no call goes to them while the campaign dials;
* force-pause of the person at the desktop from the wallboard: their page turns paused and
  no call is routed to them afterwards;
* every control has its audit row.

Screenshots: $TEST_ARTIFACTS/web/console-*.png, and docs/img/wallboard.png.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from common.vocabulary import AgentState
from db import web_accounts
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.passwords import hash_password
from scheduling.facts import refresh_callability
from support.faults import CAMPAIGN, DIALER, free_tcp_port, wait_for
from support.kamailio import available as kamailio_available
from support.leads import make_numbers
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp]

ROOT = Path(__file__).resolve().parents[2]
PERSON = {"web1": "pw-web-1-long"}
SUPERVISOR = ("sue", "sue-console-pw")


class ConsoleStack(WebStack):
    """WebStack with the dialer's /metrics on a port of its own."""

    def __init__(self, tmp_path: Path, spec: WebSpec) -> None:
        super().__init__(tmp_path, spec)
        self.metrics_port = free_tcp_port()

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        assert "[metrics]\nenabled = false\n" in text, "the fault stack's [metrics] table moved"
        self.config_path.write_text(text.replace(
            "[metrics]\nenabled = false\n",
            f'[metrics]\nhost = "127.0.0.1"\nport = {self.metrics_port}\n'))

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@pytest.fixture
def make_stack(tmp_path: Path) -> Callable[[WebSpec], ConsoleStack]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    return lambda spec: ConsoleStack(tmp_path, spec)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? ([-+0-9.eE]+|NaN)$", line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def gauge(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted({"campaign": CAMPAIGN, **labels}.items())))]


def mismatches(board: dict[str, Any], metrics: dict[Any, float]) -> list[str]:
    """Where the wallboard and /metrics disagree (empty: they agree)."""
    pairs = [("dial_level", board["dial_level"], gauge(metrics, "dialer_dial_level")),
             ("answer_rate", board["answer_rate"], gauge(metrics, "dialer_answer_rate")),
             ("hopper", board["hopper_depth"], gauge(metrics, "dialer_hopper_depth")),
             ("callable", board["callable_leads"], gauge(metrics, "dialer_callable_leads"))]
    pairs += [(f"agents {s}", n, gauge(metrics, "dialer_agents", state=s))
              for s, n in board["agents_by_state"].items()]
    pairs += [(f"in flight {s}", n, gauge(metrics, "dialer_calls_in_flight", stage=s))
              for s, n in board["in_flight"].items()]
    for window, ab in board["abandon"].items():
        pairs.append((f"abandon {window}", ab["rate"],
                      gauge(metrics, "dialer_abandon_rate", window=window)))
        pairs.append((f"cap {window}", ab["cap"],
                      gauge(metrics, "dialer_abandon_rate_cap", window=window)))
    return [f"{k}: board {a} metrics {b}" for k, a, b in pairs if abs(float(a) - b) > 1e-9]


async def snapshot_and_metrics(page: Any, st: ConsoleStack) -> tuple[dict[str, Any], dict]:
    """The console's snapshot and a scrape of /metrics, one right after the other."""
    snap = await page.evaluate("async () => (await fetch('/api/console/snapshot')).json()")
    async with httpx.AsyncClient() as http:
        text = (await http.get(st.metrics_url)).text
    board = next(c for c in snap["campaigns"] if c["name"] == CAMPAIGN)
    return board, parse_metrics(text)


async def agree_with_metrics(page: Any, st: ConsoleStack, tries: int = 20) -> dict[str, Any]:
    """Read both until one pair agrees (a call may change state between the two reads)."""
    last: list[str] = []
    for _ in range(tries):
        board, metrics = await snapshot_and_metrics(page, st)
        last = mismatches(board, metrics)
        if not last:
            return board
        await asyncio.sleep(0.3)
    raise AssertionError(f"the wallboard never agreed with /metrics: {last}")


async def count(st: ConsoleStack, sql: str, **params: Any) -> int:
    return int((await st.query(sql, **params))[0][0])


async def attempts_count(st: ConsoleStack) -> int:
    return await count(st, "SELECT count(*) FROM attempts a JOIN campaigns c ON "
                           "c.id = a.campaign_id WHERE c.name = :n", n=CAMPAIGN)


async def sign_in(browser: Any, base: str, login: str, password: str, lands: str) -> Any:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = await ctx.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{base}/login")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}{lands}")
    return page


def run_cli(st: ConsoleStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DIALER, *args, "--db", st.db_url], capture_output=True, text=True,
                          timeout=120, cwd=st.dir)


async def test_the_console_against_a_live_dialer(
    make_stack: Callable[[WebSpec], ConsoleStack], browser: Any, artifacts: Path,
) -> None:
    spec = WebSpec(agents={"agent1": "pw-1"}, web_agents=PERSON, leads={"answer_1_20": 20},
                   campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 0\n')
    async with make_stack(spec) as st:
        base = st.web_url
        engine = create_engine(st.db_url)
        sessions = session_factory(engine)
        try:
            await web_accounts.create_user(sessions, login=SUPERVISOR[0], role="supervisor",
                                           password_hash=hash_password(SUPERVISOR[1]),
                                           now=datetime.now(UTC))
            await _run(st, browser, artifacts, base, sessions)
        finally:
            await engine.dispose()


async def _run(st: ConsoleStack, browser: Any, artifacts: Path, base: str,
               sessions: Any) -> None:
    desk = await sign_in(browser, base, "web1", PERSON["web1"], "/agent")
    await desk.wait_for_selector("body[data-state='paused']")
    await desk.click("#btn-ready")
    con = await sign_in(browser, base, *SUPERVISOR, "/supervisor")
    card = "[data-campaign='faults']"
    await con.wait_for_selector(card)
    await wait_for(lambda: _some_live(con), 60, "calls in progress on the wallboard")
    await con.wait_for_selector(f"{card} tr[data-login='web1']")
    await con.screenshot(path=str(artifacts / "console-wallboard.png"), full_page=True)
    shot = ROOT / "docs" / "img" / "wallboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    box = await con.eval_on_selector(card, "e => e.getBoundingClientRect().bottom")
    await con.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280,
                                               "height": min(860, int(box) + 16)})
    assert shot.stat().st_size < 300_000, shot.stat().st_size

    # ---- the wallboard equals /metrics while calls go on
    await agree_with_metrics(con, st)

    # ---- pause from the wallboard: no new attempt, so no INVITE, leaves
    await con.fill(f"{card} input.reason", "e2e pause")
    await con.click(f"{card} button[data-action='pause']")
    await con.wait_for_selector(f"{card}[data-state='paused']")
    await _dispose_if_wrapping(desk)

    async def quiet() -> bool:
        board, _ = await snapshot_and_metrics(con, st)
        await _dispose_if_wrapping(desk)
        return board["live_calls"] == 0 and board["hopper_depth"] == 0

    await wait_for(quiet, 60, "the calls in progress to end")
    placed = await attempts_count(st)
    await asyncio.sleep(6.0)  # a progressive pacer would have dialed within 2 s
    assert await attempts_count(st) == placed

    # ---- with nothing moving: wallboard == /metrics == the database
    await asyncio.sleep(5.5)  # the callable-leads count is refreshed every 5 s
    board = await agree_with_metrics(con, st)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert board["report"]["totals"]["called"] == await count(
        st, "SELECT count(*) FROM attempts a JOIN campaigns c ON c.id = a.campaign_id "
            "WHERE c.name = :n AND a.created_at >= :t", n=CAMPAIGN, t=today), board["report"]
    live = {s: n for s, n in board["agents_by_state"].items() if n}
    states = await st.agent_states()
    logged = {}
    for login in ("agent1", "web1"):
        logged[states[login][0]] = logged.get(states[login][0], 0) + 1
    assert live == logged, (live, states)
    cid = (await st.query("SELECT id FROM campaigns WHERE name = :n", n=CAMPAIGN))[0][0]
    # the dialer's own count of callable leads, read from the database now
    counts = await SqlStore(sessions).callable_counts([cid], datetime.now(UTC))
    assert board["callable_leads"] == counts[cid]
    await con.screenshot(path=str(artifacts / "console-paused.png"), full_page=True)

    # ---- lead upload through the page == `dialer leads import` of the same file
    now = datetime.now(UTC)
    good = make_numbers(now, {"950": 3}, seed=11)
    rows = [["phone", "name", "company"]]
    rows += [[n, f"Lunch lead {i}", "Lunch AB"] for i, (n, _z) in enumerate(good)]
    rows += [["12345", "Too short", "Lunch AB"], ["", "No number", ""], [good[0][0], "Twice", ""]]
    upload = st.dir / "upload.csv"
    with upload.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    await con.click("#tab-leads")
    await con.wait_for_selector(f"#leads-campaign option[value='{CAMPAIGN}']", state="attached")
    await con.select_option("#leads-campaign", CAMPAIGN)
    await con.check("#leads-create")
    await con.set_input_files("#leads-file", str(upload))
    await con.click("#leads-submit")
    report = await con.wait_for_selector("#leads-report:not([hidden])")
    page_figures = {k: int(await report.get_attribute(f"data-{k}") or -1)
                    for k in ("imported", "rejected", "skipped")}
    page_issues = await con.eval_on_selector_all(
        "#leads-issues tbody tr",
        "trs => trs.map(tr => [Number(tr.dataset.line), tr.children[1].textContent, "
        "tr.dataset.reason])")
    await con.screenshot(path=str(artifacts / "console-upload.png"), full_page=True)
    cli = run_cli(st, "campaigns", "create", "upload-check", "--caller-id", "+14155550100")
    assert cli.returncode == 0, cli.stderr
    cli_report = st.dir / "cli-report.csv"
    cli = run_cli(st, "leads", "import", str(upload), "--campaign", "upload-check",
                  "--create-companies", "--report", str(cli_report))
    assert cli.returncode in (0, 1), cli.stdout + cli.stderr
    m = re.search(r"imported (\d+), rejected (\d+), skipped (\d+)", cli.stdout)
    assert m, cli.stdout
    assert page_figures == {"imported": int(m[1]), "rejected": int(m[2]),
                            "skipped": int(m[3])}, (page_figures, cli.stdout)
    with cli_report.open(newline="") as f:
        cli_rows = list(csv.reader(f))[1:]  # line, outcome, reason, detail, record
    assert sorted([int(r[0]), r[1], r[2]] for r in cli_rows) == sorted(page_issues), \
        (cli_rows, page_issues)
    assert page_figures["imported"] == 3 and page_figures["rejected"] >= 2

    # ---- lunch on the companies page: the calling rules move the company's leads past it
    await con.click("#tab-companies")
    await con.wait_for_selector("#company-pick option[value='Lunch AB']", state="attached")
    await con.select_option("#company-pick", "Lunch AB")
    await con.wait_for_selector("#company-view[data-company='Lunch AB']")
    tz = (await con.input_value("#co-timezone")).strip()
    local = datetime.now(ZoneInfo(tz))
    start = (local - timedelta(minutes=20)).replace(second=0, microsecond=0)
    end = (local + timedelta(minutes=60)).replace(second=0, microsecond=0)
    assert start.date() == end.date() == local.date(), "lunch must not cross midnight"
    hours = f"mon-sun 00:00-{start:%H:%M},{end:%H:%M}-24:00"
    await con.fill("#co-hours", "mon-fri 25:00-26:00")
    await con.click("#co-save")
    msg = await con.wait_for_selector("#co-msg[data-kind='error']")
    assert "hours" in (await msg.text_content() or "")  # the CLI's own error, naming the field
    await con.fill("#co-hours", hours)
    await con.click("#co-save")
    await con.wait_for_selector("#co-msg[data-kind='ok']")
    await con.wait_for_selector(
        f"#company-week tr[data-date='{local.date().isoformat()}']"
        f"[data-open='00:00\u2013{start:%H:%M}, {end:%H:%M}\u201324:00']")
    await con.screenshot(path=str(artifacts / "console-company.png"), full_page=True)
    lunch_end = end.astimezone(UTC)
    await refresh_callability(sessions, campaign_id=cid, now=datetime.now(UTC),
                              abandon_lockout=timedelta(hours=72))
    due = await st.query(
        "SELECT l.next_call_at FROM leads l JOIN companies co ON co.id = l.company_id "
        "WHERE co.name = 'Lunch AB' AND l.campaign_id = :c", c=cid)
    assert len(due) == 3
    for (at,) in due:
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        assert at >= lunch_end - timedelta(seconds=1), (at, lunch_end)

    # ---- resume from the wallboard: dialing restarts; none of it to the lunch company
    await con.click("#tab-wallboard")
    await con.click(f"{card} button[data-action='resume']")
    await con.wait_for_selector(f"{card}[data-state='dialing']")
    await wait_for(lambda: _more(st, placed), 60, "dialing to restart after the resume")

    # ---- force-pause the person at the desktop: paused, and no call routed to them after
    await con.click(f"{card} tr[data-login='web1'] button[data-agent-action='pause']")

    async def web1_paused() -> bool:
        await _dispose_if_wrapping(desk)
        return await desk.evaluate("document.body.dataset.state") == "paused"

    await wait_for(web1_paused, 90, "web1's desktop to show paused")
    paused_at = datetime.now(UTC)
    await desk.screenshot(path=str(artifacts / "console-agent-paused.png"))
    await asyncio.sleep(10.0)
    routed = await st.query(
        "SELECT count(*) FROM attempts a JOIN agents g ON g.id = a.agent_id "
        "WHERE g.login = 'web1' AND a.bridged_at > :t", t=paused_at)
    assert routed[0][0] == 0
    state, reason = (await st.agent_states())["web1"]
    assert state == AgentState.PAUSED.value and reason == "supervisor"
    lunch_calls = await st.query(
        "SELECT count(*) FROM attempts a JOIN leads l ON l.id = a.lead_id "
        "JOIN companies co ON co.id = l.company_id WHERE co.name = 'Lunch AB'")
    assert lunch_calls[0][0] == 0

    # ---- the other tabs: agents, campaigns, a number on the do-not-call list
    await con.click("#tab-agents")
    await con.wait_for_selector("#agents-table tr[data-login='web1']")
    # the agent's named groups (transfer targets), set on the page
    agent_row = "#agents-table tr[data-login='web1']"
    await con.fill(f"{agent_row} input.groups", "closers, senior")
    await con.click(f"{agent_row} button[data-action='groups']")

    async def groups_stored() -> bool:
        got = await st.query("SELECT groups FROM agents WHERE login = 'web1'")
        raw = got[0][0]
        return (json.loads(raw) if isinstance(raw, str) else raw) == ["closers", "senior"]

    await wait_for(groups_stored, 15, "web1's groups in its agents row")
    await con.click("#tab-campaigns")
    await con.wait_for_selector(f"#campaigns-table tr[data-campaign='{CAMPAIGN}']")
    await con.wait_for_selector("#campaigns-table tr[data-campaign='upload-check']")
    row = f"#campaigns-table tr[data-campaign='{CAMPAIGN}']"
    await con.fill(f"{row} input.max-level", "4")
    await con.click(f"{row} button[data-action='dial']")

    async def level_stored() -> bool:
        got = await st.query("SELECT max_dial_level FROM campaigns WHERE name = :n", n=CAMPAIGN)
        return float(got[0][0]) == 4.0

    await wait_for(level_stored, 15, "the new maximum dial level in the campaign's row")
    await con.click("#tab-dnc")
    (number, _zone), = make_numbers(now, {"960": 1}, seed=12)
    await con.fill("#dnc-numbers", number)
    await con.fill("#dnc-reason", "asked not to be called")
    await con.click("#dnc-submit")
    await con.wait_for_selector("#dnc-result[data-added='1']")
    assert (await st.query("SELECT count(*) FROM dnc_entries WHERE phone_e164 = :p",
                           p=number))[0][0] == 1

    # ---- the audit log has each control, on the page and in the database
    await con.click("#tab-audit")
    await con.wait_for_selector("#audit-table tr[data-action='dnc.add']")
    actions = [r[0] for r in await st.query(
        "SELECT action FROM audit_log WHERE actor = 'sue' ORDER BY id")]
    assert actions == ["campaign.pause", "leads.import", "company.set", "campaign.resume",
                       "agent.force_pause", "agent.groups", "campaign.set_dial",
                       "dnc.add"], actions
    await con.screenshot(path=str(artifacts / "console-audit.png"), full_page=True)


async def _some_live(page: Any) -> bool:
    snap = await page.evaluate("async () => (await fetch('/api/console/snapshot')).json()")
    board = next(c for c in snap["campaigns"] if c["name"] == CAMPAIGN)
    return bool(board["live_calls"]) and board["agents_by_state"]["talking"] >= 1


async def _more(st: ConsoleStack, than: int) -> bool:
    return await attempts_count(st) > than


async def _dispose_if_wrapping(desk: Any) -> None:
    """The person saves an outcome whenever a call waits for one (as people do)."""
    if await desk.evaluate("document.body.dataset.state") != "wrap_up":
        return
    if not await desk.is_visible("#dispo-form"):
        return
    await desk.click("#dispo-codes button[data-code='no_need']")
    await desk.click("#dispo-submit")
    await desk.wait_for_selector("#dispo-form[hidden]", state="attached", timeout=15_000)
