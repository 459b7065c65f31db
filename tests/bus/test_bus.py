"""The agent protocol end to end through real brokers (Mosquitto and the embedded one)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from common.vocabulary import (
    DEFAULT_DISPOSITIONS,
    AgentState,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    LeadStatus,
)
from dialer.bus import (
    AckEvt,
    AgentBus,
    AgentClient,
    AgentCommand,
    BusError,
    CallbackReminderEvt,
    CallEndedEvt,
    DispositionCmd,
    DispositionOption,
    EmbeddedBroker,
    ErrorCode,
    ErrorEvt,
    HistoryEntry,
    LeadCard,
    LoginCmd,
    LogoutCmd,
    PauseCmd,
    PreviewAcceptCmd,
    PreviewEvt,
    PreviewSkipCmd,
    ProtocolError,
    ReadyCmd,
    ScreenPopEvt,
    StateEvt,
    SupervisorAgentEvent,
    SupervisorCallEvent,
)
from dialer.bus.messages import MAX_PAYLOAD_BYTES, parse_supervisor_event

from .conftest import (
    AGENTS,
    DIALER,
    SUPERVISORS,
    BrokerUnderTest,
    MosquittoServer,
    _mosquitto_or_skip,
)

WAIT = 10.0  # upper bound for anything to arrive; tests never assert how fast it did


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition the bus exposes no event for; fails after WAIT seconds."""
    async with asyncio.timeout(WAIT):
        for _ in itertools.count():
            if condition():
                return
            await asyncio.sleep(0.01)


