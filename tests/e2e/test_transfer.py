"""Agent-to-agent transfers through a live campaign runtime (dialer.call_transfer).

A CampaignRuntime dials a lead and bridges it to agent a1; a2 (and a3) log in afterwards. The
agents' `transfer`, `transfer_complete` and `transfer_cancel` go through the agent-protocol
handler (dialer.agent_commands). Run over both SIP backends, as tests/e2e/test_call_controls.py:
``memory`` (sip.memory.MemoryPool) and ``sipp`` - a real pjsua2 node with SIPp phones for the
customer and both agents, whose RTP the test counts per direction (sip.rtp_peer).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptResult, AttemptStage, CallbackScope
from db.models import Attempt
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import (
    HangupCmd,
    ScreenPopEvt,
    SupervisorCallEvent,
    TransferCancelCmd,
    TransferCmd,
    TransferCompleteCmd,
    parse_command,
)
from dialer.call_controls import is_on_hold
from dialer.runtime import CampaignRuntime
from sip.api_controls import TransferAgent, TransferFailed
from support.live_runtime import Live
from support.live_runtime import live_call as shared_live_call


@contextlib.asynccontextmanager
async def live_call(backend: str, tmp_path: Path, sqlite_template: Path,
                    request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    """One lead dialed and bridged to a1; then a2 logs in ready and a3 paused."""
    def others_log_in(rt: CampaignRuntime) -> None:
        for who in ("a2", "a3"):
            rt.agent_login(who)
        rt.agent_ready("a2")

    async with shared_live_call(backend, tmp_path, sqlite_template, request, name="transfer",
                                agents=("a1", "a2", "a3"), after_bridge=others_log_in) as live:
        yield live


async def finish(live: Live, holder: str) -> Attempt:
    """``holder`` hangs up and gives the disposition; the attempt's final row."""
    assert await live.commands.handle(
        live.rt, holder, HangupCmd(login=holder, attempt_id=live.attempt_id)) is None
    await live.until("call_ended", lambda: bool(live.bus.of(holder, "call_ended")))
    live.rt.agent_disposition(holder, live.attempt_id, "contract", "", None,
                              CallbackScope.CAMPAIGN)
    await live.rt.flush()
    row = await live.attempt()
    assert row.stage is AttemptStage.ENDED and row.result is AttemptResult.CONNECTED
    assert row.disposition == "contract"
    return row


async def test_blind_transfer_reaches_the_other_agent_and_frees_the_first(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request) as live:
        rt, cmds, aid = live.rt, live.commands, live.attempt_id
        live.talk("cust", True)
        assert (await live.voiced("a1") or 30) >= 30
        cmd = TransferCmd(login="a1", attempt_id=aid, to="a2", notes="wants the 2-year price")
        assert await cmds.handle(rt, "a1", cmd) is None  # acked once a2 has the customer
        assert (live.state("a1"), live.state("a2")) == (AgentState.READY, AgentState.TALKING)
        await live.until("a2's screen pop", lambda: bool(live.bus.of("a2", "screen_pop")))
        pop = ScreenPopEvt.model_validate_json(json.dumps(live.bus.of("a2", "screen_pop")[0]))
        assert pop.attempt_id == aid and pop.transfer is not None
        assert (pop.transfer.from_agent, pop.transfer.mode, pop.transfer.notes) == (
            "a1", "blind", "wants the 2-year price")
        # the customer and a2 hear each other; a1's phone is out of the call
        assert (await live.voiced("a2") or 30) >= 30
        assert (await live.voiced("a1") or 0) == 0
        live.talk("cust", False)
        live.talk("a2", True)
        assert (await live.voiced("cust") or 30) >= 30
        live.talk("a2", False)
        # a1 owes nothing and cannot act on the call any more
        gone = await cmds.handle(rt, "a1", HangupCmd(login="a1", attempt_id=aid))
        assert gone is not None and gone.code is ErrorCode.UNKNOWN_ATTEMPT
        row = await finish(live, "a2")
        assert row.agent_id == rt.agents["a2"].id
        assert not live.bus.of("a1", "call_ended")
        bridged = [e.agent for e in live.bus.supervised if isinstance(e, SupervisorCallEvent)
                   and e.stage is AttemptStage.BRIDGED]
        assert bridged == ["a1", "a2"]  # the console sees who has the call
        hs = await live.handlers()
        assert [(who, how) for who, how, _ in hs] == [("a1", "answered"),
                                                       ("a2", "transfer_blind")]
        assert hs[0][2].to_at == hs[1][2].from_at and hs[1][2].to_at is not None
        assert hs[1][2].to_at <= row.ended_at  # type: ignore[operator]
        states_a1 = [(b["state"], b["attempt_id"]) for b in live.bus.of("a1", "state")]
        # no call named: a1's desktop does not ask for a disposition of it
        assert states_a1[-2:] == [("wrap_up", None), ("ready", None)]


