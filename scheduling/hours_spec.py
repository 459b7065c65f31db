"""Company calendars as people write them: weekly hours, closures, special days, holidays.

The grammar (docs/scheduling.md, "Company calendars", has the user's version):

    hours    := "closed" | group (";" group)*
    group    := days " " ("closed" | interval ("," interval)*)
    days     := day-item ("," day-item)*
    day-item := DAY | DAY "-" DAY          DAY: mon tue wed thu fri sat sun (or the full name)
    interval := HH:MM "-" HH:MM            H:MM too; 24:00 only as an end

    e.g.  "mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00; sat-sun closed"

* Days not mentioned are closed; "closed" alone closes every day.
* A range runs forward through the week and wraps after Sunday: `fri-mon` is Fri, Sat, Sun,
  Mon; `mon-sun` is every day.
* A day may appear in several groups: its intervals add up (`mon-fri 09:00-12:00;
  mon-fri 13:00-17:00`), and overlapping ones are refused by the calendar's own rule
  (`scheduling.calendar.parse_intervals`), as are empty or reversed ones and times past 24:00.
  A day both `closed` and given hours is refused.
* Case and the spaces around `,` `-` `;` do not matter.

Closures are `YYYY-MM-DD..YYYY-MM-DD` (inclusive) or one date; special days are
`YYYY-MM-DD=INTERVALS` or `YYYY-MM-DD=closed`; holidays are a country code the `holidays`
package knows, optionally with a subdivision (`LV`, `US-NY`), or `none`. Lists of closures or
special days (a CSV cell) are separated by `;` (closures also by `,` or spaces), `none` is the
empty list.

Every error is a `CalendarError` naming the whole input, the offending piece and the expected
form, e.g. `hours "mon-thu 8:3-12": "8:3" is not a time; expected HH:MM`.

`format_hours` is the inverse of `parse_hours`: the shortest spec (days with equal hours in one
group, runs of three or more days as ranges) that parses back to the same weekly hours.
`CalendarChange` applies such edits to a company's stored JSON columns (db/models.py
`Company`), and `checked_calendar` builds and validates the result. Pure code, no IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from scheduling.calendar import (
    WEEKDAY_NAMES,
    CalendarError,
    CompanyCalendar,
    DayIntervals,
    parse_intervals,
)

__all__ = [
    "CALENDAR_COLUMNS",
    "DEFAULT_HOURS",
    "HOURS_FORM",
    "CalendarChange",
    "Weekly",
    "checked_calendar",
    "day_notes",
    "format_closure",
    "format_days",
    "format_holidays",
    "format_hours",
    "format_intervals",
    "format_special_day",
    "parse_closure",
    "parse_closures",
    "parse_days",
    "parse_holidays",
    "parse_hours",
    "parse_special_day",
    "parse_special_days",
    "weekly_from_json",
    "weekly_to_json",
]

#: seven days of local open intervals, Monday first (CompanyCalendar.weekly)
Weekly = tuple[DayIntervals, ...]

HOURS_FORM = ('DAYS HH:MM-HH:MM[,HH:MM-HH:MM] or DAYS closed, groups separated by ";", '
              'e.g. "mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00"')
_DAYS_FORM = "expected mon, tue, wed, thu, fri, sat or sun, a range like mon-fri, or a list"
_DATE_FORM = "expected YYYY-MM-DD"
#: hours a company gets when nobody said otherwise (as `dialer leads --create-companies`)
DEFAULT_HOURS = "mon-fri 09:00-17:00"
#: the Company columns a calendar is stored in
CALENDAR_COLUMNS = ("timezone", "weekly_hours", "holiday_country", "holiday_subdivision",
                    "closures", "special_days")

_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {n: i for i, n in enumerate(WEEKDAY_NAMES)} | {
    n: i for i, n in enumerate(_FULL_NAMES)}
_TIME = re.compile(r"[0-9]{1,2}:[0-9]{2}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_GROUP = re.compile(r"(?P<days>.*?)\s+(?P<hours>(?:[0-9]|closed\b).*)", re.I | re.S)
_AROUND = re.compile(r"\s*([,\-])\s*")


def _q(text: str) -> str:
    """A piece of input quoted for an error message (double quotes, as people write them)."""
    return '"' + text + '"'


# ----------------------------------------------------------------------------- days and hours


def parse_days(text: str, what: str = "days") -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `fri-mon` (wraps) -> weekday numbers (Monday = 0)."""
    if not isinstance(text, str) or not text.strip():
        raise CalendarError(f"{what} {_q(str(text))}: no day given; {_DAYS_FORM}")
    return _days(_AROUND.sub(r"\1", text.strip()), f"{what} {_q(text)}")


