"""The calling rules as an agent's desktop shows them: where and when the callee and the
company are, whether a proposed next contact is allowed, and in words why not.

Nothing here decides anything the dialer does: the answers come from the scheduling room's
own objects (`CompanyCalendar`, `CallingWindow`, `next_callable_at`); this module only
reads them at one instant and words the result for a person.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
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
from scheduling.compliance import window_for_number
from scheduling.windows import CallingWindow, candidate_zones

log = logging.getLogger(__name__)

#: weekday names as catalog keys (`weekdays.<key>` in the page's catalogs)
WEEKDAY_KEYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays",
              "Sundays")


class ReasonCode(StrEnum):
    """Why a time is refused, as a stable code: the one list of them. A page words each one
    from its catalogs (`contact_reasons.<code>`, with the `params` of the refusal filled in;
    tests/web_static checks every catalog has every code), so renaming one is a protocol
    change."""

    TIME_PASSED = "time_passed"
    COMPANY_CALENDAR_UNUSABLE = "company_calendar_unusable"
    #: params: time (HH:MM, company's zone), hours ("09:00-12:00, 13:00-17:00")
    COMPANY_OPENS_AT = "company_opens_at"
    #: params: time, hours
    COMPANY_CLOSED_AFTER = "company_closed_after"
    #: params: from, to (the break), hours
    COMPANY_LUNCH = "company_lunch"
    #: params: hours
    COMPANY_OUTSIDE_HOURS = "company_outside_hours"
    #: params: date (ISO)
    COMPANY_SPECIAL_DAY = "company_special_day"
    #: params: weekday (a `weekdays.<key>` of the catalogs: "saturday")
    COMPANY_CLOSED_WEEKDAY = "company_closed_weekday"
    #: params: from, to (ISO dates)
    COMPANY_CLOSURE = "company_closure"
    #: params: country (ISO code), name (the holiday's English name, "" when unknown)
    COMPANY_HOLIDAY = "company_holiday"
    COMPANY_CLOSED_DAY = "company_closed_day"
    CALLEE_ZONE_UNKNOWN = "callee_zone_unknown"
    #: params: hours ("08:00-21:00"), start, end (the day's first opening and last closing),
    #: zone
    CALLEE_OUTSIDE_HOURS = "callee_outside_hours"
    #: params: country, name, zone
    CALLEE_HOLIDAY = "callee_holiday"
    #: params: weekday, zone
    CALLEE_CLOSED_WEEKDAY = "callee_closed_weekday"


#: the codes a company's `closed_reason_code` can carry: the company_* ones (the page words
#: them as the company's state now, `closed.<code>`, as well as `contact_reasons.<code>`)
CLOSED_CODES: frozenset[ReasonCode] = frozenset(
    c for c in ReasonCode if c.value.startswith("company_"))


@dataclass(frozen=True, slots=True)
class Why:
    """Why a time is refused: a stable `code` and `params` a page translates, and the same in
    English words (`text`) for API users."""

    code: ReasonCode
    text: str
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {"code": self.code.value, "params": self.params, "text": self.text}


@functools.lru_cache(maxsize=64)
def _holiday_names(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    import holidays  # as scheduling.calendar does: loaded when a holiday is first asked about

    try:
        return dict(holidays.country_holidays(country, subdiv=subdivision, years=year,
                                              language="en_US"))
    except (NotImplementedError, KeyError):
        return {}


def holiday_name(country: str, subdivision: str | None, d: date) -> str:
    """The public holiday's English name ("" when unknown): the refusal's text is English,
    and a page shows the name as it is (it has no catalog of every country's holidays)."""
    return _holiday_names(country, subdivision, d.year).get(d, "")


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
    """The callee's window: the campaign's preset, or its stricter regional one (Florida)."""
    return window_for_number(ctx.campaign.calling_window, ctx.phone_e164)


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
            return Why(ReasonCode.COMPANY_OPENS_AT, f"company opens at {t} (hours {hours})",
                       {"time": t, "hours": hours})
        if minute >= iv[-1][1]:
            t = _hhmm(iv[-1][1])
            return Why(ReasonCode.COMPANY_CLOSED_AFTER, f"company closed after {t} (hours {hours})",
                       {"time": t, "hours": hours})
        for (_, end), (start, _) in itertools.pairwise(iv):
            if end <= minute < start:
                a, b = _hhmm(end), _hhmm(start)
                return Why(ReasonCode.COMPANY_LUNCH, f"company closed {a}-{b} (hours {hours})",
                           {"from": a, "to": b, "hours": hours})
        return Why(ReasonCode.COMPANY_OUTSIDE_HOURS, f"outside the company's hours {hours}",
                   {"hours": hours})
    return _closed_day(cal, d)


def _closed_day(cal: CompanyCalendar, d: date) -> Why:
    """Why a whole local day is closed (in the order CompanyCalendar.day_intervals decides)."""
    if d in cal.special_days:
        return Why(ReasonCode.COMPANY_SPECIAL_DAY,
                   f"company closed on {d.isoformat()} (a special day)", {"date": d.isoformat()})
    wd = d.weekday()
    if wd in cal.days_off or not cal.weekly[wd]:
        return Why(ReasonCode.COMPANY_CLOSED_WEEKDAY, f"company closed on {_DAY_NAMES[wd]}",
                   {"weekday": WEEKDAY_KEYS[wd]})
    for a, b in cal.closures:
        if a <= d <= b:
            return Why(ReasonCode.COMPANY_CLOSURE,
                       f"company closed from {a.isoformat()} to {b.isoformat()}",
                       {"from": a.isoformat(), "to": b.isoformat()})
    if cal.holiday_country and is_public_holiday(cal.holiday_country,
                                                 cal.holiday_subdivision, d):
        country = cal.holiday_country
        name = holiday_name(country, cal.holiday_subdivision, d)
        named = f"{name}, " if name else ""
        return Why(ReasonCode.COMPANY_HOLIDAY,
                   f"company closed: public holiday ({named}{country})",
                   {"country": country, "name": name})
    return Why(ReasonCode.COMPANY_CLOSED_DAY, "company closed that day")


def window_reason(window: CallingWindow, zones: tuple[str, ...], at: datetime) -> Why | None:
    """Why the callee may not be called at `at` (in any of their candidate zones); None when
    every zone allows it."""
    if not zones:
        return Why(ReasonCode.CALLEE_ZONE_UNKNOWN, "the callee's time zone is unknown")
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
            return Why(ReasonCode.CALLEE_OUTSIDE_HOURS,
                       f"outside the callee's calling hours {hours}{where}",
                       {"hours": hours, "start": _hhmm(iv[0][0]), "end": _hhmm(iv[-1][1]),
                        "zone": z})
        if window.weekly[d.weekday()]:
            country = window.holiday_country or ""
            name = holiday_name(country, None, d) if country else ""
            named = f"{name}, " if name else ""
            return Why(ReasonCode.CALLEE_HOLIDAY,
                       f"public holiday for the callee ({named}{country}){where}",
                       {"country": country, "name": name, "zone": z})
        return Why(ReasonCode.CALLEE_CLOSED_WEEKDAY,
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


def _coded(why: Why | None, prefix: str = "reason") -> dict[str, Any]:
    """`<prefix>` (English words), `<prefix>_code`, `<prefix>_params` of one refusal (all
    None when there is none): the page translates the code, API users read the words."""
    return {prefix: _text(why), f"{prefix}_code": why.code.value if why else None,
            f"{prefix}_params": why.params if why else None}


def describe(ctx: AttemptContext, now: datetime) -> dict[str, Any]:
    """Who the call (or offered lead) is with, and the callee's and the company's zones,
    local times and hours at `now`. Each refusal is given in words (`reason`,
    `closed_reason`) and as a code with params (`reason_code`/`reason_params`,
    `closed_reason_code`/`closed_reason_params`; the same again as one object in `why`,
    `closed_why`) for pages that translate it."""
    zones = callee_zones(ctx)
    window = calling_window(ctx)
    why = window_reason(window, zones, now)
    callee: dict[str, Any] = {"zone": zones[0] if zones else None, "zones": list(zones),
                              "local_time": None, "window": window.name, "hours_today": [],
                              "callable_now": False, **_coded(why), "why": _json(why)}
    if zones:
        local, iv = _day_of(window.in_zone(zones[0]), now)
        callee.update(local_time=local.isoformat(), hours_today=intervals(iv),
                      callable_now=why is None)
    company: dict[str, Any] | None = None
    cal = company_calendar(ctx)
    if ctx.company is not None:
        company = {"name": ctx.company.name, "zone": ctx.company.timezone, "local_time": None,
                   "open_now": False, "hours_today": [], **_coded(None, "closed_reason"),
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
            closed = Why(ReasonCode.COMPANY_CALENDAR_UNUSABLE,
                         "the company's calendar is unusable")
        company.update(_coded(closed, "closed_reason"), closed_why=_json(closed))
    return {"attempt_id": ctx.attempt_id, "lead_id": ctx.lead_id,
            "lead": {"id": ctx.lead_id, "name": ctx.lead_name, "company": ctx.lead_company,
                     "phone": ctx.phone_e164},
            "ended_at": ctx.ended_at.isoformat() if ctx.ended_at is not None else None,
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
        whys.append(Why(ReasonCode.TIME_PASSED, "that time has passed"))
    if ctx.company is not None and cal is None:
        whys.append(Why(ReasonCode.COMPANY_CALENDAR_UNUSABLE,
                        "the company's calendar is unusable"))
    elif cal is not None and (why := company_closed_reason(cal, at)) is not None:
        whys.append(why)
    if (why := window_reason(window, zones, at)) is not None:
        whys.append(why)
    nxt = next_callable_at(
        LeadFacts(timezone=ctx.lead_timezone, phone_e164=ctx.phone_e164, calendar=cal),
        max(at, now), CallingRules(window=window)).at
    first = whys[0] if whys else None
    return {"allowed": not whys, "reason": "; ".join(w.text for w in whys) or None,
            "reason_code": first.code.value if first else None,
            "reason_params": first.params if first else None,
            "reasons": [w.json() for w in whys],
            "zone": zones[0] if zones else None,
            "local_time": at.astimezone(zone(zones[0])).isoformat() if zones else None,
            "next_allowed": nxt.isoformat() if nxt is not None else None}
