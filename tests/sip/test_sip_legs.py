"""The pure leg logic of a SIP node (sip/legs.py), without PJSIP or SIPp.

The transition table, the one state setter, and the classification of how a call ended -
including the races the SIPp tests can only hit by timing: a 200 OK crossing our CANCEL, a
487 after the ring timeout, BYE versus CANCEL, PJ_ETOOMANY retries. Hypothesis drives random
event sequences through a leg the way the node's pjsua2 glue does.
"""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.vocabulary import AmdVerdict, AttemptResult
from sip.api import CallEnded, CallRinging, Originate
from sip.legs import (
    AGENT_HUNG_UP,
    CROSSED_CANCEL,
    MESSAGE_PLAYED,
    PJ_ETOOMANY,
    TRANSITIONS,
    AgentCall,
    AgentFailure,
    CustomerCall,
    IllegalLegTransition,
    LegState,
    LocalEnd,
    classify_end,
    dialer_hangup_end,
    makecall_retryable,
    retry_makecall,
    ring_timeout_end,
    setup_timeout_end,
    shutdown_end,
)

ORDER = [LegState.DIALING, LegState.EARLY, LegState.ANSWERED, LegState.ENDED]
ALL_PAIRS = list(itertools.product(LegState, LegState))
LEGAL = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if a != b and b not in TRANSITIONS[a]]


def _cmd(ring: float = 5.0, setup: float = 30.0) -> Originate:
    return Originate(
        call_id="c1",
        target="sip:1@127.0.0.1",
        caller_id="15550100000",
        ring_timeout_s=ring,
        setup_timeout_s=setup,
    )


def _customer(**kw: object) -> CustomerCall:
    return CustomerCall(call_id="c1", cmd=_cmd(), **kw)  # type: ignore[arg-type]


def _at(leg: CustomerCall | AgentCall, state: LegState) -> None:
    """Walk a fresh leg forward to ``state`` through legal moves."""
    for s in ORDER[1 : ORDER.index(state) + 1]:
        leg.set_state(s)


# ---------------------------------------------------------------------------------------------
# The transition table and the one setter
# ---------------------------------------------------------------------------------------------


def test_transition_table_is_forward_only() -> None:
    assert dict(TRANSITIONS) == {
        LegState.DIALING: {LegState.EARLY, LegState.ANSWERED, LegState.ENDED},
        LegState.EARLY: {LegState.ANSWERED, LegState.ENDED},
        LegState.ANSWERED: {LegState.ENDED},
        LegState.ENDED: set(),
    }


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=lambda s: s.value)
def test_every_legal_transition(
    old: LegState, new: LegState, caplog: pytest.LogCaptureFixture
) -> None:
    for leg in (_customer(), AgentCall(agent_call_id="a1")):
        _at(leg, old)
        with caplog.at_level(logging.DEBUG, logger="sip.legs"):
            caplog.clear()
            assert leg.set_state(new) is True
        assert leg.state is new
        assert f"{old.value} -> {new.value}" in caplog.text


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=lambda s: s.value)
def test_every_illegal_transition_raises_naming_the_state(old: LegState, new: LegState) -> None:
    leg = _customer()
    _at(leg, old)
    with pytest.raises(IllegalLegTransition, match=f"c1: illegal transition {old.value} ->"):
        leg.set_state(new)
    assert leg.state is old


@pytest.mark.parametrize("state", list(LegState), ids=lambda s: s.value)
def test_setting_the_same_state_is_a_silent_no_op(
    state: LegState, caplog: pytest.LogCaptureFixture
) -> None:
    leg = _customer()
    _at(leg, state)
    with caplog.at_level(logging.DEBUG, logger="sip.legs"):
        caplog.clear()
        assert leg.set_state(state) is False
    assert leg.state is state
    assert caplog.text == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(LegState)), max_size=12))
def test_random_moves_only_go_forward(moves: list[LegState]) -> None:
    leg = AgentCall(agent_call_id="a1")
    for new in moves:
        before = leg.state
        try:
            changed = leg.set_state(new)
        except IllegalLegTransition:
            assert new not in TRANSITIONS[before] and new is not before
            assert leg.state is before
            continue
        assert changed == (new is not before)
        assert ORDER.index(leg.state) >= ORDER.index(before)