def _days(text: str, where: str) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        first, sep, last = item.partition("-")
        a = _day(first, where)
        if not sep:
            out.add(a)
            continue
        b = _day(last, where)
        out.update((a + k) % 7 for k in range((b - a) % 7 + 1))
    return frozenset(out)


def _day(name: str, where: str) -> int:
    i = _DAY_INDEX.get(name.strip().casefold())
    if i is None:
        raise CalendarError(f"{where}: {_q(name)} is not a day; {_DAYS_FORM}")
    return i


def _intervals(text: str, where: str) -> list[str]:
    """`08:30-12:00,13:00-17:00` -> ["08:30-12:00", ...], each piece checked for its form
    only; what the times mean (range, order, overlap) is parse_intervals' business."""
    out = []
    for item in text.split(","):
        parts = [p.strip() for p in item.split("-")]
        if len(parts) != 2:
            raise CalendarError(
                f"{where}: {_q(item.strip())} is not an interval; expected HH:MM-HH:MM")
        for p in parts:
            if not _TIME.fullmatch(p):
                raise CalendarError(f"{where}: {_q(p)} is not a time; expected HH:MM")
        out.append(f"{parts[0]}-{parts[1]}")
    return out


def parse_hours(text: str, what: str = "hours") -> Weekly:
    """Weekly hours from the human form (module doc); CalendarError names the bad piece."""
    if not isinstance(text, str):
        raise CalendarError(f"{what}: expected text like {HOURS_FORM}, got {text!r}")
    where = f"{what} {_q(text)}"
    spec = text.strip()
    if not spec:
        raise CalendarError(f"{where}: no hours given; expected {HOURS_FORM}")
    if spec.casefold() == "closed":
        return ((),) * 7
    given: list[list[str]] = [[] for _ in WEEKDAY_NAMES]
    closed: set[int] = set()
    for raw in spec.split(";"):
        group = raw.strip()
        if not group:
            continue
        m = _GROUP.fullmatch(group)
        if m is None:
            raise CalendarError(
                f'{where}: {_q(group)} is not DAYS HOURS; expected e.g. "mon-fri 09:00-17:00" '
                'or "sat-sun closed"')
        days = _days(_AROUND.sub(r"\1", m.group("days").strip()), where)
        hours = m.group("hours").strip()
        if hours.casefold() == "closed":
            closed |= days
            continue
        ivs = _intervals(hours, where)
        for d in days:
            given[d].extend(ivs)
    for d in sorted(closed):
        if given[d]:
            raise CalendarError(
                f"{where}: {WEEKDAY_NAMES[d]} is both closed and given hours; say one of them")
    return tuple(parse_intervals(iv, f"{where}: {WEEKDAY_NAMES[d]}")
                 for d, iv in enumerate(given))


def _hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def format_intervals(iv: Iterable[tuple[int, int]]) -> str:
    """((540, 720), (780, 1020)) -> "09:00-12:00,13:00-17:00"; () -> "closed"."""
    text = ",".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in iv)
    return text or "closed"


