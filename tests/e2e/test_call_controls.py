"""The agent's call controls and the supervisors' listen-in through a live campaign runtime.

A CampaignRuntime dials a lead, bridges it to the agent, and the agent's commands go through
the agent-protocol handler (dialer.agent_commands, what the MQTT bus and the WebSocket call):
`hold`, `resume`, `dtmf`; the supervisor console's facade (dialer.call_controls.ListenIn)
joins a supervisor's phone. Run over both SIP backends: ``memory`` (sip.memory.MemoryPool)
and ``sipp`` - a real pjsua2 node with SIPp phones (sip/scenarios/phone.xml) for the
customer, the agent and the supervisor, whose RTP the test counts per direction (sip.rtp_peer).
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
from common.vocabulary import AttemptResult, AttemptStage, CallbackScope, DialMode
from db.models import Attempt
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.agent_commands import AgentCommands
from dialer.bus.errors import ErrorCode
from dialer.bus.messages import (
    SUPERVISOR_EVENTS,
    DtmfCmd,
    HangupCmd,
    HoldCmd,
    ResumeCmd,
    SupervisorListenEvent,
)
from dialer.call_controls import ListenError, ListenIn, is_on_hold
from dialer.config import CampaignConfig
from dialer.hopper import SchedulingCallability
from dialer.ports import AgentMessageKind, Body, SipEvent
from dialer.runtime import CampaignRuntime
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
        # what the app does with it: the supervisor stream's models validate it
        self.supervised.append(SUPERVISOR_EVENTS.validate_json(json.dumps(event, default=str)))

    def of(self, login: str, kind: str) -> list[Body]:
        return [b for who, k, b in self.messages if who == login and k == kind]


@dataclass
class Live:
    rt: CampaignRuntime
    bus: Bus
    url: str
    cust: RtpPeer | None
    agent: RtpPeer | None
    sup: RtpPeer | None
    sup_uri: str
    commands: AgentCommands = field(default_factory=AgentCommands)

    async def attempt(self) -> Attempt:
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as s:
                return (await s.scalars(select(Attempt))).one()
        finally:
            await engine.dispose()

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


@contextlib.asynccontextmanager
async def live_call(backend: str, tmp_path: Path, sqlite_template: Path,
                    request: pytest.FixtureRequest, *, memory_capacity: int = 64,
                    ) -> AsyncIterator[tuple[Live, int]]:
    """One lead dialed by a progressive campaign and bridged to agent a1."""
    db = tmp_path / "controls.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite+aiosqlite:///{db}"
    engine = create_engine(url)
    sessions = session_factory(engine)
    store = SqlStore(sessions)
    now = SYSTEM_CLOCK.now()
    cfg = CampaignConfig.model_validate({
        "name": "controls", "caller_id": "+14155550100", "ring_timeout_s": 5.0,
        "min_ring_s": 5.0, "dial_mode": DialMode.PROGRESSIVE})
    camp = await store.upsert_campaign(cfg)
    numbers = make_numbers(now, {"000": 1})
    await add_leads(url, camp.name, numbers, now)
    handlers: list[object] = []

    def on_event(ev: SipEvent) -> None:
        for h in handlers:
            h(ev)  # type: ignore[operator]

    with contextlib.ExitStack() as stack:
        cust = agent = sup = None
        if backend == "sipp":
            ph: SippProcess = request.getfixturevalue("phone")
            hub = stack.enter_context(RtpHub())
            cust, agent, sup = hub.peer(), hub.peer(), hub.peer()
            target, agent_uri = ph.uri(f"cust-{cust.port}"), ph.uri(f"ag-{agent.port}")
            sup_uri = ph.uri(f"sup-{sup.port}")
            pool: NodePool | MemoryPool = NodePool(
                PoolConfig(nodes=1, node_log_dir=str(tmp_path)), on_event=on_event)
        else:
            target, agent_uri = "sip:answer_0.2_0@memory.invalid", "sip:a1@memory.invalid"
            sup_uri = "sip:sup@memory.invalid"
            pool = MemoryPool(on_event=on_event, capacity=memory_capacity)
        rows = {"a1": await store.upsert_agent("a1", agent_uri, "A1")}
        await pool.start()
        bus = Bus()
        rt = CampaignRuntime(
            campaign=camp, store=store, callability=SchedulingCallability(sessions), pool=pool,
            dialer_id=f"controls-{backend}", agents=rows, target_for=lambda _p: target,
            bus=bus, recordings_dir=tmp_path / "rec", clock=SYSTEM_CLOCK, max_lines=1)
        handlers.append(rt.on_sip_event)
        task = asyncio.create_task(rt.run())
        live = Live(rt, bus, url, cust, agent, sup, sup_uri)
        try:
            rt.agent_login("a1")
            rt.agent_ready("a1")
            await live.until("the screen pop", lambda: bool(bus.of("a1", "screen_pop")))
            attempt_id = int(str(bus.of("a1", "screen_pop")[0]["attempt_id"]))

            async def bridged() -> bool:
                return (await live.attempt()).stage is AttemptStage.BRIDGED
            await live.until("the bridge", bridged)
            yield live, attempt_id
        finally:
            rt.stop_dialing()
            rt.stop()
            await asyncio.wait_for(task, 30)
            await rt.flush()
            await pool.close(drain_deadline_s=0)
            await engine.dispose()


async def voiced_in(peer: RtpPeer | None, seconds: float) -> int | None:
    if peer is None:
        return None
    await asyncio.sleep(0.3)
    n0 = peer.rx_voiced
    await asyncio.sleep(seconds)
    return peer.rx_voiced - n0


async def test_hold_resume_dtmf_through_the_agent_protocol(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request) as (live, attempt_id):
        rt, cmds = live.rt, live.commands
        if live.cust is not None:
            live.cust.talk(True)
            assert (await voiced_in(live.agent, 0.8) or 0) >= 30
        # hold: acked once the customer's phone took the hold
        assert await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id)) is None
        assert is_on_hold(rt, attempt_id)
        if live.agent is not None:
            assert await voiced_in(live.agent, 0.8) == 0  # the customer is not heard
        again = await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id))
        assert again is not None and again.code is ErrorCode.INVALID_STATE
        await asyncio.sleep(0.5)
        assert await cmds.handle(rt, "a1", ResumeCmd(login="a1", attempt_id=attempt_id)) is None
        assert not is_on_hold(rt, attempt_id)
        if live.agent is not None:
            assert (await voiced_in(live.agent, 0.8) or 0) >= 30
        # another agent's attempt id, and a resume of a call not held, are refused
        not_held = await cmds.handle(rt, "a1", ResumeCmd(login="a1", attempt_id=attempt_id))
        assert not_held is not None and not_held.code is ErrorCode.INVALID_STATE
        unknown = await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id + 99))
        assert unknown is not None and unknown.code is ErrorCode.UNKNOWN_ATTEMPT
        # keypad
        assert await cmds.handle(rt, "a1", DtmfCmd(login="a1", attempt_id=attempt_id,
                                                   digits="5#")) is None
        if live.cust is not None:
            await live.until("the digits", lambda: "".join(live.cust.digits) == "5#", 5)
        # on hold when the call ends: the hold time counts until the end
        assert await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id)) is None
        await asyncio.sleep(0.3)
        assert await cmds.handle(rt, "a1", HangupCmd(login="a1", attempt_id=attempt_id)) is None
        await live.until("call_ended", lambda: bool(live.bus.of("a1", "call_ended")))
        rt.agent_disposition("a1", attempt_id, "contract", "", None, CallbackScope.CAMPAIGN)
        await rt.flush()

        async def hold_written() -> bool:
            row = await live.attempt()
            return row.holds == 2 and row.hold_s is not None
        await live.until("hold time on the attempt", hold_written)
        row = await live.attempt()
        assert row.result is AttemptResult.CONNECTED
        assert row.holds == 2 and 0.7 <= (row.hold_s or 0) < 30, row.hold_s


async def test_listen_in_facade(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request) as (live, attempt_id):
        listen_in = ListenIn({"controls": live.rt})
        with pytest.raises(ListenError) as e:
            await listen_in.listen(attempt_id + 99, live.sup_uri)
        assert e.value.reason == "no_such_call"
        with pytest.raises(ListenError) as e:
            await listen_in.listen(attempt_id, live.sup_uri, "shout")
        assert e.value.reason == "invalid"
        s = await listen_in.listen(attempt_id, live.sup_uri, "monitor")
        assert s.attempt_id == attempt_id and s.agent == "a1" and s.mode == "monitor"
        assert [x.session_id for x in listen_in.sessions()] == [s.session_id]
        if live.sup is not None:
            live.cust.talk(True)  # type: ignore[union-attr]
            assert (await voiced_in(live.sup, 0.8) or 0) >= 30  # hears the customer
            live.cust.talk(False)  # type: ignore[union-attr]
            live.sup.talk(True)
            assert await voiced_in(live.cust, 0.8) == 0  # monitor: nobody hears it
        s2 = await listen_in.change_mode(s.session_id, "barge")
        assert s2.mode == "barge"
        if live.sup is not None:
            assert (await voiced_in(live.cust, 0.8) or 0) >= 30  # barge: the customer hears
            live.sup.talk(False)
        await listen_in.stop_listen(s.session_id)
        assert listen_in.sessions() == []
        with pytest.raises(ListenError):
            await listen_in.stop_listen(s.session_id)
        # the call goes on after the supervisor left; a new session, ended by the call's end
        s3 = await listen_in.listen(attempt_id, live.sup_uri, "whisper")
        assert s3.session_id != s.session_id
        assert await live.commands.handle(
            live.rt, "a1", HangupCmd(login="a1", attempt_id=attempt_id)) is None
        await live.until("the session's end", lambda: listen_in.sessions() == [])
        await live.until("the supervisor stream's listen events", lambda: len(
            [e for e in live.bus.supervised if isinstance(e, SupervisorListenEvent)]) == 5)
        listens = [(e.session_id, e.mode, e.active, e.reason) for e in live.bus.supervised
                   if isinstance(e, SupervisorListenEvent)]
        assert listens[:3] == [(s.session_id, "monitor", True, None),
                               (s.session_id, "barge", True, None),
                               (s.session_id, "barge", False, "stopped")]
        assert listens[3] == (s3.session_id, "whisper", True, None)
        assert listens[4][:3] == (s3.session_id, "whisper", False)


async def test_listen_in_refused_when_the_calls_node_is_full(
    tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    """A node with room for the call and its agent only: `node_full`, and the call goes on."""
    async with live_call("memory", tmp_path, sqlite_template, request,
                         memory_capacity=2) as (live, attempt_id):
        listen_in = ListenIn({"controls": live.rt})
        with pytest.raises(ListenError) as e:
            await listen_in.listen(attempt_id, live.sup_uri)
        assert e.value.reason == "node_full"
        assert listen_in.sessions() == []
        assert await live.commands.handle(
            live.rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id)) is None
