"""An MQTT broker inside the dialer process, for one-machine setups and the demo.

Used when the config's `mqtt.url` is empty. It is amqtt's broker on a TCP listener (by
default on loopback) with two plugins of ours that enforce the same rules as the Mosquitto
password file and ACL in docs/agent-protocol.md:

* authentication: a user name and password from the map given at construction (agents'
  passwords come from the config's `[[agents]]`; the dialer's own password is generated at
  start unless given). Anonymous clients and unknown users are refused (CONNACK 5).
* topic access, checked by amqtt on every PUBLISH, SUBSCRIBE and delivery (RECEIVE):
  the dialer user may read and write `<prefix>/#`; an agent may publish only to
  `<prefix>/agents/<own login>/cmd` and read only `<prefix>/agents/<own login>/evt`;
  a supervisor may read only `<prefix>/supervisor/#`. A SUBSCRIBE is granted only if the
  whole filter lies inside what the user may read (so `#` is refused, not narrowed).
  A refused PUBLISH is dropped without telling the client, as Mosquitto does for MQTT 3.1.1.

Known limits of amqtt 0.12 (documented, not papered over): MQTT 3.1.1 only (no v5 reason
codes); no TLS unless a certificate is configured (we do not); a CONNECT reusing a connected
client id takes that session over even before authentication fails - keep the listener on
loopback, where only local processes can reach it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from dialer.bus.errors import BusError
from dialer.bus.topics import Topics, check_login, filter_within, topic_matches
from dialer.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

Role = Literal["dialer", "agent", "supervisor"]


@functools.cache
def _dummy_hash() -> str:
    """Checked for unknown users: the same scrypt work, so no user-name oracle."""
    return hash_password(secrets.token_hex(16))


@dataclass(frozen=True, slots=True)
class _User:
    role: Role
    secret: str  # "scrypt$..." (dialer/passwords.py) or a deprecated plain password
    read: tuple[str, ...]  # topic filters the user may subscribe to / receive from
    write: tuple[str, ...]  # topic filters the user may publish to


class AccessPolicy:
    """Who may connect and which topics each user may read and write.

    Pure (no IO), so the rules are tested directly as well as through a running broker.
    """

    def __init__(
        self,
        topics: Topics,
        *,
        agents: Mapping[str, str],
        dialer: tuple[str, str],
        supervisors: Mapping[str, str] | None = None,
    ) -> None:
        self.topics = topics
        self._users: dict[str, _User] = {}
        p = topics.prefix
        dialer_user, dialer_password = dialer
        self._add(dialer_user, dialer_password, "dialer", read=(f"{p}/#",), write=(f"{p}/#",))
        for login, password in agents.items():
            check_login(login)
            self._add(login, password, "agent", read=(topics.evt(login),),
                      write=(topics.cmd(login),))
        for user, password in (supervisors or {}).items():
            self._add(user, password, "supervisor", read=(f"{p}/supervisor/#",), write=())

    def _add(self, user: str, password: str, role: Role, *, read: tuple[str, ...],
             write: tuple[str, ...]) -> None:
        if not user:
            raise ValueError(f"embedded MQTT broker: empty user name for a {role}")
        if not password:
            raise ValueError(
                f"embedded MQTT broker: {role} {user!r} has no password (agents: set "
                "`password_hash` in its [[agents]] entry, from `dialer agents hash-password`)"
            )
        if user in self._users:
            raise ValueError(
                f"embedded MQTT broker: user {user!r} is configured twice (as "
                f"{self._users[user].role} and {role}); user names must be unique"
            )
        self._users[user] = _User(role, password, read, write)

    def role(self, user: str | None) -> Role | None:
        u = self._users.get(user or "")
        return u.role if u else None

    def authenticate(self, user: str | None, password: str | bytes | None) -> bool:
        if not user or password is None:
            return False
        if isinstance(password, bytes):
            try:
                password = password.decode("utf-8")
            except UnicodeDecodeError:
                return False
        u = self._users.get(user)
        # unknown users are checked against a dummy hash: same work, no user-name oracle
        ok = verify_password(password, u.secret if u else _dummy_hash())
        return ok and u is not None

    def may_publish(self, user: str | None, topic: str) -> bool:
        u = self._users.get(user or "")
        return u is not None and any(topic_matches(topic, f) for f in u.write)

    def may_receive(self, user: str | None, topic: str) -> bool:
        u = self._users.get(user or "")
        return u is not None and any(topic_matches(topic, f) for f in u.read)

    def may_subscribe(self, user: str | None, topic_filter: str) -> bool:
        u = self._users.get(user or "")
        return u is not None and any(filter_within(topic_filter, f) for f in u.read)


class PolicyAuthPlugin(BaseAuthPlugin):
    """amqtt authentication plugin backed by an AccessPolicy (passed in the plugin config)."""

    @dataclass
    class Config:
        policy: Any = None

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        if not isinstance(self.config.policy, AccessPolicy):
            raise BusError("PolicyAuthPlugin needs an AccessPolicy as its `policy` option")
        self._policy: AccessPolicy = self.config.policy

    async def authenticate(self, *, session: Session) -> bool | None:
        # a scrypt check takes ~70 ms: off the event loop (hashlib.scrypt releases the GIL)
        ok = await asyncio.to_thread(self._policy.authenticate, session.username,
                                     session.password)
        if not ok:
            # the user name is an operator-chosen login, not personal data of a callee
            log.warning("embedded broker: refused login for MQTT user %r", session.username)
        return ok


class PolicyTopicPlugin(BaseTopicPlugin):
    """amqtt topic plugin: PUBLISH / SUBSCRIBE / RECEIVE checks from an AccessPolicy."""

    @dataclass
    class Config:
        policy: Any = None

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        if not isinstance(self.config.policy, AccessPolicy):
            raise BusError("PolicyTopicPlugin needs an AccessPolicy as its `policy` option")
        self._policy: AccessPolicy = self.config.policy

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or not topic:
            return False
        user = session.username
        if action == Action.PUBLISH:
            ok = self._policy.may_publish(user, topic)
        elif action == Action.SUBSCRIBE:
            ok = self._policy.may_subscribe(user, topic)
        elif action == Action.RECEIVE:
            ok = self._policy.may_receive(user, topic)
        else:
            ok = False
        if not ok and action != Action.RECEIVE:
            log.warning("embedded broker: denied %s on %r for MQTT user %r",
                        action, topic, user)
        return ok


def _quiet_library_loggers() -> None:
    """amqtt and its state-machine library log every packet and transition at INFO.

    Raise them to WARNING unless the operator configured them explicitly, so the dialer's
    INFO log stays one line per call (docs/architecture.md, logging).
    """
    for name in ("amqtt", "transitions"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bound_handler_stops(broker: Broker, timeout_s: float) -> None:
    """Give each client handler's stop `timeout_s`, then abort its connection.

    amqtt 0.12's `handler.stop()` cancels the handler's reader task and waits for an event
    that task sets on its way out; a cancel landing while the reader is already closing the
    connection skips the set, and the wait (and with it the broker's shutdown, one client at
    a time) never ends (reproduced ~1 in 20 broker restarts under load). Aborting the socket
    makes the client see the broker gone and reconnect, as it does on any broker restart.
    """
    unbounded = broker._stop_handler  # amqtt has no public hook for this

    async def bounded(handler: Any) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await unbounded(handler)
        except TimeoutError:
            log.warning("embedded MQTT broker: a client's connection did not close within "
                        "%.1f s; aborting it", timeout_s)
            stream = getattr(handler.writer, "_writer", None)  # StreamWriterAdapter's stream
            if isinstance(stream, asyncio.StreamWriter):
                stream.transport.abort()

    broker._stop_handler = bounded  # type: ignore[method-assign]


def _close_listeners(broker: Broker) -> None:
    for server in broker._servers.values():  # amqtt has no public accessor
        if server.instance is not None:
            server.instance.close()


class EmbeddedBroker:
    """`async with EmbeddedBroker(agents={"alice": "pw"}) as broker:` serves MQTT in-process.

    `port=0` picks a free port; `broker.port` is the one chosen. Give `broker.dialer_url` to
    AgentBus; agents connect to `broker.url` with their login and password.
    """

    handler_stop_timeout_s: float = 2.0
    shutdown_timeout_s: float = 10.0

    def __init__(
        self,
        agents: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "dialer",
        dialer_user: str = "dialer",
        dialer_password: str | None = None,
        supervisors: Mapping[str, str] | None = None,
        max_connections: int = 1000,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"embedded MQTT broker port {port} is not in 0..65535")
        self.host = host
        self._requested_port = port
        self.topics = Topics(prefix)
        self.dialer_user = dialer_user
        # a fresh secret per run unless given: nothing outside this process needs it
        self._dialer_password = dialer_password or secrets.token_urlsafe(24)
        self.policy = AccessPolicy(
            self.topics, agents=agents, dialer=(dialer_user, self._dialer_password),
            supervisors=supervisors,
        )
        self._max_connections = max_connections
        self._broker: Broker | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise BusError("the embedded MQTT broker is not running")
        return self._port

    @property
    def url(self) -> str:
        """Where clients connect, without credentials: mqtt://127.0.0.1:PORT."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def dialer_credentials(self) -> tuple[str, str]:
        return (self.dialer_user, self._dialer_password)

    @property
    def dialer_url(self) -> str:
        """`url` with the dialer's credentials, ready for AgentBus."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"mqtt://{quote(self.dialer_user, safe='')}:"
                f"{quote(self._dialer_password, safe='')}@{host}:{self.port}")

    async def start(self) -> None:
        if self._broker is not None:
            raise BusError("the embedded MQTT broker is already running")
        _quiet_library_loggers()
        if not _is_loopback(self.host):
            log.warning("embedded MQTT broker listens on %s, not loopback: passwords cross the "
                        "network in clear text; prefer Mosquitto with TLS there", self.host)
        bind_host = f"[{self.host}]" if ":" in self.host else self.host
        config: dict[str, Any] = {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"{bind_host}:{self._requested_port}",
                    "max_connections": self._max_connections,
                }
            },
            "plugins": {
                f"{__name__}.PolicyAuthPlugin": {"policy": self.policy},
                f"{__name__}.PolicyTopicPlugin": {"policy": self.policy},
            },
        }
        broker = Broker(config)
        _bound_handler_stops(broker, self.handler_stop_timeout_s)
        try:
            await broker.start()
        except Exception as e:  # amqtt wraps OSError (port in use) in BrokerError
            raise BusError(
                f"embedded MQTT broker could not listen on {self.host}:{self._requested_port}: "
                f"{e}"
            ) from e
        server = broker._servers["default"].instance  # amqtt has no public accessor
        self._port = int(server.sockets[0].getsockname()[1])
        self._broker = broker
        log.info("embedded MQTT broker listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is None:
            return
        # amqtt closes its listeners last, after stopping each client: a client reconnecting
        # in between (the dialer's bus retries within 50 ms) would land on a broker that no
        # longer routes anything and stay there. Stop accepting first.
        _close_listeners(broker)
        try:
            # each client's stop is bounded (_bound_handler_stops); this bounds the rest
            async with asyncio.timeout(self.shutdown_timeout_s):
                await broker.shutdown()
        except TimeoutError:
            log.warning("embedded MQTT broker did not shut down within %.1f s; leaving the "
                        "rest to the process's exit", self.shutdown_timeout_s)
        finally:
            self._port = None
            log.info("embedded MQTT broker stopped")

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