class Recorder:
    """A stand-in for the runtime's handler: records calls, answers as told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, AgentCommand]] = []
        self.refuse: dict[str, ProtocolError] = {}
        self.crash_on: set[str] = set()

    async def __call__(self, login: str, cmd: AgentCommand) -> ProtocolError | None:
        self.calls.append((login, cmd))
        if cmd.type in self.crash_on:
            raise RuntimeError("simulated runtime fault")
        return self.refuse.get(cmd.type)


@asynccontextmanager
async def running_bus(broker: BrokerUnderTest, handler: Recorder) -> AsyncIterator[AgentBus]:
    bus = AgentBus(broker.dialer_url, prefix="dialer", reconnect_max_s=0.5)
    bus.set_handler(handler)
    async with bus:
        yield bus


def agent(broker: BrokerUnderTest, login: str) -> AgentClient:
    return AgentClient(login, broker.agents[login], broker.url, reply_timeout_s=WAIT)


def lead_card() -> LeadCard:
    return LeadCard(
        id=17, name="Ilze Ozola", phone="+37167000001", company="Ozola SIA",
        custom_fields={"segment": "B2B", "employees": 12, "vip": True, "score": 0.7,
                       "note": None},
        status=LeadStatus.HOT,
    )


def history() -> list[HistoryEntry]:
    return [HistoryEntry(attempt_id=3, at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
                         result=AttemptResult.CONNECTED, disposition="interested",
                         notes="wants prices for 20 seats", agent="bob"),
            HistoryEntry(attempt_id=1, at=datetime(2026, 11, 18, 14, 0, tzinfo=UTC),
                         result=AttemptResult.NO_ANSWER)]


async def test_every_agent_command_reaches_the_handler_and_is_acked(
    broker: BrokerUnderTest,
) -> None:
    handler = Recorder()
    riga = ZoneInfo("Europe/Riga")
    commands: list[AgentCommand] = [
        LoginCmd(login="alice"),
        ReadyCmd(login="alice"),
        PauseCmd(login="alice", reason="lunch"),
        DispositionCmd(login="alice", attempt_id=42, code="meeting_set",
                       notes="Meeting at their office; bring the price list.",
                       next_contact_at=datetime(2026, 12, 1, 15, 0, tzinfo=riga),
                       callback_scope=CallbackScope.CAMPAIGN),
        PreviewAcceptCmd(login="alice", lead_id=7),
        PreviewSkipCmd(login="alice", lead_id=8),
        LogoutCmd(login="alice"),
    ]
    async with running_bus(broker, handler), agent(broker, "alice") as alice:
        for cmd in commands:
            ack = await alice.request(cmd)
            assert isinstance(ack, AckEvt) and ack.ref_id == cmd.id
    assert handler.calls == [("alice", c) for c in commands]
    got = handler.calls[3][1]
    assert isinstance(got, DispositionCmd)
    assert got.next_contact_at is not None and got.next_contact_at.utcoffset() == timedelta(hours=2)


async def test_every_dialer_message_reaches_the_agent_intact(broker: BrokerUnderTest) -> None:
    catalog = [DispositionOption.from_spec(s) for s in DEFAULT_DISPOSITIONS]
    events = [
        StateEvt(state=AgentState.READY),
        StateEvt(state=AgentState.PAUSED, reason="agent phone did not answer"),
        ScreenPopEvt(attempt_id=42, lead=lead_card(), history=history(),
                     script="Labdien! Runā Alise no ...", dispositions=catalog),
        CallEndedEvt(attempt_id=42, talk_s=187.25),
        PreviewEvt(lead=lead_card(), history=history(), script="Hello"),
        CallbackReminderEvt(lead_id=17, due_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC)),
        ErrorEvt(ref_id=None, code=ErrorCode.INVALID_STATE, message="not now"),
        AckEvt(ref_id="abc-1"),
    ]
    async with running_bus(broker, Recorder()) as bus, agent(broker, "alice") as alice:
        for evt in events:
            await bus.send("alice", evt)
        received = [await alice.next_event(WAIT) for _ in events]
    assert received == events
    pop = received[2]
    assert isinstance(pop, ScreenPopEvt)
    assert pop.lead.phone == "+37167000001" and pop.history[0].notes.startswith("wants")


async def test_supervisor_stream_carries_calls_and_agent_states(broker: BrokerUnderTest) -> None:
    user, password = next(iter(SUPERVISORS.items()))
    async with running_bus(broker, Recorder()) as bus, aiomqtt.Client(
        broker.host, broker.port, username=user, password=password
    ) as sup:
        await sup.subscribe("dialer/supervisor/events", qos=1)
        await bus.supervisor({"type": "call", "attempt_id": 5, "campaign": "spring",
                              "stage": "bridged", "agent": "alice", "lead_id": 17})
        await bus.supervisor(SupervisorAgentEvent(login="alice", state=AgentState.TALKING,
                                                  previous=AgentState.RESERVED, attempt_id=5))
        got = []
        async with asyncio.timeout(WAIT):
            async for m in sup.messages:
                assert isinstance(m.payload, bytes)
                got.append(parse_supervisor_event(m.payload))
                if len(got) == 2:
                    break
    assert isinstance(got[0], SupervisorCallEvent) and got[0].stage is AttemptStage.BRIDGED
    assert isinstance(got[1], SupervisorAgentEvent) and got[1].state is AgentState.TALKING
    # the stream has ids only: no phone numbers or names
    assert "phone" not in got[0].model_dump() and "name" not in got[0].model_dump()


async def test_supervisor_rejects_a_bad_event_naming_the_field(broker: BrokerUnderTest) -> None:
    async with running_bus(broker, Recorder()) as bus:
        with pytest.raises(ValueError, match="stage"):
            await bus.supervisor({"type": "call", "attempt_id": 5, "campaign": "c",
                                  "stage": "flying"})
        with pytest.raises(ValueError, match="phone"):
            await bus.supervisor({"type": "call", "attempt_id": 5, "campaign": "c",
                                  "stage": "dialing", "phone": "+14155550100"})


def _raw(**fields: object) -> bytes:
    base: dict[str, object] = {"v": 1, "id": "m1", "ts": "2026-11-23T12:00:00+02:00",
                               "login": "alice"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


BAD_MESSAGES: list[tuple[str, bytes, ErrorCode, str | None]] = [
    ("not json", b"{type: ready", ErrorCode.MALFORMED_JSON, None),
    ("not utf-8", b"\xff\xfe{}", ErrorCode.MALFORMED_JSON, None),
    ("json array", b"[1, 2]", ErrorCode.MALFORMED_JSON, None),
    ("unknown type", _raw(type="coffee"), ErrorCode.UNKNOWN_TYPE, "m1"),
    ("dialer type from agent", _raw(type="ack", ref_id="x"), ErrorCode.UNKNOWN_TYPE, "m1"),
    ("wrong login", _raw(type="ready", login="bob"), ErrorCode.LOGIN_MISMATCH, "m1"),
    ("missing envelope", _raw(type="ready", ts=...), ErrorCode.INVALID_MESSAGE, "m1"),
    ("missing field", _raw(type="disposition", attempt_id=4), ErrorCode.INVALID_MESSAGE, "m1"),
    ("string for number", _raw(type="disposition", attempt_id="4", code="no_need"),
     ErrorCode.INVALID_MESSAGE, "m1"),
    ("naive next contact", _raw(type="disposition", attempt_id=4, code="callback",
                                next_contact_at="2026-12-01T10:00:00"),
     ErrorCode.INVALID_MESSAGE, "m1"),
    ("bad scope", _raw(type="disposition", attempt_id=4, code="callback",
                       callback_scope="team"), ErrorCode.INVALID_MESSAGE, "m1"),
    ("extra field", _raw(type="ready", mood="great"), ErrorCode.INVALID_MESSAGE, "m1"),
    ("future version", _raw(type="ready", v=2), ErrorCode.UNSUPPORTED_VERSION, "m1"),
    ("too large", _raw(type="pause", reason="x" * MAX_PAYLOAD_BYTES),
     ErrorCode.TOO_LARGE, None),
]


async def test_bad_messages_get_an_error_and_never_reach_the_handler(
    broker: BrokerUnderTest,
) -> None:
    handler = Recorder()
    async with running_bus(broker, handler) as bus, agent(broker, "alice") as alice:
        for name, payload, code, ref_id in BAD_MESSAGES:
            await alice.publish_raw("dialer/agents/alice/cmd", payload)
            reply = await alice.next_event(WAIT)
            assert isinstance(reply, ErrorEvt), name
            assert (reply.code, reply.ref_id) == (code, ref_id), name
            assert reply.message, name
        # the session still works, and only this command got through
        good = ReadyCmd(login="alice")
        await alice.request(good)
        assert handler.calls == [("alice", good)]
        assert bus.stats.rejected == len(BAD_MESSAGES)


async def test_handler_refusal_and_fault_become_error_replies(broker: BrokerUnderTest) -> None:
    handler = Recorder()
    handler.refuse["disposition"] = ProtocolError(
        ErrorCode.NOT_YOUR_ATTEMPT, "attempt 999 was not connected to you")
    handler.crash_on.add("pause")
    async with running_bus(broker, handler) as bus, agent(broker, "alice") as alice:
        cmd = DispositionCmd(login="alice", attempt_id=999, code="no_need")
        with pytest.raises(ProtocolError) as refused:
            await alice.request(cmd)
        assert refused.value.code is ErrorCode.NOT_YOUR_ATTEMPT
        assert refused.value.ref_id == cmd.id
        with pytest.raises(ProtocolError) as crashed:
            await alice.request(PauseCmd(login="alice", reason="break"))
        assert crashed.value.code is ErrorCode.INTERNAL
        await alice.request(ReadyCmd(login="alice"))  # a fault does not stop the bus
        assert (bus.stats.refused, bus.stats.handler_failures) == (2, 1)


async def test_an_agent_cannot_write_or_read_another_agents_topics(
    broker: BrokerUnderTest,
) -> None:
    handler = Recorder()
    async with running_bus(broker, handler) as bus, agent(broker, "alice") as alice, \
            agent(broker, "bob") as bob:
        # write: alice posing as bob, on bob's command topic, with either login
        for login in ("alice", "bob"):
            await alice.publish_raw("dialer/agents/bob/cmd", ReadyCmd(login=login).to_json())
        # bob's own command is queued behind anything that reached bob's topic before it
        await bob.request(PauseCmd(login="bob", reason="coffee"))
        assert [(lg, c.type) for lg, c in handler.calls] == [("bob", "pause")]

        # read: the embedded broker refuses the subscription; Mosquitto 2 (MQTT 3.1.1) grants
        # it but never delivers - either way nothing of bob's may reach alice
        granted_bob = await alice.subscribe("dialer/agents/bob/evt")
        granted_all = await alice.subscribe("dialer/#")
        if broker.kind == "embedded":
            assert not granted_bob and not granted_all
        await bus.send("bob", StateEvt(state=AgentState.PAUSED, reason="for bob only"))
        await bus.send("alice", StateEvt(state=AgentState.READY, reason="barrier"))
        first = await alice.next_event(WAIT)
        assert isinstance(first, StateEvt) and first.reason == "barrier"
        assert alice._events.empty()  # nothing of bob's, no ack/error for the spoofed posts
        got_bob = await bob.next_event(WAIT)
        assert isinstance(got_bob, StateEvt) and got_bob.reason == "for bob only"

        # alice cannot inject into the supervisor stream either
        await alice.publish_raw("dialer/supervisor/events", b'{"type": "call"}')


async def test_agent_cannot_read_the_supervisor_stream(broker: BrokerUnderTest) -> None:
    async with running_bus(broker, Recorder()) as bus, agent(broker, "alice") as alice:
        await alice.subscribe("dialer/supervisor/events")
        await bus.supervisor({"type": "agent_state", "login": "bob", "state": "ready"})
        await bus.send("alice", StateEvt(state=AgentState.READY, reason="barrier"))
        first = await alice.next_event(WAIT)
        assert isinstance(first, StateEvt) and first.reason == "barrier"
        assert alice._events.empty() and alice.invalid_messages == 0


async def test_wrong_or_missing_credentials_are_refused(broker: BrokerUnderTest) -> None:
    with pytest.raises(BusError, match="connect"):
        async with AgentClient("alice", "not-her-password", broker.url):
            pass
    with pytest.raises(BusError, match="connect"):
        async with AgentClient("mallory", "whatever", broker.url):
            pass
    bus = AgentBus(broker.url, dialer_credentials=(DIALER[0], "wrong"), connect_timeout_s=WAIT)
    with pytest.raises(BusError, match="refused"):
        async with bus:
            pass


async def test_bus_reconnects_and_resends_what_was_queued() -> None:
    """Stop the broker under a running bus; the bus reconnects and sends its backlog."""
    first = EmbeddedBroker(AGENTS, port=0, dialer_password=DIALER[1])
    await first.start()
    port = first.port
    handler = Recorder()
    bus = AgentBus(f"mqtt://{DIALER[0]}:{DIALER[1]}@127.0.0.1:{port}",
                   reconnect_min_s=0.05, reconnect_max_s=0.2)
    bus.set_handler(handler)
    async with bus:
        await first.stop()
        await wait_until(lambda: not bus.connected)
        await bus.send("alice", StateEvt(state=AgentState.READY, reason="queued while down"))
        published = bus.stats.published
        async with EmbeddedBroker(AGENTS, port=port, dialer_password=DIALER[1]) as second:
            await wait_until(lambda: bus.stats.published > published)
            async with AgentClient("alice", AGENTS["alice"], second.url) as alice:
                await alice.request(ReadyCmd(login="alice"))
    assert bus.stats.connects == 2 and bus.stats.dropped == 0
    assert [c.type for _, c in handler.calls] == ["ready"]


async def test_full_outgoing_queue_drops_the_oldest(broker: BrokerUnderTest) -> None:
    bus = AgentBus(broker.dialer_url, max_outbox=2)
    # not started: nothing drains the queue
    for i in range(5):
        await bus.send("alice", StateEvt(state=AgentState.READY, reason=str(i)))
    assert bus.stats.dropped == 3
    assert [json.loads(p)["reason"] for _, p in bus._outbox] == ["3", "4"]


async def test_bad_configuration_is_reported_clearly() -> None:
    with pytest.raises(BusError, match="scheme"):
        AgentBus("http://127.0.0.1:1883")
    with pytest.raises(BusError, match="no host"):
        AgentBus("mqtt://")
    with pytest.raises(ValueError, match="prefix"):
        AgentBus("mqtt://127.0.0.1:1883", prefix="dialer/#")
    with pytest.raises(BusError) as e:
        AgentBus("ftp://user:s3cret@127.0.0.1")
    assert "s3cret" not in str(e.value)
    bus = AgentBus("mqtt://127.0.0.1:1883")
    with pytest.raises(TypeError, match="dialer -> agent"):
        await bus.send("alice", ReadyCmd(login="alice"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="login"):
        await bus.send("no/slashes", StateEvt(state=AgentState.READY))


DEPLOY_ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl"


@pytest.fixture(scope="module")
def deploy_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """Mosquitto with the ACL shipped in deploy/mosquitto (written for docker-compose)."""
    if not DEPLOY_ACL.is_file():
        pytest.skip(f"{DEPLOY_ACL} is not in this checkout")
    server = _mosquitto_or_skip(tmp_path_factory.mktemp("mosquitto-deploy"),
                                DEPLOY_ACL.read_text(encoding="utf-8"))
    try:
        yield server
    finally:
        server.stop()


async def test_the_shipped_mosquitto_acl_isolates_agents(
    deploy_mosquitto: MosquittoServer,
) -> None:
    broker = BrokerUnderTest("mosquitto-deploy", "127.0.0.1", deploy_mosquitto.port)
    handler = Recorder()
    async with running_bus(broker, handler) as bus, agent(broker, "alice") as alice, \
            agent(broker, "bob") as bob:
        await alice.publish_raw("dialer/agents/bob/cmd", ReadyCmd(login="bob").to_json())
        await alice.subscribe("dialer/agents/bob/evt")
        await alice.subscribe("dialer/supervisor/events")
        await bob.request(PauseCmd(login="bob", reason="coffee"))
        assert [(lg, c.type) for lg, c in handler.calls] == [("bob", "pause")]
        await bus.send("bob", StateEvt(state=AgentState.PAUSED, reason="for bob only"))
        await bus.supervisor({"type": "agent_state", "login": "bob", "state": "paused"})
        await bus.send("alice", StateEvt(state=AgentState.READY, reason="barrier"))
        first = await alice.next_event(WAIT)
        assert isinstance(first, StateEvt) and first.reason == "barrier"
        assert alice._events.empty()


async def test_a_dialer_user_without_read_rights_fails_loudly() -> None:
    """Agent credentials configured as the dialer's: the embedded broker refuses the
    subscription to every agent's cmd topic, and the bus says so instead of running deaf.
    (Mosquitto on MQTT 3.1.1 grants such a subscription and delivers nothing, so this is
    only observable on the embedded broker.)"""
    async with EmbeddedBroker(AGENTS) as emb:
        bus = AgentBus(emb.url, dialer_credentials=("alice", AGENTS["alice"]),
                       connect_timeout_s=WAIT)
        with pytest.raises(BusError, match=r"refused user 'alice' the subscription"):
            async with bus:
                pass


async def test_per_agent_order_backpressure_and_independence(broker: BrokerUnderTest) -> None:
    """alice's commands run one at a time and in order; while her handler is stuck, bob is
    still served, and alice's surplus commands are refused with `overloaded`."""
    release = asyncio.Event()
    seen: list[tuple[str, str]] = []

    async def handler(login: str, cmd: AgentCommand) -> ProtocolError | None:
        seen.append((login, cmd.id))
        if login == "alice":
            await release.wait()
        return None

    bus = AgentBus(broker.dialer_url, max_pending_per_agent=2)
    bus.set_handler(handler)
    async with bus, agent(broker, "alice") as alice, agent(broker, "bob") as bob:
        cmds = [PauseCmd(login="alice", reason=f"r{i}") for i in range(4)]
        await alice.send(cmds[0])
        await wait_until(lambda: bool(seen))  # the handler is now stuck on it
        for c in cmds[1:]:
            await alice.send(c)  # no waiting for replies
        # 1 running + 2 queued; the 4th is refused while the handler is stuck
        overloaded = await alice.next_event(WAIT)
        assert isinstance(overloaded, ErrorEvt)
        assert (overloaded.code, overloaded.ref_id) == (ErrorCode.OVERLOADED, cmds[3].id)
        await bob.request(ReadyCmd(login="bob"))  # bob is not blocked by alice
        release.set()
        acks = [await alice.next_event(WAIT) for _ in range(3)]
    assert [a.ref_id for a in acks if isinstance(a, AckEvt)] == [c.id for c in cmds[:3]]
    assert [i for lg, i in seen if lg == "alice"] == [c.id for c in cmds[:3]]


