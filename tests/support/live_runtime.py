"""One lead dialed and bridged through a live CampaignRuntime, for the call-control tests.

Shared by tests/e2e (hold, keypad, listen-in, transfers, manual dial): a fresh SQLite file
from the template, a progressive campaign with one lead, agents with phones, and the runtime
running. Two SIP backends: ``memory`` (sip.memory.MemoryPool) and ``sipp`` - a real pjsua2
node with SIPp phones (sip/scenarios/phone.xml, the ``phone`` fixture of tests/e2e/conftest.py)
for the customer and every other role, whose RTP the tests count per direction
(sip.rtp_peer). Agents' commands go through the agent-protocol handler
(dialer.agent_commands), as the MQTT bus and the WebSocket call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptStage, DialMode
from db.handlers import Handler
from db.models import Agent, Attempt, Lead
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.agent_commands import AgentCommands
from dialer.bus.messages import SUPERVISOR_EVENTS
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


@dataclass
class Bus:
    """The runtime's agent bus, recording what it sends."""

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
    store: SqlStore
    attempt_id: int
    #: RTP peers by role (sipp only): "cust", each agent's login, the extra roles
    peers: dict[str, RtpPeer]
    #: SIP URIs by role (every role but the customer)
    uris: dict[str, str]
    commands: AgentCommands = field(default_factory=AgentCommands)

    async def attempt(self, attempt_id: int | None = None) -> Attempt:
        """The call's attempt row (or another one's), read fresh from the database."""
        engine = create_engine(self.url)
        try:
            wanted = attempt_id or self.attempt_id
            query = select(Attempt).where(Attempt.id == wanted) if wanted else select(Attempt)
            async with session_factory(engine)() as s:
                return (await s.scalars(query)).one()
        finally:
            await engine.dispose()

    async def lead(self) -> Lead:
        """The call's lead row (the campaign has one), read fresh from the database."""
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as s:
                return (await s.scalars(select(Lead))).one()
        finally:
            await engine.dispose()

    async def handlers(self) -> list[tuple[str, str, Handler]]:
        """Who held the call when: (login, how, row) per handler row ("(outside)": an
        outside number the call was transferred to)."""
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as s:
                logins = {a.id: a.login for a in await s.scalars(select(Agent))}
        finally:
            await engine.dispose()
        return [(logins[h.agent_id] if h.agent_id is not None else "(outside)", h.how, h)
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

    def peer(self, role: str) -> RtpPeer | None:
        return self.peers.get(role)

    async def voiced(self, role: str, seconds: float = 0.8) -> int | None:
        """Voiced RTP packets the role's phone received over ``seconds`` (None: memory)."""
        return await voiced_in(self.peers.get(role), seconds)

    def talk(self, role: str, on: bool) -> None:
        if role in self.peers:
            self.peers[role].talk(on)


async def voiced_in(peer: RtpPeer | None, seconds: float) -> int | None:
    """Voiced RTP packets ``peer`` received over ``seconds`` (None without a peer)."""
    if peer is None:
        return None
    await asyncio.sleep(0.3)
    n0 = peer.rx_voiced
    await asyncio.sleep(seconds)
    return peer.rx_voiced - n0


@contextlib.asynccontextmanager
async def live_call(backend: str, tmp_path: Path, sqlite_template: Path,
                    request: pytest.FixtureRequest, *, name: str,
                    agents: Sequence[str] = ("a1",), roles: Sequence[str] = (),
                    memory_capacity: int = 64,
                    campaign: dict[str, Any] | None = None,
                    after_bridge: Callable[[CampaignRuntime], None] | None = None,
                    ) -> AsyncIterator[Live]:
    """One lead dialed by a progressive campaign ``name`` and bridged to ``agents[0]``; the
    other agents have rows and phones but are not logged in; ``roles`` are more phones (a
    supervisor's, an outside number's) with a URI each. ``after_bridge`` runs once bridged."""
    db = tmp_path / f"{name}.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite+aiosqlite:///{db}"
    engine = create_engine(url)
    sessions = session_factory(engine)
    store = SqlStore(sessions)
    now = SYSTEM_CLOCK.now()
    cfg = CampaignConfig.model_validate({
        "name": name, "caller_id": "+14155550100", "ring_timeout_s": 5.0,
        "min_ring_s": 5.0, "dial_mode": DialMode.PROGRESSIVE, **(campaign or {})})
    camp = await store.upsert_campaign(cfg)
    await add_leads(url, camp.name, make_numbers(now, {"000": 1}), now)
    handlers: list[Callable[[SipEvent], None]] = []

    def on_event(ev: SipEvent) -> None:
        for h in handlers:
            h(ev)

    first = agents[0]
    with contextlib.ExitStack() as stack:
        peers: dict[str, RtpPeer] = {}
        others = (*agents, *roles)
        if backend == "sipp":
            ph: SippProcess = request.getfixturevalue("phone")
            hub = stack.enter_context(RtpHub())
            peers = {role: hub.peer() for role in ("cust", *others)}
            target = ph.uri(f"cust-{peers['cust'].port}")
            uris = {r: ph.uri(f"{'ag' if r in agents else r}-{peers[r].port}") for r in others}
            pool: NodePool | MemoryPool = NodePool(
                PoolConfig(nodes=1, node_log_dir=str(tmp_path)), on_event=on_event)
        else:
            target = "sip:answer_0.2_0@memory.invalid"
            uris = {r: f"sip:{r}@memory.invalid" for r in others}
            pool = MemoryPool(on_event=on_event, capacity=memory_capacity)
        rows = {a: await store.upsert_agent(a, uris[a], a.upper()) for a in agents}
        await pool.start()
        bus = Bus()
        rt = CampaignRuntime(
            campaign=camp, store=store, callability=SchedulingCallability(sessions), pool=pool,
            dialer_id=f"{name}-{backend}", agents=rows, target_for=lambda _p: target,
            bus=bus, recordings_dir=tmp_path / "rec", clock=SYSTEM_CLOCK, max_lines=1)
        handlers.append(rt.on_sip_event)
        task = asyncio.create_task(rt.run())
        live = Live(rt, bus, url, store, 0, peers, uris)
        try:
            rt.agent_login(first)
            rt.agent_ready(first)
            await live.until("the screen pop", lambda: bool(bus.of(first, "screen_pop")))
            live.attempt_id = int(str(bus.of(first, "screen_pop")[0]["attempt_id"]))

            async def bridged() -> bool:
                return (await live.attempt()).stage is AttemptStage.BRIDGED
            await live.until("the bridge", bridged)
            if after_bridge is not None:
                after_bridge(rt)
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
