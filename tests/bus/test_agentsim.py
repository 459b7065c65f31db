"""Simulated agents against a real (embedded) broker and a small dialer built on AgentBus."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from common.clock import ManualClock
from common.vocabulary import DEFAULT_DISPOSITIONS, AgentState, LeadStatus
from dialer.agentsim import DEFAULT_MIX, AgentProfile, SimulatedAgent, simulated_agents
from dialer.bus import (
    AgentBus,
    AgentClient,
    AgentCommand,
    CallEndedEvt,
    DispositionCmd,
    DispositionOption,
    EmbeddedBroker,
    ErrorCode,
    LeadCard,
    LoginCmd,
    LogoutCmd,
    PauseCmd,
    ProtocolError,
    ReadyCmd,
    ScreenPopEvt,
    StateEvt,
)
from dialer.bus.service import open_agent_bus
from dialer.config import AgentConfig, MqttSection

from .conftest import BrokerUnderTest

WAIT = 30.0
FAST = AgentProfile(wrapup_s=(0.0, 0.01), break_probability=0.3, break_s=(0.0, 0.01),
                    settle_s=(0.0, 0.0), auto_resume_s=(0.0, 0.01), preview_think_s=(0.0, 0.0))
CATALOG = [DispositionOption.from_spec(s) for s in DEFAULT_DISPOSITIONS]
NEEDS_CALLBACK = {d.code for d in CATALOG if d.needs_callback}


class MiniDialer:
    """Just enough of a dialer to drive agents: ready agents get calls, one at a time.

    Every `pause_every`-th call is replaced by the dialer pausing the agent (as the runtime
    does when an agent's phone does not answer); the agent must come back by itself.
    """

    def __init__(self, bus: AgentBus, calls: int, pause_every: int = 4) -> None:
        self.bus = bus
        self.calls_left = calls
        self.pause_every = pause_every
        self.state: dict[str, AgentState] = {}
        self.owner: dict[int, str] = {}
        self.dispositions: list[DispositionCmd] = []
        self.commands: list[tuple[str, str]] = []
        self.forced_pauses = 0
        self.pauses_after_call = 0
        self.pending: dict[str, str] = {}  # pause asked for during a call
        self.total = calls
        self.ready_agents: asyncio.Queue[str] = asyncio.Queue()
        self.done = asyncio.Event()
        self._ids = itertools.count(1)
        self._offers = itertools.count(1)

    async def _set(self, login: str, state: AgentState, reason: str | None = None) -> None:
        self.state[login] = state
        await self.bus.send(login, StateEvt(state=state, reason=reason))

    async def handle(self, login: str, cmd: AgentCommand) -> ProtocolError | None:
        """The state rules of dialer/core/engine.py, as docs/agent-protocol.md states them."""
        self.commands.append((login, cmd.type))
        state = self.state.get(login, AgentState.LOGGED_OUT)
        busy = state in (AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP)
        match cmd:
            case LoginCmd():
                if state is AgentState.LOGGED_OUT:
                    await self._set(login, AgentState.PAUSED, "login")
            case ReadyCmd():
                if state is AgentState.PAUSED:
                    await self._ready(login)
                elif busy:
                    self.pending.pop(login, None)
            case PauseCmd(reason=reason):
                if busy:
                    self.pending[login] = reason
                elif state is AgentState.READY:
                    await self._set(login, AgentState.PAUSED, reason)
            case DispositionCmd(attempt_id=attempt_id):
                if self.owner.get(attempt_id) != login:
                    return ProtocolError(ErrorCode.NOT_YOUR_ATTEMPT, "not your call")
                if state is not AgentState.WRAP_UP:
                    return ProtocolError(ErrorCode.INVALID_STATE, f"agent is {state}")
                self.dispositions.append(cmd)
                if login in self.pending:
                    self.pauses_after_call += 1
                    await self._set(login, AgentState.PAUSED, self.pending.pop(login))
                else:
                    await self._ready(login)
                if len(self.dispositions) >= self.total:
                    self.done.set()
            case LogoutCmd():
                await self._set(login, AgentState.LOGGED_OUT)
        return None

    async def _ready(self, login: str) -> None:
        await self._set(login, AgentState.READY)
        self.ready_agents.put_nowait(login)

    async def drive(self) -> None:
        while self.calls_left > 0:
            login = await self.ready_agents.get()
            if self.state.get(login) is not AgentState.READY:
                continue
            if next(self._offers) % self.pause_every == 0:
                self.forced_pauses += 1
                await self._set(login, AgentState.PAUSED, "agent phone did not answer")
                continue
            self.calls_left -= 1
            attempt_id = next(self._ids)
            self.owner[attempt_id] = login
            lead = LeadCard(id=attempt_id + 100, name="Test Lead", phone="+14155550123",
                            company="Test Co", status=LeadStatus.POTENTIAL)
            await self.bus.send(login, ScreenPopEvt(attempt_id=attempt_id, lead=lead,
                                                    dispositions=CATALOG, script="Hi"))
            await self._set(login, AgentState.TALKING)
            await self.bus.send(login, CallEndedEvt(attempt_id=attempt_id, talk_s=1.0))
            await self._set(login, AgentState.WRAP_UP)


async def test_simulated_agents_take_calls_and_dispose_them(broker: BrokerUnderTest) -> None:
    logins = broker.agents
    bus = AgentBus(broker.dialer_url)
    dialer = MiniDialer(bus, calls=24)
    bus.set_handler(dialer.handle)
    async with bus, simulated_agents(logins, broker.url, seed=5, profile=FAST) as agents:
        driver = asyncio.create_task(dialer.drive())
        try:
            async with asyncio.timeout(WAIT):
                await dialer.done.wait()
        finally:
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
    # leaving simulated_agents() logged every agent out (checked below)

    assert len(dialer.dispositions) == 24
    assert sum(a.stats.calls for a in agents) == 24
    assert sum(a.stats.refused for a in agents) == 0
    # every agent logged in first, logged out last, and came back after forced pauses
    for login in logins:
        types = [t for lg, t in dialer.commands if lg == login]
        assert types[0] == "login" and types[-1] == "logout"
    assert dialer.forced_pauses > 0
    assert sum(a.stats.breaks for a in agents) == dialer.pauses_after_call > 0
    for d in dialer.dispositions:
        assert d.code in {o.code for o in CATALOG}
        assert (d.next_contact_at is not None) == (d.code in NEEDS_CALLBACK)
        assert d.notes


def test_disposition_mix_follows_the_profile() -> None:
    agent = SimulatedAgent("ann", "pw", "mqtt://127.0.0.1:1", random.Random(7),
                           clock=ManualClock(datetime(2026, 11, 23, 10, 7, tzinfo=UTC)))
    codes = [o.code for o in CATALOG]
    draws = [agent.choose_disposition(1, codes, NEEDS_CALLBACK) for _ in range(4000)]
    counts = Counter(d.code for d in draws)
    total_weight = sum(DEFAULT_MIX[c] for c in codes if c in DEFAULT_MIX)
    for code in codes:
        expected = DEFAULT_MIX.get(code, 0.0) / total_weight
        assert abs(counts[code] / len(draws) - expected) < 0.03, code
    assert counts["do_not_call"] > 0 and counts["do_not_call"] < counts["contract"]
    for d in draws:
        if d.code in NEEDS_CALLBACK:
            assert d.next_contact_at is not None
            ahead = d.next_contact_at - datetime(2026, 11, 23, 10, 7, tzinfo=UTC)
            assert timedelta(days=1) <= ahead <= timedelta(days=7, minutes=15)
            assert d.next_contact_at.minute % 15 == 0 and d.next_contact_at.utcoffset() is not None


def test_dispositions_stay_within_the_campaign_catalog() -> None:
    agent = SimulatedAgent("ann", "pw", "mqtt://127.0.0.1:1", random.Random(1))
    draws = {agent.choose_disposition(1, ["no_need", "custom_code"], set()).code
             for _ in range(200)}
    assert draws == {"no_need"}  # unknown codes get no weight while a known one is offered
    only_custom = {agent.choose_disposition(1, ["custom_code"], set()).code for _ in range(5)}
    assert only_custom == {"custom_code"}


def test_same_seed_same_decisions() -> None:
    def decisions(seed: int) -> list[str]:
        a = SimulatedAgent("ann", "pw", "mqtt://127.0.0.1:1", random.Random(seed))
        return [a.choose_disposition(1, list(DEFAULT_MIX), NEEDS_CALLBACK).code
                for _ in range(50)]
    assert decisions(3) == decisions(3)
    assert decisions(3) != decisions(4)


@pytest.mark.parametrize("bad", [
    {"wrapup_s": (5.0, 1.0)},
    {"break_probability": 1.5},
    {"disposition_mix": {"no_need": -1.0}},
    {"disposition_mix": {}},
])
def test_bad_profile_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="AgentProfile"):
        AgentProfile(**bad)  # type: ignore[arg-type]


async def test_open_agent_bus_runs_the_embedded_broker_from_config() -> None:
    mqtt = MqttSection(url="", embedded_port=0)
    agents = [AgentConfig(login="ann", sip_uri="sip:ann@127.0.0.1:5070", password="pw")]
    seen: list[str] = []

    async def handler(login: str, cmd: AgentCommand) -> ProtocolError | None:
        seen.append(f"{login}:{cmd.type}")
        return None

    async with open_agent_bus(mqtt, agents, handler=handler) as ab:
        assert ab.embedded is not None and ab.agent_url == ab.embedded.url
        async with AgentClient("ann", "pw", ab.agent_url) as ann:
            await ann.request(LoginCmd(login="ann"))
    assert seen == ["ann:login"]
    no_password = [AgentConfig(login="ben", sip_uri="sip:ben@127.0.0.1:5070")]
    with pytest.raises(ValueError, match="ben"):
        async with open_agent_bus(mqtt, no_password):
            pass


async def test_command_line_runner_logs_in_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.agentsim import main

    seen: list[str] = []

    async def handler(login: str, cmd: AgentCommand) -> ProtocolError | None:
        seen.append(f"{login}:{cmd.type}")
        return None

    async with EmbeddedBroker({"ann": "pw"}) as broker:
        bus = AgentBus(broker.dialer_url)
        bus.set_handler(handler)
        async with bus:
            rc = await asyncio.to_thread(main, [broker.url, "ann:pw", "--minutes", "0.005"])
    assert rc == 0
    assert seen == ["ann:login", "ann:ready", "ann:logout"]
    assert "ann: calls=0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["mqtt://127.0.0.1:1", "ann-without-password"])


async def test_simulated_agent_comes_back_after_the_broker_restarts() -> None:
    """The broker goes away under a working agent; the agent reconnects, logs in again and
    is ready for calls, as a desktop would after a network blip."""
    logins = {"ann": "pw-ann"}
    first = EmbeddedBroker(logins, dialer_password="d")
    await first.start()
    port = first.port
    bus = AgentBus(first.dialer_url, reconnect_min_s=0.05, reconnect_max_s=0.2)
    dialer = MiniDialer(bus, calls=0)
    bus.set_handler(dialer.handle)
    second = EmbeddedBroker(logins, port=port, dialer_password="d")
    try:
        async with bus, simulated_agents(logins, first.url, profile=FAST) as (ann,):
            await wait_for(lambda: ("ann", "ready") in dialer.commands)
            await first.stop()
            await second.start()
            await wait_for(lambda: dialer.commands.count(("ann", "login")) == 2
                           and dialer.commands[-1] == ("ann", "ready"))
    finally:
        await second.stop()
    assert ann.stats.reconnects >= 1
    assert dialer.commands[-1] == ("ann", "logout")


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        for _ in itertools.count():
            if condition():
                return
            await asyncio.sleep(0.01)
