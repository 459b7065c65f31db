"""Property tests: calendars and next_callable_at against independent oracles.

Across DST changes (incl. midnight and 30-minute / 2-hour shifts), holidays, closures,
midnight and year wraps, leap days and empty calendars: the answer is >= now, every rule
holds at it, and no sampled earlier instant satisfies every rule.
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_oracle import ZONES, calendar_open, calendars, instants, leads_and_rules, rules_hold

from scheduling.calendar import CompanyCalendar
from scheduling.callable import NeverReason, next_callable_at

PROPS = settings(
    max_examples=int(os.environ.get("SCHED_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _samples(rng: random.Random, lo: datetime, hi: datetime, n: int) -> list[datetime]:
    """Random instants in [lo, hi) plus the ones right before hi, where bugs cluster."""
    span = (hi - lo).total_seconds()
    if span <= 0:
        return []
    out = [lo + timedelta(seconds=rng.random() * span) for _ in range(n)]
    for back in (1, 60, 1800, 3600):
        if back <= span:
            out.append(hi - timedelta(seconds=back))
    out.append(lo)
    return out


@PROPS
@given(cal=calendars(), at=instants(), seed=st.integers(0, 2**32))
def test_is_open_matches_wall_time_oracle(cal: CompanyCalendar, at: datetime, seed: int) -> None:
    rng = random.Random(seed)
    for t in [at, *_samples(rng, at, at + timedelta(days=3), 30)]:
        t = t.replace(microsecond=0)
        assert cal.is_open(t) == calendar_open(cal, t), t.isoformat()


@PROPS
@given(cal=calendars(), now=instants(), seed=st.integers(0, 2**32))
def test_next_open_is_earliest_open_instant(cal: CompanyCalendar, now: datetime, seed: int) -> None:
    rng = random.Random(seed)
    got = cal.next_open(now)
    if got is None:
        # never within the horizon: nothing sampled in it may be open
        end = now + timedelta(days=cal.horizon_days)
        assert not any(calendar_open(cal, t) for t in _samples(rng, now, end, 200))
        return
    assert got >= now
    assert calendar_open(cal, got)
    assert not any(calendar_open(cal, t) for t in _samples(rng, now, got, 60))
    # next_close: the open run really ends there, and is open right before it
    close = cal.next_close(got)
    assert close is not None and close > got
    assert calendar_open(cal, close - timedelta(seconds=1))
    if close < got + timedelta(days=cal.horizon_days - 2):
        assert not calendar_open(cal, close)


@PROPS
@given(data=leads_and_rules(), seed=st.integers(0, 2**32))
def test_next_callable_at_is_earliest_allowed_instant(data: tuple, seed: int) -> None:
    lead, rules, now = data
    rng = random.Random(seed)
    res = next_callable_at(lead, now, rules)
    if res.at is None:
        assert res.reason is not None
        if res.reason is NeverReason.NO_OPEN_TIME:
            end = now + timedelta(days=rules.horizon_days)
            assert not any(rules_hold(lead, rules, t) for t in _samples(rng, now, end, 80))
        else:
            # absolute bars: no instant at all is allowed
            for t in _samples(rng, now, now + timedelta(days=400), 20):
                assert not rules_hold(lead, rules, t)
        return
    assert res.at >= now
    assert res.at.tzinfo is not None and res.at.utcoffset() == timedelta(0)
    assert rules_hold(lead, rules, res.at), (res, lead, rules)
    assert not any(rules_hold(lead, rules, t) for t in _samples(rng, now, res.at, 60))


def test_empty_calendar_is_refused_at_save_and_never_opens() -> None:
    from scheduling.calendar import CalendarError

    cal = CompanyCalendar(timezone="Europe/Riga", weekly=((),) * 7, horizon_days=30)
    try:
        cal.validate()
    except CalendarError as e:
        assert "no open time" in str(e)
    else:
        raise AssertionError("validate() accepted a calendar with no open time")
    assert cal.next_open(datetime(2026, 1, 1, tzinfo=UTC)) is None


@PROPS
@given(
    local=st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2030, 12, 31)),
    zone_name=st.sampled_from(ZONES),
)
def test_local_to_utc_round_trips_or_lands_on_the_jump(local: datetime, zone_name: str) -> None:
    from zoneinfo import ZoneInfo

    from scheduling.callbacks import local_to_utc

    local = local.replace(microsecond=0)
    zi = ZoneInfo(zone_name)
    got = local_to_utc(local, zone_name)
    wall = got.astimezone(zi).replace(tzinfo=None)
    if wall == local:
        # an existing time: the earliest instant showing it (fall-back repeats count once)
        earlier = [got - timedelta(minutes=m) for m in (30, 60, 90, 120, 180)]
        assert all(e.astimezone(zi).replace(tzinfo=None) != local for e in earlier)
    else:
        # a skipped time: the first instant after the jump, whose wall time is past `local`
        assert wall > local
        before = (got - timedelta(seconds=1)).astimezone(zi).replace(tzinfo=None)
        assert before < local


@PROPS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["callback", "hot", "complaint", "due"]),
            st.integers(-3, 3),
            st.one_of(st.none(), instants()),
        ),
        max_size=30,
    )
)
def test_plan_order_callbacks_hot_complaints_rest(raw: list) -> None:
    from scheduling.plan import REASON_ORDER, PlanEntry, order_plan

    entries = [PlanEntry(i, None, r, due, prio) for i, (r, prio, due) in enumerate(raw)]
    got = order_plan(entries)
    assert sorted(e.lead_id for e in got) == list(range(len(raw)))
    ranks = [REASON_ORDER[e.reason] for e in got]
    assert ranks == sorted(ranks)
    for a, b in itertools.pairwise(got):
        if a.reason != b.reason:
            continue
        if a.reason == "callback":  # callbacks strictly by agreed time
            assert a.due_at is None or b.due_at is None or a.due_at <= b.due_at
        else:  # then higher priority first, earliest due within a priority
            assert a.priority >= b.priority
            if a.priority == b.priority and a.due_at and b.due_at:
                assert a.due_at <= b.due_at