# ---------------------------------------------------------------------------------------------
# Classification of how a call ended
# ---------------------------------------------------------------------------------------------

_REMOTE = [
    # (final code, got a provisional?, result, retryable)
    (486, True, AttemptResult.BUSY, True),
    (600, False, AttemptResult.BUSY, True),
    (404, False, AttemptResult.INVALID_NUMBER, False),
    (484, True, AttemptResult.INVALID_NUMBER, False),
    (604, False, AttemptResult.INVALID_NUMBER, False),
    (403, True, AttemptResult.REJECTED, False),
    (603, True, AttemptResult.REJECTED, False),
    (408, False, AttemptResult.FAILED, True),  # Timer B: nobody answered at all
    (408, True, AttemptResult.NO_ANSWER, True),  # the far end gave up after ringing
    (480, True, AttemptResult.NO_ANSWER, True),
    (487, True, AttemptResult.NO_ANSWER, True),
    (500, True, AttemptResult.FAILED, True),
    (503, False, AttemptResult.FAILED, True),
    (501, False, AttemptResult.FAILED, False),
    (401, False, AttemptResult.FAILED, False),
    (None, False, AttemptResult.FAILED, True),  # transport error: no SIP code at all
]


@pytest.mark.parametrize(("code", "provisional", "result", "retryable"), _REMOTE)
def test_remote_failure_codes(
    code: int | None, provisional: bool, result: AttemptResult, retryable: bool
) -> None:
    out = classify_end(
        answered=False,
        saw_200=False,
        got_provisional=provisional,
        local_end=None,
        sip_code=code,
        sip_reason="from the far end",
        ever_bridged=False,
        amd_verdict=AmdVerdict.NOT_RUN,
    )
    assert (out.result, out.retryable) == (result, retryable)
    assert out.hangup_by == "remote" and out.sip_code == code
    assert out.reason == "from the far end" and not out.answered_after_cancel


def test_early_state_counts_as_provisional_for_408() -> None:
    # a 100-only/early dialog without an 18x timestamp is still "the far end was there"
    leg = _customer()
    leg.on_provisional(100, False, 1.0)
    assert leg.t_first_18x is None and leg.state is LegState.EARLY
    ev = leg.on_disconnected(408, "Request Timeout", 2.0)
    assert ev is not None and ev.result == AttemptResult.NO_ANSWER


@pytest.mark.parametrize(
    ("bridged", "amd", "result"),
    [
        (False, AmdVerdict.NOT_RUN, AttemptResult.ABANDONED),
        (False, AmdVerdict.HUMAN, AttemptResult.ABANDONED),
        (False, AmdVerdict.MACHINE, AttemptResult.MACHINE),
        (True, AmdVerdict.NOT_RUN, AttemptResult.CONNECTED),
        (True, AmdVerdict.MACHINE, AttemptResult.CONNECTED),  # an agent talked: connected
    ],
)
def test_answered_call_results(bridged: bool, amd: AmdVerdict, result: AttemptResult) -> None:
    leg = _customer()
    leg.on_provisional(180, False, 1.0)
    assert leg.on_answered(3.0) is True
    leg.ever_bridged = bridged
    leg.amd_verdict = amd
    ev = leg.on_disconnected(200, "Normal call clearing", 10.5)
    assert ev is not None
    assert ev.result == result and not ev.retryable
    assert ev.hangup_by == "remote" and ev.reason == "callee hung up" and ev.sip_code == 200
    assert ev.ring_s == 2.0 and ev.talk_s == 7.5


def test_ring_timeout_then_487() -> None:
    leg = _customer()
    leg.on_provisional(180, False, 10.0)
    assert leg.due_timeout(14.9, call_placed=True) is None
    why = leg.due_timeout(15.0, call_placed=True)
    assert why == ring_timeout_end(5.0)
    assert why is not None
    leg.mark_local_end(why)
    assert leg.due_timeout(99.0, call_placed=True) is None  # only once
    ev = leg.on_disconnected(487, "Request Terminated", 15.1)
    assert ev is not None
    assert ev.result == AttemptResult.NO_ANSWER and ev.retryable
    assert ev.sip_code == 487 and ev.hangup_by == "node" and ev.reason == "ring timeout 5s"
    assert ev.ring_s == 5.1 and ev.talk_s is None and not ev.answered_after_cancel