async def test_agent_messages_go_before_supervisor_events(broker: BrokerUnderTest) -> None:
    bus = AgentBus(broker.dialer_url)
    for i in range(3):  # queued before the bus connects
        await bus.supervisor({"type": "agent_state", "login": "bob", "state": "ready",
                              "reason": str(i)})
    await bus.send("alice", StateEvt(state=AgentState.READY, reason="first"))
    async with aiomqtt.Client(broker.host, broker.port, username=DIALER[0],
                              password=DIALER[1]) as spy:
        await spy.subscribe("dialer/#", qos=1)
        async with bus:
            topics = []
            async with asyncio.timeout(WAIT):
                async for m in spy.messages:
                    topics.append(m.topic.value)
                    if len(topics) == 4:
                        break
    assert topics == ["dialer/agents/alice/evt"] + ["dialer/supervisor/events"] * 3


async def test_embedded_broker_reports_a_busy_port() -> None:
    async with EmbeddedBroker(AGENTS) as first:
        second = EmbeddedBroker(AGENTS, port=first.port)
        with pytest.raises(BusError, match=f"could not listen on 127.0.0.1:{first.port}"):
            await second.start()
        with pytest.raises(BusError, match="not running"):
            _ = second.port


async def test_embedded_broker_stop_is_bounded_when_shutdown_hangs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """amqtt's shutdown can wait forever on a stuck client handler: stop gives up after its
    bound, warns, and still frees the port for a broker started after it."""
    first = EmbeddedBroker(AGENTS)
    first.shutdown_timeout_s = 0.2
    await first.start()
    port = first.port
    inner = first._broker
    assert inner is not None

    async def hangs() -> None:
        await asyncio.Event().wait()

    inner.shutdown = hangs  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="dialer.bus.broker"):
        async with asyncio.timeout(5):
            stopping = asyncio.create_task(first.stop())
            await asyncio.sleep(0.05)
            # no client lands on a broker that is shutting down: it stops accepting first
            with pytest.raises(BusError, match="could not connect"):
                async with AgentClient("alice", AGENTS["alice"], f"mqtt://127.0.0.1:{port}"):
                    pass
            await stopping
    assert "did not shut down within 0.2 s" in caplog.text
    with pytest.raises(BusError, match="not running"):
        _ = first.port
    async with (
        EmbeddedBroker(AGENTS, port=port) as second,
        AgentClient("alice", AGENTS["alice"], second.url),
    ):
        pass  # connected and authenticated on the freed port


