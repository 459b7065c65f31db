"""/api/v1 companies (with their calendars), DNC entries, callbacks, attempts (cursor
pagination), the daily plan and the end-of-day report.

Company calendars are written in the grammar of `dialer companies` (scheduling/hours_spec.py:
`"mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00"`, closures `2026-12-24..2026-12-26`,
special days `2026-12-27=10:00-14:00`, holidays `LV` or `US-NY` or `none`), checked by the
same `CalendarChange` and `checked_calendar`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from common.vocabulary import AttemptResult
from db import api_store, audit
from db import dnc as dnc_store
from db.api_store import AttemptFilter
from db.companies import (
    CompanyUpsert,
    company_by_key,
    list_companies,
    upsert_companies,
)
from db.models import Company
from db.planning import load_plan
from dialer.lead_rows import canonical_zone
from dialer.web.api_v1.base import (
    AttemptsRead,
    CallbacksRead,
    CallbacksWrite,
    CompaniesRead,
    CompaniesWrite,
    Deps,
    DncRead,
    DncWrite,
    ReportsRead,
    actor,
    attempt_json,
    decode_cursor,
    encode_cursor,
    iso,
    store_errors,
)
from dialer.web.api_v1.problems import Problem
from scheduling.calendar import CalendarError
from scheduling.days import local_date
from scheduling.hours_spec import (
    CalendarChange,
    checked_calendar,
    format_hours,
    parse_closures,
    parse_holidays,
    parse_hours,
    parse_special_days,
    weekly_from_json,
)
from scheduling.report import current_day_report

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the "
                                                                 "previous page")]


# ---------------------------------------------------------------- companies


class CompanyIn(BaseModel):
    """A company's calendar; omitted fields stay as they are (a new company needs a
    timezone; its hours default to Mon-Fri 09:00-17:00)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    hours: str | None = Field(default=None, max_length=500,
                              examples=["mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00"])
    holidays: str | None = Field(default=None, max_length=20, examples=["LV", "US-NY", "none"])
    closures: str | None = Field(default=None, max_length=2000,
                                 examples=["2026-12-24..2026-12-26"])
    special_days: str | None = Field(default=None, max_length=2000,
                                     examples=["2026-12-27=10:00-14:00"])


def company_json(c: Company, leads: int | None = None) -> dict[str, Any]:
    try:
        hours = format_hours(weekly_from_json(c.weekly_hours))
    except CalendarError:
        hours = None
    out = {"id": c.id, "name": c.name, "timezone": c.timezone, "hours": hours,
           "weekly_hours": c.weekly_hours, "holiday_country": c.holiday_country,
           "holiday_subdivision": c.holiday_subdivision, "closures": c.closures,
           "special_days": c.special_days}
    if leads is not None:
        out["leads"] = leads
    return out


def _change(body: CompanyIn) -> CalendarChange:
    """The edit, each field parsed by the calendar grammar (422 naming the field)."""
    kw: dict[str, Any] = {}
    field = "timezone"
    try:
        if body.timezone is not None:
            zone = canonical_zone(body.timezone)
            if zone is None:
                raise CalendarError(f"unknown time zone {body.timezone[:64]!r}; expected an "
                                    "IANA name such as Europe/Riga")
            kw["timezone"] = zone
        field = "hours"
        if body.hours is not None:
            kw["hours"] = parse_hours(body.hours)
        field = "holidays"
        if body.holidays is not None:
            kw["holidays"] = parse_holidays(body.holidays)
        field = "closures"
        if body.closures is not None:
            kw["closures"] = parse_closures(body.closures)
        field = "special_days"
        if body.special_days is not None:
            kw["special_days"] = parse_special_days(body.special_days)
    except CalendarError as e:
        raise Problem(422, None, f"{field}: {e}", field=field) from None
    return CalendarChange(**kw)


@router.get("/companies", tags=["companies"])
async def companies(d: Deps, _c: CompaniesRead) -> dict[str, Any]:
    with store_errors():
        rows = await list_companies(d.sessions)
    return {"companies": [company_json(c, n) for c, n in rows]}


@router.get("/companies/{key}", tags=["companies"])
async def company(key: str, d: Deps,
                  _c: CompaniesRead) -> dict[str, Any]:
    """A company by name or id."""
    with store_errors():
        found = await company_by_key(d.sessions, int(key) if key.isdigit() else key)
    if found is None:
        raise Problem(404, None, f"no company {key!r}")
    return company_json(*found)


