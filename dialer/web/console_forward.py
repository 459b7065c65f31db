"""A cluster's consoles hand agent controls and listen-ins to the instance that serves them
(docs/cluster.md, "Agent controls and listen-in on any console").

An agent is served by one instance (its agent lease) and a call lives on the SIP nodes of
the instance that placed it (the attempt's `dialer_id`); only that instance can pause the
agent or join a phone to the call. When a console is asked for such a thing served by
another live member, it sends the same HTTP request (method, path, query, body, the session
cookie and the CSRF header) to that member's console, at the base URL the member advertises
in its heartbeat row (`job_leases.console_url`, `[web] advertise_url`), and answers with the
member's answer unchanged (status and body) plus `X-Dialer-Instance` naming it.

* The receiving console authenticates and authorises the request itself, exactly as a direct
  one (sessions are in the shared database): forwarding widens nothing.
* A forwarded request carries `X-Dialer-Forwarded: <sender id>` and is never forwarded
  again: the receiver acts on it itself or refuses it (no loops). A client that sets the
  header only loses the forwarding.
* A member that is not live (its heartbeat lapsed), advertises no console, or cannot be
  connected to: 503 `{"detail", "reason": "instance_unavailable", "instance"}`, nothing
  changed (the request never reached it). One that took the request but did not answer in
  time: 504 `instance_timeout` (it may have acted: its audit log says).
* Cookies and tokens are never logged; no proxy from the environment is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse

from db import cluster as dbc
from db.repositories import RepositoryError
from dialer.web.auth import COOKIE, CSRF_HEADER
from dialer.web.deps import WebDeps

if TYPE_CHECKING:
    from dialer.cluster import Cluster

log = logging.getLogger(__name__)
T = TypeVar("T")

#: marks a request one console sent another: never forwarded again
FORWARDED = "X-Dialer-Forwarded"
#: names the instance that answered a forwarded request
ANSWERED_BY = "X-Dialer-Instance"
#: connecting to a member: a live one on the same network accepts within milliseconds
CONNECT_S = 2.0
#: an agent control waits at most 10 s behind the agent's own commands (dialer/control)
CONTROL_S = 15.0
#: a listen-in start rings the supervisor's phone up to 20 s (+5 s for the node's answer)
LISTEN_START_S = 30.0
#: the wallboard polls the session list every 2 s: a slow member is left out, not waited on
LIST_S = 2.0


@dataclass(frozen=True, slots=True)
class Peer:
    """A live member's console."""

    dialer_id: str
    url: str


class Unavailable(Exception):
    """The member serving it cannot be asked (not live, no console, not connectable)."""

    def __init__(self, dialer_id: str, message: str) -> None:
        super().__init__(message)
        self.dialer_id = dialer_id
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"detail": self.message, "reason": "instance_unavailable", "instance": self.dialer_id},
            status_code=503,
        )


def cluster_of(d: WebDeps, request: Request) -> Cluster | None:
    """The cluster membership to forward within: None alone, or for a forwarded request."""
    if request.headers.get(FORWARDED) is not None:
        return None
    return d.cluster


async def peer(d: WebDeps, cluster: Cluster, dialer_id: str, what: str) -> Peer:
    """Member `dialer_id`'s console, if it is live and advertises one (read now, not at the
    last heartbeat: a member that died a moment ago is not sent anything)."""
    try:
        members = await dbc.members(d.sessions)
    except RepositoryError as e:
        raise Unavailable(
            dialer_id,
            f"{what} is served by dialer instance {dialer_id!r}, "
            f"but the database could not say where it is: {e}",
        ) from e
    m = next((x for x in members if x.dialer_id == dialer_id), None)
    if m is None or not m.alive(d.clock.now()):
        raise Unavailable(
            dialer_id,
            f"{what} is served by dialer instance {dialer_id!r}, "
            "which is not live (its heartbeat lapsed or it stopped); "
            "a survivor takes its agents over within the lease "
            "TTL: try again then",
        )
    if not m.console_url:
        raise Unavailable(
            dialer_id,
            f"{what} is served by dialer instance {dialer_id!r}, "
            "which advertises no console ([web] enabled = false "
            "there): use its own console",
        )
    return Peer(dialer_id, m.console_url)