def test_setup_timeout_needs_a_placed_call_and_no_18x() -> None:
    leg = _customer(t_invite=100.0)
    assert leg.due_timeout(130.0, call_placed=False) is None  # still waiting for a slot
    assert leg.due_timeout(129.9, call_placed=True) is None
    assert leg.due_timeout(130.0, call_placed=True) == setup_timeout_end(30.0)
    leg.on_provisional(100, False, 101.0)  # 100 Trying: EARLY, but no ringing yet
    assert leg.due_timeout(130.0, call_placed=True) == setup_timeout_end(30.0)
    leg.on_provisional(180, False, 102.0)
    # now the ring timer counts (5 s from the 180), not the setup timer
    assert leg.due_timeout(106.9, call_placed=True) is None
    assert leg.due_timeout(130.0, call_placed=True) == ring_timeout_end(5.0)
    why = setup_timeout_end(30.0)
    assert (why.result, why.hangup_by, why.retryable) == (AttemptResult.FAILED, "node", True)
    assert why.reason == "no ringing within 30s"


def test_200_crossing_our_cancel_seen_as_a_call_state() -> None:
    leg = _customer()
    leg.on_provisional(180, False, 1.0)
    leg.mark_local_end(ring_timeout_end(5.0))
    # PJSIP reports CONNECTING for the crossed 200: no CallAnswered for the dialer
    assert leg.on_answered(6.0) is False
    assert leg.state is LegState.ANSWERED and leg.saw_200
    ev = leg.on_disconnected(200, "Normal call clearing", 6.1)
    assert ev is not None
    assert ev.answered_after_cancel and ev.sip_code == 200
    assert ev.result == AttemptResult.NO_ANSWER and ev.retryable and ev.hangup_by == "node"
    assert ev.reason == f"ring timeout 5s; {CROSSED_CANCEL}"
    assert leg.final_event(ev) is ev  # already marked: not rewritten twice


def test_200_crossing_our_cancel_seen_only_in_the_message_log() -> None:
    leg = _customer(sip_call_id="abc@host")
    leg.on_provisional(180, False, 1.0)
    leg.mark_local_end(dialer_hangup_end("dialer", answered=False))
    ev = leg.on_disconnected(487, "Request Terminated", 2.0)
    assert ev is not None and ev.result == AttemptResult.CANCELLED and ev.sip_code == 487
    assert leg.must_wait_for_invite_final(stopping=False)  # a 200 may still come
    leg.on_invite_final(200)  # the log writer saw "RX ... Response msg 200/INVITE/"
    assert not leg.must_wait_for_invite_final(stopping=False)
    final = leg.final_event(ev)
    assert final.answered_after_cancel and final.sip_code == 200
    assert final.result == AttemptResult.CANCELLED and final.hangup_by == "local"
    assert final.reason == f"dialer; {CROSSED_CANCEL}"


def test_487_to_our_cancel_is_not_a_cross() -> None:
    leg = _customer(sip_call_id="abc@host")
    leg.on_provisional(180, False, 1.0)
    leg.mark_local_end(ring_timeout_end(5.0))
    ev = leg.on_disconnected(487, "Request Terminated", 6.0)
    assert ev is not None
    leg.on_invite_final(487)
    assert not leg.must_wait_for_invite_final(stopping=False)
    assert leg.final_event(ev) is ev and not ev.answered_after_cancel


@pytest.mark.parametrize(
    ("sip_call_id", "stopping", "wait"),
    [("abc@host", False, True), ("", False, False), ("abc@host", True, False)],
)
def test_waiting_for_the_invite_final(sip_call_id: str, stopping: bool, wait: bool) -> None:
    leg = _customer(sip_call_id=sip_call_id)
    leg.mark_local_end(dialer_hangup_end("", answered=False))
    leg.on_disconnected(487, "Request Terminated", 1.0)
    assert leg.must_wait_for_invite_final(stopping) is wait


def test_no_wait_when_the_callee_ended_it() -> None:
    leg = _customer(sip_call_id="abc@host")
    leg.on_disconnected(486, "Busy Here", 1.0)
    assert not leg.must_wait_for_invite_final(stopping=False)


