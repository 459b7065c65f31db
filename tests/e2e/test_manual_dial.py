"""Manual dial through a live campaign runtime (dialer.manual_dial, dialer.core.manual_call).

A CampaignRuntime dials a lead and bridges it to agent a1 (tests/support/live_runtime.py).
a1 pauses (applied after the call), hangs up and gives the disposition: it is paused, never
ready. Its `manual_dial` commands then go through the agent-protocol handler: a number on the
DNC list and a number where it is night are refused with the reason and place nothing; the
lead's own number is dialed for a1 only, answered and bridged to a1 (RTP counted on the
``sipp`` backend: a1 hears the customer), and after that call's wrap-up a1 is paused again
with its own reason; "call back now" of that lead is refused to another agent (`not_yours`)
and placed for a1. Every attempt of the lead ends in one final state.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptResult, AttemptStage
from db.models import Attempt
from db.session import create_engine, session_factory
from dialer.bus.errors import ErrorCode
from dialer.bus.messages import (
    CallBackNowCmd,
    DispositionCmd,
    HangupCmd,
    ManualDialCmd,
    PauseCmd,
)
from dialer.demo.data import night_zone, valid_number
from support.leads import make_numbers
from support.live_runtime import Live, live_call


async def _attempts(live: Live) -> list[Attempt]:
    engine = create_engine(live.url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.scalars(select(Attempt).order_by(Attempt.id))).all())
    finally:
        await engine.dispose()


async def _end_call(live: Live, attempt_id: int) -> None:
    """a1 hangs up attempt `attempt_id` and gives its disposition."""
    rt, cmds = live.rt, live.commands
    n = len(live.bus.of("a1", "call_ended"))
    assert await cmds.handle(rt, "a1", HangupCmd(login="a1", attempt_id=attempt_id)) is None
    await live.until("call_ended", lambda: len(live.bus.of("a1", "call_ended")) > n)
    assert await cmds.handle(rt, "a1", DispositionCmd(
        login="a1", attempt_id=attempt_id, code="contract")) is None


async def test_manual_dial_refusals_then_a_call_for_the_agent_only(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request, name="manual",
                         agents=("a1", "a2")) as live:
        rt, cmds = live.rt, live.commands
        first = await live.attempt()
        lead_id, own_number = first.lead_id, first.phone_e164

        def dial(number: str) -> ManualDialCmd:
            return ManualDialCmd(login="a1", lead_id=lead_id, number=number)

        busy = await cmds.handle(rt, "a1", dial(own_number))  # talking: not now
        assert busy is not None and busy.code is ErrorCode.MANUAL_DIAL_REFUSED
        assert busy.message.startswith("not_allowed_in_state")

        # pause first (after this call), then the call's end and its disposition: paused
        assert await cmds.handle(rt, "a1", PauseCmd(login="a1", reason="break")) is None
        await _end_call(live, live.attempt_id)
        await live.until("a1 paused", lambda: live.state("a1") is AgentState.PAUSED)
        states = [b["state"] for b in live.bus.of("a1", "state")]
        assert "ready" not in states[states.index("wrap_up"):], states

        # refused: a DNC number, a number where it is night now; nothing is placed
        now = SYSTEM_CLOCK.now()
        listed = make_numbers(now, {"111": 1}, seed=9)[0][0]
        await live.store.add_dnc(listed, now=now, reason="test", attempt_id=None)
        zone, region, prefix = night_zone(now)
        night = valid_number(prefix, region, random.Random(5), "222")
        assert night is not None
        for number, reason in ((listed, "dnc"), (night, "outside_window"),
                               ("12", "invalid_number")):
            err = await cmds.handle(rt, "a1", dial(number))
            assert err is not None and err.code is ErrorCode.MANUAL_DIAL_REFUSED, (number, err)
            assert err.message.startswith(reason), (zone, err.message)
            assert number not in err.message
        assert len(await _attempts(live)) == 1
        assert live.state("a1") is AgentState.PAUSED

        # the lead's own number: placed for a1, bridged to a1
        assert await cmds.handle(rt, "a1", dial(own_number)) is None
        assert live.state("a1") is AgentState.RESERVED

        async def second_bridged() -> bool:
            rows = await _attempts(live)
            return len(rows) == 2 and rows[1].stage is AttemptStage.BRIDGED
        await live.until("the manual call's bridge", second_bridged)
        second = (await _attempts(live))[1]
        assert live.state("a1") is AgentState.TALKING
        assert second.lead_id == lead_id and second.phone_e164 == own_number
        if backend == "sipp":
            live.talk("cust", True)
            assert (await live.voiced("a1") or 0) >= 30  # a1 hears the customer
            live.talk("cust", False)
        await _end_call(live, second.id)
        await live.until("a1 paused again", lambda: live.state("a1") is AgentState.PAUSED)
        assert rt.engine.board.get("a1").reason == "break"
        await rt.flush()

        async def both_ended() -> bool:
            return all(a.stage is AttemptStage.ENDED and a.result is not None
                       for a in await _attempts(live))
        await live.until("both attempts ended", both_ended)
        rows = await _attempts(live)
        assert [(a.result, a.disposition) for a in rows] == [
            (AttemptResult.CONNECTED, "contract")] * 2
        assert rows[1].agent_id == rows[0].agent_id

        # "call back now": the lead of a1's last call is a1's to call back, not a2's
        rt.agent_login("a2")
        err = await cmds.handle(rt, "a2", CallBackNowCmd(login="a2", lead_id=lead_id))
        assert err is not None and err.message.startswith("not_yours"), err
        assert await cmds.handle(rt, "a1", CallBackNowCmd(login="a1", lead_id=lead_id)) is None

        async def third_bridged() -> bool:
            rows = await _attempts(live)
            return len(rows) == 3 and rows[2].stage is AttemptStage.BRIDGED
        await live.until("the call back's bridge", third_bridged)
        third = (await _attempts(live))[2]
        assert third.agent_id == rows[0].agent_id and third.phone_e164 == own_number
        await _end_call(live, third.id)
        await live.until("a1 paused after the call back",
                         lambda: live.state("a1") is AgentState.PAUSED)