def format_days(days: Iterable[int]) -> str:
    """Weekday numbers -> the shortest day list: runs of 3+ days (wrapping) as ranges."""
    s = set(days)
    if len(s) == 7:
        return "mon-sun"
    runs: list[list[int]] = []
    for d in sorted(s):
        if (d - 1) % 7 in s:
            continue  # not the start of a run
        run = [d]
        while (run[-1] + 1) % 7 in s:
            run.append((run[-1] + 1) % 7)
        runs.append(run)
    out: list[str] = []
    for run in runs:
        if len(run) >= 3:
            out.append(f"{WEEKDAY_NAMES[run[0]]}-{WEEKDAY_NAMES[run[-1]]}")
        else:
            out.extend(WEEKDAY_NAMES[d] for d in run)
    return ",".join(out)


def format_hours(weekly: Sequence[Iterable[tuple[int, int]]]) -> str:
    """The shortest spec that parse_hours reads back as `weekly` ("closed" if never open)."""
    if len(weekly) != 7:
        raise CalendarError(f"weekly hours need 7 days (Mon..Sun), got {len(weekly)}")
    groups: dict[DayIntervals, list[int]] = {}
    for d, iv in enumerate(weekly):
        key = tuple((int(s), int(e)) for s, e in iv)
        if key:
            groups.setdefault(key, []).append(d)
    if not groups:
        return "closed"
    return "; ".join(f"{format_days(days)} {format_intervals(iv)}"
                     for iv, days in sorted(groups.items(), key=lambda kv: kv[1][0]))


def weekly_to_json(weekly: Sequence[DayIntervals]) -> dict[str, list[list[str]]]:
    """Weekly hours -> the `Company.weekly_hours` JSON (closed days left out)."""
    return {WEEKDAY_NAMES[d]: [[_hhmm(s), _hhmm(e)] for s, e in iv]
            for d, iv in enumerate(weekly) if iv}


def weekly_from_json(weekly_hours: Mapping[str, Any] | None, what: str = "weekly_hours") -> Weekly:
    """The `Company.weekly_hours` JSON -> weekly hours (the calendar's own parsing)."""
    data = dict(weekly_hours or {})
    unknown = sorted(set(data) - set(WEEKDAY_NAMES))
    if unknown:
        raise CalendarError(f"{what}: unknown weekday key(s) {unknown}")
    return tuple(parse_intervals(data.get(k, ()), f"{what} {k}") for k in WEEKDAY_NAMES)


# ----------------------------------------------------------------------------- dates


def _date(text: str, where: str, form: str = _DATE_FORM) -> date:
    t = text.strip()
    if _ISO_DATE.fullmatch(t):
        try:
            return date.fromisoformat(t)
        except ValueError:
            raise CalendarError(f"{where}: {_q(t)} is not a real date; {form}") from None
    raise CalendarError(f"{where}: {_q(t)} is not a date; {form}")


def parse_closure(text: str, what: str = "closure") -> tuple[date, date]:
    """`2026-12-24..2026-12-31` (inclusive) or `2026-12-24` -> (start, end)."""
    where = f"{what} {_q(str(text))}"
    if not isinstance(text, str):
        raise CalendarError(f"{where}: expected YYYY-MM-DD..YYYY-MM-DD")
    form = "expected YYYY-MM-DD..YYYY-MM-DD or one date YYYY-MM-DD"
    first, sep, last = text.partition("..")
    a = _date(first, where, form)
    b = _date(last, where, form) if sep else a
    if b < a:
        raise CalendarError(f"{where}: ends before it starts; expected START..END")
    return a, b


def parse_closures(text: str, what: str = "closures") -> list[tuple[date, date]]:
    """A list of closures separated by `;`, `,` or spaces; `none` is the empty list."""
    t = re.sub(r"\s*\.\.\s*", "..", text.strip())
    if t.casefold() == "none":
        return []
    if not t:
        raise CalendarError(f"{what} {_q(text)}: nothing given; expected START..END or none")
    return [parse_closure(p, f"{what} {_q(text)}: closure")
            for p in re.split(r"[;,\s]+", t) if p]


