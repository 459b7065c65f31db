"""Agent-to-agent transfers in the pure engine (dialer.core.transfer)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.vocabulary import AgentState, AmdVerdict, AttemptResult, DialMode
from dialer.core import (
    AttemptFinished,
    Dial,
    IllegalTransitionError,
    LeadUpdate,
)
from dialer.core.actions import AgentStateChanged, TransferTo, VisitorLeft
from dialer.core.errors import InvalidInputError, UnknownAgentError

from .conftest import FakeClock, lead, make_engine, of_type

S = AgentState


def talking(clock: FakeClock, others: tuple[str, ...] = ("b", "c")):  # type: ignore[no-untyped-def]
    """Agent a talking on call cid; the other agents logged in and ready (no more leads)."""
    eng = make_engine(mode=DialMode.PROGRESSIVE)
    eng.add_leads(clock.now, [lead()])
    out = eng.agent_login(clock.now, "a", ready=True)
    (dial,) = of_type(out + eng.tick(clock.advance(1)), Dial)
    eng.call_answered(clock.advance(5), dial.call_id, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.advance(0.2), dial.call_id)
    for who in others:
        eng.agent_login(clock.advance(1), who, ready=True)
    assert eng.agent_state("a") is S.TALKING
    return eng, dial.call_id


def states(eng, *who: str) -> tuple[AgentState, ...]:  # type: ignore[no-untyped-def]
    return tuple(eng.agent_state(w) for w in who)


def test_blind_transfer_to_a_named_agent(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    out = eng.transfer_start(clock.advance(30), cid, "a", to_agent="c")
    assert of_type(out, TransferTo) == [TransferTo(cid, "a", "c", False)]
    assert states(eng, "a", "b", "c") == (S.TALKING, S.READY, S.RESERVED)
    out = eng.transfer_done(clock.advance(2), cid)
    # the first agent's part ends: a wrap-up with nothing owed, then ready at once
    moves = [(c.agent_id, c.new) for c in of_type(out, AgentStateChanged)]
    assert moves == [("a", S.WRAP_UP), ("a", S.READY), ("c", S.TALKING)]
    assert states(eng, "a", "c") == (S.READY, S.TALKING)
    with pytest.raises(IllegalTransitionError):
        eng.disposition(clock.now, "a", cid, "no_need")
    out = eng.call_ended(clock.advance(60), cid)
    (fin,) = of_type(out, AttemptFinished)
    assert (fin.result, fin.agent_id) == (AttemptResult.CONNECTED, "c")
    assert eng.agent_state("c") is S.WRAP_UP
    with pytest.raises(IllegalTransitionError):
        eng.disposition(clock.now, "a", cid, "no_need")  # not a's call any more
    out = eng.disposition(clock.advance(5), "c", cid, "no_need")
    assert of_type(out, LeadUpdate)[0].disposition == "no_need"
    assert eng.agent_state("c") is S.READY
    times = eng.agent_times(clock.now, "a")
    assert times[S.TALKING] == pytest.approx(34.0, abs=1e-3)  # 2 s of logins + 32


def test_external_transfer_leaves_the_call_with_the_outside_party(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    with pytest.raises(InvalidInputError):
        eng.transfer_start(clock.now, cid, "a", to_agent="b", external=True)
    out = eng.transfer_start(clock.advance(20), cid, "a", external=True)
    assert of_type(out, TransferTo) == [TransferTo(cid, "a", None, False)]
    assert states(eng, "a", "b", "c") == (S.TALKING, S.READY, S.READY)  # nobody reserved
    out = eng.transfer_done(clock.advance(3), cid)
    # the first agent wraps the call up and owes its disposition; no agent is on the call
    assert [(c.agent_id, c.new, c.reason) for c in of_type(out, AgentStateChanged)] == [
        ("a", S.WRAP_UP, "transferred_out")]
    out = eng.disposition(clock.advance(10), "a", cid, "no_need", notes="to the specialist")
    assert of_type(out, LeadUpdate)[0].disposition == "no_need"
    assert eng.agent_state("a") is S.READY
    # the outside parties talk on; the call's end finishes the attempt and moves nobody
    out = eng.call_ended(clock.advance(120), cid)
    (fin,) = of_type(out, AttemptFinished)
    assert (fin.result, fin.agent_id) == (AttemptResult.CONNECTED, None)
    assert of_type(out, AgentStateChanged) == [] and of_type(out, LeadUpdate) == []
    assert states(eng, "a", "b", "c") == (S.READY, S.READY, S.READY)


def test_external_transfer_that_fails_or_ends_early_keeps_the_agent(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    eng.transfer_start(clock.advance(5), cid, "a", external=True, consult=True)
    eng.transfer_consulting(clock.advance(5), cid)
    out = eng.transfer_failed(clock.advance(5), cid, "cancelled")
    assert of_type(out, AgentStateChanged) == []
    assert eng.agent_state("a") is S.TALKING and eng.transfer_of(cid) is None
    eng.transfer_start(clock.advance(5), cid, "a", external=True)
    (fin,) = of_type(eng.call_ended(clock.advance(5), cid), AttemptFinished)
    assert fin.agent_id == "a" and eng.agent_state("a") is S.WRAP_UP


def test_blind_transfer_failure_keeps_the_call_with_the_first_agent(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    eng.transfer_start(clock.advance(10), cid, "a", to_agent="b")
    out = eng.transfer_failed(clock.advance(15), cid, "408 no answer")
    assert [(c.agent_id, c.new, c.reason) for c in of_type(out, AgentStateChanged)] == [
        ("b", S.READY, "transfer_failed:408 no answer")]
    assert states(eng, "a", "b") == (S.TALKING, S.READY)
    assert eng.transfer_of(cid) is None
    (fin,) = of_type(eng.call_ended(clock.advance(5), cid), AttemptFinished)
    assert fin.agent_id == "a" and eng.agent_state("a") is S.WRAP_UP


def test_warm_transfer_consult_then_complete_or_cancel(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    out = eng.transfer_start(clock.advance(10), cid, "a", to_agent="b", consult=True)
    assert of_type(out, TransferTo) == [TransferTo(cid, "a", "b", True)]
    with pytest.raises(IllegalTransitionError):
        eng.transfer_start(clock.now, cid, "a", to_agent="c")  # one at a time
    eng.transfer_consulting(clock.advance(1), cid)
    assert eng.transfer_of(cid).consulting  # type: ignore[union-attr]
    assert states(eng, "a", "b") == (S.TALKING, S.RESERVED)
    eng.transfer_failed(clock.advance(20), cid, "cancelled")
    assert states(eng, "a", "b") == (S.TALKING, S.READY)
    # again, completed this time
    eng.transfer_start(clock.advance(5), cid, "a", to_agent="b", consult=True)
    eng.transfer_consulting(clock.advance(1), cid)
    eng.transfer_done(clock.advance(10), cid)
    assert states(eng, "a", "b") == (S.READY, S.TALKING)
    # and the new agent may hand it on in turn
    eng.transfer_start(clock.advance(5), cid, "b", to_agent="a")
    eng.transfer_done(clock.advance(1), cid)
    assert states(eng, "a", "b") == (S.TALKING, S.READY)


def test_group_transfer_picks_the_longest_idle_ready_agent(clock: FakeClock) -> None:
    eng, cid = talking(clock, others=("b", "c", "d"))  # b ready first, then c, then d
    eng.agent_pause(clock.advance(1), "b", "break")
    out = eng.transfer_start(clock.advance(1), cid, "a", group=["a", "b", "c", "d"])
    assert of_type(out, TransferTo)[0].to_agent == "c"
    eng.transfer_failed(clock.advance(1), cid, "486 busy")  # c is ready again: now the newest
    out = eng.transfer_start(clock.advance(1), cid, "a", group=["c", "d"])
    assert of_type(out, TransferTo)[0].to_agent == "d"
    eng.transfer_failed(clock.advance(1), cid, "cancelled")
    with pytest.raises(IllegalTransitionError, match="no ready agent"):
        eng.transfer_start(clock.now, cid, "a", group=["b", "x"])


def test_refusals(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    eng.agent_pause(clock.now, "c", "break")
    with pytest.raises(IllegalTransitionError, match="paused"):
        eng.transfer_start(clock.now, cid, "a", to_agent="c")
    with pytest.raises(InvalidInputError):
        eng.transfer_start(clock.now, cid, "a", to_agent="a")
    with pytest.raises(InvalidInputError):
        eng.transfer_start(clock.now, cid, "a", to_agent="b", group=["b"])
    with pytest.raises(InvalidInputError):
        eng.transfer_start(clock.now, cid, "a")
    with pytest.raises(UnknownAgentError):
        eng.transfer_start(clock.now, cid, "a", to_agent="nobody")
    with pytest.raises(IllegalTransitionError):
        eng.transfer_start(clock.now, cid, "b", to_agent="a")  # not b's call
    with pytest.raises(IllegalTransitionError):
        eng.transfer_done(clock.now, cid)  # no transfer in progress
    eng.transfer_start(clock.now, cid, "a", to_agent="b")
    with pytest.raises(IllegalTransitionError):
        eng.transfer_consulting(clock.now, cid)  # a blind transfer has no consultation
    eng.agent_pause(clock.advance(1), "b", "lunch")  # while reserved: after the call
    eng.transfer_failed(clock.advance(1), cid, "busy")
    assert eng.agent_state("b") is S.PAUSED


def test_call_ending_during_a_transfer_frees_the_target(clock: FakeClock) -> None:
    eng, cid = talking(clock)
    eng.transfer_start(clock.advance(10), cid, "a", to_agent="b", consult=True)
    eng.transfer_consulting(clock.advance(1), cid)
    out = eng.call_ended(clock.advance(3), cid)
    assert len(of_type(out, AttemptFinished)) == 1
    assert states(eng, "a", "b") == (S.WRAP_UP, S.READY)
    assert eng.transfer_of(cid) is None
    eng.disposition(clock.advance(1), "a", cid, "no_need")  # the first agent owns it


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["start_b", "start_c", "start_group", "warm_b", "consult",
                                 "done", "fail", "cancel", "end", "tick"]), max_size=12))
def test_any_sequence_ends_in_one_final_state(steps: list[str]) -> None:
    """Whatever the order of transfer events, the attempt ends once, each agent holds at
    most one call, and nobody is left reserved for a call that is gone."""
    clock = FakeClock()
    eng, cid = talking(clock)
    finished = 0
    for step in steps:
        clock.advance(1)
        holder = eng.calls.find(cid).agent_id if cid in eng.calls else None
        try:
            if step.startswith("start") or step == "warm_b":
                to = {"start_b": "b", "start_c": "c", "warm_b": "b"}.get(step)
                eng.transfer_start(clock.now, cid, holder or "a", to_agent=to,
                                   group=None if to else ["a", "b", "c"],
                                   consult=step == "warm_b")
            elif step == "consult":
                eng.transfer_consulting(clock.now, cid)
            elif step == "done":
                eng.transfer_done(clock.now, cid)
            elif step in ("fail", "cancel"):
                eng.transfer_failed(clock.now, cid, "cancelled" if step == "cancel" else "486")
            elif step == "end":
                finished += len(of_type(eng.call_ended(clock.now, cid), AttemptFinished))
            else:
                eng.tick(clock.now)
        except (IllegalTransitionError, InvalidInputError, KeyError):
            pass
        busy = [r for r in eng.board if r.state in (S.RESERVED, S.TALKING)]
        if cid in eng.calls:
            call = eng.calls.get(cid)
            assert eng.agent_state(call.agent_id) is S.TALKING  # type: ignore[arg-type]
            tr = eng.transfer_of(cid)
            expect = {call.agent_id} | ({tr.to_agent} if tr else set())
            assert {r.agent_id for r in busy} == expect
            assert all(r.call_id == cid for r in busy)
        else:
            assert busy == [] and eng.transfer_of(cid) is None
    if cid in eng.calls:
        finished += len(of_type(eng.call_ended(clock.advance(1), cid), AttemptFinished))
    assert finished == 1
    wrapping = [r.agent_id for r in eng.board if r.state is S.WRAP_UP]
    assert len(wrapping) == 1
    eng.disposition(clock.advance(1), wrapping[0], cid, "no_need")
    assert all(r.state is S.READY for r in eng.board)


def test_a_ready_agent_is_handed_off_silently_and_only_when_ready(clock: FakeClock) -> None:
    """`agent_hand_off`: another dialer instance takes a ready agent for a transfer there
    (dialer/cluster_lend.py). The record goes without a state change (no log out is logged
    or told to the desktop: the agent goes on ready there); anything but a free ready agent
    is refused and left as it was."""
    eng, _cid = talking(clock, others=("b", "c", "d"))
    eng.agent_pause(clock.advance(1), "d", "break")
    eng.agent_pause(clock.advance(1), "c", "break")
    working = eng.board.working
    out = eng.agent_hand_off(clock.advance(1), "b")
    assert of_type(out, AgentStateChanged) == []
    assert "b" not in eng.board and "b" not in eng.board.ready
    assert eng.board.working == working - 1
    assert eng.board.counts[S.READY] == 0
    for who in ("a", "c"):  # talking; paused
        before = eng.agent_state(who)
        with pytest.raises(IllegalTransitionError):
            eng.agent_hand_off(clock.advance(1), who)
        assert eng.agent_state(who) is before
    with pytest.raises(UnknownAgentError):
        eng.agent_hand_off(clock.now, "b")
    # the agent may come back later (a lend the other way): a new record, ready
    eng.agent_login(clock.advance(1), "b", ready=True)
    assert eng.agent_state("b") is S.READY


def test_a_ready_agent_with_a_pause_pending_or_an_offer_is_not_handed_off(
        clock: FakeClock) -> None:
    eng = make_engine(mode=DialMode.PREVIEW)
    eng.add_leads(clock.now, [lead()])
    eng.agent_login(clock.now, "p", ready=True)
    eng.tick(clock.advance(1))  # the preview offer goes to p: reserved for it
    before = eng.agent_state("p")
    with pytest.raises(IllegalTransitionError):
        eng.agent_hand_off(clock.advance(1), "p")
    assert eng.agent_state("p") is before
    eng2, _cid = talking(clock, others=())
    eng2.agent_login(clock.advance(1), "q", ready=True)
    eng2.board.get("q").pending = S.PAUSED  # a pause asked for, not applied yet
    with pytest.raises(IllegalTransitionError):
        eng2.agent_hand_off(clock.advance(1), "q")


# ------------------------------------------------------------------ visitors
def test_a_visitor_from_another_campaign_takes_one_call_then_leaves(clock: FakeClock) -> None:
    """`visitor=True`: an agent of another campaign (taken off its board there, ready)
    joins this board reserved for the transfer, without a READY event, is not counted by
    the pacer, owns the call's disposition, and once free leaves the board without a
    state change here (`VisitorLeft` READY: its own campaign puts it back)."""
    eng, cid = talking(clock, others=())
    working = eng.board.working
    out = eng.transfer_start(clock.advance(10), cid, "a", to_agent="v", visitor=True)
    assert [(c.agent_id, c.old, c.new, c.reason) for c in of_type(out, AgentStateChanged)] \
        == [("v", S.READY, S.RESERVED, "transfer")]
    assert of_type(out, TransferTo) == [TransferTo(cid, "a", "v", False)]
    assert eng.board.working == working and "v" not in eng.board.ready
    out = eng.transfer_done(clock.advance(2), cid)
    assert states(eng, "a", "v") == (S.READY, S.TALKING)
    assert eng.board.working == working
    # the pacer does not count on the visitor becoming free here
    assert len(eng.snapshot(clock.now).talking_elapsed) == 0
    eng.call_ended(clock.advance(30), cid)
    assert eng.agent_state("v") is S.WRAP_UP
    out = eng.disposition(clock.advance(5), "v", cid, "no_need")
    assert of_type(out, VisitorLeft) == [VisitorLeft("v", S.READY, None)]
    assert of_type(out, AgentStateChanged) == []
    assert "v" not in eng.board and eng.board.working == working


def test_a_visitor_leaves_as_it_asked_and_when_the_transfer_fails(clock: FakeClock) -> None:
    eng, cid = talking(clock, others=())
    eng.transfer_start(clock.advance(1), cid, "a", to_agent="v", visitor=True)
    out = eng.transfer_failed(clock.advance(15), cid, "486")
    assert of_type(out, VisitorLeft) == [VisitorLeft("v", S.READY, "transfer_failed:486")]
    assert "v" not in eng.board and eng.agent_state("a") is S.TALKING
    # a pause asked for during the call: home paused, with its reason
    eng.transfer_start(clock.advance(1), cid, "a", to_agent="v", visitor=True)
    eng.transfer_done(clock.advance(1), cid)
    eng.agent_pause(clock.advance(1), "v", "lunch")
    eng.call_ended(clock.advance(1), cid)
    out = eng.disposition(clock.advance(1), "v", cid, "no_need")
    assert of_type(out, VisitorLeft) == [VisitorLeft("v", S.PAUSED, "lunch")]


def test_a_visitor_logging_out_is_told_here(clock: FakeClock) -> None:
    eng, cid = talking(clock, others=())
    eng.transfer_start(clock.advance(1), cid, "a", to_agent="v", visitor=True)
    eng.transfer_done(clock.advance(1), cid)
    eng.agent_logout(clock.advance(1), "v")
    eng.call_ended(clock.advance(1), cid)
    out = eng.disposition(clock.advance(1), "v", cid, "no_need")
    assert [(c.agent_id, c.new) for c in of_type(out, AgentStateChanged)] == [
        ("v", S.LOGGED_OUT)]
    assert of_type(out, VisitorLeft) == [VisitorLeft("v", S.LOGGED_OUT, "logout")]
    assert "v" not in eng.board


def test_a_visitor_must_be_new_to_the_board_and_arrives_home(clock: FakeClock) -> None:
    eng, cid = talking(clock, others=("b",))
    with pytest.raises(IllegalTransitionError):  # b is an agent of this campaign
        eng.transfer_start(clock.now, cid, "a", to_agent="b", visitor=True)
    assert eng.agent_state("b") is S.READY and not eng.board.get("b").visiting
    # home: the agent comes back ready (routed as any ready agent) or paused
    home = make_engine(mode=DialMode.PROGRESSIVE)
    out = home.agent_arrive(clock.advance(1), "v", S.READY)
    assert [(c.agent_id, c.old, c.new) for c in of_type(out, AgentStateChanged)] == [
        ("v", S.LOGGED_OUT, S.READY)]
    out = home.agent_arrive(clock.advance(1), "w", S.PAUSED, "lunch")
    assert [(c.agent_id, c.new, c.reason) for c in of_type(out, AgentStateChanged)] == [
        ("w", S.PAUSED, "lunch")]
    out = home.agent_arrive(clock.advance(1), "x", S.LOGGED_OUT)
    assert of_type(out, AgentStateChanged) == [] and "x" not in home.board
    with pytest.raises(IllegalTransitionError):
        home.agent_arrive(clock.advance(1), "v", S.READY)  # it is here already