@router.put("/companies", tags=["companies"])
async def put_company(body: CompanyIn, d: Deps, response: Response,
                      caller: CompaniesWrite) -> dict[str, Any]:
    """Create a company or change its calendar (matched by name); 201 when created."""
    change = _change(body)
    now = d.clock.now()
    problems: list[str] = []

    def edit(current: Any) -> dict[str, Any]:
        values = change.apply(current)
        try:
            checked_calendar(values, name=body.name, now=now)
        except CalendarError as e:
            problems.append(str(e))
            raise
        return values

    with store_errors():
        (result,) = await upsert_companies(d.sessions, [CompanyUpsert(body.name, edit)],
                                           now=now, refuse=(CalendarError, ValueError))
    if result.action == "refused":
        raise Problem(422, None, f"calendar: {result.error}", field="hours")
    with store_errors():
        if result.action != "unchanged":
            await audit.record(d.sessions, actor(caller), "company.create"
                               if result.action == "created" else "company.update",
                               f"company:{result.name}", {}, now=now)
        found = await company_by_key(d.sessions, result.name)
    assert found is not None
    response.status_code = 201 if result.action == "created" else 200
    return {**company_json(*found), "result": result.action}


# ---------------------------------------------------------------- DNC


class DncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=3, max_length=64)
    reason: str | None = Field(default=None, max_length=200)
    #: region of a number written without +country code
    region: str = Field(default="US", pattern=r"^[A-Z]{2}$")


def dnc_json(e: Any) -> dict[str, Any]:
    return {"id": e.id, "phone": e.phone_e164, "source": e.source, "reason": e.reason,
            "added_at": iso(e.added_at)}


@router.post("/dnc", tags=["dnc"], status_code=201)
async def add_dnc(body: DncIn, d: Deps,
                  caller: DncWrite) -> dict[str, Any]:
    """Put a number on the internal do-not-call list (idempotent); its leads stop at once."""
    try:
        number = dnc_store.normalise_number(body.phone, body.region)
    except ValueError as e:
        raise Problem(422, None, f"phone: {e}", field="phone") from None
    now = d.clock.now()
    with store_errors():
        result = await dnc_store.add(d.sessions, number, now=now, reason=body.reason)
        await audit.record(d.sessions, actor(caller), "dnc.add", "dnc:internal",
                           {"added": result.added, "leads_stopped": result.leads_stopped},
                           now=now)
        (entry,) = [e for e in await api_store.list_dnc(d.sessions, after_id=0, limit=1000,
                                                          source="internal", phone=number)]
    return {**dnc_json(entry), "added": bool(result.added),
            "leads_stopped": result.leads_stopped}


@router.get("/dnc", tags=["dnc"])
async def list_dnc(d: Deps, _c: DncRead, limit: Limit = 100,
                   cursor: Cursor = None,
                   source: Annotated[str | None, Query(max_length=32)] = None,
                   ) -> dict[str, Any]:
    after = decode_cursor(cursor, (int,))[0] if cursor else 0
    with store_errors():
        rows = await api_store.list_dnc(d.sessions, after_id=after, limit=limit, source=source)
    return {"entries": [dnc_json(e) for e in rows],
            "next_cursor": encode_cursor(rows[-1].id) if len(rows) == limit else None}


@router.delete("/dnc/{entry_id}", tags=["dnc"], status_code=204)
async def delete_dnc(entry_id: int, d: Deps,
                     caller: DncWrite) -> None:
    """Remove an entry: the number may be called again by leads added later (the leads it
    stopped stay stopped)."""
    with store_errors():
        await api_store.delete_dnc(d.sessions, entry_id, actor=actor(caller), now=d.clock.now())


# ---------------------------------------------------------------- callbacks


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead_id: int = Field(gt=0)
    due_at: AwareDatetime
    #: an agent's login: the callback is theirs; none: anyone of the campaign
    agent: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=2000)


def callback_json(c: Any, agent: str | None) -> dict[str, Any]:
    return {"id": c.id, "campaign_id": c.campaign_id, "lead_id": c.lead_id,
            "scope": c.scope.value, "agent": agent, "due_at": iso(c.due_at),
            "timezone": c.timezone, "status": c.status, "notes": c.notes,
            "created_at": iso(c.created_at)}


@router.get("/callbacks", tags=["callbacks"])
async def callbacks(d: Deps, _c: CallbacksRead, limit: Limit = 100,
                    cursor: Cursor = None,
                    campaign: Annotated[str | None, Query(max_length=100)] = None,
                    status: Annotated[str | None, Query(
                        pattern="^(pending|done|cancelled)$")] = None,
                    lead_id: Annotated[int | None, Query(gt=0)] = None) -> dict[str, Any]:
    after = decode_cursor(cursor, (int,))[0] if cursor else 0
    with store_errors():
        cid = (await api_store.get_campaign(d.sessions, campaign)).id if campaign else None
        rows = await api_store.list_callbacks(d.sessions, campaign_id=cid, status=status,
                                              lead_id=lead_id, after_id=after, limit=limit)
    return {"callbacks": [callback_json(c, a) for c, a in rows],
            "next_cursor": encode_cursor(rows[-1][0].id) if len(rows) == limit else None}