def format_closure(closure: tuple[date, date]) -> str:
    a, b = closure
    return a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}"


def parse_special_day(text: str, what: str = "special day") -> tuple[date, DayIntervals]:
    """`2026-12-24=09:00-12:00[,13:00-15:00]` or `2026-12-24=closed` -> (date, intervals)."""
    where = f"{what} {_q(str(text))}"
    if not isinstance(text, str) or "=" not in text:
        raise CalendarError(
            f"{where}: expected YYYY-MM-DD=HH:MM-HH:MM[,HH:MM-HH:MM] or YYYY-MM-DD=closed")
    day_text, _, hours = text.partition("=")
    d = _date(day_text, where)
    hours = hours.strip()
    if hours.casefold() == "closed":
        return d, ()
    if not hours:
        raise CalendarError(f"{where}: no hours after '='; expected HH:MM-HH:MM or closed")
    return d, parse_intervals(_intervals(hours, where), where)


def parse_special_days(text: str, what: str = "special_days") -> dict[date, DayIntervals]:
    """Special days separated by `;` (or spaces before the next date); `none` is empty."""
    t = text.strip()
    if t.casefold() == "none":
        return {}
    where = f"{what} {_q(text)}"
    if not t:
        raise CalendarError(f"{where}: nothing given; expected YYYY-MM-DD=HH:MM-HH:MM or none")
    out: dict[date, DayIntervals] = {}
    for piece in re.split(r"\s*;\s*|\s+(?=[0-9]{4}-)", t):
        if not piece:
            continue
        d, iv = parse_special_day(piece, f"{where}: special day")
        if d in out:
            raise CalendarError(f"{where}: {d.isoformat()} is given twice")
        out[d] = iv
    return out


def format_special_day(d: date, iv: DayIntervals) -> str:
    return f"{d.isoformat()}={format_intervals(iv)}"


# ----------------------------------------------------------------------------- holidays


def parse_holidays(text: str, what: str = "holidays") -> tuple[str | None, str | None]:
    """`LV`, `US-NY`, `FR-Zone A` or `none` -> (country, subdivision), checked against the
    `holidays` package (the country case-insensitively, the subdivision too)."""
    import holidays

    where = f"{what} {_q(str(text))}"
    t = text.strip() if isinstance(text, str) else ""
    if t.casefold() == "none":
        return None, None
    form = "expected a country code such as LV, a country-subdivision such as US-NY, or none"
    if not t:
        raise CalendarError(f"{where}: nothing given; {form}")
    country, sep, sub = t.partition("-")
    country = country.strip().upper()
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise CalendarError(f"{where}: {_q(country)} is not a country the holidays package "
                            f"knows; {form}")
    if not sep:
        return country, None
    subs = {s.casefold(): s for s in supported[country]}
    found = subs.get(sub.strip().casefold())
    if found is None:
        known = ", ".join(supported[country][:12]) or "none"
        raise CalendarError(f"{where}: {_q(sub.strip())} is not a subdivision of {country}; "
                            f"known: {known}{', ...' if len(supported[country]) > 12 else ''}")
    return country, found


def format_holidays(country: str | None, subdivision: str | None) -> str:
    if not country:
        return "none"
    return f"{country}-{subdivision}" if subdivision else country


# ----------------------------------------------------------------------------- company edits