async def test_warm_transfer_consults_then_cancel_returns_the_customer_then_complete(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request) as live:
        rt, cmds, aid = live.rt, live.commands, live.attempt_id
        warm = TransferCmd(login="a1", attempt_id=aid, to="a2", mode="warm", notes="n1")
        assert await cmds.handle(rt, "a1", warm) is None  # acked once a2 answered
        assert is_on_hold(rt, aid)
        assert (live.state("a1"), live.state("a2")) == (AgentState.TALKING, AgentState.RESERVED)
        # the agents talk; the customer (on hold) does not hear them
        live.talk("a1", True)
        assert (await live.voiced("a2") or 30) >= 30
        assert (await live.voiced("cust") or 0) == 0
        live.talk("a1", False)
        # a complete without... a second transfer is refused while this one runs
        again = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid, to="a3"))
        assert again is not None and again.code is ErrorCode.INVALID_STATE
        assert await cmds.handle(rt, "a1", TransferCancelCmd(login="a1", attempt_id=aid)) is None
        assert not is_on_hold(rt, aid)
        assert (live.state("a1"), live.state("a2")) == (AgentState.TALKING, AgentState.READY)
        live.talk("cust", True)
        assert (await live.voiced("a1") or 30) >= 30  # the customer is back with a1
        assert (await live.voiced("a2") or 0) == 0
        live.talk("cust", False)
        no_consult = await cmds.handle(rt, "a1", TransferCompleteCmd(login="a1",
                                                                     attempt_id=aid))
        assert no_consult is not None and no_consult.code is ErrorCode.INVALID_STATE
        # again, to the named group "closers" this time (agents.groups), and completed
        for who in ("a2", "a3"):
            rt.agents[who] = await live.store.upsert_agent(who, live.uris[who], who.upper(),
                                                           ["closers"])
        group = TransferCmd(login="a1", attempt_id=aid, group="closers", mode="warm")
        assert await cmds.handle(rt, "a1", group) is None  # a3 is paused: a2 is chosen
        assert live.state("a2") is AgentState.RESERVED
        assert await cmds.handle(rt, "a1", TransferCompleteCmd(login="a1",
                                                               attempt_id=aid)) is None
        assert (live.state("a1"), live.state("a2")) == (AgentState.READY, AgentState.TALKING)
        assert not is_on_hold(rt, aid)
        live.talk("cust", True)
        assert (await live.voiced("a2") or 30) >= 30
        assert (await live.voiced("a1") or 0) == 0
        live.talk("cust", False)
        row = await finish(live, "a2")
        assert row.agent_id == rt.agents["a2"].id and row.holds == 2
        hs = await live.handlers()
        assert [(who, how) for who, how, _ in hs] == [("a1", "answered"),
                                                       ("a2", "transfer_warm")]
        assert all(h.to_at is not None for _, _, h in hs)
        pops = live.bus.of("a2", "screen_pop")
        assert [p["transfer"]["notes"] for p in pops] == ["n1", ""]  # type: ignore[index]


