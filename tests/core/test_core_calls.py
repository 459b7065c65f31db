"""The call table: one stage setter, its transition table, and an engine that never breaks it."""

from __future__ import annotations

from collections import deque
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.vocabulary import (
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    DialMode,
    MachinePolicy,
)
from dialer.core import (
    Action,
    AttemptFinished,
    CampaignEngine,
    CoreError,
    Dial,
    IllegalTransitionError,
    InvalidInputError,
    PlayMessage,
    UnknownCallError,
)
from dialer.core.calls import STAGE_TRANSITIONS, CallRecord, CallTable

from .conftest import T0, FakeClock, lead, make_engine

_S = AttemptStage
LEGAL = [(a, b) for a, tos in STAGE_TRANSITIONS.items() for b in sorted(tos)]
ILLEGAL = [(a, b) for a in _S for b in _S if b not in STAGE_TRANSITIONS[a]]


def _path_to(stage: AttemptStage) -> list[AttemptStage]:
    """Legal moves from CREATED to ``stage`` (breadth first)."""
    seen = {_S.CREATED: [_S.CREATED]}
    todo = deque([_S.CREATED])
    while todo:
        s = todo.popleft()
        for n in STAGE_TRANSITIONS[s]:
            if n not in seen:
                seen[n] = [*seen[s], n]
                todo.append(n)
    return seen[stage][1:]


def _call_at(stage: AttemptStage, table: CallTable | None = None) -> CallRecord:
    table = table or CallTable()
    call = CallRecord(call_id="c1", lead=lead(), dialed_t=0.0, dialed_at=T0)
    for s in _path_to(stage):
        table.set_stage(call, s)
    return call


def test_the_table_covers_every_stage_and_ended_is_final() -> None:
    assert set(STAGE_TRANSITIONS) == set(_S)
    assert STAGE_TRANSITIONS[_S.ENDED] == frozenset()
    for stage in _S:
        assert stage is _S.CREATED or _path_to(stage), f"{stage} unreachable"
        assert stage not in STAGE_TRANSITIONS[stage]  # no move to itself
        if stage is not _S.ENDED:
            assert _S.ENDED in STAGE_TRANSITIONS[stage]  # any call can end


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=lambda s: s.value)
def test_every_legal_transition(old: AttemptStage, new: AttemptStage) -> None:
    table = CallTable()
    call = _call_at(old, table)
    assert call.stage is old
    table.set_stage(call, new)
    assert call.stage is new


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=lambda s: s.value)
def test_illegal_transitions_raise_naming_the_current_stage(
    old: AttemptStage, new: AttemptStage
) -> None:
    table = CallTable()
    call = _call_at(old, table)
    with pytest.raises(IllegalTransitionError, match=f"from '{old.value}'") as err:
        table.set_stage(call, new)
    assert (err.value.current, err.value.wanted) == (old.value, new.value)
    assert call.stage is old  # refused, not half-done


def test_table_bookkeeping() -> None:
    table = CallTable()
    free = CallRecord(call_id="a", lead=lead(), dialed_t=0.0, dialed_at=T0)
    mine = CallRecord(call_id="b", lead=lead(), dialed_t=0.0, dialed_at=T0, reserved_agent="x")
    table.add(free)
    table.add(mine)
    with pytest.raises(InvalidInputError, match="twice"):
        table.add(CallRecord(call_id="a", lead=lead(), dialed_t=0.0, dialed_at=T0))
    assert len(table) == 2 and "a" in table and list(table.inflight) == ["a"]
    assert table.reserved_inflight == 1
    assert table.count_by_stage() == {_S.CREATED: 2}
    with pytest.raises(UnknownCallError):
        table.get("zzz")
    assert table.find("zzz") is None and table.stage_of("zzz") is None
    table.leave_inflight(mine)
    table.leave_inflight(free)
    assert not table.inflight and table.reserved_inflight == 0
    table.finish(free)
    assert free.stage is _S.ENDED and "a" not in table and table.stage_of("b") is _S.CREATED
    with pytest.raises(IllegalTransitionError, match="ended"):
        table.set_stage(free, _S.RINGING)


# ------------------------------------------------------------------ property
_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["ring", "pickup", "answer_h", "answer_m", "noanswer", "end",
                         "bridge_ok", "bridge_fail", "dispo", "accept", "skip", "pause",
                         "ready", "logout", "login", "tick"]),
        st.integers(0, 30),
        st.floats(0.0, 40.0),
    ),
    max_size=80,
)