@dataclass(frozen=True, kw_only=True)
class CalendarChange:
    """An edit of a company's calendar columns; None/False/empty leaves a column as it is.

    Order of application: hours replace the weekly hours, then `days_off` closes weekdays;
    `clear_closures` empties the closures before `add_closures` are added (an identical one
    is not added twice); `closures` (a CSV cell) replaces them all; special days likewise
    (`set_special_days` entries replace the ones for their dates).
    """

    timezone: str | None = None
    hours: Weekly | None = None
    days_off: frozenset[int] = frozenset()
    #: (country, subdivision); (None, None) switches public holidays off
    holidays: tuple[str | None, str | None] | None = None
    closures: list[tuple[date, date]] | None = None
    clear_closures: bool = False
    add_closures: list[tuple[date, date]] = field(default_factory=list)
    special_days: dict[date, DayIntervals] | None = None
    clear_special_days: bool = False
    set_special_days: dict[date, DayIntervals] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return self == CalendarChange()

    def apply(self, current: Mapping[str, Any] | None) -> dict[str, Any]:
        """The new values of the CALENDAR_COLUMNS from the current ones (None: a new company,
        which starts with DEFAULT_HOURS, no holidays, no closures; it needs a timezone)."""
        cur: dict[str, Any] = dict(current) if current is not None else {
            "timezone": None, "weekly_hours": weekly_to_json(parse_hours(DEFAULT_HOURS)),
            "holiday_country": None, "holiday_subdivision": None, "closures": [],
            "special_days": {}}
        new = {k: cur.get(k) for k in CALENDAR_COLUMNS}
        if self.timezone is not None:
            new["timezone"] = self.timezone
        if not new["timezone"]:
            raise CalendarError("timezone: a new company needs one; expected an IANA name such "
                                "as Europe/Riga")
        if self.hours is not None or self.days_off:
            weekly = self.hours if self.hours is not None else weekly_from_json(
                new["weekly_hours"])
            new["weekly_hours"] = weekly_to_json(
                tuple(() if d in self.days_off else iv for d, iv in enumerate(weekly)))
        if self.holidays is not None:
            new["holiday_country"], new["holiday_subdivision"] = self.holidays
        closures = list(new["closures"] or [])
        if self.closures is not None or self.clear_closures:
            closures = []
        for a, b in (self.closures or []) + self.add_closures:
            item = {"start": a.isoformat(), "end": b.isoformat()}
            if not any(c.get("start") == item["start"] and c.get("end", c.get("start"))
                       == item["end"] for c in closures):
                closures.append(item)
        new["closures"] = closures
        special = dict(new["special_days"] or {})
        if self.special_days is not None or self.clear_special_days:
            special = {}
        for d, iv in {**(self.special_days or {}), **self.set_special_days}.items():
            special[d.isoformat()] = [[_hhmm(s), _hhmm(e)] for s, e in iv]
        new["special_days"] = dict(sorted(special.items()))
        return new


def checked_calendar(values: Mapping[str, Any], *, name: str, now: datetime) -> CompanyCalendar:
    """Build the CompanyCalendar of stored column values and validate it: it must open, and
    within the horizon from `now`. CalendarError says what is wrong."""
    cal = CompanyCalendar.from_config(
        timezone=values["timezone"], weekly_hours=values.get("weekly_hours") or {},
        holiday_country=values.get("holiday_country"),
        holiday_subdivision=values.get("holiday_subdivision"),
        closures=values.get("closures") or (), special_days=values.get("special_days") or {},
        name=name)
    cal.validate(now=now)
    return cal


def day_notes(cal: CompanyCalendar, d: date) -> list[str]:
    """Why day `d` has the hours it has, the deciding reason first: a special day (which
    wins over the rest), a day off, a closure, a public holiday (with its name)."""
    notes: list[str] = []
    if d.weekday() in cal.days_off or not cal.weekly[d.weekday()]:
        notes.append("day off")
    notes.extend(f"closure {format_closure((a, b))}" for a, b in cal.closures if a <= d <= b)
    if cal.holiday_country:
        import holidays

        names = holidays.country_holidays(cal.holiday_country, subdiv=cal.holiday_subdivision,
                                          years=d.year)
        if d in names:
            notes.append(f"holiday: {names.get(d)}")
    if d in cal.special_days:
        # a special day's own hours win over everything else
        return ["special day" + (f" (instead of: {', '.join(notes)})" if notes else "")]
    return notes
