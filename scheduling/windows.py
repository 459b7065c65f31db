"""Callee calling windows: the legal local hours of the called person (docs/compliance.md).

A `CallingWindow` is a jurisdiction preset (weekly local hours, optional public-holiday
exclusion, attempt caps, a cool-off after a refusal) without a zone; `in_zone(zone)` binds it
to the callee's zone and returns a cached `Schedule`. The callee's zone comes from the lead,
else from the number's candidate zones (phonenumbers). When a number maps to several zones,
the caller intersects the window in every one of them (only instants allowed everywhere).

All numbers here are defaults a deployment's lawyers may change: presets are data, and
`CallingWindow.from_config` builds an edited copy.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import geocoder as pn_geocoder
from phonenumbers import timezone as pn_timezone

from scheduling.calendar import (
    DEFAULT_HORIZON_DAYS,
    WEEKDAY_NAMES,
    CalendarError,
    DayIntervals,
    Schedule,
    is_public_holiday,
    parse_intervals,
    zone,
)

__all__ = [
    "PRESETS",
    "AttemptCap",
    "CallingWindow",
    "candidate_zones",
    "jurisdiction_for_number",
    "preset",
    "window_allows",
]


@dataclass(frozen=True, slots=True)
class AttemptCap:
    """At most `max_attempts` attempts in any rolling `period` (France: 4 per 30 days)."""

    period: timedelta
    max_attempts: int

    def __post_init__(self) -> None:
        if self.period <= timedelta(0) or self.max_attempts < 1:
            raise CalendarError(
                f"attempt cap needs a positive period and max_attempts >= 1, got {self!r}"
            )


@dataclass(frozen=True, eq=False, kw_only=True)
class CallingWindow:
    """A jurisdiction's allowed local calling hours, independent of any zone.

    Compared by identity: it owns the cache of its per-zone schedules.
    """

    name: str
    weekly: tuple[DayIntervals, ...]
    #: no calls on this country's public holidays in the callee's local calendar (France: FR)
    holiday_country: str | None = None
    attempt_caps: tuple[AttemptCap, ...] = ()
    #: no call for this long after the callee refused (France: 60 days)
    refusal_cooldown: timedelta | None = None
    _bound: dict[str, _WindowInZone] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise CalendarError(f"window {self.name!r}: weekly hours need 7 days (Mon..Sun)")
        for i, iv in enumerate(self.weekly):
            parse_intervals(iv, f"window {self.name!r} {WEEKDAY_NAMES[i]}")
        if not any(self.weekly):
            raise CalendarError(f"window {self.name!r} allows no time at all")

    def in_zone(self, zone_name: str) -> Schedule:
        """This window in the callee's zone (cached per zone; raises on an unknown zone)."""
        got = self._bound.get(zone_name)
        if got is None:
            zone(zone_name)
            got = _WindowInZone(self, zone_name)
            self._bound[zone_name] = got
        return got

    @classmethod
    def from_config(cls, spec: str | Mapping[str, Any]) -> CallingWindow:
        """A preset by name, or {"preset": name, "hours": {...}, "holiday_country": ...,
        "caps": [{"period_s": 2592000, "max_attempts": 4}], "refusal_cooldown_s": ...}.

        Keys given replace the preset's values; a dict without "preset" starts from nothing.
        """
        if isinstance(spec, str):
            return preset(spec)
        known = {"preset", "name", "hours", "holiday_country", "caps", "refusal_cooldown_s"}
        unknown = set(spec) - known
        if unknown:
            raise CalendarError(
                f"calling window: unknown key(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        base = preset(spec["preset"]) if "preset" in spec else None
        name = str(spec.get("name") or (base.name + "*" if base else "custom"))
        if "hours" in spec:
            hours = spec["hours"]
            bad = set(hours) - set(WEEKDAY_NAMES)
            if bad:
                raise CalendarError(f"window {name!r}: unknown weekday key(s) {sorted(bad)}")
            weekly = tuple(
                parse_intervals(hours.get(k, ()), f"window {name!r} {k}") for k in WEEKDAY_NAMES
            )
        elif base is not None:
            weekly = base.weekly
        else:
            raise CalendarError(f"window {name!r}: give 'preset' or 'hours'")
        caps = base.attempt_caps if base else ()
        if "caps" in spec:
            try:
                caps = tuple(
                    AttemptCap(timedelta(seconds=float(c["period_s"])), int(c["max_attempts"]))
                    for c in spec["caps"]
                )
            except (KeyError, TypeError, ValueError) as e:
                raise CalendarError(
                    f"window {name!r}: caps must be [{{'period_s': n, 'max_attempts': n}}]: {e}"
                ) from e
        cooldown = base.refusal_cooldown if base else None
        if "refusal_cooldown_s" in spec:
            v = spec["refusal_cooldown_s"]
            cooldown = None if v is None else timedelta(seconds=float(v))
        return cls(
            name=name,
            weekly=weekly,
            holiday_country=spec.get("holiday_country", base.holiday_country if base else None),
            attempt_caps=caps,
            refusal_cooldown=cooldown,
        )


class _WindowInZone(Schedule):
    """A CallingWindow bound to one IANA zone."""

    def __init__(self, window: CallingWindow, zone_name: str) -> None:
        self.window = window
        self.zone_name = zone_name
        self.horizon_days = DEFAULT_HORIZON_DAYS
        self._cache: dict[int, tuple[tuple[int, int], ...]] = {}

    def day_intervals(self, d: date) -> DayIntervals:
        w = self.window
        iv = w.weekly[d.weekday()]
        if iv and w.holiday_country and is_public_holiday(w.holiday_country, None, d):
            return ()
        return iv

    def __repr__(self) -> str:
        return f"<window {self.window.name} in {self.zone_name}>"


def _hours(**days: str) -> tuple[DayIntervals, ...]:
    return tuple(
        parse_intervals(days[k].split(",") if days.get(k) else (), f"preset {k}")
        for k in WEEKDAY_NAMES
    )


#: the presets' data file (docs/compliance.md): hours, caps and the compliance limits
PRESETS_FILE = Path(__file__).with_name("presets.toml")


@functools.cache
def preset_data() -> Mapping[str, Mapping[str, Any]]:
    """The presets file, parsed (read once). scheduling/compliance.py reads the rest of it."""
    with PRESETS_FILE.open("rb") as f:
        return tomllib.load(f)


def _window_from_data(name: str, data: Mapping[str, Any]) -> CallingWindow:
    hours = dict(data.get("hours") or {})
    every = hours.pop("all", None)
    bad = set(hours) - set(WEEKDAY_NAMES)
    if bad:
        raise CalendarError(f"preset {name!r}: unknown weekday key(s) {sorted(bad)} in hours")
    days = {k: hours.get(k, every or "") for k in WEEKDAY_NAMES}
    try:
        caps = tuple(AttemptCap(timedelta(hours=float(c["period_h"])), int(c["max_attempts"]))
                     for c in data.get("caps", ()))
    except (KeyError, TypeError, ValueError) as e:
        raise CalendarError(
            f"preset {name!r}: caps must be [{{period_h = n, max_attempts = n}}]: {e}") from e
    cooldown = data.get("refusal_cooldown_days")
    return CallingWindow(
        name=name,
        weekly=_hours(**days),
        holiday_country=data.get("holiday_country"),
        attempt_caps=caps,
        refusal_cooldown=None if cooldown is None else timedelta(days=float(cooldown)),
    )


#: the presets by name (the keys `Campaign.calling_window` stores), from presets.toml
PRESETS: dict[str, CallingWindow] = {
    name: _window_from_data(name, data) for name, data in preset_data().items()
}


def preset(name: str) -> CallingWindow:
    """A preset by name; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise CalendarError(
            f"unknown calling-window preset {name!r}; choose one of {sorted(PRESETS)}"
        ) from None


@functools.lru_cache(maxsize=100_000)
def _zones_for_number(e164: str) -> tuple[str, ...]:
    try:
        num = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = pn_timezone.time_zones_for_number(num)
    return tuple(z for z in zones if z != pn_timezone.UNKNOWN_TIMEZONE)


def candidate_zones(
    lead_zone: str | None, phone_e164: str | None, default_zone: str | None = None
) -> tuple[str, ...]:
    """The callee's candidate zones: the lead's own, else the number's, else the default.

    An empty tuple means the zone is unknown (the caller must then refuse to dial: calling
    without knowing the local time cannot be shown to respect the window).
    """
    if lead_zone:
        return (lead_zone,)
    if phone_e164:
        zones = _zones_for_number(phone_e164)
        if zones:
            return zones
    return (default_zone,) if default_zone else ()


#: US states (and DC) by the name phonenumbers' geocoder gives, for "US-XX" jurisdictions
_US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "Washington D.C.": "DC", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY",
}
_US_CODES = frozenset(_US_STATES.values())


@functools.lru_cache(maxsize=100_000)
def jurisdiction_for_number(e164: str) -> str | None:
    """Where a number's rules come from: "US-FL" when phonenumbers' geocoder places a US
    number in a state ("Florida", "Miami, FL"), else the ISO region ("US", "CA", "GB"), or
    None when the number cannot be parsed.

    The geocoder knows the area code's state, not where the person is now (a ported or
    mobile number keeps its area code); the rules assume the person is where the number says,
    as the state laws themselves do for area codes.
    """
    try:
        num = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(num)
    if region == "US":
        place = pn_geocoder.description_for_number(num, "en")
        code = _US_STATES.get(place)
        if code is None and ", " in place:
            tail = place.rsplit(", ", 1)[1]
            code = tail if tail in _US_CODES else None
        if code:
            return f"US-{code}"
    return region


def window_allows(window: CallingWindow, zones: tuple[str, ...], at: datetime) -> bool:
    """True when `at` is inside the window in every candidate zone (False if none known)."""
    return bool(zones) and all(window.in_zone(z).is_open(at) for z in zones)
