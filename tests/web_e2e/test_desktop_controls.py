"""The agent desktop's call controls in a real browser against a live `dialer run`.

The fault harness's stack (a `dialer run` process with its pjsua2 node, Kamailio, SIPp agent
phones echoing RTP, the web server) with the call-control test phone as the callee
(sip/scenarios/phone.xml): the customer's media is a loopback RTP endpoint of this test, so
the test hears what the customer hears. A person at the desktop in headless Chromium takes the
call and uses the buttons and keys: Hold (the customer stops hearing the agent's side), F10
to resume (it hears it again), the keypad (Alt+K, buttons and typed digits: the customer's
phone receives them as RFC 2833 telephone-events), then Hang up and the outcome; the attempt
row has the hold time. Screenshots go to $TEST_ARTIFACTS/web.
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

PASSWORD = "pw-controls-1"


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    with RtpHub() as h:
        yield h


async def voiced_in(peer: RtpPeer, seconds: float) -> int:
    await asyncio.sleep(0.4)
    n0 = peer.rx_voiced
    await asyncio.sleep(seconds)
    return peer.rx_voiced - n0


async def test_desktop_buttons_drive_hold_resume_and_keypad(
    tmp_path: Path, browser: Any, artifacts: Path, hub: RtpHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    # the proxy stays in the dialog, as a carrier's SBC does: the hold re-INVITE reaches the
    # SIPp phone through it and its 200 OK comes back (phone.xml's header explains why)
    monkeypatch.setattr(faults, "KamailioProxy", functools.partial(KamailioProxy,
                                                                    record_route=True))
    cust = hub.peer()
    spec = WebSpec(kind="default", agents={}, web_agents={"web1": PASSWORD},
                   leads={f"cust-{cust.port}": 1}, callee_scenario="phone",
                   campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 0\n')
    async with WebStack(tmp_path, spec) as st:
        base = st.web_url
        ctx = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        locale="en-US")
        page = await ctx.new_page()
        page.set_default_timeout(30_000)
        await page.goto(f"{base}/login")
        await page.fill("#login", "web1")
        await page.fill("#password", PASSWORD)
        await page.click("#login-submit")
        await page.wait_for_selector("body[data-state='paused']")
        await page.click("#btn-ready")
        card = await page.wait_for_selector("#call-card[data-pop-attempt]", timeout=90_000)
        attempt = int(await card.get_attribute("data-pop-attempt"))
        await page.wait_for_selector("body[data-state='talking']")
        await page.wait_for_selector("#btn-hold:not([disabled])")
        # the customer talks; the agent's phone echoes it back: the customer hears voice
        cust.talk(True)
        assert await voiced_in(cust, 1.0) >= 30

        await page.click("#btn-hold")
        await page.wait_for_selector("#btn-hold[aria-pressed='true']")
        assert await page.text_content("#hold-label") == "Resume"
        assert await page.text_content("#call-kind") == "On hold"
        assert await voiced_in(cust, 1.0) == 0  # held: nothing of the agent's side
        await page.screenshot(path=str(artifacts / "desktop-on-hold.png"))
        # a reloaded desktop learns from the dialer that the call is on hold
        await page.reload()
        await page.wait_for_selector("#btn-hold[aria-pressed='true']:not([disabled])")
        assert await page.text_content("#hold-label") == "Resume"

        await page.keyboard.press("F10")  # resume
        await page.wait_for_selector("#btn-hold[aria-pressed='false']:not([disabled])")
        assert await voiced_in(cust, 1.0) >= 30
        cust.talk(False)

        await page.keyboard.press("Alt+k")
        await page.wait_for_selector("#keypad:not([hidden])")
        await page.click("#keypad-keys button[data-digit='1']")
        await page.click("#keypad-keys button[data-digit='#']")
        await page.fill("#keypad-input", "9*")
        await page.keyboard.press("Enter")

        async def digits_arrived() -> bool:
            return "".join(cust.digits) == "1#9*"

        await wait_for(digits_arrived, 10, "the keypad's digits at the customer's phone")
        assert await page.input_value("#keypad-input") == ""
        await page.screenshot(path=str(artifacts / "desktop-keypad.png"))

        await page.click("#btn-hangup")
        await page.wait_for_selector("body[data-state='wrap_up']")
        assert await page.is_hidden("#keypad")

        async def hold_recorded() -> bool:
            rows = await st.query("SELECT holds, hold_s FROM attempts WHERE id = :i", i=attempt)
            return bool(rows) and rows[0][0] == 1 and rows[0][1] is not None

        await wait_for(hold_recorded, 15, "the hold time on the attempt")
        rows = await st.query("SELECT hold_s FROM attempts WHERE id = :i", i=attempt)
        assert 0.5 < float(rows[0][0]) < 30
        await ctx.close()
