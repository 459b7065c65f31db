"""AgentBus: the dialer's side of the agent protocol over MQTT.

    bus = AgentBus("mqtt://dialer:secret@127.0.0.1:1883", prefix="dialer")
    bus.set_handler(runtime.on_agent_command)  # async (login, cmd) -> None | ProtocolError
    async with bus:                                # connected and subscribed when this returns
        await bus.send("alice", StateEvt(state=AgentState.READY))
        await bus.supervisor({"type": "agent_state", "login": "alice", "state": "ready"})

Incoming: the bus subscribes to `<prefix>/agents/+/cmd`, decodes and validates every payload
(messages.parse_command) and checks that the payload's login is the topic's login. A bad
message gets an `error` reply on that agent's `evt` topic and never reaches the handler.
Good commands are handed to the handler one at a time per agent (so an agent's `ready`
cannot overtake its `disposition`), concurrently across agents, by an `AgentCommandRunner`
(dialer/bus/runner.py) - the bus's own, or one it shares with the web server's WebSocket so
the order holds across both transports. The handler's verdict is sent back: `ack {ref_id}`
for None, `error {ref_id, code, message}` for a ProtocolError.

Outgoing: `send` and `supervisor` queue the message and return at once, so the call path
never waits for the network. A sender task publishes the queue with QoS 1; a message whose
publish fails stays at the head of the queue and is sent again after the reconnect (at least
once: agents drop duplicates by `id`). The queues are bounded; when one is full its oldest
message is dropped and counted in `stats.dropped`.

Cluster members (docs/cluster.md, "The browser desktop on any instance"): with an `events`
function the bus also subscribes to `<prefix>/agents/+/evt` and hands it every agent event
(login, payload); `relay(login, cmd)` publishes a command on that agent's cmd topic, for the
member that serves the agent to answer. With `peer=(id, handler)` it subscribes to its own
member topic `<prefix>/cluster/<id>` and hands the handler every payload; `to_peer(member,
payload)` publishes on another member's (the cluster's requests between members, e.g. lending
an agent for a transfer: dialer/cluster_lend.py).

Connection: reconnects with exponential backoff and jitter. `async with` fails with
BusError if the first connection cannot be made within `connect_timeout_s`, or at once if the
broker refuses the credentials.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import random
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from pydantic import ValidationError

from dialer.bus.errors import BusError, ProtocolError
from dialer.bus.messages import (
    DIALER_MESSAGE_TYPES,
    SUPERVISOR_EVENT_TYPES,
    SUPERVISOR_EVENTS,
    AckEvt,
    AgentCommand,
    DialerMessage,
    ErrorEvt,
    SupervisorEvent,
    parse_command,
)
from dialer.bus.runner import AgentCommandRunner, CommandHandler
from dialer.bus.topics import Topics

log = logging.getLogger(__name__)

__all__ = ["AgentBus", "BrokerAddress", "BusStats", "CommandHandler"]

DEFAULT_URL = "mqtt://127.0.0.1:1883"
#: paho leaves Nagle's algorithm on: a small PUBLISH then waits for the peer's delayed ACK
#: (~40 ms on Linux), which put ~90 ms into every command round trip before this was set
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
_AUTH_REFUSED = {4, 5, 134, 135}  # MQTT 3.1.1 CONNACK 4/5, MQTT 5 reason codes 0x86/0x87


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAddress:
    """A parsed broker URL: mqtt://[user[:password]@]host[:port] or mqtts://..."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise BusError(f"MQTT URL {_redact(url)!r} is not valid: {e}") from None
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BusError(
                f"MQTT URL {_redact(url)!r}: scheme {parts.scheme!r} is not supported; expected "
                "mqtt://HOST:PORT or mqtts://HOST:PORT"
            )
        if not parts.hostname:
            raise BusError(f"MQTT URL {_redact(url)!r} has no host")
        if parts.path not in ("", "/") or parts.query:
            raise BusError(f"MQTT URL {_redact(url)!r}: unexpected path or query")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname,
            port=port if port is not None else (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


def _redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _is_auth_refusal(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _AUTH_REFUSED


@dataclass(slots=True)
class BusStats:
    """Counters for metrics and tests. Never reset while the bus lives."""

    connected: bool = False
    connects: int = 0  # successful connections (the first one included)
    received: int = 0  # payloads received on cmd topics
    rejected: int = 0  # refused by the bus itself (malformed, wrong login, overloaded)
    handled: int = 0  # passed to the handler
    refused: int = 0  # the handler returned or raised a ProtocolError
    handler_failures: int = 0  # the handler raised something else (logged)
    published: int = 0  # messages published (agents' evt + supervisor)
    dropped: int = 0  # dropped because a queue was full


_Item = tuple[str, bytes]  # (topic, payload)


class AgentBus:
    """The dialer's MQTT connection for the agent protocol. See the module docstring."""

    def __init__(
        self,
        url: str | None,
        prefix: str = "dialer",
        dialer_credentials: tuple[str, str] | None = None,
        *,
        client_id: str | None = None,
        connect_timeout_s: float = 10.0,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 10.0,
        max_outbox: int = 10_000,
        max_supervisor_outbox: int = 2_000,
        max_pending_per_agent: int = 100,
        keepalive_s: int = 30,
        tls_context: ssl.SSLContext | None = None,
        runner: AgentCommandRunner | None = None,
        events: Callable[[str, bytes], None] | None = None,
        peer: tuple[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        self.address = BrokerAddress.parse(url or DEFAULT_URL)
        self._url_shown = _redact(url or DEFAULT_URL)
        self.topics = Topics(prefix)
        if dialer_credentials is not None:
            self._username: str | None = dialer_credentials[0]
            self._password: str | None = dialer_credentials[1]
        else:
            self._username, self._password = self.address.username, self.address.password
        if not (0 < reconnect_min_s <= reconnect_max_s):
            raise ValueError("AgentBus: expected 0 < reconnect_min_s <= reconnect_max_s")
        if min(max_outbox, max_supervisor_outbox, max_pending_per_agent) < 1:
            raise ValueError("AgentBus: queue sizes must be at least 1")
        self._client_id = client_id or f"dialer-{random.getrandbits(48):012x}"
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._max_outbox = max_outbox
        self._max_sup_outbox = max_supervisor_outbox
        self._max_pending = max_pending_per_agent
        self._keepalive_s = keepalive_s
        self._tls_context = tls_context
        if self.address.tls and tls_context is None:
            self._tls_context = ssl.create_default_context()

        #: runs the commands one at a time per agent; shared with the web server in the app
        self._owns_runner = runner is None
        self._runner = runner or AgentCommandRunner(max_pending_per_agent=max_pending_per_agent)
        #: a cluster member's: every agent's events, for its WebSockets (see the docstring)
        self._events = events
        #: a cluster member's own topic and what handles its messages
        self._peer = (self.topics.peer(peer[0]), peer[1]) if peer is not None else None
        self._outbox: collections.deque[_Item] = collections.deque()
        self._sup_outbox: collections.deque[_Item] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[None] | None = None
        self._first_connect: asyncio.Future[None] | None = None
        self._stopping = False
        self._connected = asyncio.Event()
        self._rng = random.Random()
        self.stats = BusStats()

    # ------------------------------------------------------------------ public interface

    def set_handler(self, handler: CommandHandler) -> None:
        """Install the runtime's command handler (before or after `async with`)."""
        self._runner.set_handler(handler)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def settle(self, within_s: float = 3.0) -> bool:
        """Wait until every received command is handled and every queued agent message is
        published (at a stop, so the last replies - a disposition's ack - reach the
        desktops). False when that did not happen within `within_s`."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within_s
        while self._runner.busy or self._outbox:
            if loop.time() >= until or not self.connected:
                return False
            await asyncio.sleep(0.02)
        return True

    async def send(self, login: str, message: DialerMessage) -> None:
        """Queue `message` for agent `login`'s evt topic; returns without awaiting the network."""
        if not isinstance(message, DIALER_MESSAGE_TYPES):
            raise TypeError(
                f"AgentBus.send: expected a dialer -> agent message (StateEvt, ScreenPopEvt, ...), "
                f"got {type(message).__name__}"
            )
        self._enqueue(self._outbox, self._max_outbox, (self.topics.evt(login), message.to_json()))

    def relay(self, login: str, cmd: AgentCommand) -> bool:
        """Queue `cmd` on `login`'s cmd topic, as the agent's MQTT desktop would send it (the
        member that serves the agent answers on its evt topic). False, and nothing queued,
        while the broker is not connected: the command would wait an unknown time and the
        desktop had better hear at once that it did not go."""
        if not self.connected:
            return False
        self._enqueue(self._outbox, self._max_outbox, (self.topics.cmd(login), cmd.to_json()))
        return True

    def to_peer(self, member: str, payload: bytes) -> bool:
        """Queue `payload` for cluster member `member`'s topic. False, and nothing queued,
        while the broker is not connected (the caller gives up at once rather than wait)."""
        if not self.connected:
            return False
        self._enqueue(self._outbox, self._max_outbox, (self.topics.peer(member), payload))
        return True

    async def supervisor(self, event: Mapping[str, Any] | SupervisorEvent) -> None:
        """Queue one event for the supervisor stream.

        `event` is a SupervisorCallEvent / SupervisorAgentEvent or a dict with the same fields
        (`type` is "call" or "agent_state"; `v`, `id`, `ts` are filled in). A dict that does
        not fit raises ValueError naming the field: it is a bug in the caller.
        """
        if isinstance(event, SUPERVISOR_EVENT_TYPES):
            model = event
        elif isinstance(event, Mapping):
            try:
                model = SUPERVISOR_EVENTS.validate_python(dict(event), strict=False)
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc'][1:]) or 'event'}: {err['msg']}"
                    for err in e.errors(include_input=False, include_url=False)
                )
                raise ValueError(f"AgentBus.supervisor: invalid event: {problems}") from None
        else:
            raise TypeError(
                f"AgentBus.supervisor: expected a dict or supervisor event, got "
                f"{type(event).__name__}"
            )
        self._enqueue(self._sup_outbox, self._max_sup_outbox,
                      (self.topics.supervisor, model.to_json()))

    async def __aenter__(self) -> AgentBus:
        if self._main is not None:
            raise BusError("AgentBus is already running (it is not reentrant)")
        loop = asyncio.get_running_loop()
        self._first_connect = loop.create_future()
        self._stopping = False
        self._main = asyncio.create_task(self._run(), name="agentbus")
        try:
            await asyncio.wait({self._first_connect, self._main}, timeout=self._connect_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self._stop()
            raise
        if self._first_connect.done():
            if (err := self._first_connect.exception()) is not None:
                await self._stop()
                raise err
            return self
        failure = self._main.exception() if self._main.done() else None
        await self._stop()
        if failure is not None:
            raise BusError(f"the agent bus failed while connecting: {failure!r}") from failure
        raise BusError(
            f"could not connect to the MQTT broker at {self._url_shown} within "
            f"{self._connect_timeout_s:g} s"
        )

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    # ------------------------------------------------------------------ internals

    async def _stop(self) -> None:
        main, self._main = self._main, None
        if main is not None:
            self._stopping = True
            main.cancel()
            (outcome,) = await asyncio.gather(main, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.error("agent bus: stopped after a failure: %r", outcome)
        if self._owns_runner:
            await self._runner.close()
        self._connected.clear()
        self.stats.connected = False

    def _enqueue(self, box: collections.deque[_Item], limit: int, item: _Item) -> None:
        if len(box) >= limit:
            box.popleft()
            self.stats.dropped += 1
            n = self.stats.dropped
            if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th ... drop: visible, but no log flood
                log.warning("agent bus: outgoing queue full (%d); dropped the oldest message "
                            "(%d dropped so far)", limit, n)
        box.append(item)
        self._outbox_ready.set()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._connection_loop(), name="agentbus-connection")

    async def _connection_loop(self) -> None:
        delay = self._reconnect_min_s
        while True:
            client = aiomqtt.Client(
                self.address.host,
                self.address.port,
                username=self._username,
                password=self._password,
                identifier=self._client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=True,
                keepalive=self._keepalive_s,
                timeout=10.0,
                tls_context=self._tls_context,
                logger=logging.getLogger(f"{__name__}.mqtt"),
                socket_options=NO_DELAY,
            )
            try:
                async with client:
                    granted = await client.subscribe(self.topics.all_cmd, qos=1)
                    if any(getattr(c, "is_failure", False) for c in granted):
                        # without this subscription the dialer would be deaf: stop loudly
                        err = BusError(
                            f"the MQTT broker refused user {self._username!r} the subscription "
                            f"to {self.topics.all_cmd}; its ACL must let the dialer read "
                            f"{self.topics.prefix}/#"
                        )
                        if self._first_connect is not None and not self._first_connect.done():
                            self._first_connect.set_exception(err)
                            return
                        raise aiomqtt.MqttError(str(err))
                    if self._events is not None:
                        granted = await client.subscribe(self.topics.all_evt, qos=1)
                        if any(getattr(c, "is_failure", False) for c in granted):
                            # the commands still work; only desktops on other members' web
                            # servers miss this one's agents' events
                            log.error("agent bus: the broker refused the subscription to %s; "
                                      "its ACL must let the dialer read %s/#",
                                      self.topics.all_evt, self.topics.prefix)
                    if self._peer is not None:
                        granted = await client.subscribe(self._peer[0], qos=1)
                        if any(getattr(c, "is_failure", False) for c in granted):
                            log.error("agent bus: the broker refused the subscription to %s; "
                                      "its ACL must let the dialer read %s/#",
                                      self._peer[0], self.topics.prefix)
                    self._connected.set()
                    self.stats.connected = True
                    self.stats.connects += 1
                    delay = self._reconnect_min_s
                    log.info("agent bus: connected to %s:%d, listening on %s",
                             self.address.host, self.address.port, self.topics.all_cmd)
                    if self._first_connect is not None and not self._first_connect.done():
                        self._first_connect.set_result(None)
                    await self._serve(client)
            except aiomqtt.MqttError as e:
                if _is_auth_refusal(e):
                    err = BusError(
                        f"the MQTT broker at {self.address.host}:{self.address.port} refused "
                        f"user {self._username!r}: {e}"
                    )
                    if self._first_connect is not None and not self._first_connect.done():
                        self._first_connect.set_exception(err)
                        return
                    log.error("agent bus: %s; retrying", err)
                else:
                    log.warning("agent bus: connection to %s:%d lost or refused (%s); retrying",
                                self.address.host, self.address.port, e)
            except Exception:
                # a fault of ours must not leave the dialer deaf to its agents: log, reconnect
                log.exception("agent bus: unexpected failure; reconnecting")
            finally:
                self._connected.clear()
                self.stats.connected = False
            if self._stopping:
                # the stop's cancel can come back as an MqttError (a TaskGroup whose child
                # failed while being cancelled raises the failure, not the cancel): without
                # this the loop reconnected and the stop waited forever (seen once in CI)
                return
            await asyncio.sleep(self._rng.uniform(delay / 2, delay))
            delay = min(self._reconnect_max_s, delay * 2)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Receive and send on one connection until it fails (raises MqttError)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._send_loop(client), name="agentbus-send")
                tg.create_task(self._receive_loop(client), name="agentbus-receive")
        except* aiomqtt.MqttError as eg:
            raise eg.exceptions[0] from None

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._on_message(message.topic.value, message.payload)
        raise aiomqtt.MqttError("message stream ended")

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        while True:
            if self._outbox:
                box = self._outbox  # agents first: a screen pop must not wait behind stats
            elif self._sup_outbox:
                box = self._sup_outbox
            else:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            topic, payload = box.popleft()
            try:
                await client.publish(topic, payload, qos=1)
            except BaseException:
                box.appendleft((topic, payload))  # resend after the reconnect
                raise
            self.stats.published += 1

    def _on_message(self, topic: str, payload: Any) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, bytes | bytearray):
            payload = b"" if payload is None else str(payload).encode()
        if self._peer is not None and topic == self._peer[0]:
            try:
                self._peer[1](bytes(payload))
            except Exception:  # a fault there must not end the receive loop
                log.exception("agent bus: handling a cluster member's message failed")
            return
        login = self.topics.login_of_cmd(topic)
        if login is None:
            evt_login = self.topics.login_of_evt(topic)
            if evt_login is not None and self._events is not None:
                try:
                    self._events(evt_login, bytes(payload))
                except Exception:  # a fault there must not end the receive loop
                    log.exception("agent bus: passing an event of agent %s on failed",
                                  evt_login)
                return
            # not possible with our subscriptions; never fatal
            log.debug("agent bus: ignoring message on unexpected topic %r", topic)
            return
        self.stats.received += 1
        try:
            cmd = parse_command(payload, login)
        except ProtocolError as e:
            self._reject(login, e)
            return
        refused = self._runner.submit(login, cmd, functools.partial(self._verdict, login))
        if refused is not None:
            self._reject(login, refused)

    def _reject(self, login: str, err: ProtocolError) -> None:
        self.stats.rejected += 1
        log.warning("agent bus: rejected a message from agent %s: %s", login, err.code)
        log.debug("agent bus: rejection detail for %s: %s", login, err.message)
        self._reply_error(login, err)

    def _reply_error(self, login: str, err: ProtocolError) -> None:
        reply = ErrorEvt(ref_id=err.ref_id, code=err.code, message=err.message[:1000])
        self._enqueue(self._outbox, self._max_outbox, (self.topics.evt(login), reply.to_json()))

    def _verdict(self, login: str, cmd: AgentCommand, result: ProtocolError | None,
                 fault: bool) -> None:
        """The handler's verdict on `cmd` (from the runner): ack, or the error reply."""
        self.stats.handled += 1
        if fault:
            self.stats.handler_failures += 1
        if result is None:
            reply = AckEvt(ref_id=cmd.id).to_json()
            self._enqueue(self._outbox, self._max_outbox, (self.topics.evt(login), reply))
            return
        self.stats.refused += 1
        log.info("agent bus: %s from agent %s refused: %s", cmd.type, login, result.code)
        self._reply_error(login, ProtocolError(result.code, result.message, ref_id=cmd.id))
