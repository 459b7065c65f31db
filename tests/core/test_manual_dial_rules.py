"""The pure manual-dial rules: number parsing, allowed states, DNC and the number's window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.vocabulary import AgentState
from dialer.core.manual import (
    MANUAL_DIAL_STATES,
    ManualReason,
    Refusal,
    check_manual_dial,
    parse_number,
    window_refusal,
)
from scheduling.compliance import window_for_number
from scheduling.windows import candidate_zones

# A New York number (212) and a Florida one (305); both valid for libphonenumber.
NY = "+12125550123"
FL = "+13055550123"
# 15:00 UTC on a Wednesday = 11:00 in New York: inside the US federal 08:00-21:00 window.
MIDDAY = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
# 06:00 UTC = 01:00 in New York: outside.
NIGHT = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)


def test_parse_national_number_uses_region() -> None:
    assert parse_number("(212) 555-0123", "us") == NY


def test_parse_international_number_ignores_region() -> None:
    assert parse_number("+1 212 555 0123", "FR") == NY


@pytest.mark.parametrize("raw", ["", "   ", "hello", "12", "+1 000 000 0000"])
def test_parse_refuses_garbage(raw: str) -> None:
    got = parse_number(raw, "US")
    assert isinstance(got, Refusal)
    assert got.code is ManualReason.INVALID_NUMBER
    assert got.message.startswith("number:")


@pytest.mark.parametrize("state", [AgentState.READY, AgentState.TALKING, AgentState.RESERVED,
                                   AgentState.WRAP_UP, AgentState.LOGGED_OUT])
def test_refused_in_states_where_a_routed_call_could_collide(state: AgentState) -> None:
    got = check_manual_dial(raw_number=NY, region="US", state=state, has_lead=True)
    assert isinstance(got, Refusal)
    assert got.code is ManualReason.NOT_ALLOWED_IN_STATE
    assert got.params["state"] == state.value


@pytest.mark.parametrize("state", sorted(MANUAL_DIAL_STATES))
def test_allowed_states_dial(state: AgentState) -> None:
    assert check_manual_dial(raw_number=NY, region="US", state=state, has_lead=True) == NY


def test_no_lead_refused() -> None:
    got = check_manual_dial(raw_number=NY, region="US", state=AgentState.PAUSED,
                            has_lead=False)
    assert isinstance(got, Refusal) and got.code is ManualReason.NO_LEAD


def test_dnc_refused_without_the_number_in_message() -> None:
    got = check_manual_dial(raw_number=NY, region="US", state=AgentState.PAUSED,
                            has_lead=True, is_dnc=True)
    assert isinstance(got, Refusal) and got.code is ManualReason.DNC
    assert "555" not in got.message and "555" not in str(got.params)


def test_window_open_and_closed_in_the_numbers_zone() -> None:
    win = window_for_number("us_federal", NY)
    zones = candidate_zones(None, NY)
    assert window_refusal(win, zones, MIDDAY) is None
    late = window_refusal(win, zones, NIGHT)
    assert late is not None and late.code is ManualReason.OUTSIDE_WINDOW
    assert late.params["zone"] == "America/New_York"
    assert late.params["opens_at"].startswith("2026-03-04T08:00")


def test_check_uses_window_after_dnc() -> None:
    win = window_for_number("us_federal", FL)
    zones = candidate_zones(None, FL)
    got = check_manual_dial(raw_number=FL, region="US", state=AgentState.PAUSED,
                            has_lead=True, is_dnc=False, window=win, zones=zones, now=NIGHT)
    assert isinstance(got, Refusal) and got.code is ManualReason.OUTSIDE_WINDOW
    ok = check_manual_dial(raw_number=FL, region="US", state=AgentState.PAUSED,
                           has_lead=True, is_dnc=False, window=win, zones=zones, now=MIDDAY)
    assert ok == FL


def test_unknown_zone_refused() -> None:
    win = window_for_number("us_federal", NY)
    got = window_refusal(win, (), MIDDAY)
    assert got is not None and got.code is ManualReason.UNKNOWN_ZONE
