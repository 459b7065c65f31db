"""The agent desktop in a real browser against a live `dialer run` (issue: the agent desktop).

The production stack of the fault harness (PostgreSQL, Mosquitto, a `dialer run` process with
its pjsua2 node, SIPp callees behind a Kamailio proxy, SIPp agent phones) with the web server
on, and two people at the desktop in headless Chromium. They sign in through the page, go
ready, take real calls, see the screen pop, end calls and save outcomes with a next contact
date; the database has them. Then the faults: a broker restart during a wrap-up and a dialer
crash (kill -9) plus restart during a wrap-up: the pages reconnect without signing in again
and no outcome is lost. And the refusals: another agent's call over HTTP and over the
WebSocket, a wrong password, a missing CSRF token, a forged session.

Screenshots go to $TEST_ARTIFACTS/web.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from db.pgserver import TempPostgres
from support.faults import wait_for
from support.kamailio import available as kamailio_available
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp, pytest.mark.postgres]

PEOPLE = {"web1": "pw-web-1-long", "web2": "pw-web-2-long"}


@pytest.fixture
def make_stack(tmp_path: Path, pg_server: TempPostgres) -> Callable[[WebSpec], WebStack]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    return lambda spec: WebStack(tmp_path, spec, pg_server)


async def sign_in(browser: Any, base: str, login: str, password: str) -> Any:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = await ctx.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{base}/login")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}/agent")
    await page.wait_for_selector("body[data-state='paused']")
    return page


async def state_of(page: Any) -> str:
    return str(await page.evaluate("document.body.dataset.state"))


async def wait_state(page: Any, state: str, seconds: float = 60) -> None:
    await page.wait_for_selector(f"body[data-state='{state}']", timeout=seconds * 1000)


async def wait_pop(page: Any, seconds: float = 90) -> tuple[int, float]:
    """The attempt the card shows and how long after the bridge it was on the screen (ms)."""
    card = await page.wait_for_selector("#call-card[data-pop-shown-ms]", timeout=seconds * 1000)
    attempt = int(await card.get_attribute("data-pop-attempt"))
    shown = float(await card.get_attribute("data-pop-shown-ms"))
    sent = float(await card.get_attribute("data-pop-sent-ms"))
    return attempt, shown - sent


def next_weekday_10(zone: str) -> tuple[str, str]:
    """A next-contact date and time in the callee's zone the rules should allow."""
    day = datetime.now(ZoneInfo(zone)).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.isoformat(), "10:00"


async def dispose(page: Any, code: str, notes: str, when: tuple[str, str] | None) -> None:
    """Fill and save the outcome form as a person would (keyboard-free path)."""
    await page.wait_for_selector("#dispo-form:not([hidden])")
    await page.click(f"#dispo-codes button[data-code='{code}']")
    await page.fill("#dispo-notes", notes)
    if when is not None:
        await page.fill("#dispo-date", when[0])
        await page.fill("#dispo-time", when[1])
        # the calling rules answer: allowed, or refused with the first allowed time offered
        await page.wait_for_selector("#dispo-check[data-kind='ok'], #dispo-use-next:not([hidden])")
        if await page.is_visible("#dispo-use-next"):
            await page.click("#dispo-use-next")
            await page.wait_for_selector("#dispo-check[data-kind='ok']")
    await page.click("#dispo-submit")


async def disposition_of(st: WebStack, attempt_id: int) -> tuple[str | None, Any]:
    rows = await st.query("SELECT disposition, next_contact_at FROM attempts WHERE id = :i",
                          i=attempt_id)
    return rows[0][0], rows[0][1]


