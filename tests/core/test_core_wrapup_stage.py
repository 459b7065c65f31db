"""The engine's wrap-up limit and its stage of each call (what the runtime used to track)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    DialMode,
    DispositionSpec,
    MachinePolicy,
)
from dialer.core import (
    AttemptFinished,
    BridgeTo,
    CampaignEngine,
    Dial,
    EngineConfigError,
    IllegalTransitionError,
    InvalidInputError,
    LeadUpdate,
    PlayMessage,
    UnknownCallError,
)

from .conftest import FakeClock, lead, make_engine, of_type

LIMIT = 30.0
#: quiet timers, so that the wrap-up deadline is the only thing next_wakeup can report
QUIET = {"pace_interval_seconds": 1000.0, "hopper_low_water": 1}


#: the same tickets for every engine, so that two engines' actions can be compared
LEADS = [lead() for _ in range(10)]


def _dials(clock: FakeClock, **cfg: object) -> tuple[CampaignEngine, list[str]]:
    """One agent (progressive unless told); returns the engine and the calls it dialed."""
    eng = make_engine(mode=cfg.pop("mode", DialMode.PROGRESSIVE), **cfg)
    eng.add_leads(clock.now, LEADS)
    out = eng.agent_login(clock.now, "a0", ready=True)
    out += eng.tick(clock.advance(1))
    return eng, [d.call_id for d in of_type(out, Dial)]


def _start(clock: FakeClock, **cfg: object) -> tuple[CampaignEngine, str]:
    eng, calls = _dials(clock, **cfg)
    return eng, calls[0]


def _into_wrapup(clock: FakeClock, **cfg: object) -> tuple[CampaignEngine, str, datetime]:
    """The agent talked on a call and is now in wrap-up; returns when the call ended."""
    eng, cid = _start(clock, **cfg)
    eng.call_answered(clock.advance(5), cid, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.advance(0.2), cid)
    eng.call_ended(clock.advance(60), cid)
    assert eng.agent_state("a0") is AgentState.WRAP_UP
    return eng, cid, clock.now


def _timeouts(out: list) -> list[LeadUpdate]:
    return [u for u in of_type(out, LeadUpdate) if u.disposition == WRAPUP_TIMEOUT]


# ------------------------------------------------------------------ wrap-up limit
def test_wrapup_closed_at_the_deadline_not_before(clock: FakeClock) -> None:
    eng, cid, ended = _into_wrapup(clock, max_wrapup_seconds=LIMIT, **QUIET)
    deadline = ended + timedelta(seconds=LIMIT)
    assert eng.next_wakeup == deadline
    out = eng.tick(deadline - timedelta(milliseconds=1))
    assert not _timeouts(out)
    assert eng.agent_state("a0") is AgentState.WRAP_UP
    out = eng.tick(deadline)
    (upd,) = _timeouts(out)
    assert upd.call_id == cid
    assert upd.notes == f"no disposition within {LIMIT:.0f} s of the call's end"
    assert eng.agent_state("a0") is AgentState.READY
    assert eng.next_wakeup != deadline
    assert not _timeouts(eng.tick(clock.advance(LIMIT + 5)))  # closed once


def test_wrapup_timeout_emits_what_the_runtime_call_produced(clock: FakeClock) -> None:
    """tick's closing = tick without the limit, then disposition(WRAPUP_TIMEOUT) at once."""
    inside, _, ended = _into_wrapup(FakeClock(), max_wrapup_seconds=LIMIT)
    outside, cid, _ = _into_wrapup(FakeClock())
    at = ended + timedelta(seconds=LIMIT + 0.4)
    expected = outside.tick(at)
    expected += outside.disposition(
        at, "a0", cid, WRAPUP_TIMEOUT,
        notes=f"no disposition within {LIMIT:.0f} s of the call's end",
    )
    assert inside.tick(at) == expected
    assert _timeouts(expected)


def test_a_disposition_first_cancels_the_timeout(clock: FakeClock) -> None:
    eng, cid, ended = _into_wrapup(clock, max_wrapup_seconds=LIMIT, **QUIET)
    eng.disposition(clock.advance(10), "a0", cid, "no_need")
    assert eng.next_wakeup != ended + timedelta(seconds=LIMIT)
    assert not _timeouts(eng.tick(ended + timedelta(seconds=LIMIT)))
    assert eng.agent_state("a0") is not AgentState.WRAP_UP


def test_wrapup_timeout_honours_a_pending_logout(clock: FakeClock) -> None:
    eng, _, ended = _into_wrapup(clock, max_wrapup_seconds=LIMIT)
    eng.agent_logout(clock.advance(1), "a0")
    assert _timeouts(eng.tick(ended + timedelta(seconds=LIMIT)))
    assert eng.agent_state("a0") is AgentState.LOGGED_OUT


