"""The supervisor console's listen-in (docs/console.md): `/api/console/listen`.

A supervisor (or admin) joins a live call to their own phone through the call's node
(dialer.call_controls.ListenIn, docs/call-controls.md): silent monitor, whisper (the agent
hears the supervisor, the customer does not) or barge (both hear them).

* `GET    /api/console/listen`: the live sessions (who listens to which agent, in which mode)
* `POST   /api/console/listen` `{"attempt_id", "phone", "mode"}`: ring the supervisor's phone
  and join it to the call; answers once the phone is connected (up to ~25 s)
* `PUT    /api/console/listen/{session_id}` `{"mode"}`: switch mode on the same phone call
* `DELETE /api/console/listen/{session_id}`: hang up the supervisor's leg (the call goes on)

Each one that took effect writes an audit row (`listen.start`, `listen.mode`, `listen.stop`,
target `attempt:<id>`) with the mode; a refusal writes none and is answered
`{"detail", "reason"}` with the status that means it: 404 `no_such_call`, 409 `not_bridged`
or `node_full` (retry later), 422 `invalid`, 502 `failed` (the phone did not answer, was busy,
or the call ended meanwhile). A listen whose audit row cannot be written is hung up again
(503): nobody listens in without a record. The supervisor's phone URI is never logged at INFO
nor stored in the audit row.

In a cluster (docs/cluster.md) a session lives on the instance that placed the call (its SIP
node joins the phone): a start for another member's call goes to that member's console, a
mode change or stop of a session not held here goes to the member holding it, and the list
holds every live member's sessions (each with its `instance`; members that could not say
are named in `unreachable`). dialer/web/console_forward.py does the forwarding.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from db import audit
from db.audit import Actor
from dialer.call_controls import ListenError, ListenIn, ListenSession
from dialer.web.auth import Signed, role
from dialer.web.console_forward import call_elsewhere, others_sessions, session_elsewhere
from dialer.web.deps import WebDeps, deps
from sip.api_controls import LISTEN_MODES

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/console/listen")

Deps = Annotated[WebDeps, Depends(deps)]
Supervisor = Annotated[Signed, Depends(role("supervisor", "admin"))]

#: a refusal's reason -> its HTTP status
STATUS = {"no_such_call": 404, "not_bridged": 409, "node_full": 409, "invalid": 422,
          "failed": 502}
#: sip:user@host[:port][;params] (or sips:), no spaces, no headers
SIP_URI = re.compile(r"^sips?:[A-Za-z0-9._~%!$&'()*+,;=-]+@"
                     r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
                     r"|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:;[A-Za-z0-9=._~%-]+)*$")


class Start(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt_id: int = Field(ge=1)
    phone: str = Field(min_length=1, max_length=200)
    mode: str = Field(default="monitor", max_length=16)


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = Field(max_length=16)


def listen_in_of(d: WebDeps) -> ListenIn:
    if d.listen_in is None:
        raise HTTPException(503, "listening in needs a running dialer; this web server runs "
                                 "without one")
    return d.listen_in


def refusal(e: ListenError) -> JSONResponse:
    return JSONResponse({"detail": str(e), "reason": e.reason},
                        status_code=STATUS.get(e.reason, 502))


def check_mode(mode: str) -> None:
    if mode not in LISTEN_MODES:
        raise HTTPException(422, f"mode = {mode[:16]!r}: expected one of {', '.join(LISTEN_MODES)}")


def session_json(s: ListenSession, d: WebDeps) -> dict[str, Any]:
    return {"session_id": s.session_id, "attempt_id": s.attempt_id, "campaign": s.campaign,
            "agent": s.agent, "mode": s.mode, "started_at": s.started_at.isoformat(),
            "join_ms": round(s.join_ms, 1), "by": d.listeners.get(s.session_id),
            "instance": d.cluster.id if d.cluster is not None else None}


def _held_here(li: ListenIn, session_id: str) -> bool:
    return any(x.session_id == session_id for x in li.sessions())


async def _audit(d: WebDeps, s: Signed, action: str, session: ListenSession,
                 detail: dict[str, Any]) -> bool:
    try:
        await audit.record(d.sessions, Actor.user(s.login), action,
                           f"attempt:{session.attempt_id}", detail, now=d.clock.now())
    except Exception:
        log.exception("console: the audit row of %s by %s on attempt %s was not written",
                      action, s.login, session.attempt_id)
        return False
    return True


def _find(li: ListenIn, session_id: str) -> ListenSession:
    got = next((x for x in li.sessions() if x.session_id == session_id), None)
    if got is None:
        raise HTTPException(404, f"no live listen-in session {session_id[:80]!r}")
    return got


@router.get("")
async def sessions(s: Supervisor, d: Deps, request: Request) -> dict[str, Any]:
    """The live listen-in sessions of this dialer (in a cluster: of every live member),
    oldest first."""
    live = listen_in_of(d).sessions()
    ids = {x.session_id for x in live}
    for gone in [k for k in d.listeners if k not in ids]:
        del d.listeners[gone]
    out = [session_json(x, d) for x in live]
    others, unreachable = await others_sessions(d, request)
    out = sorted(out + others, key=lambda x: x["started_at"])
    answer: dict[str, Any] = {"sessions": out, "modes": list(LISTEN_MODES)}
    if unreachable:
        answer["unreachable"] = unreachable
    return answer


@router.post("")
async def start(body: Start, s: Supervisor, d: Deps, request: Request) -> Any:
    li = listen_in_of(d)
    check_mode(body.mode)
    if not SIP_URI.match(body.phone):
        raise HTTPException(422, "phone: expected your phone's SIP URI, such as "
                                 "sip:sue@pbx.example.com")
    if not li.holds_call(body.attempt_id) and (
            elsewhere := await call_elsewhere(d, request, body.attempt_id)) is not None:
        return elsewhere
    try:
        session = await li.listen(body.attempt_id, body.phone, body.mode)
    except ListenError as e:
        log.info("console: %s's listen-in on attempt %s refused (%s)", s.login,
                 body.attempt_id, e.reason)
        return refusal(e)
    d.listeners[session.session_id] = s.login
    ok = await _audit(d, s, "listen.start", session, {
        "mode": session.mode, "agent": session.agent, "campaign": session.campaign,
        "session": session.session_id})
    if not ok:
        try:
            await li.stop_listen(session.session_id)
        except ListenError:
            pass  # gone already
        raise HTTPException(503, "the audit log did not take the listen-in: it was hung up")
    log.info("console: %s listens in (%s) on attempt %s, agent %s", s.login, session.mode,
             session.attempt_id, session.agent)
    return session_json(session, d)


@router.put("/{session_id}")
async def change_mode(session_id: str, body: ModeChange, s: Supervisor, d: Deps,
                      request: Request) -> Any:
    li = listen_in_of(d)
    check_mode(body.mode)
    if not _held_here(li, session_id) and (
            elsewhere := await session_elsewhere(d, request, session_id)) is not None:
        return elsewhere
    before = _find(li, session_id)
    try:
        session = await li.change_mode(session_id, body.mode)
    except ListenError as e:
        return refusal(e)
    if not await _audit(d, s, "listen.mode", session, {
            "mode": session.mode, "before": before.mode, "session": session_id}):
        raise HTTPException(503, f"now in {session.mode}, but its audit row is missing")
    log.info("console: %s switched the listen-in on attempt %s to %s", s.login,
             session.attempt_id, session.mode)
    return session_json(session, d)


@router.delete("/{session_id}")
async def stop(session_id: str, s: Supervisor, d: Deps, request: Request) -> Any:
    li = listen_in_of(d)
    if not _held_here(li, session_id) and (
            elsewhere := await session_elsewhere(d, request, session_id)) is not None:
        return elsewhere
    before = _find(li, session_id)
    try:
        await li.stop_listen(session_id)
    except ListenError as e:
        return refusal(e)
    d.listeners.pop(session_id, None)
    seconds = (d.clock.now() - before.started_at).total_seconds()
    if not await _audit(d, s, "listen.stop", before, {
            "mode": before.mode, "session": session_id, "seconds": round(seconds, 1)}):
        raise HTTPException(503, "stopped, but its audit row is missing")
    log.info("console: %s stopped listening in on attempt %s", s.login, before.attempt_id)
    return {"session_id": session_id, "stopped": True}