async def test_transfer_refusals_and_a_phone_that_does_not_answer(
    tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call("memory", tmp_path, sqlite_template, request) as live:
        rt, cmds, aid = live.rt, live.commands, live.attempt_id
        paused = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid, to="a3"))
        assert paused is not None and paused.code is ErrorCode.INVALID_STATE
        nobody = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid,
                                                         group=["a3"]))
        assert nobody is not None and nobody.code is ErrorCode.INVALID_STATE
        no_group = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid,
                                                           group="closers"))
        assert no_group is not None and no_group.code is ErrorCode.UNKNOWN_AGENT
        assert "'closers'" in no_group.message
        unknown = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid,
                                                          to="zed"))
        assert unknown is not None and unknown.code is ErrorCode.UNKNOWN_AGENT
        other = await cmds.handle(rt, "a2", TransferCmd(login="a2", attempt_id=aid, to="a3"))
        assert other is not None and other.code is ErrorCode.UNKNOWN_ATTEMPT
        nothing = await cmds.handle(rt, "a1", TransferCancelCmd(login="a1", attempt_id=aid))
        assert nothing is not None and nothing.code is ErrorCode.INVALID_STATE
        # a2's phone does not answer: the node's TransferFailed, as a node sends it
        pool = rt.pool
        real_submit = pool.submit

        async def no_answer(cmd: object) -> None:
            if isinstance(cmd, TransferAgent):
                now = SYSTEM_CLOCK
                rt.on_sip_event(TransferFailed(
                    call_id=cmd.call_id, agent_call_id=cmd.agent_call_id, sip_code=408,
                    reason="no answer within 15s", mono=now.monotonic(), wall=now.now()))
                return
            await real_submit(cmd)  # type: ignore[arg-type]
        pool.submit = no_answer  # type: ignore[method-assign]
        try:
            failed = await cmds.handle(rt, "a1", TransferCmd(login="a1", attempt_id=aid,
                                                             to="a2"))
        finally:
            pool.submit = real_submit  # type: ignore[method-assign]
        assert failed is not None and failed.code is ErrorCode.CONTROL_FAILED
        assert "no answer" in failed.message
        assert (live.state("a1"), live.state("a2")) == (AgentState.TALKING, AgentState.READY)
        row = await finish(live, "a1")  # the first agent kept the call and owes its outcome
        assert row.agent_id == rt.agents["a1"].id
        hs = await live.handlers()
        assert [(who, how) for who, how, _ in hs] == [("a1", "answered")]
        assert hs[0][2].to_at is not None


@pytest.mark.parametrize("fields", [{}, {"to": "a2", "group": ["a2"]}, {"group": []},
                                    {"to": "a2", "mode": "cold"}, {"group": "Closers!"},
                                    {"to": "a2", "number": "+46701234567"}])
def test_transfer_command_names_exactly_one_target(fields: dict[str, object]) -> None:
    raw = {"type": "transfer", "v": 1, "id": "m1", "ts": "2026-03-02T09:00:00+00:00",
           "login": "a1", "attempt_id": 7, **fields}
    with pytest.raises(ProtocolError) as e:
        parse_command(json.dumps(raw).encode(), "a1")
    assert e.value.code is ErrorCode.INVALID_MESSAGE and e.value.ref_id == "m1"
    ok = parse_command(json.dumps({**raw, "to": "a2", "group": None, "number": None,
                                   "mode": "warm"}).encode(), "a1")
    assert isinstance(ok, TransferCmd) and (ok.to, ok.mode, ok.notes) == ("a2", "warm", "")
    one = {**raw, "to": None, "number": None, "mode": "blind"}
    named = parse_command(json.dumps({**one, "group": "closers"}).encode(), "a1")
    assert isinstance(named, TransferCmd) and named.group == "closers"
    logins = parse_command(json.dumps({**one, "group": ["a2", "a3"]}).encode(), "a1")
    assert isinstance(logins, TransferCmd) and logins.group == ["a2", "a3"]
