"""Agent-to-agent transfers through a live campaign runtime (dialer.call_transfer).

A CampaignRuntime dials a lead and bridges it to agent a1; a2 (and a3) log in afterwards. The
agents' `transfer`, `transfer_complete` and `transfer_cancel` go through the agent-protocol
handler (dialer.agent_commands). Run over both SIP backends, as tests/e2e/test_call_controls.py:
``memory`` (sip.memory.MemoryPool) and ``sipp`` - a real pjsua2 node with SIPp phones for the
customer and both agents, whose RTP the test counts per direction (sip.rtp_peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptResult, AttemptStage, CallbackScope, DialMode
from db.handlers import Handler
from db.models import Agent, Attempt
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.agent_commands import AgentCommands
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import (
    SUPERVISOR_EVENTS,
    HangupCmd,
    ScreenPopEvt,
    SupervisorCallEvent,
    TransferCancelCmd,
    TransferCmd,
    TransferCompleteCmd,
    parse_command,
)
from dialer.call_controls import is_on_hold
from dialer.config import CampaignConfig
from dialer.hopper import SchedulingCallability
from dialer.ports import AgentMessageKind, Body, SipEvent
from dialer.runtime import CampaignRuntime
from sip.api_controls import TransferAgent, TransferFailed
from sip.config import PoolConfig
from sip.memory import MemoryPool
from sip.pool import NodePool
from sip.rtp_peer import RtpHub, RtpPeer
from sip.sipp import SippProcess
from support.leads import add_leads, make_numbers


@pytest.fixture(params=["memory", pytest.param("sipp", marks=[pytest.mark.sipp])])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def phone() -> Iterator[SippProcess]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed")
    with SippProcess("phone", max_lifetime_s=600, extra_args=("-trace_logs",)) as p:
        yield p


@dataclass
class Bus:
    messages: list[tuple[str, AgentMessageKind, Body]] = field(default_factory=list)
    supervised: list[object] = field(default_factory=list)

    async def send_agent(self, login: str, kind: AgentMessageKind, body: Body) -> None:
        self.messages.append((login, kind, body))

    async def supervisor(self, event: Body) -> None:
        self.supervised.append(SUPERVISOR_EVENTS.validate_json(json.dumps(event, default=str)))

    def of(self, login: str, kind: str) -> list[Body]:
        return [b for who, k, b in self.messages if who == login and k == kind]


@dataclass
class Live:
    rt: CampaignRuntime
    bus: Bus
    url: str
    store: SqlStore
    attempt_id: int
    #: RTP peers by role (sipp only): cust, a1, a2
    peers: dict[str, RtpPeer]
    commands: AgentCommands = field(default_factory=AgentCommands)

    async def attempt(self) -> Attempt:
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as s:
                return (await s.scalars(select(Attempt))).one()
        finally:
            await engine.dispose()

    async def handlers(self) -> list[tuple[str, str, Handler]]:
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as s:
                logins = {a.id: a.login for a in await s.scalars(select(Agent))}
        finally:
            await engine.dispose()
        return [(logins[h.agent_id], h.how, h)
                for h in await self.store.handlers_of(self.attempt_id)]

    async def until(self, what: str, cond: object, seconds: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            await self.rt.flush_agent_messages()
            ok = cond() if callable(cond) else cond
            if asyncio.iscoroutine(ok):
                ok = await ok
            if ok:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    def state(self, login: str) -> AgentState:
        return self.rt.engine.agent_state(login)

    async def voiced(self, role: str, seconds: float = 0.8) -> int | None:
        """Voiced RTP packets the role's phone received over ``seconds`` (None: memory)."""
        peer = self.peers.get(role)
        if peer is None:
            return None
        await asyncio.sleep(0.3)
        n0 = peer.rx_voiced
        await asyncio.sleep(seconds)
        return peer.rx_voiced - n0

    def talk(self, role: str, on: bool) -> None:
        if role in self.peers:
            self.peers[role].talk(on)


