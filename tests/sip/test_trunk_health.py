"""The per-trunk circuit breaker (sip/trunk_health.py): pure, on a ManualClock, no PJSIP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.clock import ManualClock
from common.vocabulary import AttemptResult
from sip.api import CallAnswered, CallEnded, CallRinging, SipApiError
from sip.config import TrunkConfig
from sip.options_probe import ProbeTarget, build_options, parse_status, probe_target
from sip.trunk_health import (
    TRANSITIONS,
    BreakerConfig,
    CallOutcome,
    TrunkBreaker,
    TrunkState,
    is_trunk_failure,
    outcome_of,
)
from sip.trunk_monitor import refusal_text

F, S, N = CallOutcome.TRUNK_FAILURE, CallOutcome.SUCCESS, CallOutcome.NEUTRAL


def _clock() -> ManualClock:
    return ManualClock(datetime(2025, 1, 6, 9, 0, tzinfo=UTC))


def _ended(result: AttemptResult, code: int | None, **kw: object) -> CallEnded:
    base: dict[str, object] = {
        "call_id": "c", "result": result, "sip_code": code, "reason": "r",
        "hangup_by": "remote", "ring_s": None, "talk_s": None, "retryable": True,
    }  # fmt: skip
    base.update(kw)
    return CallEnded(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ev", "outcome"),
    [
        (_ended(AttemptResult.FAILED, None), F),  # no SIP answer / transport error
        (_ended(AttemptResult.FAILED, 408), F),  # Timer B
        (_ended(AttemptResult.FAILED, 503), F),
        (_ended(AttemptResult.FAILED, 500), F),
        (_ended(AttemptResult.FAILED, 502), F),
        (_ended(AttemptResult.FAILED, 504), F),
        (_ended(AttemptResult.FAILED, 487, hangup_by="node"), F),  # setup timeout
        (_ended(AttemptResult.BUSY, 486), S),
        (_ended(AttemptResult.NO_ANSWER, 480), S),
        (_ended(AttemptResult.INVALID_NUMBER, 404), S),
        (_ended(AttemptResult.REJECTED, 603), S),
        (_ended(AttemptResult.NO_ANSWER, 487, ring_s=25.0, hangup_by="node"), S),
        (_ended(AttemptResult.FAILED, 503, ring_s=3.0), S),  # 5xx after ringing: callee side
        (_ended(AttemptResult.CONNECTED, 200, ring_s=1.0, talk_s=30.0), S),
        (_ended(AttemptResult.CANCELLED, None, hangup_by="local"), N),
        (CallRinging(call_id="c", early_media=False, sip_code=180), S),
        (CallAnswered(call_id="c"), S),
    ],
)
def test_outcome_of_call_events(ev: object, outcome: CallOutcome) -> None:
    assert outcome_of(ev) is outcome
    if isinstance(ev, CallEnded):
        assert is_trunk_failure(ev) is (outcome is F)


def test_opens_after_threshold_and_refuses() -> None:
    clock = _clock()
    b = TrunkBreaker("pstn", BreakerConfig(failure_threshold=3), clock)
    assert b.record("a", F) is None and b.record("b", F) is None
    assert b.record("c", S) is None  # a callee answer resets the count
    assert b.record("d", F) is None and b.record("e", F) is None
    tr = b.record("f", F, "503 Service Unavailable")
    assert tr is not None and (tr.old, tr.new) == (TrunkState.CLOSED, TrunkState.OPEN)
    assert tr.failures == 3 and "503" in tr.reason
    assert not b.admit("g")
    assert refusal_text("pstn", b.state) == "trunk pstn unavailable (circuit open)"
    # outcomes of calls placed before the outage change nothing while open
    assert b.record("x", S) is None and b.state is TrunkState.OPEN


def test_probe_cycle_half_open_trial_closes() -> None:
    clock = _clock()
    cfg = BreakerConfig(failure_threshold=1, probe_interval_s=2.0, keepalive_interval_s=10.0)
    b = TrunkBreaker("t", cfg, clock)
    assert b.next_probe_at() == 0.0  # the first keep-alive at once
    b.probe_started()
    assert b.next_probe_at() == 10.0
    tr = b.probe_result(False, "no response within 2s")
    assert tr is not None and tr.new is TrunkState.OPEN and "OPTIONS" in tr.reason
    assert b.next_probe_at() == 2.0  # probes every probe_interval_s while open
    clock.advance(2.0)
    b.probe_started()
    assert b.probe_result(False, "x") is None  # still dead: stays open
    clock.advance(2.0)
    tr = b.probe_result(True, "200 OK")
    assert tr is not None and tr.new is TrunkState.HALF_OPEN
    assert b.admit("t1") and not b.admit("t2")  # one trial at a time
    assert refusal_text("t", b.state).startswith("trunk t unavailable (circuit half_open")
    b.release("t1")  # the trial was never placed: its place is free again
    assert b.admit("t3")
    assert b.record("other", S) is None  # not a trial: ignored
    tr = b.record("t3", S)
    assert tr is not None and tr.new is TrunkState.CLOSED and b.admit("any")


def test_failed_trial_reopens() -> None:
    b = TrunkBreaker("t", BreakerConfig(failure_threshold=1), _clock())
    b.record("a", F)
    b.probe_result(True, "200 OK")
    assert b.admit("trial")
    tr = b.record("trial", F, "503")
    assert tr is not None and (tr.old, tr.new) == (TrunkState.HALF_OPEN, TrunkState.OPEN)


def test_disabled_breaker_never_refuses() -> None:
    b = TrunkBreaker("t", BreakerConfig(enabled=False, failure_threshold=1), _clock())
    for i in range(10):
        assert b.record(str(i), F) is None and b.admit(str(i))
    assert b.next_probe_at() is None


@pytest.mark.parametrize(
    "kw",
    [
        {"failure_threshold": 0},
        {"probe_interval_s": 0},
        {"keepalive_interval_s": -1},
        {"probe_timeout_s": 0},
        {"half_open_trials": 0},
    ],
)
def test_config_is_validated(kw: dict[str, float]) -> None:
    with pytest.raises(SipApiError, match=next(iter(kw))):
        BreakerConfig(**kw)  # type: ignore[arg-type]


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from([F, S, N]), st.integers(0, 5)),
        st.tuples(st.just("probe"), st.booleans(), st.integers(0, 5)),
        st.tuples(st.just("admit"), st.just(None), st.integers(0, 5)),
        st.tuples(st.just("release"), st.just(None), st.integers(0, 5)),
        st.tuples(st.just("tick"), st.just(None), st.integers(0, 5)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, threshold=st.integers(1, 6), trials=st.integers(1, 3))
def test_breaker_invariants(
    ops: list[tuple[str, object, int]], threshold: int, trials: int
) -> None:
    clock = _clock()
    cfg = BreakerConfig(failure_threshold=threshold, half_open_trials=trials)
    b = TrunkBreaker("t", cfg, clock)
    streak = 0  # consecutive failures seen while closed
    for kind, arg, n in ops:
        before = b.state
        call_id = f"c{n}"
        if kind == "call":
            assert isinstance(arg, CallOutcome)
            tr = b.record(call_id, arg)
        elif kind == "probe":
            assert isinstance(arg, bool)
            b.probe_started()
            tr = b.probe_result(arg, "detail")
        elif kind == "admit":
            tr = None
            admitted = b.admit(call_id)
            # open refuses everything, closed nothing, half-open up to `trials` at once
            assert admitted is not (before is TrunkState.OPEN) or before is TrunkState.HALF_OPEN
            assert len(b.trials) <= trials
        elif kind == "release":
            tr = None
            b.release(call_id)
        else:
            tr = None
            clock.advance(n)
        # every transition is legal, reported once, and starts where the breaker was
        if tr is None:
            assert b.state is before
        else:
            assert tr.old is before and tr.new is b.state and tr.new in TRANSITIONS[before]
            assert tr.mono == clock.monotonic()
        # only trunk failures (or a dead probe) open it; successes never do
        if tr is not None and tr.new is TrunkState.OPEN:
            assert (kind == "call" and arg is F) or (kind == "probe" and arg is False)
        # the threshold is exact: closed -> open on the threshold-th consecutive failure
        if before is TrunkState.CLOSED and kind == "call" and arg is not N:
            streak = streak + 1 if arg is F else 0
            assert (b.state is TrunkState.OPEN) is (streak >= threshold)
        if before is TrunkState.CLOSED and kind == "probe" and arg is False:
            streak = 0
        if b.state is TrunkState.CLOSED:
            assert b.failures < threshold and not b.trials
            if tr is not None:
                streak = 0
        if b.state is not TrunkState.HALF_OPEN:
            assert not b.trials
        # the next probe is never in the past by more than a period
        due = b.next_probe_at()
        assert due is not None


def test_options_request_is_well_formed() -> None:
    target = ProbeTarget("10.0.0.1", 5060, "udp")
    raw = build_options(target, "127.0.0.1", 40000, "abc@x", "z9hG4bKdef", "t1").decode()
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "OPTIONS sip:10.0.0.1:5060 SIP/2.0" and body == ""
    names = {ln.split(":", 1)[0] for ln in lines[1:]}
    assert {"Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length"} <= names
    assert "branch=z9hG4bK" in lines[1]
    assert parse_status(b"SIP/2.0 200 OK\r\nCall-ID: abc@x\r\n\r\n", "abc@x") == (200, "OK")
    assert parse_status(b"SIP/2.0 405 Nope\r\ni: other\r\n\r\n", "abc@x") is None
    assert parse_status(b"OPTIONS sip:x SIP/2.0\r\n\r\n") is None


def test_probe_target_prefers_the_outbound_proxy() -> None:
    t = TrunkConfig(name="t", domain="carrier.example:5080", outbound_proxy="sip:10.1.1.1;lr")
    assert probe_target(t) == ProbeTarget("10.1.1.1", 5060, "udp")
    assert probe_target(TrunkConfig(name="u", domain="carrier.example:5080")) == ProbeTarget(
        "carrier.example", 5080, "udp"
    )
    tls = TrunkConfig(name="s", domain="carrier.example", transport="tls")
    assert probe_target(tls).port == 5061
