"""Independent oracles and hypothesis strategies for the scheduling property tests.

The oracles answer "is this instant allowed?" the slow, obvious way - convert the instant to
local wall time with zoneinfo and look the local date and time of day up in the
configuration - sharing no interval code with scheduling/, so a bug in the UTC interval
machinery (DST, midnight, year wrap) shows up as a disagreement.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
from hypothesis import strategies as st

from common.vocabulary import DIALABLE_STATUSES, AttemptResult, LeadStatus, RetryPolicy
from scheduling.calendar import CompanyCalendar
from scheduling.callable import CallingRules, LeadFacts
from scheduling.windows import CallingWindow, candidate_zones

# Zones chosen for awkward rules: DST at midnight (Santiago, Havana, Asuncion), 30-min DST
# (Lord Howe), 2-hour DST (Troll), +13:45 (Chatham), date-line moves (Apia), no DST (Kolkata).
ZONES = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Paris",
    "Europe/Riga",
    "America/Santiago",
    "America/Havana",
    "America/Asuncion",
    "Australia/Lord_Howe",
    "Antarctica/Troll",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Asia/Kolkata",
    "America/St_Johns",
]

# instants around which calendars are hardest: DST changes, midnight, year ends, leap days
_SPECIAL = [
    datetime(2026, 3, 8, 6, 0, tzinfo=UTC),  # US spring forward
    datetime(2026, 11, 1, 5, 0, tzinfo=UTC),  # US fall back
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # EU spring forward
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # EU fall back
    datetime(2026, 9, 6, 3, 0, tzinfo=UTC),  # Chile spring forward at midnight
    datetime(2026, 4, 5, 2, 0, tzinfo=UTC),  # Chile / Lord Howe / Chatham fall back
    datetime(2026, 12, 31, 12, 0, tzinfo=UTC),  # year wrap
    datetime(2027, 12, 31, 22, 0, tzinfo=UTC),
    datetime(2028, 2, 28, 12, 0, tzinfo=UTC),  # leap day
    datetime(2024, 2, 29, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 24, 8, 0, tzinfo=UTC),  # holidays
    datetime(2026, 7, 3, 23, 0, tzinfo=UTC),
    datetime(2026, 5, 1, 0, 0, tzinfo=UTC),
]


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    if draw(st.booleans()):
        base = draw(st.sampled_from(_SPECIAL))
        return base + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))
    return draw(
        st.datetimes(
            min_value=datetime(2023, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
        )
    ).replace(microsecond=0)


_BOUNDS = st.one_of(
    st.integers(0, 1440),
    st.sampled_from([0, 30, 60, 90, 120, 150, 180, 1380, 1410, 1439, 1440]),  # DST-ish hours
)


@st.composite
def day_intervals(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    pts = sorted(set(draw(st.lists(_BOUNDS, max_size=6))))
    if len(pts) % 2:
        pts = pts[:-1]
    return tuple((pts[i], pts[i + 1]) for i in range(0, len(pts), 2))


@st.composite
def calendars(draw: st.DrawFn, allow_empty: bool = True) -> CompanyCalendar:
    tz = draw(st.sampled_from(ZONES))
    weekly = tuple(draw(day_intervals()) for _ in range(7))
    days_off = frozenset(draw(st.sets(st.integers(0, 6), max_size=3)))
    if not allow_empty and not any(iv for i, iv in enumerate(weekly) if i not in days_off):
        weekly = (((540, 1020),), *weekly[1:])
        days_off = days_off - {0}
    country = draw(st.sampled_from([None, "FR", "US", "GB", "LV"]))
    closures = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.dates(min_value=date(2023, 1, 1), max_value=date(2031, 1, 1)))
        closures.append((start, start + timedelta(days=draw(st.integers(0, 20)))))
    special = {}
    for _ in range(draw(st.integers(0, 2))):
        d = draw(st.dates(min_value=date(2023, 1, 1), max_value=date(2031, 1, 1)))
        special[d] = draw(day_intervals())
    return CompanyCalendar(
        timezone=tz,
        weekly=weekly,
        days_off=days_off,
        holiday_country=country,
        closures=tuple(closures),
        special_days=special,
        name="hypothesis",
        horizon_days=120,
    )


def _holiday(country: str | None, sub: str | None, d: date) -> bool:
    return bool(country) and d in holidays.country_holidays(country, subdiv=sub, years=d.year)


def _in(intervals: tuple[tuple[int, int], ...], local: datetime) -> bool:
    secs = local.hour * 3600 + local.minute * 60 + local.second
    return any(s * 60 <= secs < e * 60 for s, e in intervals)


def calendar_open(cal: CompanyCalendar, t: datetime) -> bool:
    local = t.astimezone(ZoneInfo(cal.timezone))
    d = local.date()
    if d in cal.special_days:
        return _in(cal.special_days[d], local)
    if d.weekday() in cal.days_off:
        return False
    if any(a <= d <= b for a, b in cal.closures):
        return False
    if _holiday(cal.holiday_country, cal.holiday_subdivision, d):
        return False
    return _in(cal.weekly[d.weekday()], local)


def window_open(w: CallingWindow, zone_name: str, t: datetime) -> bool:
    local = t.astimezone(ZoneInfo(zone_name))
    d = local.date()
    if _holiday(w.holiday_country, None, d):
        return False
    return _in(w.weekly[d.weekday()], local)


def rules_hold(lead: LeadFacts, rules: CallingRules, t: datetime) -> bool:
    """Every calling rule, checked directly at instant t."""
    if lead.dnc or lead.status not in DIALABLE_STATUSES:
        return False
    if lead.attempts >= rules.retry.max_attempts:
        return False
    # an agreed callback is not pushed back by the retry delay of the call that agreed it
    if (
        lead.last_attempt_at is not None
        and lead.last_result is not None
        and lead.callback_at is None
        and t < lead.last_attempt_at + rules.retry.delay_after(lead.last_result)
    ):
        return False
    if lead.last_abandoned_at is not None and t < lead.last_abandoned_at + rules.abandon_lockout:
        return False
    if (
        rules.machine_redial_gap is not None
        and lead.last_result == AttemptResult.MACHINE
        and lead.last_attempt_at is not None
        and t < lead.last_attempt_at + rules.machine_redial_gap
    ):
        return False
    if lead.callback_at is not None and t < lead.callback_at:
        return False
    if lead.next_contact_at is not None and t < lead.next_contact_at:
        return False
    window = rules.window
    if lead.jurisdiction:
        window = rules.windows.get(lead.jurisdiction, rules.window)
    if (
        lead.refused_at is not None
        and window.refusal_cooldown is not None
        and t < lead.refused_at + window.refusal_cooldown
    ):
        return False
    caps = [(c.period, c.max_attempts) for c in window.attempt_caps]
    if rules.retry.max_attempts_per_30_days is not None:
        caps.append((timedelta(days=30), rules.retry.max_attempts_per_30_days))
    for period, cap in caps:
        if sum(1 for a in lead.recent_attempts if t - period < a <= t) >= cap:
            return False
    zones = candidate_zones(lead.timezone, lead.phone_e164, rules.default_zone)
    if not zones:
        return False
    cal = lead.calendar if lead.calendar is not None else rules.calendar
    if cal is not None and not calendar_open(cal, t):
        return False
    return all(window_open(window, z, t) for z in zones)


@st.composite
def windows(draw: st.DrawFn) -> CallingWindow:
    from scheduling.windows import PRESETS, AttemptCap

    if draw(st.booleans()):
        return draw(st.sampled_from(list(PRESETS.values())))
    weekly = tuple(draw(day_intervals()) for _ in range(7))
    if not any(weekly):
        weekly = (((480, 1260),),) * 7
    caps = ()
    if draw(st.booleans()):
        caps = (AttemptCap(timedelta(hours=draw(st.integers(1, 720))), draw(st.integers(1, 4))),)
    return CallingWindow(
        name="hyp",
        weekly=weekly,
        holiday_country=draw(st.sampled_from([None, "FR", "US"])),
        attempt_caps=caps,
        refusal_cooldown=draw(st.sampled_from([None, timedelta(days=60)])),
    )


def _opt_time(now: datetime) -> st.SearchStrategy[datetime | None]:
    return st.one_of(
        st.none(),
        st.integers(-100 * 3600, 100 * 3600).map(lambda s: now + timedelta(seconds=s)),
    )


@st.composite
def leads_and_rules(draw: st.DrawFn) -> tuple[LeadFacts, CallingRules, datetime]:
    now = draw(instants())
    if draw(st.integers(0, 4)) == 0:
        now = now + timedelta(microseconds=draw(st.integers(1, 999_999)))
    tz = draw(st.sampled_from([None, *ZONES]))
    # single-zone numbers, and numbers with several candidate zones (Spain + Canaries,
    # Australian mobiles incl. Lord Howe, US toll-free over 40 zones), and an unknown one
    phone = draw(st.sampled_from([
        None, "+12125550100", "+33142685300", "+37167000000", "+34600123456",
        "+61412345678", "+18005550100", "+17005550100",
    ]))
    default_zone = draw(st.sampled_from([None, "Europe/Riga"]))
    last_at = draw(_opt_time(now))
    if last_at is not None and last_at > now:
        last_at = now
    recent = tuple(
        now - timedelta(seconds=draw(st.integers(0, 35 * 86400)))
        for _ in range(draw(st.integers(0, 5)))
    )
    lead = LeadFacts(
        lead_id=1,
        status=draw(st.sampled_from(list(LeadStatus))) if draw(st.integers(0, 9)) == 5
        else LeadStatus.POTENTIAL,
        timezone=tz,
        phone_e164=phone,
        dnc=draw(st.integers(0, 19)) == 7,
        attempts=draw(st.integers(0, 3)),
        last_attempt_at=last_at,
        last_result=draw(st.sampled_from(list(AttemptResult))) if last_at else None,
        last_abandoned_at=draw(_opt_time(now)),
        recent_attempts=recent,
        callback_at=draw(_opt_time(now)),
        next_contact_at=draw(_opt_time(now)),
        refused_at=draw(_opt_time(now)),
        calendar=draw(st.one_of(st.none(), calendars())),
    )
    rules = CallingRules(
        retry=RetryPolicy(
            max_attempts=draw(st.integers(2, 8)),
            max_attempts_per_30_days=draw(st.sampled_from([None, 2, 4])),
        ),
        window=draw(windows()),
        calendar=draw(st.one_of(st.none(), calendars(allow_empty=False))),
        abandon_lockout=timedelta(hours=draw(st.sampled_from([0, 24, 72]))),
        machine_redial_gap=draw(st.sampled_from([None, timedelta(hours=24)])),
        default_zone=default_zone,
        horizon_days=120,
    )
    return lead, rules, now