async def wait_bridged_at(st: WebStack, attempt_id: int) -> float:
    """The attempt's bridged_at (POSIX seconds), once the record writer has stored it."""
    found: list[float] = []

    async def stored() -> bool:
        rows = await st.query("SELECT bridged_at FROM attempts WHERE id = :i", i=attempt_id)
        if rows and rows[0][0] is not None:
            at = rows[0][0]
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            found.append((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
        return bool(found)

    await wait_for(stored, 15, f"attempt {attempt_id}'s bridged_at")
    return found[0]


async def wait_disposed(st: WebStack, attempt_id: int, seconds: float = 30) -> None:
    async def done() -> bool:
        return (await disposition_of(st, attempt_id))[0] is not None

    await wait_for(done, seconds, f"the disposition of attempt {attempt_id} in the database")


async def test_two_agents_work_calls_in_the_browser_through_faults_production(
    make_stack: Callable[[WebSpec], WebStack], browser: Any, artifacts: Path,
) -> None:
    spec = WebSpec(kind="production", agents={}, web_agents=PEOPLE,
                   leads={"answer_1_60": 10},
                   campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 0\n')
    async with make_stack(spec) as st:
        base = st.web_url
        zone = st.numbers[0][1]
        p1 = await sign_in(browser, base, "web1", PEOPLE["web1"])
        p2 = await sign_in(browser, base, "web2", PEOPLE["web2"])
        await p1.click("#btn-ready")
        await p2.click("#btn-ready")
        (a1, pop1_ms), (a2, pop2_ms) = await wait_pop(p1), await wait_pop(p2)
        assert a1 != a2
        # the screen pop is on the screen well within a second of the message being sent ...
        assert 0 <= pop1_ms < 1000 and 0 <= pop2_ms < 1000, (pop1_ms, pop2_ms)
        # ... and of the bridge (the attempt's bridged_at; the pop may even come first, as
        # the dialer sends it when it places the agent's leg)
        for page, attempt in ((p1, a1), (p2, a2)):
            shown = float(await page.get_attribute("#call-card", "data-pop-shown-ms"))
            bridged = await wait_bridged_at(st, attempt)
            assert shown / 1000 - bridged < 1.0, (attempt, shown / 1000 - bridged)
        await p1.screenshot(path=str(artifacts / "desktop-on-call.png"))
        assert await p1.text_content("#lead-name")

        # ---- refusals: web1 cannot open web2's call, over HTTP or over the WebSocket
        status = await p1.evaluate(
            "async (id) => (await fetch(`/api/agent/context/${id}`)).status", a2)
        assert status == 404
        reply = await p1.evaluate("""async (attempt) => {
            const me = await (await fetch('/api/me')).json();
            return await new Promise((resolve) => {
              const ws = new WebSocket(`ws://${location.host}/ws/agent?csrf=${me.csrf}`);
              ws.onmessage = (e) => { const m = JSON.parse(e.data);
                if (m.type === 'error' || m.type === 'ack') { resolve(m); ws.close(); } };
              ws.onopen = () => ws.send(JSON.stringify({v: 1, id: crypto.randomUUID(),
                ts: new Date().toISOString(), type: 'hangup', login: 'web2',
                attempt_id: attempt}));
              setTimeout(() => resolve({type: 'timeout'}), 10000);
            }); }""", a2)
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
        # no CSRF token: a state-changing request is refused
        status = await p1.evaluate(
            "async () => (await fetch('/api/session', {method: 'DELETE'})).status")
        assert status == 403
        # web2's call is still up
        assert (await st.query("SELECT ended_at FROM attempts WHERE id = :i", i=a2))[0][0] \
            is None

        # ---- a second tab of web1 is refused (it may take over explicitly); web1 goes on
        tab = await p1.context.new_page()
        await tab.goto(f"{base}/agent")
        await tab.wait_for_selector("#btn-takeover:not([hidden])")
        await tab.close()
        assert await state_of(p1) == "talking"

        # ---- web1 ends the call and saves an outcome with a next contact
        await p1.click("#btn-hangup")
        await wait_state(p1, "wrap_up")
        when = next_weekday_10(zone)
        await dispose(p1, "callback", "call back about the offer", when)
        await wait_disposed(st, a1)
        code, next_at = await disposition_of(st, a1)
        assert code == "callback" and next_at is not None
        await p1.wait_for_selector("#dispo-form[hidden]", state="attached")

        # ---- broker restart while web2 wraps up: the page does not notice, nothing lost
        await p2.click("#btn-hangup")
        await wait_state(p2, "wrap_up")
        await st.restart_broker(down_s=2.0)
        await dispose(p2, "callback", "send the offer first", when)
        await wait_disposed(st, a2)
        code, next_at = await disposition_of(st, a2)
        assert code == "callback" and next_at is not None

        # ---- dialer crash during a wrap-up, then a restart: same pages, no new sign-in
        (a3, _ms) = await wait_pop(p1)
        if a3 == a1:  # the card may still show the previous call for a moment
            await p1.wait_for_function(
                f"document.querySelector('#call-card').dataset.popAttempt !== '{a1}'")
            a3, _ms = await wait_pop(p1)
        await p1.click("#btn-hangup")
        await wait_state(p1, "wrap_up")
        await st.kill_dialer()
        await p1.wait_for_selector("#conn:not([data-kind='online'])", timeout=20_000)
        st.dialer = None
        st.start_dialer()
        await st.wait_dialer_up()
        # the page reconnects on its own and still holds the open call's outcome form
        await p1.wait_for_selector("#conn[data-kind='online']", timeout=60_000)
        assert p1.url == f"{base}/agent"
        await p1.screenshot(path=str(artifacts / "desktop-reconnected.png"))
        await dispose(p1, "not_reached", "line was bad", None)
        await wait_disposed(st, a3, seconds=45)
        assert (await disposition_of(st, a3))[0] == "not_reached"
        await p1.screenshot(path=str(artifacts / "desktop-after-restart.png"))

        # ---- sign-in refusals, in fresh browser contexts
        ctx = await browser.new_context()
        page = await ctx.new_page()
        await page.goto(f"{base}/login")
        await page.fill("#login", "web1")
        await page.fill("#password", "not-the-password")
        await page.click("#login-submit")
        msg = await page.wait_for_selector("#login-msg:not([hidden])")
        assert "Wrong login or password" in (await msg.text_content() or "")
        await page.screenshot(path=str(artifacts / "login-refused.png"))
        await ctx.add_cookies([{"name": "dialer_session", "value": "forged-" + "x" * 40,
                                "url": base}])
        status = await page.evaluate("async () => (await fetch('/api/me')).status")
        assert status == 401
        await ctx.close()
        # every attempt of the run that reached a person has its outcome or waits for it
        rows = await st.query(
            "SELECT a.id FROM attempts a JOIN leads l ON l.id = a.lead_id "
            "WHERE a.bridged_at IS NOT NULL AND a.disposition IS NULL "
            "AND a.ended_at IS NOT NULL AND (l.needs_outcome_attempt_id IS NULL "
            "OR l.needs_outcome_attempt_id <> a.id)")
        assert rows == [], f"connected attempts with neither outcome nor hold: {rows}"
