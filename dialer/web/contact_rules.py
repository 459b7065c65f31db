"""The calling rules as an agent's desktop shows them: where and when the callee and the
company are, whether a proposed next contact is allowed, and in words why not.

Nothing here decides anything the dialer does: the answers come from the scheduling room's
own objects (`CompanyCalendar`, `CallingWindow`, `next_callable_at`); this module only
reads them at one instant and words the result for a person.
"""

from __future__ import annotations

import itertools
import logging
from datetime import date, datetime
from typing import Any

from db.web_accounts import AttemptContext
from scheduling.calendar import (
    CalendarError,
    CompanyCalendar,
    DayIntervals,
    Schedule,
    is_public_holiday,
    zone,
)
from scheduling.callable import CallingRules, LeadFacts, next_callable_at
from scheduling.windows import CallingWindow, candidate_zones

log = logging.getLogger(__name__)

_DAY_NAMES = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays",
              "Sundays")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def intervals(iv: DayIntervals) -> list[list[str]]:
    return [[_hhmm(a), _hhmm(b)] for a, b in iv]


def _spoken(iv: DayIntervals) -> str:
    return ", ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in iv)


def company_calendar(ctx: AttemptContext) -> CompanyCalendar | None:
    """The calendar the calling rules use for this call's lead (None: no company rule)."""
    if ctx.company is None:
        return None
    try:
        return CompanyCalendar.from_company(ctx.company)
    except CalendarError as e:
        log.error("company %s: unusable calendar: %s", ctx.company.id, e)
        return None


def callee_zones(ctx: AttemptContext) -> tuple[str, ...]:
    return candidate_zones(ctx.lead_timezone, ctx.phone_e164, None)


def calling_window(ctx: AttemptContext) -> CallingWindow:
    return CallingWindow.from_config(ctx.campaign.calling_window)


def company_closed_reason(cal: CompanyCalendar, at: datetime) -> str | None:
    """Why the company is closed at `at`, in words; None when it is open."""
    if cal.is_open(at):
        return None
    local = at.astimezone(zone(cal.timezone))
    d = local.date()
    iv = cal.day_intervals(d)
    if iv:
        minute = local.hour * 60 + local.minute
        if minute < iv[0][0]:
            return f"company opens at {_hhmm(iv[0][0])} (hours {_spoken(iv)})"
        if minute >= iv[-1][1]:
            return f"company closed after {_hhmm(iv[-1][1])} (hours {_spoken(iv)})"
        for (_, end), (start, _) in itertools.pairwise(iv):
            if end <= minute < start:
                return f"company closed {_hhmm(end)}-{_hhmm(start)} (hours {_spoken(iv)})"
        return f"outside the company's hours {_spoken(iv)}"
    return f"company {_closed_day(cal, d)}"


def _closed_day(cal: CompanyCalendar, d: date) -> str:
    """Why a whole local day is closed (in the order CompanyCalendar.day_intervals decides)."""
    if d in cal.special_days:
        return f"closed on {d.isoformat()} (a special day)"
    wd = d.weekday()
    if wd in cal.days_off or not cal.weekly[wd]:
        return f"closed on {_DAY_NAMES[wd]}"
    for a, b in cal.closures:
        if a <= d <= b:
            return f"closed from {a.isoformat()} to {b.isoformat()}"
    if cal.holiday_country and is_public_holiday(cal.holiday_country,
                                                 cal.holiday_subdivision, d):
        return f"closed: public holiday ({cal.holiday_country})"
    return "closed that day"


def window_reason(window: CallingWindow, zones: tuple[str, ...], at: datetime) -> str | None:
    """Why the callee may not be called at `at` (in any of their candidate zones), in words;
    None when every zone allows it."""
    if not zones:
        return "the callee's time zone is unknown"
    for z in zones:
        sched = window.in_zone(z)
        if sched.is_open(at):
            continue
        local = at.astimezone(zone(z))
        d = local.date()
        iv = sched.day_intervals(d)
        where = f" in {z}" if len(zones) > 1 else ""
        if iv:
            return f"outside the callee's calling hours {_spoken(iv)}{where}"
        if window.weekly[d.weekday()]:
            return f"public holiday for the callee ({window.holiday_country}){where}"
        return f"the callee may not be called on {_DAY_NAMES[d.weekday()]}{where}"
    return None


def _day_of(sched: Schedule, at: datetime) -> tuple[datetime, DayIntervals]:
    local = at.astimezone(zone(sched.zone_name))
    return local, sched.day_intervals(local.date())


def describe(ctx: AttemptContext, now: datetime) -> dict[str, Any]:
    """The callee's and the company's zones, local times and hours at `now`."""
    zones = callee_zones(ctx)
    window = calling_window(ctx)
    callee: dict[str, Any] = {"zone": zones[0] if zones else None, "zones": list(zones),
                              "local_time": None, "window": window.name, "hours_today": [],
                              "callable_now": False,
                              "reason": window_reason(window, zones, now)}
    if zones:
        local, iv = _day_of(window.in_zone(zones[0]), now)
        callee.update(local_time=local.isoformat(), hours_today=intervals(iv),
                      callable_now=callee["reason"] is None)
    company: dict[str, Any] | None = None
    cal = company_calendar(ctx)
    if ctx.company is not None:
        company = {"name": ctx.company.name, "zone": ctx.company.timezone, "local_time": None,
                   "open_now": False, "hours_today": [], "closed_reason": None,
                   "next_open": None}
        if cal is not None:
            local, iv = _day_of(cal, now)
            reason = company_closed_reason(cal, now)
            nxt = cal.next_open(now) if reason else None
            company.update(local_time=local.isoformat(), open_now=reason is None,
                           hours_today=intervals(iv), closed_reason=reason,
                           next_open=nxt.isoformat() if nxt else None)
        else:
            company["closed_reason"] = "the company's calendar is unusable"
    return {"attempt_id": ctx.attempt_id, "lead_id": ctx.lead_id,
            "campaign": {"name": ctx.campaign.name, "zone": ctx.campaign.timezone},
            "callee": callee, "company": company}


def check_contact(ctx: AttemptContext, at: datetime, now: datetime) -> dict[str, Any]:
    """May the next contact of this call's lead be at `at`? The company's calendar (hours,
    days off, closures, holidays) and the callee's legal window (hours, holidays) decide;
    `next_allowed` is the first instant from `at` on that both allow."""
    zones = callee_zones(ctx)
    window = calling_window(ctx)
    cal = company_calendar(ctx)
    reasons: list[str] = []
    if at < now:
        reasons.append("that time has passed")
    if ctx.company is not None and cal is None:
        reasons.append("the company's calendar is unusable")
    elif cal is not None and (why := company_closed_reason(cal, at)) is not None:
        reasons.append(why)
    if (why := window_reason(window, zones, at)) is not None:
        reasons.append(why)
    nxt = next_callable_at(
        LeadFacts(timezone=ctx.lead_timezone, phone_e164=ctx.phone_e164, calendar=cal),
        max(at, now), CallingRules(window=window)).at
    return {"allowed": not reasons, "reason": "; ".join(reasons) or None,
            "zone": zones[0] if zones else None,
            "local_time": at.astimezone(zone(zones[0])).isoformat() if zones else None,
            "next_allowed": nxt.isoformat() if nxt is not None else None}
