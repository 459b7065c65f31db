"""Message models, strict parsing, the committed JSON Schemas, topics and the broker policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.vocabulary import AgentState
from dialer.bus.broker import AccessPolicy
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import (
    AGENT_COMMAND_TYPES,
    DIALER_MESSAGE_TYPES,
    SUPERVISOR_EVENT_TYPES,
    DispositionCmd,
    ReadyCmd,
    StateEvt,
    parse_command,
    parse_dialer_message,
)
from dialer.bus.schemas import generate, render
from dialer.bus.topics import Topics, filter_within, topic_matches

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_committed_schemas_equal_the_generated_ones() -> None:
    generated = generate()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert sorted(committed) == sorted(generated), \
        "run: python -m dialer.bus.schemas docs/schemas"
    for name, schema in generated.items():
        assert committed[name] == render(schema), \
            f"{name} is stale; run: python -m dialer.bus.schemas docs/schemas"


def test_one_schema_per_message_and_envelope_required() -> None:
    generated = generate()
    assert len(generated) == len(AGENT_COMMAND_TYPES) + len(DIALER_MESSAGE_TYPES) + len(
        SUPERVISOR_EVENT_TYPES)
    for name, schema in generated.items():
        assert {"type", "v", "id", "ts"} <= set(schema["required"]), name
        assert schema["additionalProperties"] is False, name


def test_ids_and_timestamps_are_filled_in_and_unique() -> None:
    a, b = ReadyCmd(login="alice"), ReadyCmd(login="alice")
    assert a.id != b.id and a.ts.tzinfo is not None and a.v == 1
    wire = json.loads(a.to_json())
    assert {"type", "v", "id", "ts", "login"} == set(wire)
    assert parse_command(a.to_json(), "alice") == a


def test_dialer_message_round_trip_keeps_the_offset() -> None:
    evt = StateEvt(state=AgentState.WRAP_UP, reason="call ended",
                   ts=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    assert parse_dialer_message(evt.to_json()) == evt


@pytest.mark.parametrize("payload, code", [
    (b'{"type": ["ready"], "v": 1, "id": "a", "ts": "2026-11-23T12:00:00Z", "login": "alice"}',
     ErrorCode.UNKNOWN_TYPE),
    (b'{"type": "ready", "v": true, "id": "a", "ts": "2026-11-23T12:00:00Z", "login": "alice"}',
     ErrorCode.UNSUPPORTED_VERSION),
    (b'{"type": "ready", "v": 1, "id": "a b", "ts": "2026-11-23T12:00:00Z", "login": "alice"}',
     ErrorCode.INVALID_MESSAGE),
    (b'{"type": "disposition", "v": 1, "id": "a", "ts": "2026-11-23T12:00:00Z", '
     b'"login": "alice", "attempt_id": 0, "code": "no_need"}', ErrorCode.INVALID_MESSAGE),
    (b'{"type": "disposition", "v": 1, "id": "a", "ts": "2026-11-23T12:00:00Z", '
     b'"login": "alice", "attempt_id": 1, "code": "No Need"}', ErrorCode.INVALID_MESSAGE),
    (b'"ready"', ErrorCode.MALFORMED_JSON),
])
def test_strict_parsing(payload: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_command(payload, "alice")
    assert e.value.code is code


def test_error_text_does_not_echo_the_input() -> None:
    payload = (b'{"type": "disposition", "v": 1, "id": "a", "ts": "2026-11-23T12:00:00Z", '
               b'"login": "alice", "attempt_id": "+14155550123", "code": "no_need"}')
    with pytest.raises(ProtocolError) as e:
        parse_command(payload, "alice")
    assert "attempt_id" in e.value.message and "+1415" not in e.value.message


@given(notes=st.text(max_size=4000), attempt_id=st.integers(1, 2**63 - 1))
def test_any_valid_disposition_survives_the_wire(notes: str, attempt_id: int) -> None:
    cmd = DispositionCmd(login="a.b-c_9", attempt_id=attempt_id, code="no_need", notes=notes)
    assert parse_command(cmd.to_json(), "a.b-c_9") == cmd


# ---------------------------------------------------------------- topics


def test_topic_layout() -> None:
    t = Topics("dialer")
    assert t.cmd("alice") == "dialer/agents/alice/cmd"
    assert t.evt("alice") == "dialer/agents/alice/evt"
    assert t.supervisor == "dialer/supervisor/events"
    assert t.login_of_cmd("dialer/agents/alice/cmd") == "alice"
    assert t.login_of_cmd("dialer/agents/alice/evt") is None
    assert t.login_of_cmd("dialer/agents/a/b/cmd") is None
    assert Topics("acme/dialer").all_cmd == "acme/dialer/agents/+/cmd"
    for bad in ("", "/dialer", "dialer/", "dia+ler", "dialer/#"):
        with pytest.raises(ValueError, match="prefix"):
            Topics(bad)
    for bad_login in ("", "a/b", "a+", "#", "a b", "x" * 65):
        with pytest.raises(ValueError, match="login"):
            t.cmd(bad_login)


@pytest.mark.parametrize("topic, flt, expected", [
    ("sport/tennis/player1", "sport/tennis/player1/#", True),  # MQTT 3.1.1 section 4.7.1.2
    ("sport/tennis/player1/ranking", "sport/tennis/player1/#", True),
    ("sport", "sport/#", True),
    ("sport/tennis/player1", "sport/tennis/+", True),
    ("sport/tennis/player1/ranking", "sport/tennis/+", False),
    ("sport", "sport/+", False),
    ("/finance", "+/+", True),
    ("/finance", "/+", True),
    ("/finance", "+", False),
    ("$SYS/monitor", "#", False),
    ("$SYS/monitor", "+/monitor", False),
    ("$SYS/monitor", "$SYS/#", True),
])
def test_topic_matching_follows_the_mqtt_spec(topic: str, flt: str, expected: bool) -> None:
    assert topic_matches(topic, flt) is expected


_level = st.sampled_from(["a", "b", "c", ""])
_topics = st.lists(_level, min_size=1, max_size=4).map("/".join)
_filters = st.lists(st.sampled_from(["a", "b", "+", ""]), min_size=1, max_size=4).flatmap(
    lambda levels: st.sampled_from(["/".join(levels), "/".join([*levels, "#"])]))


@given(inner=_filters, outer=_filters, topic=_topics)
def test_filter_within_means_every_matching_topic_matches_the_outer(
    inner: str, outer: str, topic: str,
) -> None:
    if filter_within(inner, outer) and topic_matches(topic, inner):
        assert topic_matches(topic, outer)


def test_filter_within_examples() -> None:
    assert filter_within("dialer/agents/alice/evt", "dialer/agents/alice/evt")
    assert filter_within("dialer/agents/alice/evt", "dialer/#")
    assert not filter_within("dialer/agents/+/evt", "dialer/agents/alice/evt")
    assert not filter_within("#", "dialer/#")
    assert not filter_within("dialer/agents/alice/#", "dialer/agents/alice/evt")


# ---------------------------------------------------------------- broker policy


def test_access_policy_matches_the_documented_acl() -> None:
    p = AccessPolicy(Topics("dialer"), agents={"alice": "a", "bob": "b"},
                     dialer=("dialer", "d"), supervisors={"boss": "s"})
    assert p.authenticate("alice", "a") and p.authenticate("alice", b"a")
    assert not p.authenticate("alice", "b") and not p.authenticate("mallory", "a")
    assert not p.authenticate(None, None) and not p.authenticate("alice", None)
    assert p.may_publish("alice", "dialer/agents/alice/cmd")
    assert not p.may_publish("alice", "dialer/agents/alice/evt")
    assert not p.may_publish("alice", "dialer/agents/bob/cmd")
    assert not p.may_publish("alice", "dialer/supervisor/events")
    assert p.may_receive("alice", "dialer/agents/alice/evt")
    assert not p.may_receive("alice", "dialer/agents/bob/evt")
    assert not p.may_receive("alice", "dialer/agents/alice/cmd")
    assert p.may_subscribe("alice", "dialer/agents/alice/evt")
    assert not p.may_subscribe("alice", "dialer/agents/+/evt")
    assert not p.may_subscribe("alice", "#")
    assert p.may_subscribe("dialer", "dialer/agents/+/cmd")
    assert p.may_publish("dialer", "dialer/agents/bob/evt")
    assert not p.may_publish("dialer", "other/topic")
    assert p.may_subscribe("boss", "dialer/supervisor/events")
    assert not p.may_publish("boss", "dialer/supervisor/events")
    assert not p.may_subscribe("boss", "dialer/agents/alice/evt")
    assert p.role("alice") == "agent" and p.role("mallory") is None


@pytest.mark.parametrize("agents, match", [
    ({"alice": ""}, "no password"),
    ({"dialer": "x"}, "configured twice"),
    ({"a/b": "x"}, "login"),
])
def test_access_policy_refuses_bad_users(agents: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AccessPolicy(Topics("dialer"), agents=agents, dialer=("dialer", "d"))


def test_core_errors_translate_to_protocol_errors() -> None:
    from dialer.bus.errors import protocol_error_for
    from dialer.core.errors import (
        EngineConfigError,
        IllegalTransitionError,
        InvalidDispositionError,
        UnknownAgentError,
        UnknownCallError,
    )

    cases = [
        (UnknownAgentError("alice"), ErrorCode.UNKNOWN_AGENT),
        (UnknownCallError("c-9"), ErrorCode.UNKNOWN_ATTEMPT),
        (IllegalTransitionError("agent alice", "talking", "ready"), ErrorCode.INVALID_STATE),
        (InvalidDispositionError("unknown disposition code 'zzz'"),
         ErrorCode.INVALID_DISPOSITION),
        (EngineConfigError("bad"), ErrorCode.INTERNAL),
    ]
    for exc, code in cases:
        err = protocol_error_for(exc)
        assert err.code is code and err.message == str(exc)


def test_events_from_the_cores_state_changes() -> None:
    from dialer.bus.messages import SupervisorAgentEvent
    from dialer.core.actions import AgentStateChanged

    at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    change = AgentStateChanged(agent_id="alice", old=AgentState.WRAP_UP,
                               new=AgentState.PAUSED, reason="lunch", at=at)
    evt = StateEvt.from_change(change)
    assert (evt.state, evt.reason, evt.ts) == (AgentState.PAUSED, "lunch", at)
    sup = SupervisorAgentEvent.from_change(change, attempt_id=7)
    assert (sup.login, sup.previous, sup.state, sup.attempt_id) == (
        "alice", AgentState.WRAP_UP, AgentState.PAUSED, 7)