def _check_table(eng: CampaignEngine) -> None:
    """What must hold between any two inputs."""
    table = eng.calls
    calls = {c.call_id: c for c in table}
    assert len(calls) == len(table)
    for cid, c in table.inflight.items():
        assert calls.get(cid) is c and c.unanswered and c.reserved_agent is None
    for cid, c in table.waiting.items():
        assert calls.get(cid) is c and c.waiting and c.agent_id is None
        assert c.stage is _S.ANSWERED and not c.amd_pending
    assert table.reserved_inflight == sum(
        1 for c in calls.values() if c.unanswered and c.reserved_agent is not None
    )
    for c in calls.values():
        assert c.stage is not _S.ENDED
        assert c.amd_pending <= (c.stage is _S.ANSWERED)
        if c.unanswered and c.reserved_agent is None and not c.cancelled:
            assert c.call_id in table.inflight  # the pacer sees every ringing call
        if c.stage is _S.BRIDGED:  # its agent talks with it until it ends
            rec = eng.board.get(c.agent_id or "")
            assert rec.state is AgentState.TALKING and rec.call_id == c.call_id
    assert sum(eng.calls_by_stage().values()) == len(table)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _EVENTS,
    st.sampled_from([DialMode.PROGRESSIVE, DialMode.POWER, DialMode.PREDICTIVE,
                     DialMode.PREVIEW]),
    st.booleans(),
)
def test_random_inputs_never_corrupt_the_table(
    events: list[tuple[str, int, float]], mode: DialMode, message: bool
) -> None:
    """Random driver inputs: the table stays consistent, no input asks it for an illegal
    stage move, and the engine's stage is what a driver would have tracked itself."""
    clock = FakeClock()
    policy = MachinePolicy.LEAVE_MESSAGE if message else MachinePolicy.HANG_UP
    eng = make_engine(mode=mode, machine_policy=policy, max_wrapup_seconds=60.0)
    illegal: list[tuple[str, str, str]] = []
    plain_set_stage = eng.calls.set_stage

    def spy(call: CallRecord, new: AttemptStage) -> None:
        try:
            plain_set_stage(call, new)
        except IllegalTransitionError:
            illegal.append((kind, call.stage.value, new.value))
            raise

    eng.calls.set_stage = spy  # type: ignore[method-assign]
    #: the stage as the runtime tracked it before the engine owned it
    shadow: dict[str, AttemptStage] = {}
    open_calls: list[str] = []
    out: list[Action] = []
    agents = [f"a{i}" for i in range(3)]

    def absorb(out: list[Action]) -> None:
        for a in out:
            if isinstance(a, Dial):
                open_calls.append(a.call_id)
                shadow[a.call_id] = _S.CREATED
            elif isinstance(a, PlayMessage):
                shadow[a.call_id] = _S.MESSAGE
            elif isinstance(a, AttemptFinished) and a.call_id in open_calls:
                open_calls.remove(a.call_id)
                shadow.pop(a.call_id, None)

    kind = "login"
    eng.add_leads(clock.now, [lead() for _ in range(60)])
    for a in agents:
        absorb(eng.agent_login(clock.now, a, ready=True))
    for kind, k, dt in events:
        now: datetime = clock.advance(dt)
        call = open_calls[k % len(open_calls)] if open_calls else "none"
        agent = agents[k % len(agents)]
        try:
            if kind == "ring":
                out = eng.call_ringing(now, call)
                if shadow[call] in (_S.CREATED, _S.DIALING):
                    shadow[call] = _S.RINGING
            elif kind == "pickup":
                out = eng.call_picked_up(now, call)
                shadow[call] = _S.ANSWERED
            elif kind in ("answer_h", "answer_m"):  # no AMD: CallAnswered, then the verdict
                verdict = AmdVerdict.HUMAN if kind == "answer_h" else AmdVerdict.MACHINE
                out = eng.call_answered(now, call, verdict)
                shadow[call] = _S.ANSWERED
            elif kind == "noanswer":
                out = eng.call_ended(now, call, AttemptResult.NO_ANSWER)
            elif kind == "end":
                out = eng.call_ended(now, call)
            elif kind == "bridge_ok":
                out = eng.bridge_ok(now, call)
                shadow[call] = _S.BRIDGED
            elif kind == "bridge_fail":
                out = eng.bridge_failed(now, call, "x")
            elif kind == "dispo":
                out = eng.disposition(now, agent, call, "no_need")
            elif kind == "accept":
                out = eng.preview_accept(now, agent)
            elif kind == "skip":
                out = eng.preview_skip(now, agent)
            elif kind == "pause":
                out = eng.agent_pause(now, agent, "break")
            elif kind == "ready":
                out = eng.agent_ready(now, agent)
            elif kind == "logout":
                out = eng.agent_logout(now, agent)
            elif kind == "login":
                out = eng.agent_login(now, agent, ready=True)
            else:
                out = eng.tick(now)
        except CoreError:
            # refused. Most inputs run the abandon deadlines before checking their
            # arguments, so a refused input may still have started a message whose
            # PlayMessage went with the exception: the driver never saw it
            for cid in open_calls:
                if eng.call_stage(cid) is _S.MESSAGE:
                    shadow[cid] = _S.MESSAGE
            out = []
        absorb(out)
        # the only stage move an input may be refused is call_picked_up's own check
        assert all(k == "pickup" for k, _, _ in illegal), illegal
        _check_table(eng)
        for cid in open_calls:
            assert eng.call_stage(cid) is shadow[cid], cid
