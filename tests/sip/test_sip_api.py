"""The command/event interface: validation, SIP classification and the wire codec."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.vocabulary import AmdVerdict, AttemptResult
from sip.api import (
    AmdDone,
    AmdSettings,
    Bridge,
    CallEnded,
    CommandRejected,
    MediaStats,
    Originate,
    SipApiError,
    StartRecording,
    classify_failure,
    from_wire,
    to_wire,
)
from sip.config import PoolConfig, TrunkConfig
from sip.protocol import ProtocolError, encode_frame


@pytest.mark.parametrize(
    ("code", "provisional", "result", "retryable"),
    [
        (486, True, AttemptResult.BUSY, True),
        (600, False, AttemptResult.BUSY, True),
        (480, True, AttemptResult.NO_ANSWER, True),
        (408, True, AttemptResult.NO_ANSWER, True),
        (408, False, AttemptResult.FAILED, True),  # Timer B: nothing answered at all
        (487, True, AttemptResult.NO_ANSWER, True),
        (404, False, AttemptResult.INVALID_NUMBER, False),
        (484, False, AttemptResult.INVALID_NUMBER, False),
        (604, False, AttemptResult.INVALID_NUMBER, False),
        (403, False, AttemptResult.REJECTED, False),
        (603, True, AttemptResult.REJECTED, False),
        (503, False, AttemptResult.FAILED, True),
        (500, False, AttemptResult.FAILED, True),
        (501, False, AttemptResult.FAILED, False),
        (401, False, AttemptResult.FAILED, False),
        (None, False, AttemptResult.FAILED, True),
    ],
)
def test_classification(code, provisional, result, retryable) -> None:
    assert classify_failure(code, got_provisional=provisional) == (result, retryable)


def test_originate_validation_names_the_field() -> None:
    ok = dict(call_id="a1", target="sip:1@h", caller_id="15550001111", ring_timeout_s=15)
    Originate(**ok)
    with pytest.raises(SipApiError, match="target"):
        Originate(**{**ok, "target": "15551234567"})
    with pytest.raises(SipApiError, match="ring_timeout_s"):
        Originate(**{**ok, "ring_timeout_s": 0})
    with pytest.raises(SipApiError, match="call_id"):
        Originate(**{**ok, "call_id": ""})
    with pytest.raises(SipApiError, match="caller_id"):
        Originate(**{**ok, "caller_id": " "})
    with pytest.raises(SipApiError, match="header"):
        Originate(**{**ok, "headers": {"X-Bad": "a\r\nInjected: 1"}})
    with pytest.raises(SipApiError, match="agent_uri"):
        Bridge(call_id="a1", agent_call_id="g1", agent_uri="agent7")
    with pytest.raises(SipApiError, match=r"\.wav"):
        StartRecording(call_id="a1", wav_path="/tmp/x.mp3")
    with pytest.raises(SipApiError, match="max_analysis_ms"):
        AmdSettings(max_analysis_ms=0)


def test_config_validation() -> None:
    with pytest.raises(SipApiError, match="planned_concurrency"):
        PoolConfig(nodes="auto")
    with pytest.raises(SipApiError, match="bind_address"):
        PoolConfig(bind_address="localhost:5060")
    with pytest.raises(SipApiError, match="tls"):
        PoolConfig(transports=("udp", "tls"))
    with pytest.raises(SipApiError, match="register"):
        TrunkConfig(name="t", domain="example.com", register=True)
    with pytest.raises(SipApiError, match="differs"):
        PoolConfig(trunks={"a": TrunkConfig(name="b", domain="example.com")})
    # 40 concurrent calls at 4 slots per node = 2 calls per node -> 20 nodes
    assert PoolConfig(nodes="auto", planned_concurrency=40).node_count_for(4) == 20
    assert PoolConfig(nodes="auto", planned_concurrency=40).node_count_for(400) == 1


_text = st.text(min_size=1, max_size=20)


@given(
    call_id=_text,
    verdict=st.sampled_from(list(AmdVerdict)),
    took=st.integers(0, 30_000),
    result=st.sampled_from(list(AttemptResult)),
    code=st.one_of(st.none(), st.integers(100, 699)),
    ring=st.one_of(st.none(), st.floats(0, 1000, allow_nan=False)),
    by=st.sampled_from(["remote", "local", "node"]),
)
def test_wire_roundtrip(call_id, verdict, took, result, code, ring, by) -> None:
    wall = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = [
        AmdDone(call_id=call_id, verdict=verdict, took_ms=took, mono=1.5, wall=wall),
        CallEnded(
            call_id=call_id,
            result=result,
            sip_code=code,
            reason="r",
            hangup_by=by,
            ring_s=ring,
            talk_s=None,
            retryable=True,
            media=MediaStats(rx_packets=3),
            mono=2.0,
            wall=wall,
        ),
        CommandRejected(call_id=call_id, error="e", retryable=False, command="Bridge"),
        Originate(
            call_id=call_id,
            target="sip:a@b",
            caller_id="1",
            ring_timeout_s=15,
            amd=AmdSettings(),
            headers={"X-A": "1"},
        ),
    ]
    for ev in events:
        back = from_wire(to_wire(ev))
        assert back == ev
        assert type(back) is type(ev)


def test_wire_rejects_unknown_types() -> None:
    with pytest.raises(SipApiError):
        from_wire({"__type__": "Exploit", "x": 1})
    with pytest.raises(SipApiError):
        from_wire({"__type__": "Hangup", "call_id": "a", "bogus": 1})
    with pytest.raises(SipApiError):
        to_wire(object())


def test_frame_limit() -> None:
    with pytest.raises(ProtocolError):
        encode_frame({"kind": "x", "blob": "a" * (1 << 21)})
