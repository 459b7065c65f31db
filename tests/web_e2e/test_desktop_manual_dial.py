"""The agent desktop's Dial panel (manual dial) in a real browser against a live `dialer run`.

The stack of tests/web_e2e/test_desktop_transfer.py (a `dialer run` with its pjsua2 node,
Kamailio staying in the dialog, SIPp phones echoing RTP, the web server). web1 takes the
call, pauses during it (applied after the call), hangs up; the dialer closes the short
wrap-up and web1 is paused. The Dial panel then offers the lead's number: a bad number is
refused with the reason on the page and places nothing; the lead's number (Alt+D) is dialed
for web1, answered and bridged (the customer's RTP comes back through web1's phone).
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from pathlib import Path
from typing import Any

import pytest

from sip.rtp_peer import RtpHub
from support import faults
from support.faults import wait_for
from support.kamailio import KamailioProxy
from support.kamailio import available as kamailio_available
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp]

PASSWORD = "pw-manual-1"


async def test_desktop_dial_panel_refuses_then_calls_the_lead(
    tmp_path: Path, browser: Any, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    monkeypatch.setattr(faults, "KamailioProxy", functools.partial(KamailioProxy,
                                                                    record_route=True))
    with RtpHub() as hub:
        cust = hub.peer()
        spec = WebSpec(kind="default", agents={}, web_agents={"web1": PASSWORD},
                       leads={f"cust-{cust.port}": 1}, callee_scenario="phone",
                       campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 2\n')
        async with WebStack(tmp_path, spec) as st:
            ctx = await browser.new_context(viewport={"width": 1280, "height": 800},
                                            locale="en-US")
            page = await ctx.new_page()
            page.set_default_timeout(30_000)
            await page.goto(f"{st.web_url}/login")
            await page.fill("#login", "web1")
            await page.fill("#password", PASSWORD)
            await page.click("#login-submit")
            await page.wait_for_selector("body[data-state='paused']")
            assert await page.is_hidden("#manual-panel")  # no lead of its own yet
            await page.click("#btn-ready")
            await page.wait_for_selector("body[data-state='talking']", timeout=90_000)

            # pause during the call (after it), hang up; the dialer closes the wrap-up
            await page.keyboard.press("F3")
            await page.keyboard.press("1")
            await page.click("#btn-hangup")
            await page.wait_for_selector("body[data-state='paused']", timeout=30_000)
            panel = await page.wait_for_selector("#manual-panel:not([hidden])")
            lead_phone = await page.input_value("#manual-number")
            assert lead_phone.startswith("+")
            await page.screenshot(path=str(artifacts / "desktop-manual-dial.png"))

            await page.fill("#manual-number", "12")
            await page.click("#btn-manual-dial")
            status = page.locator("#manual-status")
            await wait_for(lambda: _has(status, "invalid_number"), 15, "the refusal")
            rows = await st.query("SELECT count(*) FROM attempts")
            assert rows[0][0] == 1, "a refused manual dial placed a call"

            await page.fill("#manual-number", lead_phone)
            await page.keyboard.press("Alt+d")
            await page.wait_for_selector("body[data-state='talking']", timeout=30_000)
            assert await panel.is_hidden()
            cust.talk(True)
            await asyncio.sleep(0.4)
            n0 = cust.rx_voiced
            await asyncio.sleep(1.0)
            assert cust.rx_voiced - n0 >= 30  # web1's phone echoes the customer
            cust.talk(False)
            rows = await st.query("SELECT count(*), count(DISTINCT lead_id) FROM attempts")
            assert tuple(rows[0]) == (2, 1)
            await page.click("#btn-hangup")
            await page.wait_for_selector("body[data-state='paused']", timeout=30_000)
            await ctx.close()


async def _has(locator: Any, text: str) -> bool:
    return text in (await locator.text_content() or "")