async def live_peers(d: WebDeps, cluster: Cluster) -> tuple[list[Peer], list[str]]:
    """The other live members with a console, and the live ones without one."""
    now = d.clock.now()
    members = await dbc.members(d.sessions)
    live = [m for m in members if m.dialer_id != cluster.id and m.alive(now)]
    return (
        [Peer(m.dialer_id, m.console_url) for m in live if m.console_url],
        [m.dialer_id for m in live if not m.console_url],
    )


def _headers(request: Request, cluster: Cluster) -> dict[str, str]:
    # only what the receiver needs to authenticate and parse: the session cookie, the CSRF
    # header, the body's type; never the browser's other cookies or headers
    out = {FORWARDED: cluster.id, "Accept": "application/json"}
    token = request.cookies.get(COOKIE)
    if token:
        out["Cookie"] = f"{COOKIE}={token}"
    for name in (CSRF_HEADER, "Content-Type"):
        value = request.headers.get(name)
        if value is not None:
            out[name] = value
    return out


async def send(
    d: WebDeps, request: Request, cluster: Cluster, to: Peer, *, timeout_s: float
) -> httpx.Response:
    """The same request, sent to `to`'s console. Raises `Unavailable` when it could not be
    delivered (nothing changed there) and HTTPException(504) when it was delivered but not
    answered in time."""
    body = await request.body()  # FastAPI read it already: the same bytes
    # the path as the client sent it (still percent-encoded): the member routes exactly it
    raw = request.scope.get("raw_path") or request.url.path.encode()
    url = to.url.rstrip("/") + raw.decode("latin-1")
    try:
        return await d.peer_client().request(
            request.method,
            url,
            params=list(request.query_params.multi_items()),
            content=body,
            headers=_headers(request, cluster),
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_S),
        )
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        why = type(e).__name__
        raise Unavailable(
            to.dialer_id,
            f"dialer instance {to.dialer_id!r} serves it, but its "
            f"console at {to.url} cannot be reached ({why}); "
            "nothing was changed",
        ) from None
    except httpx.TimeoutException:
        raise HTTPException(
            504,
            f"dialer instance {to.dialer_id!r} took the request but did "
            f"not answer within {timeout_s:g} s: it may have acted "
            "(see the audit log)",
        ) from None
    except httpx.HTTPError as e:
        raise HTTPException(
            502, f"dialer instance {to.dialer_id!r} answered no valid response ({type(e).__name__})"
        ) from None


def relay(got: httpx.Response, dialer_id: str) -> Response:
    """The member's answer, unchanged, naming the member."""
    headers = {ANSWERED_BY: dialer_id}
    if "content-type" in got.headers:
        headers["Content-Type"] = got.headers["content-type"]
    return Response(content=got.content, status_code=got.status_code, headers=headers)


async def forward(
    d: WebDeps, request: Request, cluster: Cluster, dialer_id: str, what: str, *, timeout_s: float
) -> Response:
    """Send the request to member `dialer_id` and answer with its answer (503 / 504 above)."""
    try:
        to = await peer(d, cluster, dialer_id, what)
        got = await send(d, request, cluster, to, timeout_s=timeout_s)
    except Unavailable as e:
        log.warning("console: %s %s not forwarded: %s", request.method, request.url.path, e.message)
        return e.response()
    return answered(request, got, dialer_id)


def answered(request: Request, got: httpx.Response, dialer_id: str) -> Response:
    """Log the forward's outcome and relay the member's answer."""
    log.info(
        "console: %s %s forwarded to instance %s: %d",
        request.method,
        request.url.path,
        dialer_id,
        got.status_code,
    )
    return relay(got, dialer_id)


