"""The console's companies page (docs/console.md): client companies' calendars.

* `GET /api/console/companies`: every company with its zone, hours, holidays and leads
* `GET /api/console/companies/{key}?from=YYYY-MM-DD`: one company (by name or id) with a week
  of its open intervals in its own zone and why a day is short (day off, closure, public
  holiday, special day), today's status, and per campaign the overlap of those hours with
  the campaign's callee calling window (the callee taken to be at the company, in its zone)
* `PUT /api/console/companies/{key}`: change the calendar with the same parsing, validation
  and errors as `dialer companies set` (scheduling/hours_spec.py; the result must open,
  checked in the write's own transaction), plus one audit row

Hours are written as people write them: "mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00".
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from db import audit
from db.audit import Actor
from db.companies import company_by_key, list_companies, update_company
from db.lookups import campaigns_by_name
from db.models import Company
from db.repositories import RepositoryError
from dialer.lead_rows import canonical_zone
from dialer.web.auth import Signed, role
from dialer.web.deps import WebDeps, deps
from scheduling.calendar import WEEKDAY_NAMES, CalendarError, CompanyCalendar, zone
from scheduling.hours_spec import (
    CalendarChange,
    day_notes,
    format_holidays,
    format_hours,
    format_intervals,
    parse_closure,
    parse_days,
    parse_holidays,
    parse_hours,
    parse_special_day,
    weekly_from_json,
)
from scheduling.windows import CallingWindow

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/console/companies")
Deps = Annotated[WebDeps, Depends(deps)]
Supervisor = Annotated[Signed, Depends(role("supervisor", "admin"))]
WEEK = 7


class CalendarEdit(BaseModel):
    """A calendar edit as `dialer companies set` takes it (each field: its option)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(default=None, max_length=64)
    hours: str | None = Field(default=None, max_length=500)
    days_off: str | None = Field(default=None, max_length=100)
    holidays: str | None = Field(default=None, max_length=20)
    add_closures: list[str] = Field(default_factory=list, max_length=50)
    clear_closures: bool = False
    special_days: list[str] = Field(default_factory=list, max_length=50)
    clear_special_days: bool = False


def _change(body: CalendarEdit) -> CalendarChange:
    """The edit as scheduling's CalendarChange; CalendarError names the field."""
    tz = None
    if body.timezone is not None:
        tz = canonical_zone(body.timezone)
        if tz is None:
            raise CalendarError(f'timezone "{body.timezone}": not a time zone; expected an '
                                "IANA time zone such as Europe/Riga")
    return CalendarChange(
        timezone=tz,
        hours=parse_hours(body.hours, "hours") if body.hours is not None else None,
        days_off=parse_days(body.days_off, "days_off") if body.days_off else frozenset(),
        holidays=parse_holidays(body.holidays, "holidays") if body.holidays is not None
        else None,
        clear_closures=body.clear_closures,
        add_closures=[parse_closure(c, "add_closures") for c in body.add_closures],
        clear_special_days=body.clear_special_days,
        set_special_days=dict(parse_special_day(x, "special_days") for x in body.special_days),
    )


def _hours(company: Company) -> str:
    try:
        return format_hours(weekly_from_json(company.weekly_hours))
    except CalendarError as e:
        return f"unusable: {e}"


def _summary(company: Company, leads: int) -> dict[str, Any]:
    return {"id": company.id, "name": company.name, "timezone": company.timezone,
            "hours": _hours(company),
            "holidays": format_holidays(company.holiday_country, company.holiday_subdivision),
            "closures": [c for c in company.closures or [] if isinstance(c, dict)],
            "special_days": dict(sorted((company.special_days or {}).items())),
            "leads": leads}


