"""The runtime contract suite's harness: one CampaignRuntime over either SIP pool backend.

`backend` is parametrized like `db_url` in tests/conftest.py (one suite, every backend):

* ``memory``: `sip.memory.MemoryPool`, every run, a few seconds for the whole suite;
* ``sipp``: the real `sip.pool.NodePool` (one pjsua2 node process) with SIPp as the callee
  network and the agents' phones, as the e2e tests set them up (marked ``sipp``).

Both get the same dial plan: each lead's number maps to a callee user part (docs/sip.md
"Callee dial plan"), which SIPp's callee scenario and MemoryPool read the same way. The store
is SQLite (PostgreSQL is covered by tests/db); agent messages go to a recorder, and agent
commands are the runtime's own methods (what the MQTT handler calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.clock import SYSTEM_CLOCK
from db.models import Attempt, DncEntry, Lead
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.config import CampaignConfig
from dialer.hopper import SchedulingCallability
from dialer.metrics import DialerMetrics
from dialer.ports import AgentMessageKind, Body, SipEvent, SipPool
from dialer.runtime import CampaignRuntime
from sip.assets import ensure_default_message
from sip.config import PoolConfig
from sip.memory import MemoryPool
from sip.pool import NodePool
from sip.sipp import SippProcess
from support.leads import add_leads, make_numbers

MEMORY_HOST = "memory.invalid"


@pytest.fixture(params=["memory", pytest.param("sipp", marks=[pytest.mark.sipp])])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sipp_network() -> Iterator[tuple[SippProcess, SippProcess]]:
    """SIPp callee network and agent phones, shared by every sipp test of the session."""
    with SippProcess.callee(max_lifetime_s=900) as callee, \
            SippProcess.agent(max_lifetime_s=900) as phones:
        yield callee, phones


@pytest.fixture(scope="session")
def message_wav(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(ensure_default_message(tmp_path_factory.mktemp("assets") / "message.wav"))


@dataclass
class RecordingBus:
    """The runtime's AgentBus port, recording what it was asked to send."""

    messages: list[tuple[str, AgentMessageKind, Body]] = field(default_factory=list)
    supervised: list[Body] = field(default_factory=list)

    async def send_agent(self, login: str, kind: AgentMessageKind, body: Body) -> None:
        self.messages.append((login, kind, body))

    async def supervisor(self, event: Body) -> None:
        self.supervised.append(event)

    def of(self, login: str, kind: AgentMessageKind) -> list[Body]:
        return [b for who, k, b in self.messages if who == login and k == kind]


@dataclass
class Harness:
    """A running campaign: its runtime, pool, store and the records it wrote."""

    backend: str
    url: str
    runtime: CampaignRuntime
    pool: SipPool
    bus: RecordingBus
    metrics: DialerMetrics
    numbers: dict[str, str]  # phone -> callee user part

    async def attempts(self) -> list[Attempt]:
        async with self._session() as s:
            return list((await s.scalars(select(Attempt).order_by(Attempt.id))).all())

    async def leads(self) -> dict[str, Lead]:
        async with self._session() as s:
            return {r.phone_e164: r for r in (await s.scalars(select(Lead))).all()}

    async def dnc(self) -> set[str]:
        async with self._session() as s:
            return set((await s.scalars(select(DncEntry.phone_e164))).all())

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        # a fresh engine: the test reads what the runtime committed, like another process
        engine = create_engine(self.url)
        try:
            async with session_factory(engine)() as s:
                yield s
        finally:
            await engine.dispose()

    def ready(self, *logins: str) -> None:
        for login in logins:
            self.runtime.agent_login(login)
            self.runtime.agent_ready(login)

    async def until(self, what: str, cond: Callable[[], Awaitable[bool]],
                    seconds: float = 60.0) -> None:
        """Poll `cond` until true (records are written asynchronously)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not await cond():
            if loop.time() > deadline:
                seen = [(a.phone_e164, a.stage, a.result) for a in await self.attempts()]
                raise AssertionError(f"{self.backend}: timed out waiting for {what}: {seen}")
            await asyncio.sleep(0.1)

    async def message(self, login: str, kind: AgentMessageKind, seconds: float = 60.0) -> Body:
        """The first `kind` message sent to `login` (waits for it)."""
        await self.until(f"{kind} to {login}", self._has(login, kind), seconds)
        return self.bus.of(login, kind)[0]

    def _has(self, login: str, kind: AgentMessageKind) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            await self.runtime.flush_agent_messages()
            return bool(self.bus.of(login, kind))
        return check


CampaignFactory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def campaign(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path,
    message_wav: str,
) -> CampaignFactory:
    """`async with campaign(users, agents=[...], **campaign_config) as h:` runs a campaign
    whose leads' numbers dial the given callee user parts, one lead each."""

    @contextlib.asynccontextmanager
    async def start(users: list[str], *, agents: tuple[str, ...] = ("a1",),
                    **config: object) -> AsyncIterator[Harness]:
        db = tmp_path / "runtime.db"
        shutil.copy(sqlite_template, db)
        url = f"sqlite+aiosqlite:///{db}"
        engine = create_engine(url)
        sessions = session_factory(engine)
        store = SqlStore(sessions)
        now = SYSTEM_CLOCK.now()
        cfg = CampaignConfig.model_validate({"name": "contract", "caller_id": "+14155550100",
                                             "ring_timeout_s": 5.0, "min_ring_s": 5.0, **config})
        camp = await store.upsert_campaign(cfg)
        numbers = make_numbers(now, {"000": len(users)})
        await add_leads(url, camp.name, numbers, now)
        plan = {phone: user for (phone, _zone), user in zip(numbers, users, strict=True)}
        if backend == "sipp":
            callee, phones = request.getfixturevalue("sipp_network")
            agent_uri, target = phones.uri, callee.uri
        else:
            def agent_uri(login: str) -> str:
                return f"sip:{login}@{MEMORY_HOST}"

            def target(user: str) -> str:
                return f"sip:{user}@{MEMORY_HOST}"
        rows = {a: await store.upsert_agent(a, agent_uri(a), a.upper()) for a in agents}
        handler: list[Callable[[SipEvent], None]] = []

        def on_event(ev: SipEvent) -> None:
            for h in handler:
                h(ev)

        pool: MemoryPool | NodePool
        if backend == "sipp":
            pool = NodePool(PoolConfig(nodes=1, message_wav=message_wav,
                                       node_log_dir=str(tmp_path)), on_event=on_event)
        else:
            pool = MemoryPool(on_event=on_event, message_wav=message_wav)
        await pool.start()
        bus = RecordingBus()
        metrics = DialerMetrics()
        rt = CampaignRuntime(
            campaign=camp, store=store, callability=SchedulingCallability(sessions), pool=pool,
            dialer_id=f"contract-{backend}", agents=rows,
            target_for=lambda phone: target(plan[phone]), bus=bus, metrics=metrics,
            message_wav=message_wav, recordings_dir=tmp_path / "rec", clock=SYSTEM_CLOCK,
            max_lines=pool.capacity // 2)
        handler.append(rt.on_sip_event)
        task = asyncio.create_task(rt.run(), name="contract-runtime")
        try:
            yield Harness(backend, url, rt, pool, bus, metrics, plan)
        finally:
            rt.stop_dialing()
            rt.stop()
            await asyncio.wait_for(task, 30)
            await rt.flush()
            await pool.close(drain_deadline_s=0)
            await engine.dispose()

    return start