@router.post("/callbacks", tags=["callbacks"], status_code=201)
async def create_callback(body: CallbackIn, d: Deps,
                          caller: CallbacksWrite) -> dict[str, Any]:
    now = d.clock.now()
    if body.due_at <= now:
        raise Problem(422, None, "due_at: must be in the future", field="due_at")
    with store_errors():
        cb = await api_store.create_callback(d.sessions, lead_id=body.lead_id,
                                             due_at=body.due_at, agent_login=body.agent,
                                             notes=body.notes, actor=actor(caller), now=now)
    return callback_json(cb, body.agent)


@router.delete("/callbacks/{callback_id}", tags=["callbacks"])
async def cancel_callback(callback_id: int, d: Deps,
                          caller: CallbacksWrite) -> dict[str, Any]:
    with store_errors():
        cb = await api_store.cancel_callback(d.sessions, callback_id, actor=actor(caller),
                                             now=d.clock.now())
    return callback_json(cb, None)


# ---------------------------------------------------------------- attempts


@router.get("/attempts", tags=["attempts"])
async def attempts(
    d: Deps, _c: AttemptsRead, limit: Limit = 100,
    cursor: Cursor = None,
    campaign: Annotated[str | None, Query(max_length=100)] = None,
    lead_id: Annotated[int | None, Query(gt=0)] = None,
    since: Annotated[AwareDatetime | None, Query(description="created at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="created before")] = None,
    result: Annotated[list[AttemptResult] | None, Query()] = None,
) -> dict[str, Any]:
    """Call attempts oldest first, filtered; page with `next_cursor` (opaque, over the
    attempt's creation time and id: pages neither skip nor repeat rows as calls are
    added)."""
    after = None
    if cursor:
        at, aid = decode_cursor(cursor, (datetime, int))
        after = (at, aid)
    with store_errors():
        cid = (await api_store.get_campaign(d.sessions, campaign)).id if campaign else None
        rows = await api_store.attempts_page(
            d.sessions, AttemptFilter(campaign_id=cid, lead_id=lead_id, since=since,
                                      until=until, results=[r.value for r in result or ()]),
            after=after, limit=limit)
    return {"attempts": [attempt_json(a) for a in rows],
            "next_cursor": encode_cursor(rows[-1].created_at, rows[-1].id)
            if len(rows) == limit else None}


# ---------------------------------------------------------------- plan and report


def _day(value: str | None, zone: str, now: datetime) -> date:
    if value is None:
        return local_date(now, zone)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Problem(422, None, "date: expected YYYY-MM-DD", field="date") from None


@router.get("/campaigns/{name}/plan", tags=["reports"])
async def plan(name: str, d: Deps, _c: ReportsRead,
               day: Annotated[str | None, Query(alias="date", max_length=10)] = None,
               ) -> dict[str, Any]:
    """The stored daily plan of a campaign's local day (today by default): the shared part
    and each agent's, in calling order. `built: false` when no plan was built that day."""
    with store_errors():
        c = await api_store.get_campaign(d.sessions, name)
        when = _day(day, c.timezone, d.clock.now())
        stored = await load_plan(d.sessions, campaign_id=c.id, plan_date=when)
    return {"campaign": c.name, "date": when.isoformat(), "built": bool(stored), "plans": [
        {"agent_id": p.agent_id, "size": p.size, "built_at": iso(p.built_at),
         "items": [{"lead_id": i.lead_id, "position": i.position, "reason": i.reason,
                    "due_at": iso(i.due_at)} for i in items]}
        for p, items in stored]}


@router.get("/campaigns/{name}/report", tags=["reports"])
async def report(name: str, d: Deps, _c: ReportsRead,
                 day: Annotated[str | None, Query(alias="date", max_length=10)] = None,
                 ) -> dict[str, Any]:
    """The end-of-day report of a campaign's local day (today, so far, by default): one row
    per agent and one for the dialer's own calls."""
    now = d.clock.now()
    with store_errors():
        c = await api_store.get_campaign(d.sessions, name)
        when = _day(day, c.timezone, now)
        rows = await current_day_report(d.sessions, campaign_id=c.id, timezone=c.timezone,
                                        report_date=when, now=now)
    return {"campaign": c.name, "date": when.isoformat(), "rows": [
        {"agent": r.agent or None, "planned": r.planned, "called": r.called,
         "reached": r.reached, "meetings": r.meetings, "contracts": r.contracts,
         "callbacks": r.callbacks, "talk_s": r.talk_s} for r in rows]}


