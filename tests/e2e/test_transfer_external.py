"""Transfer to an outside number through a live campaign runtime (dialer.call_transfer).

A lead is dialed and bridged to agent a1 (tests/support/live_runtime.py). a1's `transfer` with
a ``number``: a number on the DNC list is refused with the reason (and never echoed); a number
passing the calling rules is called through the campaign's trunk (here it reaches the test's
``ext`` phone) and the customer is switched over to it. a1 is then in wrap-up with
`call_ended`, gives the call's disposition while the customer and the outside party still
talk (RTP counted per direction on the ``sipp`` backend), and the attempt ends once, at the
call's end, CONNECTED with a1's disposition; `attempt_handlers` shows the outside party.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptResult, AttemptStage
from dialer.bus.errors import ErrorCode
from dialer.bus.messages import (
    DispositionCmd,
    HangupCmd,
    HoldCmd,
    TransferCmd,
    TransferCompleteCmd,
)
from sip import api as sip
from support.leads import make_numbers
from support.live_runtime import live_call


@pytest.mark.parametrize("mode", ["blind", "warm"])
async def test_transfer_to_an_outside_number(
    backend: str, mode: str, tmp_path: Path, sqlite_template: Path,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "memory" and mode == "warm":
        pytest.skip("the warm path's hold and swap are SIP behaviour: run on sipp only")
    async with live_call(backend, tmp_path, sqlite_template, request, name="xout",
                         agents=("a1",), roles=("ext",)) as live:
        rt, cmds, aid = live.rt, live.commands, live.attempt_id
        now = SYSTEM_CLOCK.now()
        listed, outside = (n for n, _ in make_numbers(now, {"444": 1, "555": 1}, seed=12))
        await live.store.add_dnc(listed, now=now, reason="test", attempt_id=None)
        err = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid,
                                                      number=listed))
        assert err is not None and err.code is ErrorCode.MANUAL_DIAL_REFUSED
        assert err.message.startswith("dnc") and listed not in err.message
        bad = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid,
                                                      number="12"))
        assert bad is not None and bad.code is ErrorCode.MANUAL_DIAL_REFUSED
        assert live.state("a1") is AgentState.TALKING

        # the campaign's trunk reaches the outside number (here: the test's ext phone)
        cust_target = rt.target_for
        rt.target_for = lambda e164: live.uris["ext"] if e164 == outside else cust_target(e164)
        xfer = TransferCmd(login="a1", attempt_id=aid, number=outside, mode=mode)
        assert await cmds.handle(rt, "a1", xfer) is None
        if mode == "warm":  # a1 talks with the outside party; the customer waits on hold
            assert live.state("a1") is AgentState.TALKING
            if backend == "sipp":
                live.talk("a1", True)
                assert (await live.voiced("ext") or 0) >= 30
                assert await live.voiced("cust") == 0
                live.talk("a1", False)
            assert await cmds.handle(rt, "a1", TransferCompleteCmd(login="a1",
                                                                   attempt_id=aid)) is None
        # a1 is out of the call and wraps it up now
        assert live.state("a1") is AgentState.WRAP_UP
        await live.until("call_ended", lambda: bool(live.bus.of("a1", "call_ended")))
        gone = await cmds.handle(rt, "a1", HangupCmd(login="a1", attempt_id=aid))
        assert gone is not None and gone.code is ErrorCode.UNKNOWN_ATTEMPT
        held = await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=aid))
        assert held is not None and held.code is ErrorCode.UNKNOWN_ATTEMPT
        if backend == "sipp":  # the customer and the outside party hear each other
            live.talk("cust", True)
            assert (await live.voiced("ext") or 0) >= 30
            assert await live.voiced("a1") == 0
            live.talk("cust", False)
            live.talk("ext", True)
            assert (await live.voiced("cust") or 0) >= 30
            live.talk("ext", False)
        # the disposition while the outside parties still talk: saved, a1 is free
        assert await cmds.handle(rt, "a1", DispositionCmd(
            login="a1", attempt_id=aid, code="contract", notes="to the specialist")) is None
        assert live.state("a1") is AgentState.READY
        row = await live.attempt()
        assert row.disposition == "contract" and row.result is None  # still live
        assert rt.live_calls == 1

        # the outside parties hang up (here the node ends the call): the attempt ends once
        await rt.pool.submit(sip.Hangup(call_id=next(iter(rt.calls)), reason="test"))

        async def ended() -> bool:
            r = await live.attempt()
            return r.stage is AttemptStage.ENDED and r.result is AttemptResult.CONNECTED
        await live.until("the attempt's end", ended)
        await rt.flush()
        row = await live.attempt()
        assert (row.agent_id, row.disposition) == (rt.agents["a1"].id, "contract")
        assert not rt.calls and rt.live_calls == 0
        assert len(live.bus.of("a1", "call_ended")) == 1
        hs = await live.handlers()
        assert [(who, how) for who, how, _ in hs] == [("a1", "answered"),
                                                       ("(outside)", "transfer_out")]
        assert hs[0][2].to_at == hs[1][2].from_at and hs[1][2].to_at is not None
        lead = await live.lead()
        assert lead.attempts == 1 and lead.needs_outcome_attempt_id is None