def test_cancel_before_answer_versus_bye_after() -> None:
    cancel = _customer()
    cancel.on_provisional(180, False, 1.0)
    cancel.mark_local_end(dialer_hangup_end("", answered=cancel.state is LegState.ANSWERED))
    ev = cancel.on_disconnected(487, "Request Terminated", 2.0)
    assert ev is not None
    assert (ev.result, ev.hangup_by, ev.retryable) == (AttemptResult.CANCELLED, "local", True)
    assert ev.reason == "hung up by dialer" and ev.sip_code == 487

    bye = _customer()
    bye.on_provisional(180, False, 1.0)
    bye.on_answered(2.0)
    bye.mark_local_end(dialer_hangup_end("abandon", answered=bye.state is LegState.ANSWERED))
    ev = bye.on_disconnected(200, "Normal call clearing", 4.0)
    assert ev is not None
    assert (ev.result, ev.hangup_by, ev.retryable) == (AttemptResult.ABANDONED, "local", False)
    assert ev.reason == "abandon" and ev.sip_code == 200 and not ev.answered_after_cancel


@pytest.mark.parametrize(
    ("why", "result", "by", "retryable", "before"),
    [
        (shutdown_end(answered=False), AttemptResult.CANCELLED, "node", True, True),
        (shutdown_end(answered=True), None, "node", True, False),
        (dialer_hangup_end("x", answered=False), AttemptResult.CANCELLED, "local", True, True),
        (dialer_hangup_end("x", answered=True), None, "local", True, False),
        (AGENT_HUNG_UP, None, "local", False, False),
        (MESSAGE_PLAYED, None, "local", False, False),
        (ring_timeout_end(15), AttemptResult.NO_ANSWER, "node", True, True),
        (setup_timeout_end(30), AttemptResult.FAILED, "node", True, True),
    ],
)
def test_node_side_hangup_reasons(
    why: LocalEnd, result: AttemptResult | None, by: str, retryable: bool, before: bool
) -> None:
    assert (why.result, why.hangup_by, why.retryable, why.before_answer) == (
        result,
        by,
        retryable,
        before,
    )


def test_answered_call_ended_by_the_node_keeps_the_node_reason() -> None:
    leg = _customer()
    leg.on_answered(1.0)
    leg.amd_verdict = AmdVerdict.MACHINE
    leg.mark_local_end(MESSAGE_PLAYED)
    ev = leg.on_disconnected(200, "", 9.0)
    assert ev is not None
    assert (ev.result, ev.hangup_by, ev.reason) == (
        AttemptResult.MACHINE,
        "local",
        "message played",
    )


def test_the_first_reason_to_hang_up_wins() -> None:
    leg = _customer()
    leg.mark_local_end(ring_timeout_end(5))
    leg.mark_local_end(dialer_hangup_end("late", answered=False))
    assert leg.local_end == ring_timeout_end(5)


def test_hung_up_while_waiting_for_a_slot() -> None:
    leg = _customer()
    leg.mark_local_end(dialer_hangup_end("stop", answered=False))
    ev = leg.cancelled_before_invite()
    assert (ev.result, ev.sip_code, ev.reason, ev.hangup_by, ev.retryable) == (
        AttemptResult.CANCELLED,
        None,
        "stop",
        "local",
        True,
    )
    assert leg.state is LegState.ENDED


def test_a_second_disconnect_reports_nothing() -> None:
    leg = _customer()
    assert leg.on_disconnected(503, "Service Unavailable", 1.0) is not None
    assert leg.on_disconnected(503, "Service Unavailable", 1.0) is None


def test_ringing_reports() -> None:
    leg = _customer()
    first = leg.on_provisional(180, False, 1.0)
    assert isinstance(first, CallRinging) and first.sip_code == 180 and not first.early_media
    assert leg.on_provisional(180, False, 2.0) is None  # no news
    early = leg.on_provisional(183, False, 3.0)  # early media starts later: report again
    assert isinstance(early, CallRinging) and early.early_media
    assert leg.on_provisional(183, True, 4.0) is None
    assert leg.t_first_18x == 1.0  # the ring timer starts at the first 18x


def test_no_ringing_event_once_we_hang_up() -> None:
    leg = _customer()
    leg.mark_local_end(dialer_hangup_end("", answered=False))
    assert leg.on_provisional(180, False, 1.0) is None
    assert leg.state is LegState.EARLY and leg.t_first_18x == 1.0


