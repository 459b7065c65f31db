"""The desktop's Transfer panel to an outside number, in a real browser against a live
`dialer run`.

The stack of tests/web_e2e/test_desktop_transfer.py (a `dialer run` with its pjsua2 node,
Kamailio staying in the dialog, SIPp phones echoing RTP, the web server). web1 takes the call
and types a phone number in the Transfer panel: the trunk reaches an outside SIPp phone (a
number that is nobody's lead), the customer's voice comes back through it, and web1's page
goes to wrap-up with the outcome form at once; web1 gives the outcome while the two outside
parties still talk. The campaign's `max_call_s` then ends the call: the attempt ends once,
connected, with web1's outcome and a `transfer_out` handler row.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sip.rtp_peer import RtpHub, RtpPeer
from support import faults
from support.faults import wait_for
from support.kamailio import KamailioProxy
from support.kamailio import available as kamailio_available
from support.leads import make_numbers
from support.webstack import WebSpec, WebStack

pytestmark = [pytest.mark.slow, pytest.mark.sipp]

PASSWORD = "pw-transfer-out-1"


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    with RtpHub() as h:
        yield h


async def voiced_in(peer: RtpPeer, seconds: float) -> int:
    await asyncio.sleep(0.4)
    n0 = peer.rx_voiced
    await asyncio.sleep(seconds)
    return peer.rx_voiced - n0


async def test_desktop_transfers_a_call_to_an_outside_number(
    tmp_path: Path, browser: Any, artifacts: Path, hub: RtpHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    monkeypatch.setattr(faults, "KamailioProxy", functools.partial(KamailioProxy,
                                                                    record_route=True))
    cust, ext = hub.peer(), hub.peer()
    ((outside, _zone),) = make_numbers(datetime.now(UTC), {"999": 1}, seed=21)
    spec = WebSpec(kind="default", agents={}, web_agents={"web1": PASSWORD},
                   leads={f"cust-{cust.port}": 1}, callee_scenario="phone",
                   outside={"999": f"ext-{ext.port}"},
                   campaign_toml='dial_mode = "progressive"\nmax_wrapup_s = 0\n'
                                 'max_call_s = 30\n')
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
        await page.click("#btn-ready")
        card = await page.wait_for_selector("#call-card[data-pop-attempt]", timeout=90_000)
        attempt = int(await card.get_attribute("data-pop-attempt"))
        await page.wait_for_selector("body[data-state='talking']")
        cust.talk(True)
        assert await voiced_in(cust, 1.0) >= 30  # web1's phone echoes the customer

        await page.keyboard.press("Alt+t")
        await page.wait_for_selector("#transfer-panel:not([hidden])")
        await page.fill("#transfer-to", outside)
        await page.click("#btn-transfer-send")
        # web1 is out of the call at once and asked for its outcome
        await page.wait_for_selector("body[data-state='wrap_up']")
        await page.wait_for_selector("#dispo-form:not([hidden])")
        assert await voiced_in(ext, 1.0) >= 30  # the outside phone hears the customer
        cust.talk(False)
        ext.talk(True)
        assert await voiced_in(cust, 1.0) >= 30  # and the customer hears the outside party
        ext.talk(False)
        await page.screenshot(path=str(artifacts / "desktop-transfer-out.png"))
        await page.click("#dispo-codes button[data-code='no_need']")
        await page.fill("#dispo-notes", "put through to their buyer")
        await page.click("#dispo-submit")
        await page.wait_for_selector("#dispo-form[hidden]", state="attached")
        await page.wait_for_selector("body[data-state='ready']")
        rows = await st.query("SELECT disposition, result FROM attempts WHERE id = :i",
                              i=attempt)
        assert rows[0][0] == "no_need"

        async def ended() -> bool:  # max_call_s hangs the outside parties up
            got = await st.query("SELECT result, ended_at FROM attempts WHERE id = :i",
                                 i=attempt)
            return got[0][0] == "connected" and got[0][1] is not None
        await wait_for(ended, 60, "the attempt's end")
        hows = await st.query("SELECT agent_id IS NULL, how, to_at IS NOT NULL FROM "
                              "attempt_handlers WHERE attempt_id = :i ORDER BY from_at",
                              i=attempt)
        assert [tuple(r) for r in hows] == [(False, "answered", True),
                                            (True, "transfer_out", True)]
        await ctx.close()