@pytest.mark.parametrize("limit", [None, 0.0])
def test_no_limit_leaves_the_wrapup_open(clock: FakeClock, limit: float | None) -> None:
    eng, _, ended = _into_wrapup(clock, max_wrapup_seconds=limit, **QUIET)
    assert eng.next_wakeup != ended + timedelta(seconds=LIMIT)
    assert not _timeouts(eng.tick(ended + timedelta(hours=2)))
    assert eng.agent_state("a0") is AgentState.WRAP_UP


def test_wrapup_limit_config_is_validated() -> None:
    with pytest.raises(EngineConfigError, match="max_wrapup_seconds"):
        make_engine(max_wrapup_seconds=-1.0)
    only = {"x": DispositionSpec(code="x", label="x")}
    with pytest.raises(EngineConfigError, match=WRAPUP_TIMEOUT):
        make_engine(max_wrapup_seconds=LIMIT, dispositions=only)
    make_engine(max_wrapup_seconds=0.0, dispositions=only)  # off: the code is not needed


# ------------------------------------------------------------------ the engine's stage
def test_stage_follows_the_call(clock: FakeClock) -> None:
    eng, cid = _start(clock)
    assert eng.call_stage(cid) is AttemptStage.CREATED
    assert eng.calls_by_stage() == {AttemptStage.CREATED: 1}
    eng.call_ringing(clock.advance(1), cid)
    assert eng.call_stage(cid) is AttemptStage.RINGING
    assert eng.call_picked_up(clock.advance(4), cid) == []  # no routing while AMD listens
    assert eng.call_stage(cid) is AttemptStage.ANSWERED
    assert eng.agent_state("a0") is AgentState.READY
    out = eng.call_answered(clock.advance(2), cid, AmdVerdict.HUMAN)
    assert of_type(out, BridgeTo) == [BridgeTo(cid, "a0")]
    assert eng.call_stage(cid) is AttemptStage.ANSWERED
    eng.bridge_ok(clock.advance(0.2), cid)
    assert eng.call_stage(cid) is AttemptStage.BRIDGED
    assert eng.calls_by_stage() == {AttemptStage.BRIDGED: 1}
    eng.call_ended(clock.advance(30), cid)
    assert eng.call_stage(cid) is None
    assert eng.calls_by_stage() == {}


def test_pick_up_changes_no_decision(clock: FakeClock) -> None:
    """call_picked_up then call_answered gives what call_answered alone gives."""
    plain, cid = _start(FakeClock())
    told, _ = _start(FakeClock())
    at = clock.now + timedelta(seconds=5)
    verdict_at = at + timedelta(seconds=2.5)
    assert told.call_picked_up(at, cid) == []
    assert told.call_answered(verdict_at, cid, AmdVerdict.HUMAN, answered_at=at) == (
        plain.call_answered(verdict_at, cid, AmdVerdict.HUMAN, answered_at=at)
    )
    assert told.counters() == plain.counters()


def test_picked_up_call_that_ends_before_the_verdict_is_unanswered(clock: FakeClock) -> None:
    eng, cid = _start(clock)
    eng.call_picked_up(clock.advance(5), cid)
    with pytest.raises(InvalidInputError, match="result must be one of"):
        eng.call_ended(clock.advance(1), cid)
    out = eng.call_ended(clock.now, cid, AttemptResult.CANCELLED)
    assert of_type(out, AttemptFinished)[0].result is AttemptResult.CANCELLED


def test_message_stage_comes_with_the_play_message(clock: FakeClock) -> None:
    eng, cid = _start(clock, machine_policy=MachinePolicy.LEAVE_MESSAGE)
    out = eng.call_answered(clock.advance(5), cid, AmdVerdict.MACHINE)
    assert of_type(out, PlayMessage) and eng.call_stage(cid) is AttemptStage.MESSAGE
    eng2, (c2, c3) = _dials(FakeClock(), mode=DialMode.POWER)  # 2 lines, 1 agent
    eng2.call_answered(clock.now, c2, AmdVerdict.HUMAN)
    eng2.call_answered(clock.now, c3, AmdVerdict.HUMAN)
    assert eng2.call_stage(c3) is AttemptStage.ANSWERED  # waiting for an agent
    out = eng2.tick(clock.advance(2))
    assert of_type(out, PlayMessage) == [PlayMessage(c3, "abandon", True)]
    assert eng2.call_stage(c3) is AttemptStage.MESSAGE


def test_pick_up_inputs_are_checked(clock: FakeClock) -> None:
    eng, cid = _start(clock)
    with pytest.raises(UnknownCallError):
        eng.call_picked_up(clock.now, "nope")
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        eng.call_picked_up(datetime(2026, 3, 2, 9, 0), cid)
    eng.call_picked_up(clock.now, cid)
    with pytest.raises(IllegalTransitionError, match="answered"):
        eng.call_picked_up(clock.now, cid)
    assert eng.call_stage("nope") is None
