"""Leaving safely: a ready agent's pause or logout while calls are placed for it waits until
those calls no longer need it, so an answered person is not abandoned for nobody."""

from __future__ import annotations

from common.vocabulary import AgentState, AmdVerdict, AttemptResult, DialMode
from dialer.core import AgentStateChanged, BridgeTo, CampaignEngine, Dial

from .conftest import FakeClock, lead, make_engine, of_type

QUIET = {"pace_interval_seconds": 1000.0, "hopper_low_water": 1}


def _one_call_placed(clock: FakeClock, mode: DialMode = DialMode.PROGRESSIVE,
                     ) -> tuple[CampaignEngine, str]:
    eng = make_engine(mode=mode, **QUIET)
    eng.add_leads(clock.now, [lead() for _ in range(5)])
    out = eng.agent_login(clock.now, "a0", ready=True)
    out += eng.tick(clock.advance(1))
    (dial,) = of_type(out, Dial)
    return eng, dial.call_id


def test_a_logout_right_after_ready_waits_for_the_call_placed_for_the_agent() -> None:
    clock = FakeClock()
    eng, cid = _one_call_placed(clock)
    out = eng.agent_logout(clock.advance(0.05), "a0")
    assert not of_type(out, AgentStateChanged), "the agent must stay ready for the call"
    assert eng.board.get("a0").state is AgentState.READY
    # no new dial for an agent who is leaving
    assert not of_type(eng.tick(clock.advance(2)), Dial)
    out = eng.call_answered(clock.advance(3), cid, AmdVerdict.HUMAN)
    assert of_type(out, BridgeTo), "the person reaches the agent, not the abandon message"
    eng.bridge_ok(clock.advance(0.1), cid)
    eng.call_ended(clock.advance(20), cid)
    out = eng.disposition(clock.advance(5), "a0", cid, "no_need")
    changes = of_type(out, AgentStateChanged)
    assert changes and changes[-1].new is AgentState.LOGGED_OUT


def test_the_pending_logout_applies_at_once_when_the_call_fails() -> None:
    clock = FakeClock()
    eng, cid = _one_call_placed(clock)
    eng.agent_pause(clock.advance(0.05), "a0", "lunch")
    out = eng.call_ended(clock.advance(4), cid, AttemptResult.BUSY)
    changes = of_type(out, AgentStateChanged)
    assert [(c.new, c.reason) for c in changes] == [(AgentState.PAUSED, "lunch")]


def test_ready_again_cancels_the_pending_pause() -> None:
    clock = FakeClock()
    eng, cid = _one_call_placed(clock)
    eng.agent_pause(clock.advance(0.05), "a0", "lunch")
    eng.agent_ready(clock.advance(0.05), "a0")
    out = eng.call_ended(clock.advance(4), cid, AttemptResult.BUSY)
    assert not [c for c in of_type(out, AgentStateChanged) if c.new is AgentState.PAUSED]
    assert eng.board.get("a0").state is AgentState.READY


def test_with_no_call_placed_a_pause_is_at_once() -> None:
    clock = FakeClock()
    eng = make_engine(mode=DialMode.PROGRESSIVE, **QUIET)
    eng.agent_login(clock.now, "a0", ready=True)
    out = eng.agent_pause(clock.advance(1), "a0", "break")
    assert [c.new for c in of_type(out, AgentStateChanged)] == [AgentState.PAUSED]
