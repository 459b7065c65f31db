"""Listen-in from the supervisor console in a real browser against a live `dialer run`.

The fault harness's stack (a `dialer run` process with its pjsua2 node, Kamailio, the web
server) with the call-control test phone (sip/scenarios/phone.xml) answering for the
customer, the agent and the supervisor: each one's media is a loopback RTP endpoint of this
test (sip.rtp_peer), so the test counts voiced RTP per direction. A person at the agent
desktop (headless Chromium) takes the call; a supervisor at the console types their phone's
SIP URI (remembered by the browser), presses Listen on the agent's wallboard row and:

* monitor: the supervisor's phone receives the customer's and the agent's audio; neither
  hears the supervisor;
* whisper (mode changed on the page): the agent hears the supervisor, the customer does not;
* barge: both hear the supervisor;
* Stop: the supervisor's phone receives nothing more; the call goes on (the agent still hears
  the customer).

Each control has its audit row (`listen.start`, `listen.mode` x2, `listen.stop`), none with
the phone URI. Screenshot: $TEST_ARTIFACTS/web/console-listen.png and docs/img/console-listen.png.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from db import web_accounts
from db.session import create_engine, session_factory
from dialer.passwords import hash_password
from sip.rtp_peer import RtpHub, RtpPeer
from support import faults
from support.faults import CAMPAIGN
from support.kamailio import KamailioProxy
from support.kamailio import available as kamailio_available
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp]

ROOT = Path(__file__).resolve().parents[2]
PERSON = ("web1", "pw-listen-1")
SUPERVISOR = ("sue", "sue-listen-pw")


class ListenStack(WebStack):
    """WebStack whose person at the desktop has the test phone (an RtpPeer) as their phone."""

    def __init__(self, tmp_path: Path, spec: WebSpec, agent_port: int) -> None:
        super().__init__(tmp_path, spec)
        self.agent_port = agent_port

    def _write_config(self) -> None:
        super()._write_config()
        assert self.phones is not None and self.callee is not None
        text = self.config_path.read_text()
        old = f'sip_uri = "{self.phones.uri(PERSON[0])}"'
        assert old in text, "the web agent's sip_uri moved"
        self.config_path.write_text(text.replace(
            old, f'sip_uri = "{self.callee.uri(f"ag-{self.agent_port}")}"'))


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    with RtpHub() as h:
        yield h


async def voiced_in(peer: RtpPeer, seconds: float = 1.0) -> int:
    await asyncio.sleep(0.4)
    n0 = peer.rx_voiced
    await asyncio.sleep(seconds)
    return peer.rx_voiced - n0


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


async def test_listen_in_from_the_console(
    tmp_path: Path, browser: Any, artifacts: Path, hub: RtpHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    # the proxy stays in the dialog, as a carrier's SBC does (phone.xml's header says why)
    monkeypatch.setattr(faults, "KamailioProxy", functools.partial(KamailioProxy,
                                                                    record_route=True))
    cust, agent, sup = hub.peer(), hub.peer(), hub.peer()
    spec = WebSpec(kind="default", agents={}, web_agents=dict([PERSON]),
                   leads={f"cust-{cust.port}": 1}, callee_scenario="phone",
                   campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 0\n')
    async with ListenStack(tmp_path, spec, agent.port) as st:
        assert st.callee is not None
        phone = st.callee.uri(f"sup-{sup.port}")
        base = st.web_url
        engine = create_engine(st.db_url)
        try:
            await web_accounts.create_user(
                session_factory(engine), login=SUPERVISOR[0], role="supervisor",
                password_hash=hash_password(SUPERVISOR[1]), now=datetime.now(UTC))
        finally:
            await engine.dispose()

        # ---- the person at the desktop takes the call; customer and agent hear each other
        desk = await sign_in(browser, base, *PERSON, "/agent")
        await desk.wait_for_selector("body[data-state='paused']")
        await desk.click("#btn-ready")
        card = await desk.wait_for_selector("#call-card[data-pop-attempt]", timeout=90_000)
        attempt = int(await card.get_attribute("data-pop-attempt"))
        await desk.wait_for_selector("body[data-state='talking']")
        cust.talk(True)
        assert await voiced_in(agent) >= 30
        cust.talk(False)

        # ---- the supervisor's phone, remembered by the browser for this login
        con = await sign_in(browser, base, *SUPERVISOR, "/supervisor")
        await con.wait_for_selector("body[data-tab='wallboard']")  # the page is wired
        await con.fill("#listen-phone", phone)
        await con.press("#listen-phone", "Tab")  # change: stored
        await con.reload()
        await con.wait_for_selector("body[data-tab='wallboard']")
        await con.wait_for_selector("#listen-none:not([hidden])")
        assert await con.input_value("#listen-phone") == phone
        assert sup.rx_audio == 0

        # ---- Listen (monitor) on the agent's wallboard row
        row = f"[data-campaign='{CAMPAIGN}'] tr[data-login='{PERSON[0]}']"
        await con.select_option("#listen-mode", "monitor")
        await con.click(f"{row}[data-attempt-id='{attempt}'] button[data-agent-action='listen']")
        session = await con.wait_for_selector(
            f"#listen-sessions tr[data-agent='{PERSON[0]}'][data-mode='monitor']"
            f"[data-by='{SUPERVISOR[0]}']")
        assert int(await session.get_attribute("data-attempt-id")) == attempt
        await con.wait_for_selector(f"{row} .pill.listening[data-listen-mode='monitor']")
        cust.talk(True)
        assert await voiced_in(sup) >= 30  # the supervisor hears the customer
        cust.talk(False)
        agent.talk(True)
        assert await voiced_in(sup) >= 30  # ... and the agent
        agent.talk(False)
        sup.talk(True)
        heard = await asyncio.gather(voiced_in(cust), voiced_in(agent))
        assert heard == [0, 0], heard  # monitor: nobody hears the supervisor
        await con.screenshot(path=str(artifacts / "console-listen.png"), full_page=True)
        shot = ROOT / "docs" / "img" / "console-listen.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        box = await con.eval_on_selector(
            f"[data-campaign='{CAMPAIGN}']", "e => e.getBoundingClientRect().bottom")
        await con.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280,
                                                   "height": min(860, int(box) + 16)})

        # ---- whisper: the agent hears the supervisor, the customer does not
        await con.select_option("#listen-sessions select[data-listen-action='mode']", "whisper")
        await con.wait_for_selector("#listen-sessions tr[data-mode='whisper']")
        cust_n, agent_n = await asyncio.gather(voiced_in(cust), voiced_in(agent))
        assert agent_n >= 30 and cust_n == 0, (agent_n, cust_n)

        # ---- barge: both hear the supervisor
        await con.select_option("#listen-sessions select[data-listen-action='mode']", "barge")
        await con.wait_for_selector("#listen-sessions tr[data-mode='barge']")
        await con.wait_for_selector(f"{row} .pill.listening[data-listen-mode='barge']")
        cust_n, agent_n = await asyncio.gather(voiced_in(cust), voiced_in(agent))
        assert agent_n >= 30 and cust_n >= 30, (agent_n, cust_n)
        sup.talk(False)

        # ---- Stop: the supervisor's phone gets nothing more; the call goes on
        await con.click("#listen-sessions button[data-listen-action='stop']")
        await con.wait_for_selector("#listen-none:not([hidden])")
        await con.wait_for_selector(f"{row} .pill.listening", state="detached")
        cust.talk(True)
        await asyncio.sleep(0.5)
        sup_n, agent_n = await asyncio.gather(voiced_in(sup), voiced_in(agent))
        assert sup_n == 0 and agent_n >= 30, (sup_n, agent_n)
        cust.talk(False)
        assert await desk.get_attribute("body", "data-state") == "talking"

        # ---- one audit row per control, none with the phone URI
        rows = await st.query("SELECT action, target, actor, detail FROM audit_log "
                              "WHERE action LIKE 'listen.%' ORDER BY id")
        assert [(r[0], r[1], r[2]) for r in rows] == [
            ("listen.start", f"attempt:{attempt}", "sue"),
            ("listen.mode", f"attempt:{attempt}", "sue"),
            ("listen.mode", f"attempt:{attempt}", "sue"),
            ("listen.stop", f"attempt:{attempt}", "sue")]
        details = [r[3] if isinstance(r[3], dict) else json.loads(r[3]) for r in rows]
        assert [d["mode"] for d in details] == ["monitor", "whisper", "barge", "barge"]
        assert not any(f"sup-{sup.port}" in json.dumps(d) for d in details)
        await con.wait_for_selector("#tab-audit")
        await con.click("#tab-audit")
        await con.wait_for_selector("#audit-table tr[data-action='listen.stop']")

        await desk.click("#btn-hangup")
        await desk.wait_for_selector("body[data-state='wrap_up']")
