"""The agent desktop's HTTP reads (docs/web.md): `/api/agent/context/{attempt_id}`,
`/api/agent/lead-context/{lead_id}`, `/api/agent/check-contact`, `/api/agent/callbacks`,
`/api/agent/day`, `/api/agent/transfer-targets`.

An agent sees its own calls only: an attempt of another agent answers 404, exactly like one
that does not exist; a lead likewise unless it is offered to the agent in preview now or one
of the agent's calls was to it. The day's figures are the end-of-day report's
(scheduling/report.py), computed for the agent's campaign and cut to the agent's row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from db import web_accounts as accounts
from db.models import Campaign
from db.web_accounts import AttemptContext
from dialer.web.auth import AgentSession
from dialer.web.console_forward import agent_elsewhere
from dialer.web.contact_rules import check_contact, describe
from dialer.web.deps import WebDeps, deps
from scheduling.calendar import zone
from scheduling.days import local_date, local_day_bounds
from scheduling.report import ReportRow, compute_day_report

router = APIRouter(prefix="/api/agent")

Deps = Annotated[WebDeps, Depends(deps)]

#: the day's report is computed over the whole campaign: desktops polling it share one
#: reading for this long
_DAY_CACHE_S = 5.0


async def _own_attempt(d: WebDeps, s: Any, attempt_id: int) -> AttemptContext:
    login = s.login
    live = d.desk.holds_call(login, attempt_id) if d.desk is not None else False
    ctx = await accounts.attempt_context(d.sessions, attempt_id,
                                         agent_id=s.session.user.agent_id, live_call=live)
    if ctx is None:
        raise HTTPException(404, f"attempt {attempt_id} not found among your calls")
    return ctx


async def _campaign(d: WebDeps, s: Any) -> Campaign:
    c = await d.agent_campaign(s.session.user)
    if c is None:
        raise HTTPException(404, "you take calls for no campaign on this dialer")
    return c


@router.get("/context/{attempt_id}", response_model=None)
async def context(
    attempt_id: int, request: Request, s: AgentSession, d: Deps
) -> dict[str, Any] | Response:
    # in a cluster the member serving the agent knows which call it holds now (one
    # transferred to it is not its by the attempt's row)
    forwarded = await agent_elsewhere(d, request, s.login)
    if forwarded is not None:
        return forwarded
    ctx = await _own_attempt(d, s, attempt_id)
    return describe(ctx, d.clock.now())


@router.get("/lead-context/{lead_id}")
async def lead_context(lead_id: int, s: AgentSession, d: Deps) -> dict[str, Any]:
    """The context of a lead offered in preview (a `preview` carries no attempt yet): the
    same body as an attempt's, with `attempt_id` and `ended_at` null."""
    offered = d.hub.offered_lead(s.login) == lead_id
    agent_id = s.session.user.agent_id
    assert agent_id is not None, "role('agent') guarantees an agents row"
    ctx = await accounts.lead_context(d.sessions, lead_id, agent_id=agent_id, offered=offered)
    if ctx is None:
        raise HTTPException(404, f"lead {lead_id} is not offered to you and none of your "
                                 "calls was to it")
    return describe(ctx, d.clock.now())


@router.get("/check-contact")
async def contact_check(
    s: AgentSession, d: Deps,
    attempt_id: Annotated[int, Query(gt=0)],
    at: Annotated[str, Query(min_length=10, max_length=40)],
) -> dict[str, Any]:
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise HTTPException(422, "at: expected an ISO 8601 time such as "
                                 "2026-12-01T15:00:00+02:00") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise HTTPException(422, "at: give the time with its UTC offset "
                                 "(2026-12-01T15:00:00+02:00)")
    ctx = await _own_attempt(d, s, attempt_id)
    return check_contact(ctx, when, d.clock.now())


@router.get("/callbacks")
async def callbacks(s: AgentSession, d: Deps) -> dict[str, Any]:
    """Pending callbacks due by the end of the campaign's day (overdue ones included): the
    agent's own first, then the campaign's "anyone" ones."""
    c = await _campaign(d, s)
    now = d.clock.now()
    day = local_date(now, c.timezone)
    _, end = local_day_bounds(day, c.timezone)
    agent_id = s.session.user.agent_id
    assert agent_id is not None, "role('agent') guarantees an agents row"
    rows = await accounts.callbacks_due(d.sessions, agent_id=agent_id, campaign_id=c.id,
                                        until=end)
    return {"date": day.isoformat(), "campaign": c.name, "callbacks": [
        {"callback_id": cb.callback_id, "lead_id": cb.lead_id, "lead_name": cb.lead_name,
         "company": cb.company, "due_at": cb.due_at.isoformat(),
         "due_local": cb.due_at.astimezone(zone(cb.timezone)).isoformat(),
         "timezone": cb.timezone, "scope": cb.scope.value, "mine": cb.mine,
         "overdue": cb.due_at < now, "notes": cb.notes}
        for cb in rows]}


@router.get("/day")
async def day(s: AgentSession, d: Deps) -> dict[str, Any]:
    """The agent's day so far: its row of the end-of-day report (campaign-local day)."""
    c = await _campaign(d, s)
    today = local_date(d.clock.now(), c.timezone)
    key = (c.id, today.isoformat())
    cache: dict[tuple[int, str], tuple[float, list[ReportRow]]] = d.day_cache
    cached = cache.get(key)
    if cached is not None and d.clock.monotonic() - cached[0] < _DAY_CACHE_S:
        rows = cached[1]
    else:
        rows = await compute_day_report(d.sessions, campaign_id=c.id, report_date=today)
        if len(cache) > 256:
            cache.clear()
        cache[key] = (d.clock.monotonic(), rows)
    mine = next((r for r in rows if r.agent_id == s.session.user.agent_id), None)
    figures = ("planned", "called", "reached", "meetings", "contracts", "callbacks", "talk_s")
    out: dict[str, Any] = {"date": today.isoformat(), "campaign": c.name,
                           "agent": s.login}
    out.update({f: (getattr(mine, f) if mine is not None else 0) for f in figures})
    return out


@router.get("/transfer-targets", response_model=None)
async def transfer_targets(
    request: Request, s: AgentSession, d: Deps
) -> dict[str, Any] | Response:
    """The Transfer panel's picker: the agent's campaign's ready agents, the agent itself
    left out, and the named groups of its other agents with how many are ready (empty on a
    web server without a running dialer). In a cluster, the answer of the member serving the
    agent: it carries the transfer out (to its own agents or, lent, another member's).
    """
    forwarded = await agent_elsewhere(d, request, s.login)
    if forwarded is not None:
        return forwarded
    c = await _campaign(d, s)
    logins = d.desk.transfer_targets(s.login) if d.desk is not None else []
    groups = d.desk.transfer_groups(s.login) if d.desk is not None else []
    return {"campaign": c.name, "agents": [{"login": login} for login in logins],
            "groups": groups}
