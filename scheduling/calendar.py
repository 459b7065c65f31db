"""Weekly opening schedules in a time zone: company calendars (and, via windows.py, callee windows).

Everything here is pure: no wall clock, no IO. Instants are aware datetimes at the public
surface and integer UTC epoch seconds inside, because `next_callable_at` runs a million times
per batch and datetime arithmetic is the cost that matters.

Semantics (what "open" means, so DST is unambiguous): an instant *t* is open when its local
wall time in the schedule's zone - the local date *d* and the time of day - falls in one of the
half-open intervals [start, end) configured for *d*. A local time skipped by a spring-forward
gap is simply never reached; a local time repeated by a fall-back is open both times. Day
intervals are built per local day by converting wall seconds with the day's UTC offsets (one
transition at most per day, found by bisection), then cached per (schedule, UTC day).
"""

from __future__ import annotations

import abc
import functools
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "WEEKDAY_NAMES",
    "CalendarError",
    "CompanyCalendar",
    "DayIntervals",
    "Schedule",
    "parse_intervals",
]

#: keys of the weekly-hours JSON (Company.weekly_hours); index = date.weekday()
WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DAY = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: how far ahead next_open() looks before answering "never" (a closure can last months)
DEFAULT_HORIZON_DAYS = 800
#: any year the holidays package covers; used only to check a country code early
_PROBE_YEAR = 2024
#: bound on cached UTC days per schedule; a long-running process slides through days
_CACHE_LIMIT = 4096

#: local-time intervals of one day as minutes after midnight, [start, end), sorted, disjoint
DayIntervals = tuple[tuple[int, int], ...]


class CalendarError(ValueError):
    """A calendar or window definition is invalid or has no open time; the message says why."""


_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _minutes(text: str, what: str) -> int:
    m = _HHMM.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise CalendarError(f"{what}: expected a time like 09:30, got {text!r}")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi >= 60 or h > 24 or (h == 24 and mi != 0):
        raise CalendarError(f"{what}: {text!r} is not a time of day (00:00 to 24:00)")
    return h * 60 + mi


def parse_intervals(spec: Iterable[Any], what: str) -> DayIntervals:
    """Parse [["09:00","12:00"], ...] or ["09:00-12:00", ...] into sorted minute intervals.

    Overlapping or empty intervals are refused: they are almost always a typo (12:00-11:00)
    and silently merging them would hide it.
    """
    if isinstance(spec, str | bytes):
        raise CalendarError(f"{what}: expected a list of intervals, got a string {spec!r}")
    out: list[tuple[int, int]] = []
    for item in spec:
        if isinstance(item, str):
            parts = item.split("-")
            if len(parts) != 2:
                raise CalendarError(f"{what}: expected 'HH:MM-HH:MM', got {item!r}")
        elif isinstance(item, Sequence) and len(item) == 2:
            parts = list(item)
        else:
            raise CalendarError(f"{what}: expected a [start, end] pair, got {item!r}")
        start, end = (
            (p if isinstance(p, int) else _minutes(p, what)) for p in parts
        )
        if not (0 <= start < end <= 1440):
            raise CalendarError(f"{what}: interval {item!r} is empty or outside the day")
        out.append((start, end))
    out.sort()
    for (_, e1), (s2, _) in itertools.pairwise(out):
        if s2 < e1:
            raise CalendarError(f"{what}: intervals overlap: {out!r}")
    return tuple(out)