async def ask_db(query: Awaitable[T], unanswered: str) -> T:
    """A cluster lookup; the database failing is a 503 saying what could not be told."""
    try:
        return await query
    except RepositoryError as e:
        raise HTTPException(503, f"the database could not say {unanswered}: {e}") from None


# ------------------------------------------------------------------ who serves it


async def agent_elsewhere(d: WebDeps, request: Request, login: str) -> Response | None:
    """Forward an agent control when another member serves agent `login` (its lease); None:
    this instance acts on it itself (it serves the agent, nobody does, or no cluster)."""
    cluster = cluster_of(d, request)
    if cluster is None or login in cluster.mine:
        return None
    lease = await ask_db(
        dbc.agent_lease(d.sessions, login), f"which dialer instance serves agent {login!r}"
    )
    if lease is None or lease.holder == cluster.id:
        return None
    return await forward(d, request, cluster, lease.holder, f"agent {login!r}", timeout_s=CONTROL_S)


async def call_elsewhere(d: WebDeps, request: Request, attempt_id: int) -> Response | None:
    """Forward a listen-in start when another member placed attempt `attempt_id` (the call
    lives on its SIP nodes); None: this instance answers it itself."""
    cluster = cluster_of(d, request)
    if cluster is None:
        return None
    owner = await ask_db(
        dbc.attempt_dialer(d.sessions, attempt_id),
        f"which dialer instance holds attempt {attempt_id}",
    )
    if not owner or owner == cluster.id:
        return None
    return await forward(
        d, request, cluster, owner, f"the call of attempt {attempt_id}", timeout_s=LISTEN_START_S
    )


async def session_elsewhere(d: WebDeps, request: Request, session_id: str) -> Response | None:
    """A listen-in session not held here (a mode change, a stop): the live members are asked
    in turn; the one that holds it answers (the others answer 404 and change nothing). None:
    no cluster, or nobody holds it (this instance's own 404 follows). 503 when nobody said
    yes and some member could not be asked: it may hold the session."""
    cluster = cluster_of(d, request)
    if cluster is None:
        return None
    try:
        peers, dark = await live_peers(d, cluster)
    except RepositoryError as e:
        raise HTTPException(503, f"the database could not list the dialer instances: {e}") from None
    missed = [(x, "advertises no console") for x in dark]
    for to in peers:
        try:
            got = await send(d, request, cluster, to, timeout_s=CONTROL_S)
        except Unavailable as e:
            missed.append((to.dialer_id, e.message))
            continue
        if got.status_code != 404:
            return answered(request, got, to.dialer_id)
    if missed:
        first = missed[0][0]
        return Unavailable(
            first,
            f"no live listen-in session {session_id[:80]!r} here or on "
            "the instances that answered; not asked: "
            + "; ".join(f"{i}: {why}" for i, why in missed),
        ).response()
    return None


async def others_sessions(
    d: WebDeps, request: Request
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The other live members' listen-in sessions (each marked with its instance), and the
    members that could not say (left out of the list, named)."""
    cluster = cluster_of(d, request)
    if cluster is None:
        return [], []
    try:
        peers, dark = await live_peers(d, cluster)
    except RepositoryError as e:
        return [], [{"instance": "*", "detail": f"the database could not list them: {e}"}]

    async def one(to: Peer) -> list[dict[str, Any]]:
        got = await send(d, request, cluster, to, timeout_s=LIST_S)
        if got.status_code != 200:
            raise HTTPException(got.status_code, got.text[:200])
        return [dict(x, instance=to.dialer_id) for x in got.json().get("sessions", [])]

    answers = await asyncio.gather(*(one(p) for p in peers), return_exceptions=True)
    sessions: list[dict[str, Any]] = []
    missing = [{"instance": x, "detail": "advertises no console"} for x in dark]
    for to, got in zip(peers, answers, strict=True):
        if isinstance(got, BaseException):
            detail = (
                got.message
                if isinstance(got, Unavailable)
                else getattr(got, "detail", None) or type(got).__name__
            )
            missing.append({"instance": to.dialer_id, "detail": str(detail)})
        else:
            sessions.extend(got)
    return sessions, missing