def _pairs(iv: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> list[list[str]]:
    return [[f"{a // 60:02d}:{a % 60:02d}", f"{b // 60:02d}:{b % 60:02d}"] for a, b in iv]


def _intersect(a: tuple[tuple[int, int], ...],
               b: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if s < e:
                out.append((s, e))
    return sorted(out)


@router.get("")
async def companies(s: Supervisor, d: Deps) -> dict[str, Any]:
    return {"companies": [_summary(c, n) for c, n in await list_companies(d.sessions)]}


@router.get("/{key}")
async def company(key: str, s: Supervisor, d: Deps,
                  from_: Annotated[str | None, Query(alias="from", max_length=10)] = None
                  ) -> dict[str, Any]:
    got = await company_by_key(d.sessions, key)
    if got is None:
        raise HTTPException(404, f"no company named {key!r}")
    row, leads = got
    out = _summary(row, leads)
    try:
        cal = CompanyCalendar.from_company(row)
    except CalendarError as e:
        out.update(usable=False, problem=str(e), week=[], today=None, overlap=[])
        return out
    now = d.clock.now()
    today = now.astimezone(zone(cal.timezone)).date()
    first = today
    if from_:
        try:
            first = date.fromisoformat(from_)
        except ValueError:
            raise HTTPException(422, f'from "{from_}": not a date; expected YYYY-MM-DD') \
                from None
    days = [first + timedelta(days=k) for k in range(WEEK)]
    week = [{"date": x.isoformat(), "weekday": WEEKDAY_NAMES[x.weekday()],
             "open": _pairs(cal.day_intervals(x)), "notes": day_notes(cal, x)} for x in days]
    next_open = cal.next_open(now)
    out["usable"] = True
    out["week"] = week
    out["today"] = {"date": today.isoformat(), "local_time": now.astimezone(
        zone(cal.timezone)).isoformat(), "open_now": cal.is_open(now),
        "open": _pairs(cal.day_intervals(today)), "notes": day_notes(cal, today),
        "next_open": next_open.isoformat() if next_open else None}
    overlap = []
    for c in await campaigns_by_name(d.sessions):
        try:
            window = CallingWindow.from_config(c.calling_window).in_zone(cal.timezone)
        except CalendarError as e:
            overlap.append({"campaign": c.name, "window": c.calling_window, "problem": str(e),
                            "days": []})
            continue
        overlap.append({"campaign": c.name, "window": c.calling_window, "days": [
            {"date": x.isoformat(), "callee_window": _pairs(window.day_intervals(x)),
             "overlap": _pairs(_intersect(cal.day_intervals(x), window.day_intervals(x))),
             "text": format_intervals(_intersect(cal.day_intervals(x),
                                                 window.day_intervals(x)))}
            for x in days]})
    out["overlap"] = overlap
    return out


@router.put("/{key}")
async def edit_company(key: str, body: CalendarEdit, s: Supervisor, d: Deps) -> dict[str, Any]:
    try:
        change = _change(body)
    except CalendarError as e:
        raise HTTPException(422, str(e)) from None
    if change.is_empty():
        raise HTTPException(422, "nothing to change: give timezone, hours, days_off, holidays, "
                                 "add_closures, clear_closures, special_days or "
                                 "clear_special_days")
    now = d.clock.now()

    def validate(company: Company) -> None:
        CompanyCalendar.from_company(company).validate(now=now)

    try:
        row = await update_company(d.sessions, key, edit=change.apply, validate=validate)
    except CalendarError as e:
        raise HTTPException(422, f"company {key!r} not changed: {e}") from None
    except RepositoryError as e:
        raise HTTPException(503, f"company {key!r} not changed: {e}") from None
    if row is None:
        raise HTTPException(404, f"no company named {key!r}")
    await audit.record(d.sessions, Actor.user(s.login), "company.set", f"company:{row.name}",
                       body.model_dump(exclude_defaults=True), now=now)
    log.info("company %s: calendar changed by %s", row.id, s.login)
    got = await company_by_key(d.sessions, row.id)
    return _summary(row, got[1] if got is not None else 0) | {"changed": True}
