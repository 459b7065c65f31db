"""Worked examples of the scheduling rules: presets, calendars, callbacks, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from common.vocabulary import AttemptResult, CallbackScope, LeadStatus, RetryPolicy
from scheduling.calendar import CalendarError, CompanyCalendar
from scheduling.callable import CallingRules, Gate, LeadFacts, NeverReason, next_callable_at
from scheduling.callbacks import (
    CallbackError,
    CallbackFacts,
    CallbackPolicy,
    CallbackRoute,
    due_reminders,
    local_to_utc,
    next_wakeup,
    route,
    validate_new_callback,
)
from scheduling.windows import PRESETS, CallingWindow, candidate_zones, window_allows

PARIS = "Europe/Paris"
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def riga_office() -> CompanyCalendar:
    return CompanyCalendar.from_config(
        timezone="Europe/Riga",
        weekly_hours={d: ["09:00-12:00", "13:00-18:00"] for d in WORKDAYS},
        holiday_country="LV",
        closures=[{"start": "2026-12-28", "end": "2026-12-31"}],
        special_days={"2026-12-27": [["10:00", "14:00"]]},
        name="riga",
    )


def test_calendar_lunch_break_days_off_holiday_closure_and_special_day() -> None:
    cal = riga_office()
    # Monday 2026-11-23, Riga is UTC+2 in winter: lunch 12:00-13:00 local = 10:00-11:00 UTC
    assert cal.is_open(utc(2026, 11, 23, 9, 59))
    assert not cal.is_open(utc(2026, 11, 23, 10, 30))
    assert cal.next_open(utc(2026, 11, 23, 10, 30)) == utc(2026, 11, 23, 11, 0)
    assert cal.next_close(utc(2026, 11, 23, 11, 0)) == utc(2026, 11, 23, 16, 0)
    # Saturday closed -> Monday 09:00 local
    assert cal.next_open(utc(2026, 11, 28, 12, 0)) == utc(2026, 11, 30, 7, 0)
    # Latvian Independence Day (observed Mon 2026-11-18 is a Wednesday: a holiday)
    assert not cal.is_open(utc(2026, 11, 18, 10, 0))
    assert cal.open_intervals(date(2026, 11, 18)) == []
    # special opening day on a Sunday, then the closure to the 31st, then New Year's Day
    assert cal.open_intervals(date(2026, 12, 27)) == [(utc(2026, 12, 27, 8), utc(2026, 12, 27, 12))]
    assert cal.next_open(utc(2026, 12, 27, 12, 0)) == utc(2027, 1, 4, 7, 0)


def test_calendar_config_round_trip_and_errors() -> None:
    cal = riga_office()
    again = CompanyCalendar.from_config(**cal.to_config(), name="riga")
    for d in (date(2026, 11, 23), date(2026, 12, 27), date(2026, 12, 29)):
        assert again.open_intervals(d) == cal.open_intervals(d)
    with pytest.raises(CalendarError, match="overlap"):
        CompanyCalendar.from_config(
            timezone="UTC", weekly_hours={"mon": ["09:00-12:00", "11:00-13:00"]}
        )
    with pytest.raises(CalendarError, match="unknown weekday"):
        CompanyCalendar.from_config(timezone="UTC", weekly_hours={"monday": ["09:00-12:00"]})
    with pytest.raises(CalendarError, match="unknown time zone"):
        CompanyCalendar.from_config(timezone="Mars/Olympus", weekly_hours={"mon": ["09:00-12:00"]})
    with pytest.raises(CalendarError, match="25:00"):
        CompanyCalendar.from_config(timezone="UTC", weekly_hours={"mon": ["09:00-25:00"]})
    with pytest.raises(CalendarError, match="holiday country"):
        CompanyCalendar.from_config(timezone="UTC", weekly_hours={"mon": ["09:00-12:00"]},
                                    holiday_country="XX")
    closed = CompanyCalendar.from_config(
        timezone="UTC", weekly_hours={"mon": ["09:00-12:00"]}, days_off=["mon"]
    )
    with pytest.raises(CalendarError, match="no open time"):
        closed.validate()
    # open in principle, but a year-long closure swallows every day: caught with `now`
    shut = CompanyCalendar.from_config(
        timezone="UTC", weekly_hours={"mon": ["09:00-12:00"]},
        closures=[{"start": "2026-01-01", "end": "2029-01-01"}],
    )
    shut.validate()
    with pytest.raises(CalendarError, match="never opens"):
        shut.validate(now=utc(2026, 6, 1))


def test_calendar_over_dst_gap_and_overlap() -> None:
    ny = CompanyCalendar.from_config(
        timezone="America/New_York",
        weekly_hours={d: ["01:30-03:30"] for d in ("sun",)},
    )
    # 2026-03-08 spring forward: 02:00-03:00 does not exist; open 01:30-02:00 EST + 03:00-03:30 EDT
    assert ny.open_intervals(date(2026, 3, 8)) == [(utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 30))]
    # 2026-11-01 fall back at 06:00 UTC (02:00 EDT -> 01:00 EST): 01:30-02:00 EDT is open,
    # 01:00-01:30 EST is not (wall time before 01:30), then 01:30-03:30 EST again
    assert ny.open_intervals(date(2026, 11, 1)) == [
        (utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6)),
        (utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 8, 30)),
    ]


def test_france_preset_lunch_holidays_and_caps() -> None:
    rules = CallingRules(window=PRESETS["france"])
    paris_lead = LeadFacts(phone_e164="+33142685300")
    # Monday 13:30 Paris (12:30 UTC): lunch -> 14:00 Paris
    res = next_callable_at(paris_lead, utc(2026, 11, 23, 12, 30), rules)
    assert res.at == utc(2026, 11, 23, 13)
    # Friday 20:30 Paris -> Monday 10:00 Paris; Armistice day Wed 11 Nov 2026 is skipped
    assert next_callable_at(paris_lead, utc(2026, 11, 20, 19, 30), rules).at == utc(2026, 11, 23, 9)
    assert next_callable_at(paris_lead, utc(2026, 11, 10, 19, 30), rules).at == utc(2026, 11, 12, 9)
    # 4 attempts in 30 days: the 5th waits until the oldest leaves the 30-day period
    now = utc(2026, 11, 23, 10)
    tries = tuple(now - timedelta(days=d) for d in (20, 10, 5, 1))
    capped = LeadFacts(phone_e164="+33142685300", attempts=4, recent_attempts=tries)
    res = next_callable_at(capped, now, rules)
    # 2026-12-03 10:00 UTC is Thursday 11:00 in Paris: inside the window
    assert res.gate is Gate.ATTEMPT_CAP and res.at == tries[0] + timedelta(days=30)
    # refusal: 60 days of silence
    refused = LeadFacts(phone_e164="+33142685300", refused_at=now)
    assert next_callable_at(refused, now, rules).at >= now + timedelta(days=60)


def test_us_fl_three_per_24h_and_canada_weekend() -> None:
    rules = CallingRules(window=PRESETS["us_federal"], windows={"US-FL": PRESETS["us_fl"]})
    now = utc(2026, 11, 23, 17)  # 12:00 in Miami
    tries = (now - timedelta(hours=20), now - timedelta(hours=5), now - timedelta(hours=1))
    fl = LeadFacts(timezone="America/New_York", jurisdiction="US-FL", attempts=3,
                   recent_attempts=tries)
    assert next_callable_at(fl, now, rules).at == tries[0] + timedelta(hours=24)
    other = LeadFacts(timezone="America/New_York", jurisdiction="US-NY", attempts=3,
                      recent_attempts=tries)
    assert next_callable_at(other, now, rules).at == now
    canada = CallingRules(window=PRESETS["canada"])
    # Saturday 09:00 Toronto: weekend window starts at 10:00
    sat = utc(2026, 11, 28, 14)
    res = next_callable_at(LeadFacts(timezone="America/Toronto"), sat, canada)
    assert res.at == utc(2026, 11, 28, 15)


def test_several_candidate_zones_need_every_zone_to_allow() -> None:
    zones = candidate_zones(None, "+34600123456")
    assert set(zones) == {"Europe/Madrid", "Atlantic/Canary"}
    w = PRESETS["us_federal"]  # 08:00-21:00; Canary is one hour behind Madrid
    # 07:30 UTC: 08:30 Madrid but 07:30 Canary -> not allowed until 08:00 UTC
    assert not window_allows(w, zones, utc(2026, 11, 23, 7, 30))
    res = next_callable_at(LeadFacts(phone_e164="+34600123456"), utc(2026, 11, 23, 7, 30),
                           CallingRules(window=w))
    assert res.at == utc(2026, 11, 23, 8)
    # 20:30 UTC: 21:30 Madrid (closed) though Canary allows it -> next day
    res = next_callable_at(LeadFacts(phone_e164="+34600123456"), utc(2026, 11, 23, 20, 30),
                           CallingRules(window=w))
    assert res.at == utc(2026, 11, 24, 8)
    # a zone given on the lead wins over the number's
    assert candidate_zones("Europe/Riga", "+34600123456") == ("Europe/Riga",)


def test_never_reasons() -> None:
    now = utc(2026, 11, 23, 15)
    rules = CallingRules(retry=RetryPolicy(max_attempts=3))
    ny = "America/New_York"
    assert next_callable_at(LeadFacts(timezone=ny, dnc=True), now, rules).reason is NeverReason.DNC
    assert next_callable_at(LeadFacts(timezone=ny, status=LeadStatus.DONE), now, rules).reason \
        is NeverReason.STATUS
    assert next_callable_at(LeadFacts(timezone=ny, attempts=3), now, rules).reason \
        is NeverReason.MAX_ATTEMPTS
    assert next_callable_at(LeadFacts(phone_e164="+17005550100"), now, rules).reason \
        is NeverReason.UNKNOWN_ZONE
    night_shop = CompanyCalendar.from_config(timezone=ny, weekly_hours={"mon": ["22:00-23:00"]})
    res = next_callable_at(LeadFacts(timezone=ny, calendar=night_shop), now, rules)
    assert res.reason is NeverReason.NO_OPEN_TIME and res.never


def test_abandon_lockout_and_retry_delay() -> None:
    now = utc(2026, 11, 23, 15)  # 10:00 New York
    rules = CallingRules(abandon_lockout=timedelta(hours=72))
    lead = LeadFacts(timezone="America/New_York", attempts=1, last_result=AttemptResult.BUSY,
                     last_attempt_at=now - timedelta(minutes=5),
                     last_abandoned_at=now - timedelta(hours=71))
    res = next_callable_at(lead, now, rules)
    assert res.at == now + timedelta(hours=1) and res.gate is Gate.ABANDON_LOCKOUT
    busy = LeadFacts(timezone="America/New_York", attempts=1, last_result=AttemptResult.BUSY,
                     last_attempt_at=now - timedelta(minutes=5))
    res = next_callable_at(busy, now, rules)
    assert res.at == now + timedelta(minutes=10) and res.gate is Gate.RETRY_DELAY


def test_window_from_config_edits_a_preset() -> None:
    w = CallingWindow.from_config({"preset": "france", "refusal_cooldown_s": None,
                                   "caps": [{"period_s": 86400, "max_attempts": 2}]})
    assert w.refusal_cooldown is None and w.attempt_caps[0].max_attempts == 2
    assert w.weekly == PRESETS["france"].weekly and w.holiday_country == "FR"
    with pytest.raises(CalendarError, match="unknown calling-window preset"):
        CallingWindow.from_config("mars")
    with pytest.raises(CalendarError, match="unknown key"):
        CallingWindow.from_config({"preset": "france", "hour": {}})


# -- callbacks ---------------------------------------------------------------------------------


def test_local_to_utc_across_dst() -> None:
    assert local_to_utc(datetime(2026, 7, 1, 10, 0), PARIS) == utc(2026, 7, 1, 8)
    # 02:30 does not exist on 2026-03-29 in Paris: the clocks jump at 01:00 UTC
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), PARIS) == utc(2026, 3, 29, 1)
    # 02:30 happens twice on 2026-10-25: the first one (CEST)
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), PARIS) == utc(2026, 10, 25, 0, 30)
    with pytest.raises(CallbackError, match="naive"):
        local_to_utc(utc(2026, 7, 1), PARIS)


def _cb(**kw: object) -> CallbackFacts:
    base: dict = dict(callback_id=1, lead_id=10, campaign_id=3, scope=CallbackScope.AGENT,
                      owner_agent_id=7, due_at=utc(2026, 11, 23, 15))
    base.update(kw)
    return CallbackFacts(**base)


def test_callback_routing_owner_grace_then_campaign() -> None:
    policy = CallbackPolicy(grace=timedelta(minutes=15), reminder_before=timedelta(minutes=10))
    cb = _cb()
    assert route(cb, utc(2026, 11, 23, 14, 59), policy).route is CallbackRoute.NOT_DUE
    r = route(cb, utc(2026, 11, 23, 15, 5), policy)
    assert (r.route, r.agent_id) == (CallbackRoute.OWNER, 7)
    assert r.changes_at == utc(2026, 11, 23, 15, 15)
    assert route(cb, utc(2026, 11, 23, 15, 15), policy).route is CallbackRoute.CAMPAIGN
    camp = _cb(scope=CallbackScope.CAMPAIGN, owner_agent_id=None)
    assert route(camp, utc(2026, 11, 23, 15), policy).route is CallbackRoute.CAMPAIGN


def test_callback_reminders_once_and_in_time() -> None:
    policy = CallbackPolicy(grace=timedelta(minutes=15), reminder_before=timedelta(minutes=10))
    cbs = [_cb(), _cb(callback_id=2, scope=CallbackScope.CAMPAIGN, owner_agent_id=None),
           _cb(callback_id=3, reminded_at=utc(2026, 11, 23, 14, 50)),
           _cb(callback_id=4, due_at=utc(2026, 11, 23, 16))]
    assert due_reminders(cbs, utc(2026, 11, 23, 14, 49), policy) == []
    got = due_reminders(cbs, utc(2026, 11, 23, 14, 50), policy)
    assert [r.callback_id for r in got] == [1] and not got[0].late
    assert got[0].to_message()["agent_id"] == 7
    late = due_reminders(cbs, utc(2026, 11, 23, 15, 5), policy)
    assert [r.callback_id for r in late] == [1] and late[0].late
    assert due_reminders(cbs, utc(2026, 11, 23, 15, 15), policy) == []
    assert next_wakeup(cbs, utc(2026, 11, 23, 14, 0), policy) == utc(2026, 11, 23, 14, 50)
    assert next_wakeup(cbs, utc(2026, 11, 23, 14, 50), policy) == utc(2026, 11, 23, 15, 0)


def test_validate_new_callback() -> None:
    now = utc(2026, 11, 23, 12)
    with pytest.raises(CallbackError, match="owner_agent_id"):
        validate_new_callback(scope=CallbackScope.AGENT, owner_agent_id=None,
                              due_at=now + timedelta(hours=1), now=now)
    with pytest.raises(CallbackError, match="in the past"):
        validate_new_callback(scope=CallbackScope.CAMPAIGN, owner_agent_id=None,
                              due_at=now - timedelta(hours=1), now=now)
    validate_new_callback(scope=CallbackScope.AGENT, owner_agent_id=1,
                          due_at=now + timedelta(hours=1), now=now)


def test_retry_rules_json() -> None:
    from scheduling.facts import retry_policy_from_json

    p = retry_policy_from_json({"max_attempts": 3, "delays_s": {"busy": 60}})
    assert p.max_attempts == 3 and p.delay_after(AttemptResult.BUSY) == timedelta(seconds=60)
    assert p.delay_after(AttemptResult.NO_ANSWER) == timedelta(hours=2)  # default kept
    with pytest.raises(CalendarError, match="unknown key"):
        retry_policy_from_json({"max_attempt": 3})
    with pytest.raises(CalendarError, match="delays_s"):
        retry_policy_from_json({"delays_s": {"bussy": 60}})


def test_unknown_lead_zone_is_never_not_a_crash() -> None:
    res = next_callable_at(LeadFacts(timezone="Mars/Olympus"), utc(2026, 11, 23, 15),
                           CallingRules())
    assert res.reason is NeverReason.UNKNOWN_ZONE


def test_an_agreed_callback_is_not_pushed_back_by_the_retry_delay() -> None:
    """"Call me in two hours" after a connected call: the connected retry delay (a day)
    spaces out unagreed retries only; the callback is due in two hours."""
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    agreed = now + timedelta(hours=2)
    facts = LeadFacts(lead_id=1, timezone="UTC", phone_e164="+14155550100",
                      last_attempt_at=now, last_result=AttemptResult.CONNECTED,
                      callback_at=agreed)
    got = next_callable_at(facts, now, CallingRules(window=PRESETS["none"]))
    assert got.at == agreed and got.gate is Gate.CALLBACK
    # without the agreement the retry delay holds
    plain = next_callable_at(LeadFacts(lead_id=1, timezone="UTC", phone_e164="+14155550100",
                                       last_attempt_at=now,
                                       last_result=AttemptResult.CONNECTED),
                             now, CallingRules(window=PRESETS["none"]))
    assert plain.at == now + timedelta(days=1) and plain.gate is Gate.RETRY_DELAY