def test_sdp_in_a_180_is_early_media() -> None:
    ringing = _customer().on_provisional(180, True, 1.0)
    assert isinstance(ringing, CallRinging) and ringing.early_media


def test_etoomany_retry_window() -> None:
    assert retry_makecall(PJ_ETOOMANY, 1.0, 2.0)
    assert not retry_makecall(PJ_ETOOMANY, 2.0, 2.0)  # window over
    assert not retry_makecall(PJ_ETOOMANY, 1.0, 2.0, stopping=True)
    assert not retry_makecall(70001, 1.0, 2.0)  # any other error fails at once
    assert PJ_ETOOMANY == 70010
    assert makecall_retryable(PJ_ETOOMANY) and not makecall_retryable(70001)


# ---------------------------------------------------------------------------------------------
# The agent leg
# ---------------------------------------------------------------------------------------------


def test_agent_bridged_hangs_up_a_live_customer() -> None:
    a = AgentCall(agent_call_id="a1", bridged=True)
    a.on_confirmed()
    assert a.on_disconnected(200, "", customer_up=True) is AGENT_HUNG_UP
    assert a.state is LegState.ENDED


@pytest.mark.parametrize(("customer_up", "local"), [(False, False), (True, True)])
def test_agent_bridged_end_leaves_customer_alone(customer_up: bool, local: bool) -> None:
    a = AgentCall(agent_call_id="a1", bridged=True, local_hangup=local)
    a.on_confirmed()
    assert a.on_disconnected(200, "", customer_up=customer_up) is None


def test_agent_never_answered_fails_with_the_code() -> None:
    a = AgentCall(agent_call_id="a1")
    a.on_early()
    assert a.on_disconnected(486, "Busy Here", customer_up=True) == AgentFailure(486, "Busy Here")
    b = AgentCall(agent_call_id="a2")
    assert b.on_disconnected(None, "", customer_up=True) == AgentFailure(None, "agent leg failed")


def test_agent_answered_but_gone_before_the_bridge() -> None:
    a = AgentCall(agent_call_id="a1")
    assert a.on_confirmed() is True
    assert a.on_confirmed() is False  # only the first 200 counts
    assert a.on_disconnected(200, "", customer_up=True) == AgentFailure(
        200, "agent hung up before bridge"
    )


def test_agent_failure_reported_only_once() -> None:
    a = AgentCall(agent_call_id="a1", failed_reported=True)
    assert a.on_disconnected(480, "x", customer_up=True) is None


def test_agent_answer_timeout() -> None:
    a = AgentCall(agent_call_id="a1", t_start=10.0)
    assert not a.answer_timed_out(14.9, 5.0)
    assert a.answer_timed_out(15.0, 5.0)
    a.on_early()
    assert a.answer_timed_out(15.0, 5.0)
    a.local_hangup = True
    assert not a.answer_timed_out(15.0, 5.0)
    b = AgentCall(agent_call_id="a2", t_start=10.0)
    b.on_confirmed()
    assert not b.answer_timed_out(99.0, 5.0)


# ---------------------------------------------------------------------------------------------
# Random event sequences, driven the way the node's pjsua2 glue drives a leg
# ---------------------------------------------------------------------------------------------

_customer_events = st.one_of(
    st.tuples(st.just("provisional"), st.sampled_from([100, 180, 181, 183]), st.booleans()),
    st.tuples(st.just("answered")),
    st.tuples(st.just("hangup"), st.sampled_from(["", "abandon"])),
    st.tuples(st.just("shutdown")),
    st.tuples(st.just("tick"), st.floats(min_value=0, max_value=40)),
    st.tuples(st.just("invite_final"), st.sampled_from([200, 487])),
    st.tuples(st.just("bridged")),
    st.tuples(st.just("disconnect"), st.sampled_from([None, 200, 408, 486, 487, 503])),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_customer_events, max_size=15))