def _fmt(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _fmt_intervals(iv: DayIntervals) -> list[list[str]]:
    return [[_fmt(s), _fmt(e)] for s, e in iv]


def epoch_day(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def day_of(n: int) -> date:
    return date.fromordinal(n + _EPOCH_ORDINAL)


def to_ts(at: datetime) -> int:
    """Aware datetime -> integer UTC seconds (floor). Naive datetimes are a bug: refuse them."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: pass an aware datetime (UTC preferred)")
    ts = at.timestamp()
    its = int(ts)
    return its if its <= ts else its - 1


def from_ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@functools.lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """ZoneInfo by name with a clear error (cached: ZoneInfo construction is not free)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise CalendarError(f"unknown time zone {name!r} (expected an IANA name)") from e


def _offset(zi: ZoneInfo, ts: int) -> int:
    off = datetime.fromtimestamp(ts, zi).utcoffset()
    assert off is not None
    return int(off.total_seconds())


@functools.lru_cache(maxsize=65_536)
def _day_segments(zone_name: str, day: int) -> tuple[tuple[int, int, int], ...]:
    """UTC segments (lo, hi, offset) covering every instant whose local date is `day`.

    The range [day start - 16 h, day end + 16 h] covers all real offsets (-12 h .. +14 h). We
    assume at most one offset change inside that 56 h range, true of every IANA zone.
    """
    zi = zone(zone_name)
    lo = day * _DAY - 16 * 3600
    hi = (day + 1) * _DAY + 16 * 3600
    off_lo, off_hi = _offset(zi, lo), _offset(zi, hi)
    if off_lo == off_hi:
        mid = _offset(zi, (lo + hi) // 2)
        if mid == off_lo:
            return ((lo, hi, off_lo),)
        # two changes in the range (never seen in tzdata, but be exact if it happens)
        t1 = _bisect(zi, lo, (lo + hi) // 2, off_lo)
        t2 = _bisect(zi, (lo + hi) // 2, hi, mid)
        return ((lo, t1, off_lo), (t1, t2, mid), (t2, hi, off_hi))
    t = _bisect(zi, lo, hi, off_lo)
    return ((lo, t, off_lo), (t, hi, _offset(zi, t)))


def _bisect(zi: ZoneInfo, lo: int, hi: int, off_lo: int) -> int:
    """First second in (lo, hi] whose offset differs from off_lo."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zi, mid) == off_lo:
            lo = mid
        else:
            hi = mid
    return hi


def local_pieces(zone_name: str, day: int, intervals: DayIntervals) -> list[tuple[int, int]]:
    """UTC [start, end) pieces of the instants whose local wall time is in `intervals` of `day`."""
    if not intervals:
        return []
    base = day * _DAY
    segs = _day_segments(zone_name, day)
    out: list[tuple[int, int]] = []
    for s_min, e_min in intervals:
        ws, we = base + s_min * 60, base + e_min * 60
        for lo, hi, off in segs:
            a = ws - off
            b = we - off
            if a < lo:
                a = lo
            if b > hi:
                b = hi
            if a < b:
                out.append((a, b))
    out.sort()
    return out


def _merge(pieces: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    pieces.sort()
    merged: list[tuple[int, int]] = []
    for a, b in pieces:
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return tuple(merged)


@functools.lru_cache(maxsize=256)
def _holiday_set(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    import holidays

    try:
        h = holidays.country_holidays(country, subdiv=subdivision, years=year)
    except (NotImplementedError, KeyError) as e:
        raise CalendarError(
            f"unknown holiday country/subdivision {country!r}/{subdivision!r}: {e}"
        ) from e
    return frozenset(h.keys())


def is_public_holiday(country: str, subdivision: str | None, d: date) -> bool:
    return d in _holiday_set(country, subdivision, d.year)


class Schedule(abc.ABC):
    """Open/closed time of a weekly pattern in one zone; the engine under calendars and windows.

    Subclasses define `day_intervals(d)`; this class converts them to UTC and answers
    `next_open_ts` fast from a per-UTC-day cache.
    """

    zone_name: str
    horizon_days: int = DEFAULT_HORIZON_DAYS
    #: UTC day -> merged open pieces overlapping it; each subclass provides its own dict
    _cache: dict[int, tuple[tuple[int, int], ...]]

    @abc.abstractmethod
    def day_intervals(self, d: date) -> DayIntervals:
        """The local open intervals of day `d` in `zone_name` (minutes from midnight)."""

    # -- cache ------------------------------------------------------------------------------
    def _utc_day(self, u: int) -> tuple[tuple[int, int], ...]:
        """Merged open pieces overlapping UTC day u (unclipped, so ends may lie beyond it)."""
        cache = self._cache
        got = cache.get(u)
        if got is not None:
            return got
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        pieces: list[tuple[int, int]] = []
        # local days that can overlap UTC day u: offsets are within -12 h .. +14 h
        for d in (u - 1, u, u + 1):
            iv = self.day_intervals(day_of(d))
            if iv:
                pieces.extend(local_pieces(self.zone_name, d, iv))
        # merging neighbours (e.g. 00:00-24:00 every day) keeps an open run as one piece
        merged = _merge(pieces)
        lo, hi = u * _DAY, (u + 1) * _DAY
        got = tuple(p for p in merged if p[1] > lo and p[0] < hi)
        cache[u] = got
        return got

    # -- queries on integer seconds -----------------------------------------------------------
    def next_open_ts(self, ts: int, horizon_days: int | None = None) -> int | None:
        """The first open second >= ts, or None if nothing opens within the horizon."""
        u = ts // _DAY
        # hot path (a million calls per batch): today's pieces straight from the cache
        pieces = self._cache.get(u)
        if pieces is None:
            pieces = self._utc_day(u)
        for a, b in pieces:
            if b > ts:
                return a if a > ts else ts
        last = u + (self.horizon_days if horizon_days is None else horizon_days)
        u += 1
        while u <= last:
            for a, b in self._utc_day(u):
                if b > ts:
                    return a if a > ts else ts
            u += 1
        return None

    def open_until_ts(self, ts: int) -> int | None:
        """End of the open run containing ts (following runs across days), None if closed."""
        probe = ts
        for _ in range(self.horizon_days + 1):
            nxt = probe
            for a, b in self._utc_day(probe // _DAY):
                if a <= probe < b:
                    nxt = b
                    break
            if nxt == probe:
                return None if probe == ts else probe
            probe = nxt
        return probe

    # -- public, datetime-based ----------------------------------------------------------------
    def is_open(self, at: datetime) -> bool:
        ts = to_ts(at)
        return self.next_open_ts(ts, horizon_days=0) == ts

    def next_open(self, at: datetime) -> datetime | None:
        """The earliest instant >= at when open (UTC), or None within the horizon."""
        ts = to_ts(at)
        nxt = self.next_open_ts(ts)
        if nxt is None:
            return None
        # keep sub-second precision when already open
        return at.astimezone(UTC) if nxt == ts else from_ts(nxt)

    def next_close(self, at: datetime) -> datetime | None:
        """When the open run containing `at` ends (UTC); None if closed at `at`."""
        end = self.open_until_ts(to_ts(at))
        return None if end is None else from_ts(end)

    def open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of local `day`, as aware UTC datetimes, in order."""
        pieces = local_pieces(self.zone_name, epoch_day(day), self.day_intervals(day))
        return [(from_ts(a), from_ts(b)) for a, b in _merge(pieces)]


def _parse_date(v: Any, what: str) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError as e:
        raise CalendarError(f"{what}: expected a date like 2026-12-24, got {v!r}") from e


@dataclass(frozen=True, eq=False, kw_only=True)
class CompanyCalendar(Schedule):
    """When a client company can be reached: weekly hours, days off, holidays, closures.

    `weekly[i]` are the local intervals of weekday i (Monday = 0); lunch is the gap between
    two intervals; an empty tuple is a day off. `days_off` closes weekdays regardless of hours
    (handy to switch a day off without losing its hours). Public holidays come from the
    `holidays` package for `holiday_country`/`holiday_subdivision`. `closures` are inclusive
    date ranges when the company is closed; `special_days` give their own intervals for
    particular dates and win over everything else (an open Saturday, a short Christmas Eve).

    Instances compare by identity (eq=False): each holds its own interval cache, and hashing a
    calendar's nested tuples on every lookup would cost more than the lookup.
    """

    timezone: str
    weekly: tuple[DayIntervals, ...]
    days_off: frozenset[int] = frozenset()
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closures: tuple[tuple[date, date], ...] = ()
    special_days: Mapping[date, DayIntervals] = field(default_factory=dict)
    name: str = ""
    horizon_days: int = DEFAULT_HORIZON_DAYS
    _cache: dict[int, tuple[tuple[int, int], ...]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise CalendarError(
                f"calendar {self.name!r}: weekly hours need 7 days (Mon..Sun),"
                f" got {len(self.weekly)}"
            )
        zone(self.timezone)  # raises CalendarError naming the zone
        for i, iv in enumerate(self.weekly):
            parse_intervals(iv, f"calendar {self.name!r} {WEEKDAY_NAMES[i]}")
        for d, iv in self.special_days.items():
            parse_intervals(iv, f"calendar {self.name!r} special day {d}")
        for a, b in self.closures:
            if b < a:
                raise CalendarError(
                    f"calendar {self.name!r}: closure ends before it starts: {a}..{b}"
                )
        bad = [d for d in self.days_off if not (isinstance(d, int) and 0 <= d <= 6)]
        if bad:
            raise CalendarError(
                f"calendar {self.name!r}: days_off must be weekday numbers 0-6: {bad}"
            )
        if self.holiday_country:
            # fail at construction, not at dial time, on an unknown country/subdivision
            _holiday_set(self.holiday_country, self.holiday_subdivision, _PROBE_YEAR)
        object.__setattr__(self, "zone_name", self.timezone)

    # -- Schedule -----------------------------------------------------------------------------
    def day_intervals(self, d: date) -> DayIntervals:
        special = self.special_days.get(d)
        if special is not None:
            return special
        wd = d.weekday()
        if wd in self.days_off:
            return ()
        iv = self.weekly[wd]
        if not iv:
            return ()
        for a, b in self.closures:
            if a <= d <= b:
                return ()
        if self.holiday_country and is_public_holiday(
            self.holiday_country, self.holiday_subdivision, d
        ):
            return ()
        return iv

    # -- validation ---------------------------------------------------------------------------
    def validate(self, now: datetime | None = None) -> None:
        """Refuse a calendar with no open time, at save time rather than at dial time.

        Without `now`: the weekly pattern (after days off) and the special days must open at
        least once. With `now`: it must also open within the horizon from `now` (a closure or
        holidays can swallow every open day).
        """
        weekly_open = any(iv for i, iv in enumerate(self.weekly) if i not in self.days_off)
        if not weekly_open and not self.special_days:
            raise CalendarError(
                f"calendar {self.name!r} has no open time: every weekday is closed or a day off"
                " and there are no special opening days"
            )
        if now is not None and self.next_open_ts(to_ts(now)) is None:
            raise CalendarError(
                f"calendar {self.name!r} never opens in the {self.horizon_days} days after"
                f" {now.isoformat()} (closures/holidays cover every open day)"
            )

    # -- (de)serialisation for the Company row's JSON columns ---------------------------------
    @classmethod
    def from_config(
        cls,
        *,
        timezone: str,
        weekly_hours: Mapping[str, Any],
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        closures: Iterable[Mapping[str, Any]] = (),
        special_days: Mapping[str, Any] | None = None,
        days_off: Iterable[str] = (),
        name: str = "",
    ) -> CompanyCalendar:
        """Build from the JSON shapes stored on `Company` (db/models.py); clear errors."""
        unknown = set(weekly_hours) - set(WEEKDAY_NAMES)
        if unknown:
            raise CalendarError(
                f"calendar {name!r}: unknown weekday key(s) {sorted(unknown)};"
                f" use {', '.join(WEEKDAY_NAMES)}"
            )
        weekly = tuple(
            parse_intervals(weekly_hours.get(k, ()), f"calendar {name!r} {k}")
            for k in WEEKDAY_NAMES
        )
        off: set[int] = set()
        for k in days_off:
            if k not in WEEKDAY_NAMES:
                raise CalendarError(f"calendar {name!r}: unknown day off {k!r}")
            off.add(WEEKDAY_NAMES.index(k))
        cl: list[tuple[date, date]] = []
        for c in closures:
            if not isinstance(c, Mapping) or "start" not in c:
                raise CalendarError(
                    f"calendar {name!r}: a closure needs {{'start': date, 'end': date}}, got {c!r}"
                )
            a = _parse_date(c["start"], f"calendar {name!r} closure start")
            b = _parse_date(c.get("end", c["start"]), f"calendar {name!r} closure end")
            cl.append((a, b))
        sp = {
            _parse_date(k, f"calendar {name!r} special day"): parse_intervals(
                v, f"calendar {name!r} special day {k}"
            )
            for k, v in (special_days or {}).items()
        }
        return cls(
            timezone=timezone,
            weekly=weekly,
            days_off=frozenset(off),
            holiday_country=holiday_country or None,
            holiday_subdivision=holiday_subdivision or None,
            closures=tuple(cl),
            special_days=sp,
            name=name,
        )

    @classmethod
    def from_company(cls, company: Any) -> CompanyCalendar:
        """From a `db.models.Company` row (duck-typed to keep this module free of the ORM)."""
        return cls.from_config(
            timezone=company.timezone,
            weekly_hours=company.weekly_hours or {},
            holiday_country=company.holiday_country,
            holiday_subdivision=company.holiday_subdivision,
            closures=company.closures or (),
            special_days=company.special_days or {},
            name=company.name,
        )

    def to_config(self) -> dict[str, Any]:
        """The JSON shapes `from_config` reads (days off are folded into empty weekdays)."""
        return {
            "timezone": self.timezone,
            "weekly_hours": {
                k: _fmt_intervals(self.weekly[i])
                for i, k in enumerate(WEEKDAY_NAMES)
                if self.weekly[i] and i not in self.days_off
            },
            "holiday_country": self.holiday_country,
            "holiday_subdivision": self.holiday_subdivision,
            "closures": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in self.closures],
            "special_days": {
                d.isoformat(): _fmt_intervals(iv) for d, iv in sorted(self.special_days.items())
            },
        }
