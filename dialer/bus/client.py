"""AgentClient: the agent's side of the protocol (simulated agents, tests, a reference for
desktop developers).

    async with AgentClient("alice", "pw", "mqtt://127.0.0.1:1883") as agent:
        await agent.request(LoginCmd(login="alice"))       # returns the ack, raises on error
        event = await agent.next_event(wait_s=30)          # state, screen_pop, call_ended ...

Replies (`ack`, `error`) are matched to requests by `ref_id`; everything else goes to a
bounded event queue read with `next_event`. No automatic reconnect: when the connection
drops, pending requests and `next_event` raise BusError and the caller decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from types import TracebackType

import aiomqtt
from pydantic import ValidationError

from dialer.bus.bus import NO_DELAY, BrokerAddress
from dialer.bus.errors import BusError, ProtocolError
from dialer.bus.messages import (
    AckEvt,
    AgentCommand,
    DialerMessage,
    ErrorEvt,
    parse_dialer_message,
)
from dialer.bus.topics import Topics, check_login

log = logging.getLogger(__name__)


class AgentClient:
    """One agent's MQTT session. See the module docstring."""

    def __init__(
        self,
        login: str,
        password: str,
        broker_url: str,
        *,
        prefix: str = "dialer",
        client_id: str | None = None,
        reply_timeout_s: float = 10.0,
        max_events: int = 1000,
    ) -> None:
        self.login = check_login(login)
        self._password = password
        self.address = BrokerAddress.parse(broker_url)
        self.topics = Topics(prefix)
        self._client_id = client_id or f"agent-{login}-{random.getrandbits(32):08x}"
        self.reply_timeout_s = reply_timeout_s
        self._events: asyncio.Queue[DialerMessage] = asyncio.Queue(maxsize=max_events)
        self._pending: dict[str, asyncio.Future[AckEvt]] = {}
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed: BusError | None = None
        self.dropped_events = 0
        self.invalid_messages = 0

    async def __aenter__(self) -> AgentClient:
        client = aiomqtt.Client(
            self.address.host, self.address.port, username=self.login,
            password=self._password, identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V311, clean_session=True, timeout=10.0,
            socket_options=NO_DELAY,
            tls_context=ssl.create_default_context() if self.address.tls else None,
            logger=logging.getLogger(f"{__name__}.mqtt"),
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as e:
            raise BusError(f"agent {self.login}: could not connect to the MQTT broker: {e}") from e
        try:
            try:
                granted = await client.subscribe(self.topics.evt(self.login), qos=1)
            except aiomqtt.MqttError as e:
                raise BusError(f"agent {self.login}: subscribe failed: {e}") from e
            if any(getattr(code, "is_failure", False) or code == 0x80 for code in granted):
                raise BusError(
                    f"agent {self.login}: the broker refused the subscription to "
                    f"{self.topics.evt(self.login)} (check its ACL)"
                )
        except BaseException:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
            raise
        self._client = client
        self._reader = asyncio.create_task(self._read(client), name=f"agent-{self.login}-read")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self._fail_pending(BusError(f"agent {self.login}: client closed"))
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def subscribe(self, topic_filter: str) -> bool:
        """Try an extra subscription (tests of the broker's ACL). True if granted."""
        try:
            granted = await self._require_client().subscribe(topic_filter, qos=1)
        except aiomqtt.MqttError as e:
            raise BusError(f"agent {self.login}: subscribe failed: {e}") from e
        return not any(getattr(c, "is_failure", False) or c == 0x80 for c in granted)

    async def publish_raw(self, topic: str, payload: bytes) -> None:
        """Publish any bytes on any topic (for tests of misbehaving agents)."""
        if self._closed is not None:
            raise self._closed
        try:
            await self._require_client().publish(topic, payload, qos=1)
        except aiomqtt.MqttError as e:
            raise BusError(f"agent {self.login}: publish failed: {e}") from e

    async def send(self, cmd: AgentCommand) -> None:
        """Publish a command without waiting for the reply."""
        await self.publish_raw(self.topics.cmd(self.login), cmd.to_json())

    async def request(self, cmd: AgentCommand, wait_s: float | None = None) -> AckEvt:
        """Send `cmd` and wait for its reply: the ack, or ProtocolError for an error reply."""
        if self._closed is not None:
            raise self._closed
        fut: asyncio.Future[AckEvt] = asyncio.get_running_loop().create_future()
        self._pending[cmd.id] = fut
        try:
            await self.send(cmd)
            return await asyncio.wait_for(fut, wait_s or self.reply_timeout_s)
        finally:
            self._pending.pop(cmd.id, None)

    async def next_event(self, wait_s: float | None = None) -> DialerMessage:
        """The next event that is not a reply to one of our requests (FIFO)."""
        if self._events.empty() and self._closed is not None:
            raise self._closed
        getter = asyncio.ensure_future(self._events.get())
        waiters: set[asyncio.Future[object]] = {getter}  # type: ignore[arg-type]
        if self._reader is not None:
            waiters.add(self._reader)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiters, timeout=wait_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        if not done:
            raise TimeoutError(f"agent {self.login}: no event within {wait_s} s")
        raise self._closed or BusError(f"agent {self.login}: connection closed")

    def _require_client(self) -> aiomqtt.Client:
        if self._client is None:
            raise BusError(f"agent {self.login}: not connected (use `async with`)")
        return self._client

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                self._dispatch(message.payload)
        except aiomqtt.MqttError as e:
            self._closed = BusError(f"agent {self.login}: connection lost: {e}")
            self._fail_pending(self._closed)
            log.warning("agent %s: connection lost: %s", self.login, e)

    def _dispatch(self, payload: object) -> None:
        raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
        try:
            msg = parse_dialer_message(raw)
        except ValidationError as e:
            self.invalid_messages += 1  # bad network input: logged and dropped, never fatal
            log.warning("agent %s: dropped an invalid message from the dialer (%d errors)",
                        self.login, e.error_count())
            return
        if isinstance(msg, AckEvt | ErrorEvt) and msg.ref_id in self._pending:
            fut = self._pending.pop(msg.ref_id)
            if not fut.done():
                if isinstance(msg, AckEvt):
                    fut.set_result(msg)
                else:
                    fut.set_exception(ProtocolError(msg.code, msg.message, ref_id=msg.ref_id))
            return
        try:
            self._events.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped_events += 1
            log.warning("agent %s: event queue full, dropped a %s event", self.login, msg.type)

    def _fail_pending(self, err: BusError) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
