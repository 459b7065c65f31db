"""The supervisor console's JSON API (docs/console.md): `/api/console/...`.

Every path needs a session of role supervisor or admin (an agent's gets 403, none or a forged
one 401) and, on writes, the X-CSRF-Token header (dialer/web/auth.py). The wallboard is
polled: `GET /api/console/snapshot` every 2 s (docs/console.md says why not a WebSocket).
Controls go to the running dialer's `Control` (dialer/control): each writes one audit row;
its `ControlError` becomes the HTTP status it names.

* `GET  /api/console/snapshot`: every running campaign's wallboard and today's report so far
* `POST /api/console/campaigns/{name}/{pause|resume|stop|start}` `{"reason"}`
* `PUT  /api/console/campaigns/{name}/dial` `{"dial_mode", "max_dial_level"}`
* `GET  /api/console/campaigns`: every campaign of the database with its settings
* `GET  /api/console/agents`: agents of this dialer with state and campaign
* `POST /api/console/agents/{login}/{pause|logout}` `{"reason"}`,
  `POST /api/console/agents/{login}/move` `{"campaign"}`
* `GET  /api/console/audit?limit=&before_id=`: the audit log, newest first

In a cluster an agent control (pause, logout, move, groups) for an agent another member
serves goes to that member's console and its answer comes back unchanged
(dialer/web/console_forward.py); the member that acts writes the one audit row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.vocabulary import MAX_GROUPS_PER_AGENT, check_groups
from db import audit
from db.audit import Actor
from db.lookups import campaigns_by_name
from db.repositories import RepositoryError, set_agent_groups
from dialer.control import Control, ControlError
from dialer.control.board import campaign_board, day_report
from dialer.web.auth import Signed, role
from dialer.web.console_forward import agent_elsewhere
from dialer.web.deps import WebDeps, deps

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/console")

Deps = Annotated[WebDeps, Depends(deps)]
Supervisor = Annotated[Signed, Depends(role("supervisor", "admin"))]

#: today's report is computed over the whole campaign: pollers share one reading this long
REPORT_CACHE_S = 2.0
#: the wallboard's polling period (the page reads it from the snapshot)
POLL_S = 2.0

T = TypeVar("T")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


class DialChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dial_mode: str | None = Field(default=None, max_length=24)
    max_dial_level: float | None = None


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign: str = Field(min_length=1, max_length=100)


class Groups(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(max_length=MAX_GROUPS_PER_AGENT)

    @field_validator("groups")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return check_groups(v)


def actor_of(s: Signed) -> Actor:
    return Actor.user(s.login)


def control_of(d: WebDeps) -> Control:
    if d.console is None:
        raise HTTPException(503, "the console's controls need a running dialer; this web "
                                 "server runs without one")
    return d.console


async def run_control(call: Awaitable[T]) -> T:
    try:
        return await call
    except ControlError as e:
        raise HTTPException(e.status, e.message) from None


# ---------------------------------------------------------------- wallboard


async def _report(d: WebDeps, rt: Any) -> dict[str, Any]:
    key = (rt.campaign.id, "console")
    cached = d.day_cache.get(key)
    now_mono = d.clock.monotonic()
    if cached is not None and now_mono - cached[0] < REPORT_CACHE_S:
        return dict(cached[1])
    report = await day_report(d.sessions, rt, d.clock.now())
    if len(d.day_cache) > 256:
        d.day_cache.clear()
    d.day_cache[key] = (now_mono, report)
    return report


@router.get("/snapshot")
async def snapshot(s: Supervisor, d: Deps) -> dict[str, Any]:
    """Every running campaign's live figures (one reading with /metrics) and today's report
    so far (read after the live figures: the database part may be up to 2 s old)."""
    control = control_of(d)
    now = d.clock.now()
    boards = [campaign_board(rt, control, now) for rt in control.runtimes.values()]
    if control.cluster_view is not None:  # the other instances' shares (docs/cluster.md)
        try:
            boards = await control.cluster_view.merged(boards, now)
        except RepositoryError as e:  # this instance's own board still shows
            for board in boards:
                board["instances_error"] = str(e)
    # where the Agents controls may move an agent: the campaigns running here and, in a
    # cluster, on the other live instances (the serving instance carries the move out)
    move_to = set(control.runtimes)
    for board in boards:
        board["report"] = await _report(d, control.runtimes[board["name"]])
    if control.cluster_view is not None:
        with contextlib.suppress(RepositoryError):
            move_to |= set(await control.cluster_view.campaigns_elsewhere())
    return {"at": now.isoformat(), "poll_s": POLL_S, "campaigns": boards,
            "move_to": sorted(move_to), "me": {"login": s.login, "role": s.role}}


# ---------------------------------------------------------------- campaign controls


@router.post("/campaigns/{name}/pause")
async def pause(name: str, body: Reason, s: Supervisor, d: Deps) -> dict[str, Any]:
    c = control_of(d)
    await run_control(c.pause_campaign(name, actor_of(s), body.reason))
    return {"campaign": name, "state": c.state_of(name)}


@router.post("/campaigns/{name}/resume")
async def resume(name: str, body: Reason, s: Supervisor, d: Deps) -> dict[str, Any]:
    c = control_of(d)
    return {"campaign": name,
            "state": await run_control(c.resume_campaign(name, actor_of(s), body.reason))}


@router.post("/campaigns/{name}/stop")
async def stop(name: str, body: Reason, s: Supervisor, d: Deps) -> dict[str, Any]:
    c = control_of(d)
    await run_control(c.stop_campaign(name, actor_of(s), body.reason))
    return {"campaign": name, "state": c.state_of(name)}


@router.post("/campaigns/{name}/start")
async def start(name: str, body: Reason, s: Supervisor, d: Deps) -> dict[str, Any]:
    c = control_of(d)
    return {"campaign": name,
            "state": await run_control(c.start_campaign(name, actor_of(s), body.reason))}


@router.put("/campaigns/{name}/dial")
async def set_dial(name: str, body: DialChange, s: Supervisor, d: Deps) -> dict[str, Any]:
    c = control_of(d)
    got = await run_control(c.set_dial(name, actor_of(s), mode=body.dial_mode,
                                       max_dial_level=body.max_dial_level))
    return {"campaign": name, **got}


@router.get("/campaigns")
async def campaigns(s: Supervisor, d: Deps) -> dict[str, Any]:
    """Every campaign of the database: settings, and its state where it runs here."""
    control = d.console
    out = []
    for c in await campaigns_by_name(d.sessions):
        running = control is not None and c.name in control.runtimes
        row = control.runtimes[c.name].campaign if running and control else c
        out.append({
            "name": c.name, "running": running,
            "state": control.state_of(c.name) if running and control else "not_running",
            "dial_mode": row.dial_mode.value, "max_dial_level": row.max_dial_level,
            "lines_per_agent": row.lines_per_agent, "abandon_cap": row.abandon_cap,
            "abandon_window": row.abandon_window.value, "timezone": row.timezone,
            "calendar_active": c.active, "trunk": c.trunk,
        })
    return {"campaigns": out}


# ---------------------------------------------------------------- agents


@router.get("/agents")
async def agents(s: Supervisor, d: Deps) -> dict[str, Any]:
    """The agents of this dialer's campaigns with their state now; in a cluster their state
    where they are served, and which instance serves them (as on the wallboard)."""
    control = control_of(d)
    now = d.clock.now()
    runtimes = list(control.runtimes.values())
    boards = [campaign_board(rt, control, now) for rt in runtimes]
    if control.cluster_view is not None:
        with contextlib.suppress(RepositoryError):  # this instance's own states still show
            boards = await control.cluster_view.merged(boards, now)
    out = []
    for rt, merged in zip(runtimes, boards, strict=True):
        board = {a["login"]: a for a in merged["agents"]}
        # this instance's agents, and the ones another instance serves (not in rt.agents)
        for login in sorted(set(rt.agents) | set(board)):
            row, live = rt.agents.get(login), board.get(login, {})
            out.append({"login": login, "campaign": rt.name,
                        "display_name": row.display_name if row else live.get("display_name"),
                        "state": live.get("state", "logged_out"),
                        "reason": live.get("reason"), "since": live.get("since"),
                        "pending": live.get("pending"),
                        "groups": list(row.groups or []) if row else live.get("groups", []),
                        "instance": live.get("instance")})
    return {"agents": out, "campaigns": sorted(control.runtimes)}


# the role and CSRF checks (Supervisor) run here before an agent control is forwarded, and
# again on the member that takes it (it authenticates the forwarded request itself)


@router.post("/agents/{login}/pause")
async def agent_pause(login: str, body: Reason, s: Supervisor, d: Deps,
                      request: Request) -> Any:
    if (elsewhere := await agent_elsewhere(d, request, login)) is not None:
        return elsewhere
    return await run_control(control_of(d).force_pause(login, actor_of(s), body.reason))


@router.post("/agents/{login}/logout")
async def agent_logout(login: str, body: Reason, s: Supervisor, d: Deps,
                       request: Request) -> Any:
    if (elsewhere := await agent_elsewhere(d, request, login)) is not None:
        return elsewhere
    return await run_control(control_of(d).force_logout(login, actor_of(s), body.reason))


@router.put("/agents/{login}/groups")
async def agent_groups(login: str, body: Groups, s: Supervisor, d: Deps,
                       request: Request) -> Any:
    """Replace the agent's named groups (transfer targets, docs/call-controls.md): in the
    database (one audit row) and, on a running dialer, at once for the next transfer (in a
    cluster: on the member serving the agent, which takes the request)."""
    if (elsewhere := await agent_elsewhere(d, request, login)) is not None:
        return elsewhere
    try:
        found = await set_agent_groups(d.sessions, login, body.groups)
    except RepositoryError as e:
        raise HTTPException(503, f"the database did not take the change: {e}") from None
    if not found:
        raise HTTPException(404, f"no agent {login!r}")
    await audit.record(d.sessions, actor_of(s), "agent.groups", f"agent:{login}",
                       {"groups": body.groups}, now=d.clock.now())
    if d.console is not None:
        for rt in d.console.runtimes.values():
            row = rt.agents.get(login)
            if row is not None:
                row.groups = list(body.groups)
    log.info("web: %s set agent %s's groups (%d)", s.login, login, len(body.groups))
    return {"login": login, "groups": body.groups}


@router.post("/agents/{login}/move")
async def agent_move(login: str, body: Move, s: Supervisor, d: Deps,
                     request: Request) -> Any:
    if (elsewhere := await agent_elsewhere(d, request, login)) is not None:
        return elsewhere
    return await run_control(control_of(d).move_agent(login, body.campaign, actor_of(s)))


# ---------------------------------------------------------------- audit


@router.get("/audit")
async def audit_log(
    s: Supervisor, d: Deps,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    rows = await audit.entries(d.sessions, limit=limit, before_id=before_id)
    return {"entries": [
        {"id": r.id, "at": r.at.isoformat(), "actor_kind": r.actor.kind, "actor": r.actor.name,
         "action": r.action, "target": r.target, "detail": r.detail} for r in rows]}
