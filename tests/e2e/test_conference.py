"""Three-party conference through a live campaign runtime (dialer.call_conference).

A lead is dialed and bridged to agent a1 (tests/support/live_runtime.py); a2 is logged in
and paused. a1's `conference` brings a2 in: all three hear each other (RTP counted per
direction on the ``sipp`` backend); a second conference while one is on, a ready agent and a
number on the DNC list are refused; `conference_leave` hangs a2's leg up (a2 hears nothing
more, a1 and the customer talk on); an outside number passing the calling rules joins through
the call's node. The attempt ends once, with a1's disposition.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AttemptResult
from dialer.bus.errors import ErrorCode
from dialer.bus.messages import ConferenceCmd, ConferenceLeaveCmd, DispositionCmd, HangupCmd
from support.leads import make_numbers
from support.live_runtime import live_call


async def test_conference_with_an_agent_then_an_outside_number(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request, name="conf",
                         agents=("a1", "a2", "a3"), roles=("ext",)) as live:
        rt, cmds, aid = live.rt, live.commands, live.attempt_id
        rt.agent_login("a2")  # paused
        rt.agent_login("a3")
        rt.agent_ready("a3")

        def conf(**kw: str) -> ConferenceCmd:
            return ConferenceCmd(login="a1", attempt_id=aid, **kw)

        err = await cmds.handle(rt, "a1", conf(to="a3"))  # ready: could get a call
        assert err is not None and err.code is ErrorCode.INVALID_STATE, err
        assert await cmds.handle(rt, "a1", conf(to="a2")) is None
        again = await cmds.handle(rt, "a1", conf(to="a2"))
        assert again is not None and again.code is ErrorCode.INVALID_STATE
        if backend == "sipp":
            live.talk("cust", True)
            assert (await live.voiced("a2") or 0) >= 30  # a2 hears the customer
            assert (await live.voiced("a1") or 0) >= 30  # and a1 still does
            live.talk("cust", False)
            live.talk("a2", True)
            assert (await live.voiced("cust") or 0) >= 30  # the customer hears a2
            assert (await live.voiced("a1") or 0) >= 30  # a1 hears a2
            live.talk("a2", False)
        assert await cmds.handle(rt, "a1", ConferenceLeaveCmd(login="a1", attempt_id=aid)) \
            is None
        if backend == "sipp":
            live.talk("cust", True)
            assert await live.voiced("a2") == 0  # a2's leg is gone
            assert (await live.voiced("a1") or 0) >= 30
            live.talk("cust", False)
        gone = await cmds.handle(rt, "a1", ConferenceLeaveCmd(login="a1", attempt_id=aid))
        assert gone is not None and gone.code is ErrorCode.INVALID_STATE

        # an outside number: the manual-dial rules first, then the trunk (here: the ext phone)
        now = SYSTEM_CLOCK.now()
        listed, outside = (n for n, _ in make_numbers(now, {"444": 1, "555": 1}, seed=11))
        await live.store.add_dnc(listed, now=now, reason="test", attempt_id=None)
        err = await cmds.handle(rt, "a1", conf(number=listed))
        assert err is not None and err.code is ErrorCode.MANUAL_DIAL_REFUSED
        assert err.message.startswith("dnc") and listed not in err.message
        cust_target = rt.target_for
        rt.target_for = lambda e164: live.uris["ext"] if e164 == outside else cust_target(e164)
        assert await cmds.handle(rt, "a1", conf(number=outside)) is None
        if backend == "sipp":
            live.talk("cust", True)
            assert (await live.voiced("ext") or 0) >= 30  # the outside party hears
            live.talk("cust", False)

        # the call ends (the third party's leg with it) and a1 gives the one disposition
        assert await cmds.handle(rt, "a1", HangupCmd(login="a1", attempt_id=aid)) is None
        await live.until("call_ended", lambda: bool(live.bus.of("a1", "call_ended")))
        assert await cmds.handle(rt, "a1", DispositionCmd(
            login="a1", attempt_id=aid, code="contract")) is None
        await rt.flush()

        async def ended() -> bool:
            row = await live.attempt()
            return row.result is AttemptResult.CONNECTED and row.disposition == "contract"
        await live.until("the attempt's end", ended)
