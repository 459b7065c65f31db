"""Demo data: client companies in several time zones with real calendars, and their leads.

The demo must show calls within its first 30 seconds whatever the hour and weekday it is run,
yet still show scheduling at work. So companies are placed in zones where it is business time
*now* (there are always some), with realistic calendars: offices (Mon-Fri, lunch 12-13),
shops (every day, lunch 13-14) and service desks (every day, no lunch); one company is closed
today for a holiday, and one zone is chosen where it is night, so some leads are held back.

Demo phone numbers are valid E.164 numbers of each zone's country. Their last three digits
tell the SIPp callee network how to behave (docs/demo.md):

    ...B R T    B = behaviour, R = ring-time bucket, T = talk-time bucket
    B: 0-3 human answers, 4 answering machine, 5 busy (486), 6-7 no answer (CANCEL at the
       ring timeout), 8 rejected (603) if R is even else invalid number (404),
       9 trunk failure (503) if R is even else temporarily unavailable (480)
    ring seconds = 1 + 2*R (answered calls);  talk seconds = 6 + 4*T (compressed demo calls)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

# (IANA zone, region, a national number prefix that maps to that zone)
ZONES: tuple[tuple[str, str, str], ...] = (
    ("Pacific/Honolulu", "US", "+1808555"),
    ("America/Los_Angeles", "US", "+1415555"),
    ("America/Denver", "US", "+1303555"),
    ("America/Chicago", "US", "+1312555"),
    ("America/New_York", "US", "+1212555"),
    ("America/Sao_Paulo", "BR", "+55113555"),
    ("Europe/London", "GB", "+4420795"),
    ("Europe/Berlin", "DE", "+4930123"),
    ("Europe/Paris", "FR", "+33142555"),
    ("Africa/Johannesburg", "ZA", "+2711555"),
    ("Europe/Moscow", "RU", "+7495555"),
    ("Asia/Dubai", "AE", "+9714555"),
    ("Asia/Kolkata", "IN", "+9111555"),
    ("Asia/Singapore", "SG", "+656555"),
    ("Asia/Tokyo", "JP", "+81355555"),
    ("Australia/Sydney", "AU", "+6129555"),
    ("Pacific/Auckland", "NZ", "+6493555"),
)

OFFICE = {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
SHOP = {d: [["08:00", "13:00"], ["14:00", "21:00"]]
        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
DESK = {d: [["07:00", "22:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

#: behaviour digit weights (see module doc): a realistic outbound mix
BEHAVIOURS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass
class DemoCompany:
    name: str
    timezone: str
    weekly_hours: dict[str, list[list[str]]]
    holiday_country: str | None
    closures: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DemoLead:
    phone_e164: str
    name: str
    company: str
    timezone: str
    priority: int
    custom_fields: dict[str, Any]


def _local_hour(now: datetime, zone: str) -> float:
    local = now.astimezone(ZoneInfo(zone))
    return local.hour + local.minute / 60


def business_zones(now: datetime) -> list[tuple[str, str, str]]:
    """Zones where it is between 09:30 and 17:30 local time now (never empty: 17 zones)."""
    return [z for z in ZONES if 9.5 <= _local_hour(now, z[0]) <= 17.5]


def night_zone(now: datetime) -> tuple[str, str, str]:
    return min(ZONES, key=lambda z: abs(_local_hour(now, z[0]) - 3.0))


def valid_number(prefix: str, region: str, rng: random.Random, code: str,
                 extras: Sequence[int] = range(7)) -> str | None:
    """A valid E.164 number of `region` starting with `prefix` and ending with `code`: the
    first valid one of `extras` free digits between them, in that order (the shortest first by
    default, so with a given `rng` the same number comes back; pass a shuffled order for
    another one)."""
    for _ in range(20):
        # national numbers differ in length by country: try 0..6 free digits after the prefix
        for extra in extras:
            candidate = prefix + "".join(str(rng.randrange(10)) for _ in range(extra)) + code
            try:
                parsed = phonenumbers.parse(candidate, None)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(
                parsed
            ) == region:
                return candidate
    return None


def behaviour_code(rng: random.Random) -> str:
    return f"{rng.choice(BEHAVIOURS)}{rng.randrange(10)}{rng.randrange(10)}"


def generate(
    now: datetime, *, leads_per_company: int = 30, seed: int = 7
) -> tuple[list[DemoCompany], list[DemoLead]]:
    rng = random.Random(seed)
    companies: list[DemoCompany] = []
    leads: list[DemoLead] = []
    chosen = business_zones(now)
    plan: list[tuple[tuple[str, str, str], str, dict[str, list[list[str]]]]] = []
    for zone in chosen:
        plan += [(zone, "Office", OFFICE), (zone, "Shop", SHOP), (zone, "Service desk", DESK)]
    plan.append((night_zone(now), "Night office", OFFICE))  # held back: outside hours now
    today_in = {z[0]: now.astimezone(ZoneInfo(z[0])).date() for z in ZONES}
    used: set[str] = set()
    for i, ((zone, region, prefix), kind, hours) in enumerate(plan):
        city = zone.split("/")[-1].replace("_", " ")
        closures: list[dict[str, str]] = []
        if i == 1:  # one company is closed today for a local holiday: its leads wait
            day: date = today_in[zone]
            closures = [{"start": day.isoformat(), "end": day.isoformat(),
                         "reason": "company holiday"}]
        company = DemoCompany(name=f"{city} {kind} {i + 1}", timezone=zone,
                              weekly_hours=hours, holiday_country=region, closures=closures)
        companies.append(company)
        for j in range(leads_per_company):
            number = None
            for _ in range(100):
                number = valid_number(prefix, region, rng, behaviour_code(rng))
                if number is not None and number not in used:
                    break
            if number is None or number in used:
                raise RuntimeError(f"demo data: no valid number for prefix {prefix}")
            used.add(number)
            leads.append(DemoLead(
                phone_e164=number, name=f"Contact {i + 1}-{j + 1}", company=company.name,
                timezone=zone, priority=rng.choice((0, 0, 0, 1, 2)),
                custom_fields={"segment": rng.choice(("retail", "b2b", "smb"))},
            ))
    return companies, leads


def demo_behaviour(phone_e164: str) -> tuple[str, float, float]:
    """What the demo callee network does with a number: (kind, ring_s, talk_s)."""
    b, r, t = (int(c) for c in phone_e164[-3:])
    ring, talk = 1.0 + 2 * r, 6.0 + 4 * t
    if b <= 3:
        return "human", ring, talk
    if b == 4:
        return "machine", ring, talk
    if b == 5:
        return "busy", 0.0, 0.0
    if b in (6, 7):
        return "no_answer", 0.0, 0.0
    if b == 8:
        return ("rejected" if r % 2 == 0 else "invalid"), 0.0, 0.0
    return ("failed" if r % 2 == 0 else "unavailable"), 0.0, 0.0


def local_time(now: datetime, zone: str) -> time:
    return now.astimezone(ZoneInfo(zone)).time()


__all__ = ["DemoCompany", "DemoLead", "demo_behaviour", "generate", "local_time"]