async def test_a_client_connection_that_never_closes_is_aborted_at_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """amqtt 0.12 can wait forever for a client's reader to finish: the broker gives each
    client's stop a bound, aborts that connection (the client sees the broker gone and would
    reconnect) and finishes its shutdown well within the overall bound."""
    broker = EmbeddedBroker(AGENTS)
    broker.handler_stop_timeout_s = 0.2
    await broker.start()
    async with AgentClient("alice", AGENTS["alice"], broker.url) as alice:
        inner = broker._broker
        assert inner is not None
        handlers = [h for _, h in inner._sessions.values()]
        assert len(handlers) == 1

        async def never_stops() -> None:
            await asyncio.Event().wait()

        handlers[0].stop = never_stops  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="dialer.bus.broker"):
            async with asyncio.timeout(5):
                await broker.stop()
        assert "did not close within 0.2 s; aborting it" in caplog.text
        assert "did not shut down" not in caplog.text
        await wait_until(lambda: alice._closed is not None)


async def test_a_stop_whose_cancel_comes_back_as_a_connection_error_still_stops() -> None:
    """A TaskGroup whose child fails while being cancelled raises that failure, not the
    cancel: the bus's stop then saw an MqttError in its reconnect loop, which reconnected,
    and the stop waited forever (once in CI). The stop must end all the same."""
    async with EmbeddedBroker(AGENTS, dialer_password=DIALER[1]) as emb:
        bus = AgentBus(emb.dialer_url, reconnect_min_s=0.05, reconnect_max_s=0.2)
        bus.set_handler(Recorder())

        async def serve_then_fail_on_cancel(client: aiomqtt.Client) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise aiomqtt.MqttError("Disconnected during message iteration") from None

        bus._serve = serve_then_fail_on_cancel  # type: ignore[method-assign]
        await bus.__aenter__()
        async with asyncio.timeout(10):
            await bus.__aexit__(None, None, None)
        assert not bus.connected