@contextlib.asynccontextmanager
async def live_call(backend: str, tmp_path: Path, sqlite_template: Path,
                    request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    """One lead dialed and bridged to a1; then a2 logs in ready and a3 paused."""
    db = tmp_path / "transfer.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite+aiosqlite:///{db}"
    engine = create_engine(url)
    sessions = session_factory(engine)
    store = SqlStore(sessions)
    now = SYSTEM_CLOCK.now()
    cfg = CampaignConfig.model_validate({
        "name": "transfer", "caller_id": "+14155550100", "ring_timeout_s": 5.0,
        "min_ring_s": 5.0, "dial_mode": DialMode.PROGRESSIVE})
    camp = await store.upsert_campaign(cfg)
    await add_leads(url, camp.name, make_numbers(now, {"000": 1}), now)
    handlers: list[object] = []

    def on_event(ev: SipEvent) -> None:
        for h in handlers:
            h(ev)  # type: ignore[operator]

    with contextlib.ExitStack() as stack:
        peers: dict[str, RtpPeer] = {}
        if backend == "sipp":
            ph: SippProcess = request.getfixturevalue("phone")
            hub = stack.enter_context(RtpHub())
            peers = {role: hub.peer() for role in ("cust", "a1", "a2", "a3")}
            target = ph.uri(f"cust-{peers['cust'].port}")
            uris = {a: ph.uri(f"ag-{peers[a].port}") for a in ("a1", "a2", "a3")}
            pool: NodePool | MemoryPool = NodePool(
                PoolConfig(nodes=1, node_log_dir=str(tmp_path)), on_event=on_event)
        else:
            target = "sip:answer_0.2_0@memory.invalid"
            uris = {a: f"sip:{a}@memory.invalid" for a in ("a1", "a2", "a3")}
            pool = MemoryPool(on_event=on_event)
        rows = {a: await store.upsert_agent(a, uri, a.upper()) for a, uri in uris.items()}
        await pool.start()
        bus = Bus()
        rt = CampaignRuntime(
            campaign=camp, store=store, callability=SchedulingCallability(sessions), pool=pool,
            dialer_id=f"transfer-{backend}", agents=rows, target_for=lambda _p: target,
            bus=bus, recordings_dir=tmp_path / "rec", clock=SYSTEM_CLOCK, max_lines=1)
        handlers.append(rt.on_sip_event)
        task = asyncio.create_task(rt.run())
        live = Live(rt, bus, url, store, 0, peers)
        try:
            rt.agent_login("a1")
            rt.agent_ready("a1")
            await live.until("the screen pop", lambda: bool(bus.of("a1", "screen_pop")))
            live.attempt_id = int(str(bus.of("a1", "screen_pop")[0]["attempt_id"]))

            async def bridged() -> bool:
                return (await live.attempt()).stage is AttemptStage.BRIDGED
            await live.until("the bridge", bridged)
            for who in ("a2", "a3"):
                rt.agent_login(who)
            rt.agent_ready("a2")
            yield live
        finally:
            for p in peers.values():
                p.talk(False)
            rt.stop_dialing()
            rt.stop()
            await asyncio.wait_for(task, 30)
            await rt.flush()
            await pool.close(drain_deadline_s=0)
            await engine.dispose()


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
        # again, to "the group" this time, and completed
        group = TransferCmd(login="a1", attempt_id=aid, group=["a2", "a3"], mode="warm")
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
                                    {"to": "a2", "mode": "cold"}])
def test_transfer_command_names_exactly_one_target(fields: dict[str, object]) -> None:
    raw = {"type": "transfer", "v": 1, "id": "m1", "ts": "2026-03-02T09:00:00+00:00",
           "login": "a1", "attempt_id": 7, **fields}
    with pytest.raises(ProtocolError) as e:
        parse_command(json.dumps(raw).encode(), "a1")
    assert e.value.code is ErrorCode.INVALID_MESSAGE and e.value.ref_id == "m1"
    ok = parse_command(json.dumps({**raw, "to": "a2", "group": None, "mode": "warm"}).encode(),
                       "a1")
    assert isinstance(ok, TransferCmd) and (ok.to, ok.mode, ok.notes) == ("a2", "warm", "")
