"""The compliance presets (scheduling/presets.toml): every rule a preset sets has a source,
and each rule has a test here that tries to break it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common.vocabulary import AbandonWindow, AttemptResult, DialMode
from db.models import Campaign
from dialer.config import CampaignConfig
from dialer.engine_setup import engine_config
from scheduling.callable import Gate, LeadFacts, next_callable_at
from scheduling.compliance import (
    caller_id_problem,
    check_campaign,
    compliance_preset,
    effective_abandon,
    window_for_number,
)
from scheduling.facts import rules_for_campaign
from scheduling.windows import PRESETS, jurisdiction_for_number, preset_data

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # a Monday: 10:00 in New York and Miami
FL = "+13055550123"  # Miami: the geocoder says "Florida"
NY = "+12125550123"
UK_CALLER = "+442071234567"
RULE_KEYS = ("hours", "holiday_country", "caps", "refusal_cooldown_days", "regions",
             "abandon", "abandon_lockout_h", "machine_redial_gap_h", "caller_id_callable")


def _campaign(preset: str, **kw: Any) -> Campaign:
    values: dict[str, Any] = dict(
        name="c", caller_id=UK_CALLER if preset == "uk" else "+14155550100",
        calling_window=preset, dial_mode=DialMode.PREDICTIVE, abandon_cap=0.03,
        abandon_window=AbandonWindow.ROLLING_24H, abandon_grace_s=2.0,
        abandon_clock_start="answer", amd_false_positive_rate=None, retry_rules={},
        dispositions=[], lines_per_agent=2.0, max_dial_level=3.0, ring_timeout_s=25.0,
        min_ring_s=15.0, callback_grace_s=900.0, timezone="UTC", machine_policy="hang_up",
        max_wrapup_s=600.0)
    values.update(kw)
    return Campaign(**values)


@pytest.mark.parametrize("name", sorted(preset_data()))
def test_every_rule_of_every_preset_names_its_source(name: str) -> None:
    data = preset_data()[name]
    sources = data.get("sources", {})
    missing = [k for k in RULE_KEYS if k in data and k not in sources]
    assert not missing, f"preset {name}: rules without a source: {missing}"
    if data.get("abandon", {}).get("count_amd_false_positives"):
        assert "amd_false_positive_rate" in sources
    assert compliance_preset(name).window is PRESETS[name]


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ValidationError, match=r"calling_window: unknown compliance preset "
                                              r"'mars'.*'uk'"):
        CampaignConfig(name="c", caller_id="+14155550100", calling_window="mars")


# ------------------------------------------------------------------ Florida, automatically

def test_the_geocoder_places_numbers_in_their_state() -> None:
    assert jurisdiction_for_number(FL) == "US-FL"
    assert jurisdiction_for_number("+18505550123") == "US-FL"  # Pensacola
    assert jurisdiction_for_number(NY) == "US-NY"
    assert jurisdiction_for_number(UK_CALLER) == "GB"
    assert jurisdiction_for_number("+33142685300") == "FR"
    assert jurisdiction_for_number("not a number") is None


def test_a_florida_number_gets_florida_hours_in_a_federal_campaign() -> None:
    rules = rules_for_campaign(_campaign("us_federal"), None)
    at = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 20:30 in New York and Miami (EST)
    ny = LeadFacts(phone_e164=NY, jurisdiction=jurisdiction_for_number(NY))
    fl = LeadFacts(phone_e164=FL, jurisdiction=jurisdiction_for_number(FL))
    assert next_callable_at(ny, at, rules).at == at
    got = next_callable_at(fl, at, rules)
    assert got.gate is Gate.CALLEE_WINDOW
    assert got.at == datetime(2026, 12, 8, 13, 0, tzinfo=UTC)  # 08:00 in Miami
    assert window_for_number("us_federal", FL) is PRESETS["us_fl"]
    assert window_for_number("us_federal", NY) is PRESETS["us_federal"]
    # a campaign with no legal window has no regional rule either (business to business)
    assert window_for_number("none", FL) is PRESETS["none"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3 * 24 * 60), min_size=0, max_size=8))
def test_never_a_fourth_call_to_a_florida_number_within_24_hours(minutes: list[int]) -> None:
    """Dial as often as the rules let, starting from any history: no 24 h ever holds 4."""
    rules = rules_for_campaign(_campaign("us_federal", retry_rules={"max_attempts": 100}), None)
    history = sorted(NOW - timedelta(minutes=m) for m in minutes)
    # only a history that itself kept the rule is a state the dialer can be in
    for i in range(len(history) - 3):
        if history[i + 3] - history[i] < timedelta(hours=24):
            return
    t = NOW
    for _ in range(6):
        lead = LeadFacts(phone_e164=FL, jurisdiction="US-FL", timezone="America/New_York",
                         recent_attempts=tuple(history), attempts=len(history))
        got = next_callable_at(lead, t, rules)
        assert got.at is not None
        t = got.at
        window = [a for a in history if t - timedelta(hours=24) < a <= t]
        assert len(window) < 3, f"a 4th call at {t} after {window}"
        history.append(t)
        t += timedelta(seconds=1)


# ------------------------------------------------------------------ the UK preset

@pytest.mark.parametrize(("change", "key"), [
    ({"abandon_cap": 0.05}, "abandon_cap"),
    ({"abandon_window": "rolling_30d"}, "abandon_window"),
    ({"abandon_grace_s": 3.0}, "abandon_grace_s"),
    ({"caller_id": "+449098790000"}, "caller_id"),  # premium rate
    ({"caller_id": "+44200000"}, "caller_id"),  # E.164 in form, no such UK number
])
def test_a_uk_campaign_looser_than_ofcom_is_refused_naming_the_key(
        change: dict[str, Any], key: str) -> None:
    base: dict[str, Any] = {"name": "c", "caller_id": UK_CALLER, "calling_window": "uk",
                            "abandon_window": "rolling_24h"}
    CampaignConfig(**base)  # within the preset
    with pytest.raises(ValidationError, match=rf"{key}: "):
        CampaignConfig(**{**base, **change})


def test_stricter_than_the_preset_is_fine() -> None:
    CampaignConfig(name="c", caller_id=UK_CALLER, calling_window="uk", abandon_cap=0.01,
                   abandon_window="calendar_day", abandon_grace_s=1.5)


def test_callable_caller_ids() -> None:
    assert caller_id_problem(UK_CALLER) is None
    assert caller_id_problem("+14155550100") is None
    assert "premium" in (caller_id_problem("+19005550123") or "")
    assert caller_id_problem("nonsense")


def test_a_stored_campaign_runs_no_looser_than_its_preset() -> None:
    """A row written around the config check (SQL, an older version) is tightened at run."""
    cfg = engine_config(_campaign("uk", abandon_cap=0.08,
                                  abandon_window=AbandonWindow.ROLLING_30D,
                                  abandon_grace_s=5.0), max_lines=None)
    ab = cfg.abandon
    assert (ab.cap, ab.window, ab.grace_seconds) == (0.03, AbandonWindow.ROLLING_24H, 2.0)
    assert cfg.agent_wait_seconds == pytest.approx(1.8)
    assert ab.count_amd_false_positives and ab.amd_false_positive_rate == 0.012
    own = engine_config(_campaign("uk", amd_false_positive_rate=0.05), max_lines=None)
    assert own.abandon.amd_false_positive_rate == 0.05
    us = engine_config(_campaign("us_federal", abandon_cap=0.02), max_lines=None)
    assert not us.abandon.count_amd_false_positives and us.abandon.cap == 0.02


def test_uk_abandon_rate_counts_amd_false_positives() -> None:
    p = compliance_preset("uk")
    eff = effective_abandon(p, cap=0.03, window=AbandonWindow.CALENDAR_DAY, grace_s=2.0,
                            amd_false_positive_rate=None)
    assert eff.count_amd_false_positives and eff.clamped == ()
    assert check_campaign(p, abandon_cap=0.03, abandon_window="calendar_day",
                          abandon_grace_s=2.0, caller_id=UK_CALLER) == []


@settings(max_examples=100, deadline=None)
@given(lockout_h=st.integers(0, 200), abandoned_ago_min=st.integers(0, 100 * 60))
def test_no_call_within_72_hours_of_an_abandoned_call_in_the_uk(
        lockout_h: int, abandoned_ago_min: int) -> None:
    rules = rules_for_campaign(_campaign("uk"), None,
                               abandon_lockout=timedelta(hours=lockout_h))
    abandoned = NOW - timedelta(minutes=abandoned_ago_min)
    lead = LeadFacts(phone_e164=UK_CALLER, timezone="Europe/London",
                     last_abandoned_at=abandoned, last_attempt_at=abandoned,
                     last_result=AttemptResult.ABANDONED,
                     callback_at=NOW)  # even an agreed time does not shorten it
    got = next_callable_at(lead, NOW, rules)
    assert got.at is not None
    assert got.at >= abandoned + timedelta(hours=max(72, lockout_h))


@settings(max_examples=100, deadline=None)
@given(machine_ago_min=st.integers(0, 30 * 60),
       callback_in_min=st.one_of(st.none(), st.integers(0, 30 * 60)))
def test_no_call_within_24_hours_of_a_machine_in_the_uk(
        machine_ago_min: int, callback_in_min: int | None) -> None:
    rules = rules_for_campaign(
        _campaign("uk", retry_rules={"delays_s": {"machine": 60}}), None)
    machine_at = NOW - timedelta(minutes=machine_ago_min)
    lead = LeadFacts(
        phone_e164=UK_CALLER, timezone="Europe/London", last_attempt_at=machine_at,
        last_result=AttemptResult.MACHINE,
        callback_at=None if callback_in_min is None else NOW + timedelta(minutes=callback_in_min))
    got = next_callable_at(lead, NOW, rules)
    assert got.at is not None and got.at >= machine_at + timedelta(hours=24)
    # elsewhere the campaign's own retry delay (here 1 minute) is the only gap
    us = rules_for_campaign(_campaign("us_federal", retry_rules={"delays_s": {"machine": 60}}),
                            None)
    assert us.machine_redial_gap is None
