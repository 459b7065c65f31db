"""The calling rules as an agent's desktop shows them: where and when the callee and the
company are, whether a proposed next contact is allowed, and in words why not.

Nothing here decides anything the dialer does: the answers come from the scheduling room's
own objects (`CompanyCalendar`, `CallingWindow`, `next_callable_at`); this module only
reads them at one instant and words the result for a person.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
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

#: weekday names as catalog keys (`weekdays.<key>` in the page's catalogs)
WEEKDAY_KEYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays",
              "Sundays")


@dataclass(frozen=True, slots=True)
class Why:
    """Why a time is refused: a stable `code` and `params` a page translates (its catalogs
    have `contact_reasons.<code>`), and the same in English words for API users."""

    code: str
    text: str
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {"code": self.code, "params": self.params, "text": self.text}


#: every code a Why may carry (tests/web_static checks both catalogs word each one)
WHY_CODES = ("time_passed", "company_calendar_unusable", "company_opens_at",
             "company_closed_after", "company_lunch", "company_outside_hours",
             "company_special_day", "company_closed_weekday", "company_closure",
             "company_holiday", "company_closed_day", "callee_zone_unknown",
             "callee_outside_hours", "callee_holiday", "callee_closed_weekday")


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


def company_closed_reason(cal: CompanyCalendar, at: datetime) -> Why | None:
    """Why the company is closed at `at`; None when it is open."""
    if cal.is_open(at):
        return None
    local = at.astimezone(zone(cal.timezone))
    d = local.date()
    iv = cal.day_intervals(d)
    if iv:
        hours = _spoken(iv)
        minute = local.hour * 60 + local.minute
        if minute < iv[0][0]:
            t = _hhmm(iv[0][0])
            return Why("company_opens_at", f"company opens at {t} (hours {hours})",
                       {"time": t, "hours": hours})
        if minute >= iv[-1][1]:
            t = _hhmm(iv[-1][1])
            return Why("company_closed_after", f"company closed after {t} (hours {hours})",
                       {"time": t, "hours": hours})
        for (_, end), (start, _) in itertools.pairwise(iv):
            if end <= minute < start:
                a, b = _hhmm(end), _hhmm(start)
                return Why("company_lunch", f"company closed {a}-{b} (hours {hours})",
                           {"from": a, "to": b, "hours": hours})
        return Why("company_outside_hours", f"outside the company's hours {hours}",
                   {"hours": hours})
    return _closed_day(cal, d)


def _closed_day(cal: CompanyCalendar, d: date) -> Why:
    """Why a whole local day is closed (in the order CompanyCalendar.day_intervals decides)."""
    if d in cal.special_days:
        return Why("company_special_day", f"company closed on {d.isoformat()} (a special day)",
                   {"date": d.isoformat()})
    wd = d.weekday()
    if wd in cal.days_off or not cal.weekly[wd]:
        return Why("company_closed_weekday", f"company closed on {_DAY_NAMES[wd]}",
                   {"weekday": WEEKDAY_KEYS[wd]})
    for a, b in cal.closures:
        if a <= d <= b:
            return Why("company_closure",
                       f"company closed from {a.isoformat()} to {b.isoformat()}",
                       {"from": a.isoformat(), "to": b.isoformat()})
    if cal.holiday_country and is_public_holiday(cal.holiday_country,
                                                 cal.holiday_subdivision, d):
        return Why("company_holiday", f"company closed: public holiday ({cal.holiday_country})",
                   {"country": cal.holiday_country})
    return Why("company_closed_day", "company closed that day")


def window_reason(window: CallingWindow, zones: tuple[str, ...], at: datetime) -> Why | None:
    """Why the callee may not be called at `at` (in any of their candidate zones); None when
    every zone allows it."""
    if not zones:
        return Why("callee_zone_unknown", "the callee's time zone is unknown")
    for z in zones:
        sched = window.in_zone(z)
        if sched.is_open(at):
            continue
        local = at.astimezone(zone(z))
        d = local.date()
        iv = sched.day_intervals(d)
        where = f" in {z}" if len(zones) > 1 else ""
        if iv:
            hours = _spoken(iv)
            return Why("callee_outside_hours",
                       f"outside the callee's calling hours {hours}{where}",
                       {"hours": hours, "zone": z})
        if window.weekly[d.weekday()]:
            country = window.holiday_country or ""
            return Why("callee_holiday", f"public holiday for the callee ({country}){where}",
                       {"country": country, "zone": z})
        return Why("callee_closed_weekday",
                   f"the callee may not be called on {_DAY_NAMES[d.weekday()]}{where}",
                   {"weekday": WEEKDAY_KEYS[d.weekday()], "zone": z})
    return None


def _day_of(sched: Schedule, at: datetime) -> tuple[datetime, DayIntervals]:
    local = at.astimezone(zone(sched.zone_name))
    return local, sched.day_intervals(local.date())


def _text(why: Why | None) -> str | None:
    return why.text if why is not None else None


def _json(why: Why | None) -> dict[str, Any] | None:
    return why.json() if why is not None else None


def describe(ctx: AttemptContext, now: datetime) -> dict[str, Any]:
    """The callee's and the company's zones, local times and hours at `now`. Each refusal is
    given in words (`reason`, `closed_reason`) and as a code with params (`why`,
    `closed_why`) for pages that translate it."""
    zones = callee_zones(ctx)
    window = calling_window(ctx)
    why = window_reason(window, zones, now)
    callee: dict[str, Any] = {"zone": zones[0] if zones else None, "zones": list(zones),
                              "local_time": None, "window": window.name, "hours_today": [],
                              "callable_now": False, "reason": _text(why), "why": _json(why)}
    if zones:
        local, iv = _day_of(window.in_zone(zones[0]), now)
        callee.update(local_time=local.isoformat(), hours_today=intervals(iv),
                      callable_now=why is None)
    company: dict[str, Any] | None = None
    cal = company_calendar(ctx)
    if ctx.company is not None:
        company = {"name": ctx.company.name, "zone": ctx.company.timezone, "local_time": None,
                   "open_now": False, "hours_today": [], "closed_reason": None,
                   "closed_why": None, "next_open": None}
        closed: Why | None
        if cal is not None:
            local, iv = _day_of(cal, now)
            closed = company_closed_reason(cal, now)
            nxt = cal.next_open(now) if closed else None
            company.update(local_time=local.isoformat(), open_now=closed is None,
                           hours_today=intervals(iv),
                           next_open=nxt.isoformat() if nxt else None)
        else:
            closed = Why("company_calendar_unusable", "the company's calendar is unusable")
        company.update(closed_reason=_text(closed), closed_why=_json(closed))
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
    whys: list[Why] = []
    if at < now:
        whys.append(Why("time_passed", "that time has passed"))
    if ctx.company is not None and cal is None:
        whys.append(Why("company_calendar_unusable", "the company's calendar is unusable"))
    elif cal is not None and (why := company_closed_reason(cal, at)) is not None:
        whys.append(why)
    if (why := window_reason(window, zones, at)) is not None:
        whys.append(why)
    nxt = next_callable_at(
        LeadFacts(timezone=ctx.lead_timezone, phone_e164=ctx.phone_e164, calendar=cal),
        max(at, now), CallingRules(window=window)).at
    return {"allowed": not whys, "reason": "; ".join(w.text for w in whys) or None,
            "reasons": [w.json() for w in whys],
            "zone": zones[0] if zones else None,
            "local_time": at.astimezone(zone(zones[0])).isoformat() if zones else None,
            "next_allowed": nxt.isoformat() if nxt is not None else None}
