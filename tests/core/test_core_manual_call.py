"""Manual dial in the pure engine (dialer.core.manual_call): a paused agent's own call."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.vocabulary import AgentState, AmdVerdict, AttemptResult, DialMode
from dialer.core import AttemptFinished, BridgeTo, Dial, IllegalTransitionError
from dialer.core.actions import AgentStateChanged

from .conftest import FakeClock, lead, make_engine, of_type

S = AgentState


def paused_with_a_ready_colleague(clock: FakeClock, mode: DialMode = DialMode.PREDICTIVE):  # type: ignore[no-untyped-def]
    """Agent a paused ("lunch"), b ready; plenty of leads in the hopper."""
    eng = make_engine(mode=mode)
    eng.add_leads(clock.now, [lead() for _ in range(20)])
    eng.agent_login(clock.now, "a")
    eng.agent_pause(clock.advance(1), "a", "lunch")
    eng.agent_login(clock.advance(1), "b", ready=True)
    return eng


def test_answered_manual_call_goes_to_the_agent_and_it_returns_paused(clock: FakeClock) -> None:
    eng = paused_with_a_ready_colleague(clock)
    eng.tick(clock.advance(1))
    mine = lead(phone_e164="+46701234567")
    out = eng.manual_dial(clock.advance(1), "a", mine)
    (dial,) = [d for d in of_type(out, Dial) if d.lead.lead_id == mine.lead_id]
    assert dial.agent_id == "a" and dial.lead.phone_e164 == "+46701234567"
    assert [(c.agent_id, c.new, c.reason) for c in of_type(out, AgentStateChanged)][:1] == [
        ("a", S.RESERVED, "manual")]
    # the pacer keeps dialing for b, never for a, while a's call rings
    for _ in range(5):
        out = eng.tick(clock.advance(1))
        assert all(d.agent_id != "a" for d in of_type(out, Dial))
    out = eng.call_answered(clock.advance(4), dial.call_id, AmdVerdict.HUMAN)
    assert [(b.call_id, b.agent_id) for b in of_type(out, BridgeTo)] == [(dial.call_id, "a")]
    eng.bridge_ok(clock.advance(0.1), dial.call_id)
    assert eng.agent_state("a") is S.TALKING
    (fin,) = of_type(eng.call_ended(clock.advance(60), dial.call_id), AttemptFinished)
    assert (fin.result, fin.agent_id) == (AttemptResult.CONNECTED, "a")
    out = eng.disposition(clock.advance(5), "a", dial.call_id, "no_need")
    assert [(c.agent_id, c.new, c.reason) for c in of_type(out, AgentStateChanged)
            if c.agent_id == "a"] == [("a", S.PAUSED, "lunch")]  # never READY in between


def test_unanswered_manual_call_frees_the_agent_paused(clock: FakeClock) -> None:
    eng = paused_with_a_ready_colleague(clock)
    (dial,) = of_type(eng.manual_dial(clock.advance(1), "a", lead()), Dial)
    eng.call_ringing(clock.advance(1), dial.call_id)
    out = eng.call_ended(clock.advance(20), dial.call_id, AttemptResult.NO_ANSWER)
    (fin,) = of_type(out, AttemptFinished)
    assert fin.result is AttemptResult.NO_ANSWER
    assert eng.agent_state("a") is S.PAUSED and eng.board.get("a").reason == "lunch"


@pytest.mark.parametrize("state", ["ready", "talking", "logged_out"])
def test_only_a_paused_agent_may_dial(clock: FakeClock, state: str) -> None:
    eng = make_engine(mode=DialMode.PROGRESSIVE)
    eng.agent_login(clock.now, "a", ready=state != "logged_out")
    if state == "logged_out":
        eng.agent_logout(clock.advance(1), "a")
    if state == "talking":
        eng.add_leads(clock.now, [lead()])
        (d,) = of_type(eng.tick(clock.advance(1)), Dial)
        eng.call_answered(clock.advance(3), d.call_id, AmdVerdict.HUMAN)
        eng.bridge_ok(clock.advance(0.1), d.call_id)
    before = eng.agent_state("a")
    with pytest.raises(IllegalTransitionError):
        eng.manual_dial(clock.advance(1), "a", lead())
    assert eng.agent_state("a") is before


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answered=st.booleans(), human=st.booleans(), wait=st.floats(0.1, 30))
def test_a_manual_call_ends_once_and_the_agent_is_paused(
        clock: FakeClock, answered: bool, human: bool, wait: float) -> None:
    eng = paused_with_a_ready_colleague(clock)
    (dial,) = of_type(eng.manual_dial(clock.advance(1), "a", lead()), Dial)
    finished = []
    if answered:
        verdict = AmdVerdict.HUMAN if human else AmdVerdict.MACHINE
        out = eng.call_answered(clock.advance(wait), dial.call_id, verdict)
        finished += of_type(out, AttemptFinished)
        if of_type(out, BridgeTo):
            eng.bridge_ok(clock.advance(0.1), dial.call_id)
    if not finished:
        finished += of_type(eng.call_ended(clock.advance(wait), dial.call_id,
                                           None if answered else AttemptResult.BUSY),
                            AttemptFinished)
    assert len(finished) == 1 and finished[0].result is not AttemptResult.ABANDONED
    if eng.agent_state("a") is S.WRAP_UP:
        eng.disposition(clock.advance(1), "a", dial.call_id, "no_need")
    assert eng.agent_state("a") is S.PAUSED