def test_random_customer_sequences_end_exactly_once(events: list[tuple[object, ...]]) -> None:
    leg = _customer(t_invite=0.0)
    now = 0.0
    ended: list[CallEnded] = []
    answered_events = 0
    seen: list[LegState] = [leg.state]

    def disconnect(code: int | None) -> None:
        ev = leg.on_disconnected(code, "reason", now)
        if ev is not None:
            ended.append(leg.final_event(ev))

    for event in events:
        kind = event[0]
        now += 0.5
        if kind == "provisional":
            leg.on_provisional(int(event[1]), bool(event[2]), now)  # type: ignore[call-overload]
        elif kind == "answered":
            answered_events += leg.on_answered(now)
        elif kind == "hangup":
            leg.mark_local_end(
                dialer_hangup_end(str(event[1]), answered=leg.state is LegState.ANSWERED)
            )
        elif kind == "shutdown":
            leg.mark_local_end(shutdown_end(answered=leg.state is LegState.ANSWERED))
        elif kind == "tick":
            now += float(event[1])  # type: ignore[arg-type]
            why = leg.due_timeout(now, call_placed=True)
            if why is not None:
                leg.mark_local_end(why)
        elif kind == "invite_final":
            leg.on_invite_final(int(event[1]))  # type: ignore[call-overload]
        elif kind == "bridged" and leg.state is LegState.ANSWERED:
            leg.ever_bridged = True
        elif kind == "disconnect":
            disconnect(event[1])  # type: ignore[arg-type]
        seen.append(leg.state)
    disconnect(487)  # every call disconnects in the end

    assert len(ended) == 1, "exactly one CallEnded per call"
    assert leg.state is LegState.ENDED
    assert [ORDER.index(s) for s in seen] == sorted(ORDER.index(s) for s in seen)
    assert answered_events <= 1
    ev = ended[0]
    if ev.answered_after_cancel:
        assert ev.sip_code == 200 and CROSSED_CANCEL in ev.reason
        assert leg.local_end is not None and leg.local_end.before_answer
    if answered_events:
        assert ev.result in (
            AttemptResult.CONNECTED,
            AttemptResult.MACHINE,
            AttemptResult.ABANDONED,
        )
        assert not ev.retryable
    if ev.result == AttemptResult.CONNECTED:
        assert leg.ever_bridged


_agent_events = st.sampled_from(["early", "confirmed", "bridged", "local", "failed", "end"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_agent_events, max_size=10), st.booleans())
def test_random_agent_sequences_end_exactly_once(events: list[str], customer_up: bool) -> None:
    a = AgentCall(agent_call_id="a1")
    outcomes: list[tuple[object, bool, bool, bool]] = []
    for e in [*events, "end"]:
        if e == "early":
            a.on_early()
        elif e == "confirmed":
            a.on_confirmed()
        elif e == "bridged" and a.state is LegState.ANSWERED:
            a.bridged = True
        elif e == "local":
            a.local_hangup = True
        elif e == "failed":
            a.failed_reported = True
        elif e == "end" and a.state is not LegState.ENDED:
            flags = (a.bridged, a.local_hangup, a.failed_reported)
            outcomes.append((a.on_disconnected(None, "", customer_up=customer_up), *flags))
    assert a.state is LegState.ENDED
    assert len(outcomes) == 1
    what, bridged, local_hangup, failed_reported = outcomes[0]
    if isinstance(what, LocalEnd):
        assert bridged and customer_up and not local_hangup
    elif isinstance(what, AgentFailure):
        assert not bridged and not failed_reported
    else:
        assert what is None
        assert (bridged and (local_hangup or not customer_up)) or (not bridged and failed_reported)


def test_rx_watch_times_out_only_without_packets() -> None:
    from sip.legs import RxWatch, agent_media_timeout_end, media_timeout_end

    w = RxWatch(20.0)
    assert not w.observe(0, 100.0)  # the first look starts the count
    assert not w.observe(0, 119.0)
    assert w.observe(0, 120.0)
    w = RxWatch(20.0)
    for t in range(0, 60, 1):  # packets keep coming: never
        assert not w.observe(t * 50, 100.0 + t)
    w = RxWatch(20.0)
    w.observe(5, 0.0)
    assert not w.observe(5, 30.0, receiving=False)  # on hold: the count restarts
    assert not w.observe(5, 49.0) and w.observe(5, 50.0)
    assert not RxWatch(0).observe(1, 0.0) and not RxWatch(0).observe(1, 1e9)
    end = media_timeout_end(20)
    assert (end.result, end.hangup_by, end.reason, end.before_answer) == (
        None, "node", "no media for 20 s", False,
    )
    assert agent_media_timeout_end(20).reason == "agent leg: no media for 20 s"
