"""The agent desktop's Transfer button in a real browser against a live `dialer run`.

The stack of tests/web_e2e/test_desktop_controls.py (a `dialer run` with its pjsua2 node,
Kamailio staying in the dialog, SIPp agent phones echoing RTP, the web server), with two people
at desktops in headless Chromium. web1 takes the call; web2 logs in after it. web1 opens the
transfer panel (Alt+T), picks web2 from the ready-agent picker (web1 is not listed), makes a
warm transfer to web2 (the customer is on hold: it hears nothing) and cancels it (the
customer hears web1's phone again), then a blind one with notes to the named group "closers"
(picked from the picker; web2 is in it):
web2's desktop shows the call with the notes, web1 is ready, the customer hears web2's phone.
web1 pauses and web2 brings it into the call as a conference (Conference button), then ends
the conference. web2 hangs up and gives the outcome; the attempt's handler rows name both
agents.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sip.rtp_peer import RtpHub, RtpPeer
from support import faults
from support.faults import wait_for
from support.kamailio import KamailioProxy
from support.kamailio import available as kamailio_available
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp]

PASSWORD = "pw-transfer-1"


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    with RtpHub() as h:
        yield h


async def voiced_in(peer: RtpPeer, seconds: float) -> int:
    await asyncio.sleep(0.4)
    n0 = peer.rx_voiced
    await asyncio.sleep(seconds)
    return peer.rx_voiced - n0


async def desk(browser: Any, base: str, login: str) -> tuple[Any, Any]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = await ctx.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{base}/login")
    await page.fill("#login", login)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("body[data-state='paused']")
    await page.click("#btn-ready")
    return ctx, page


async def test_desktop_transfer_warm_cancel_then_blind(
    tmp_path: Path, browser: Any, artifacts: Path, hub: RtpHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    monkeypatch.setattr(faults, "KamailioProxy", functools.partial(KamailioProxy,
                                                                    record_route=True))
    cust = hub.peer()
    spec = WebSpec(kind="default", agents={}, web_agents={"web1": PASSWORD, "web2": PASSWORD},
                   web_groups={"web2": ["closers"]},
                   leads={f"cust-{cust.port}": 1}, callee_scenario="phone",
                   campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 0\n')
    async with WebStack(tmp_path, spec) as st:
        base = st.web_url
        ctx1, p1 = await desk(browser, base, "web1")
        card = await p1.wait_for_selector("#call-card[data-pop-attempt]", timeout=90_000)
        attempt = int(await card.get_attribute("data-pop-attempt"))
        await p1.wait_for_selector("body[data-state='talking']")
        ctx2, p2 = await desk(browser, base, "web2")
        await p2.wait_for_selector("body[data-state='ready']")
        cust.talk(True)
        assert await voiced_in(cust, 1.0) >= 30  # web1's phone echoes the customer

        # warm: consult web2 (the customer on hold hears nothing), then cancel
        await p1.keyboard.press("Alt+t")
        await p1.wait_for_selector("#transfer-panel:not([hidden])")
        # the picker lists the ready agents, web1 itself left out; a click fills the field
        await p1.wait_for_selector("#transfer-picker button[data-login='web2']")
        assert await p1.locator("#transfer-picker button[data-login]").all_inner_texts() \
            == ["web2"]
        await p1.click("#transfer-picker button[data-login='web2']")
        assert await p1.input_value("#transfer-to") == "web2"
        await p1.check("#transfer-warm")
        await p1.click("#btn-transfer-send")
        await p1.wait_for_selector("#btn-transfer-complete:not([hidden]):not([disabled])")
        await p2.wait_for_selector("body[data-state='reserved']")
        assert await voiced_in(cust, 1.0) == 0
        await p1.screenshot(path=str(artifacts / "desktop-transfer-consult.png"))
        await p1.click("#btn-transfer-cancel")
        await p1.wait_for_selector("#btn-transfer-send:not([hidden]):not([disabled])")
        await p2.wait_for_selector("body[data-state='ready']")
        assert await voiced_in(cust, 1.0) >= 30  # back with web1

        # blind, to the named group "closers" (web2 is its one ready agent), with notes:
        # web2 has the call, web1 is free
        group = await p1.wait_for_selector("#transfer-picker button[data-group='closers']")
        assert await group.text_content() == "closers (1 ready)"
        await group.click()
        assert await p1.input_value("#transfer-to") == "@closers"
        await p1.uncheck("#transfer-warm")
        await p1.fill("#transfer-notes", "Wants the two-year price")
        await p1.click("#btn-transfer-send")
        await p2.wait_for_selector("body[data-state='talking']")
        await p1.wait_for_selector("body[data-state='ready']")
        note = await p2.wait_for_selector("#transfer-note:not([hidden])")
        assert await note.text_content() == "Transferred by web1: Wants the two-year price"
        assert await voiced_in(cust, 1.0) >= 30  # web2's phone echoes the customer
        cust.talk(False)
        await p2.screenshot(path=str(artifacts / "desktop-transfer-received.png"))
        assert await p1.is_hidden("#call-card")

        # conference: web1 pauses, web2 brings it into the call, then lets it go again
        await p1.keyboard.press("F3")
        await p1.keyboard.press("1")
        await p1.wait_for_selector("body[data-state='paused']")
        await p2.keyboard.press("Alt+t")
        await p2.fill("#transfer-to", "web1")
        await p2.click("#btn-conference")
        await p2.wait_for_selector("#btn-conference-leave:not([hidden]):not([disabled])")
        assert await p2.text_content("#transfer-status") == "In conference with web1"
        await p2.screenshot(path=str(artifacts / "desktop-conference.png"))
        await p2.click("#btn-conference-leave")
        await p2.wait_for_selector("#btn-conference:not([hidden]):not([disabled])")
        assert await p2.text_content("#transfer-status") == ""

        await p2.click("#btn-hangup")
        await p2.wait_for_selector("body[data-state='wrap_up']")

        async def handlers_closed() -> bool:
            rows = await st.query(
                "SELECT a.login, h.how, h.to_at FROM attempt_handlers h JOIN agents a "
                "ON a.id = h.agent_id WHERE h.attempt_id = :i ORDER BY h.from_at", i=attempt)
            return [(r[0], r[1]) for r in rows] == [("web1", "answered"),
                                                    ("web2", "transfer_blind")] \
                and all(r[2] is not None for r in rows)

        await wait_for(handlers_closed, 15, "the attempt's handler rows")
        rows = await st.query("SELECT a.login FROM attempts t JOIN agents a ON a.id = "
                              "t.agent_id WHERE t.id = :i", i=attempt)
        assert rows[0][0] == "web2"
        await ctx1.close()
        await ctx2.close()
