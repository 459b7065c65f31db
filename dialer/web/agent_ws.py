"""The agent WebSocket (`/ws/agent`): the agent protocol of docs/agent-protocol.md over a
browser connection (docs/web.md, "The agent WebSocket").

* Upgrade: a live agent session (cookie), `?csrf=` equal to the session's CSRF token and an
  `Origin` whose host is the server's own (`Host`); anything else is refused before the
  upgrade (HTTP 403) - a page on another site cannot open a socket with the agent's cookie.
* Frames: one JSON command per frame, decoded and validated by the same
  `messages.parse_command` as MQTT; a command whose `login` is not the session's agent gets
  `error forbidden` and changes nothing. Good commands go to the dialer's
  `AgentCommandRunner` (one at a time per agent, across MQTT and WebSockets) and its handler;
  the verdict (`ack` / `error`) goes back on the socket that sent the command.
* Events: `AgentSocketHub.send(login, message)` fans a dialer message out to every open
  socket of that login, through a bounded per-socket queue (a socket that cannot keep up is
  closed with 1013; the desktop reconnects and sends `login`, which resynchronises it).
* A session that ends (sign-out, password change, idle expiry) closes its sockets (4401).
* In a cluster (docs/cluster.md, "The browser desktop on any instance") a command whose
  agent another member serves is relayed to it over MQTT (`relay`, set by the app; after
  all the checks above), and that member's events for the agent come back through
  `dialer/web/agent_relay.py` to `deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from common.vocabulary import AgentState
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import (
    AckEvt,
    AgentCommand,
    DialerMessage,
    ErrorEvt,
    PreviewEvt,
    StateEvt,
    parse_command,
)
from dialer.bus.runner import AgentCommandRunner
from dialer.metrics import DialerMetrics
from dialer.web.auth import COOKIE, csrf_for, same, session_of
from dialer.web.deps import WebDeps

log = logging.getLogger(__name__)

#: close codes: the session ended (sign in again); the dialer is going away; too slow
CLOSE_SESSION_ENDED = 4401
CLOSE_GOING_AWAY = 1012
CLOSE_TOO_SLOW = 1013
#: re-check the session this often while a socket is open (idle expiry, disabled account)
_RECHECK_S = 60.0


class AgentSocket:
    """One open desktop connection: its agent, session and outgoing queue."""

    def __init__(self, ws: WebSocket, login: str, session_id: int, max_queue: int) -> None:
        self.ws = ws
        self.login = login
        self.session_id = session_id
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=max_queue)
        self.close_code: int | None = None
        self.close_reason = ""

    def push(self, text: str) -> bool:
        """Queue one frame; False (and the socket is being closed) when it cannot keep up."""
        if self.close_code is not None:
            return False
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("web: agent %s: a desktop socket fell behind; closing it",
                        self.login)
            self.close(CLOSE_TOO_SLOW, "too many messages waiting")
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
            if self._queue.full():  # no room for the wake-up: drop one frame for it
                self._queue.get_nowait()
                self._queue.put_nowait(None)

    async def write_loop(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                break
            await self.ws.send_text(text)
        with contextlib.suppress(Exception):
            await self.ws.close(self.close_code or 1000, self.close_reason[:120])


class AgentSocketHub:
    """The open desktop sockets by login, and the WebSocket side of the agent protocol."""

    def __init__(self, runner: AgentCommandRunner, metrics: DialerMetrics | None = None, *,
                 max_queue: int = 1000) -> None:
        self.runner = runner
        self.metrics = metrics
        self._max_queue = max_queue
        self._sockets: dict[str, set[AgentSocket]] = {}
        #: login -> the lead offered to it in preview now (`/api/agent/lead-context` lets an
        #: agent read that lead's context). Learnt from the messages the dialer sends, which
        #: all pass here, so it needs nothing from the engine: a `preview` offers a lead, a
        #: `state` other than reserved ends the offer (skipped, withdrawn, or the call is on
        #: and the page reads its attempt's context instead).
        self._offered: dict[str, int] = {}
        #: a cluster member's: publish a command for the member serving its agent (False:
        #: the broker is not reachable); None on a single instance
        self.relay: Callable[[str, AgentCommand], bool] | None = None

    def offered_lead(self, login: str) -> int | None:
        """The lead offered to agent `login` in preview now (None: no offer)."""
        return self._offered.get(login)

    def count(self, login: str | None = None) -> int:
        if login is not None:
            return len(self._sockets.get(login, ()))
        return sum(len(v) for v in self._sockets.values())

    async def send(self, login: str, message: DialerMessage) -> None:
        """Send one dialer message to every open socket of `login` (none: nothing to do)."""
        self.deliver(login, message)

    def deliver(self, login: str, message: DialerMessage) -> None:
        """`send` without the await: also for the messages another cluster member sent."""
        if isinstance(message, PreviewEvt):
            self._offered[login] = message.lead.id
        elif isinstance(message, StateEvt) and message.state is not AgentState.RESERVED:
            self._offered.pop(login, None)
        socks = self._sockets.get(login)
        if not socks:
            return
        text = message.to_json().decode("utf-8")
        for sock in list(socks):
            sock.push(text)

    async def close_sessions(self, session_ids: Iterable[int], *, reason: str) -> None:
        ids = set(session_ids)
        if not ids:
            return
        for socks in self._sockets.values():
            for sock in socks:
                if sock.session_id in ids:
                    sock.close(CLOSE_SESSION_ENDED, reason)

    def close_all(self, reason: str = "the dialer is stopping") -> None:
        for socks in self._sockets.values():
            for sock in socks:
                sock.close(CLOSE_GOING_AWAY, reason)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.set_web_agent_sockets(self.count())

    # ------------------------------------------------------------------ one connection
    async def serve(self, ws: WebSocket, d: WebDeps) -> None:
        session = await session_of(d, ws.cookies.get(COOKIE))
        token = ws.cookies.get(COOKIE) or ""
        refused = None
        if session is None:
            refused = "not signed in"
        elif session.user.role != "agent" or session.user.agent_id is None:
            refused = "not an agent session"
        elif not same(ws.query_params.get("csrf"), csrf_for(token)):
            refused = "missing or wrong csrf"
        elif not _same_origin(ws.headers.get("origin"), ws.headers.get("host")):
            refused = "foreign or missing Origin"
        if refused is not None or session is None:
            log.warning("web: agent socket refused: %s", refused)
            await ws.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await ws.accept()
        login = session.user.login
        sock = AgentSocket(ws, login, session.id, self._max_queue)
        self._sockets.setdefault(login, set()).add(sock)
        self._gauge()
        log.info("web: agent %s desktop connected (%d open)", login, self.count(login))
        writer = asyncio.create_task(sock.write_loop(), name=f"ws-out-{login}")
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while sock.close_code is None:
                receive = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receive, writer},
                                             return_when=asyncio.FIRST_COMPLETED)
                if receive not in done:  # the writer ended (closed): stop reading
                    receive.cancel()
                    with contextlib.suppress(BaseException):
                        await receive
                    break
                msg = receive.result()
                if msg["type"] == "websocket.disconnect":
                    break
                payload = msg.get("bytes")
                if payload is None:
                    payload = (msg.get("text") or "").encode("utf-8")
                if loop.time() - checked > _RECHECK_S:
                    checked = loop.time()
                    if await session_of(d, token) is None:
                        sock.close(CLOSE_SESSION_ENDED, "the session ended: sign in again")
                        break
                self._on_frame(sock, payload)
        except WebSocketDisconnect:
            pass
        finally:
            socks = self._sockets.get(login)
            if socks is not None:
                socks.discard(sock)
                if not socks:
                    del self._sockets[login]
            self._gauge()
            sock.close(sock.close_code or 1000, sock.close_reason)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(writer, 2.0)
            log.info("web: agent %s desktop disconnected", login)

    def _on_frame(self, sock: AgentSocket, payload: bytes) -> None:
        try:
            cmd = parse_command(payload, sock.login)
        except ProtocolError as e:
            if e.code is ErrorCode.LOGIN_MISMATCH:
                # over a WebSocket there is no topic: the login is the session's
                e = ProtocolError(ErrorCode.FORBIDDEN,
                                  f"this session may act only as agent {sock.login}",
                                  ref_id=e.ref_id)
            log.warning("web: rejected a message from agent %s: %s", sock.login, e.code)
            log.debug("web: rejection detail for %s: %s", sock.login, e.message)
            _reply_error(sock, e)
            return
        refused = self.runner.submit(sock.login, cmd,
                                     lambda c, result, _fault: _verdict(sock, c, result),
                                     elsewhere=lambda c: self._relay(sock, c))
        if refused is not None:
            _reply_error(sock, refused)

    def _relay(self, sock: AgentSocket, cmd: AgentCommand) -> None:
        """Another member serves the agent (this one's gate said so, in the agent's command
        order): that member answers, on the agent's evt topic, which comes back here."""
        if self.relay is None:
            return  # no cluster, no relay: the gate never refuses then
        if not self.relay(sock.login, cmd):
            log.warning("web: agent %s's %s not relayed: the MQTT broker is not connected",
                        sock.login, cmd.type)
            _reply_error(sock, ProtocolError(
                ErrorCode.INTERNAL, "another dialer instance serves you and it cannot be "
                "reached now (the message broker is down); nothing was changed: retry",
                ref_id=cmd.id))


def _verdict(sock: AgentSocket, cmd: AgentCommand, result: ProtocolError | None) -> None:
    if result is None:
        sock.push(AckEvt(ref_id=cmd.id).to_json().decode("utf-8"))
        return
    log.info("web: %s from agent %s refused: %s", cmd.type, sock.login, result.code)
    _reply_error(sock, ProtocolError(result.code, result.message, ref_id=cmd.id))


def _reply_error(sock: AgentSocket, err: ProtocolError) -> None:
    reply = ErrorEvt(ref_id=err.ref_id, code=err.code, message=err.message[:1000])
    sock.push(reply.to_json().decode("utf-8"))


def _same_origin(origin: str | None, host: str | None) -> bool:
    """The page that opens the socket comes from this server: its Origin's host and port
    are the Host the browser connected to (http or https: a TLS proxy may sit in front)."""
    if not origin or not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


router = APIRouter()


@router.websocket("/ws/agent")
async def agent_socket(ws: WebSocket) -> None:
    d: WebDeps = ws.app.state.deps
    await d.hub.serve(ws, d)

