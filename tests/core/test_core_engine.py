"""CampaignEngine driven by a fake clock: the protocol, the 2-second rule, routing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.vocabulary import (
    AbandonClockStart,
    AbandonPolicy,
    AgentState,
    AmdVerdict,
    AttemptResult,
    CallbackScope,
    DialMode,
    LeadStatus,
    MachinePolicy,
)
from dialer.core import (
    AgentStateChanged,
    AttemptFinished,
    BridgeTo,
    Dial,
    EndCall,
    EngineConfig,
    EngineConfigError,
    IllegalTransitionError,
    InvalidDispositionError,
    LeadUpdate,
    NeedLeads,
    PlayMessage,
    PreviewOffer,
    ScreenPop,
    UnknownAgentError,
    UnknownCallError,
)
from dialer.core.governor import GovernorSettings
from dialer.core.stats import CallEstimator, PacingModel

from .conftest import FakeClock, lead, make_engine, of_type


def start(clock: FakeClock, agents: int = 1, leads: int = 5, **cfg: object):  # type: ignore[no-untyped-def]
    eng = make_engine(mode=cfg.pop("mode", DialMode.PROGRESSIVE), **cfg)
    eng.add_leads(clock.now, [lead() for _ in range(leads)])
    out = []
    for i in range(agents):
        out += eng.agent_login(clock.now, f"a{i}", ready=True)
    out += eng.tick(clock.advance(1))  # events closer than min_pace_gap share a pacing pass
    return eng, out


def test_progressive_dials_one_call_per_ready_agent(clock: FakeClock) -> None:
    eng, out = start(clock, agents=2)
    dials = of_type(out, Dial)
    assert len(dials) == 2
    assert all(d.agent_id is None for d in dials)
    assert eng.next_wakeup is not None and eng.next_wakeup > clock.now


def test_human_answer_goes_to_longest_waiting_agent_with_screen_pop(clock: FakeClock) -> None:
    eng, out = start(clock, agents=2)
    cid = of_type(out, Dial)[0].call_id
    out = eng.call_answered(clock.advance(8), cid, AmdVerdict.HUMAN)
    bridge = of_type(out, BridgeTo)
    assert bridge == [BridgeTo(cid, "a0")]
    assert of_type(out, ScreenPop)[0].agent_id == "a0"
    eng.bridge_ok(clock.advance(0.3), cid)
    assert eng.agent_state("a0") is AgentState.TALKING


def test_two_second_rule_plays_message_and_counts_abandon(clock: FakeClock) -> None:
    eng, out = start(clock, agents=1, mode=DialMode.POWER)
    dials = of_type(out, Dial)
    assert len(dials) == 2  # power: 2 lines for the ready agent
    c1, c2 = dials[0].call_id, dials[1].call_id
    eng.call_answered(clock.advance(5), c1, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.advance(0.2), c1)
    out = eng.call_answered(clock.advance(1), c2, AmdVerdict.HUMAN)
    assert not of_type(out, BridgeTo) and not of_type(out, PlayMessage)
    wake = eng.next_wakeup
    assert wake is not None and wake <= clock.now + timedelta(seconds=1.8)
    out = eng.tick(clock.advance(1.0))
    assert not of_type(out, PlayMessage)  # 1.0 s < agent wait
    out = eng.tick(clock.advance(0.8))
    assert of_type(out, PlayMessage) == [PlayMessage(c2, "abandon", True)]
    out = eng.call_ended(clock.advance(8), c2)
    fin = of_type(out, AttemptFinished)[0]
    assert fin.result is AttemptResult.ABANDONED
    assert fin.message_at is not None and fin.clock_started_at is not None
    assert (fin.message_at - fin.clock_started_at).total_seconds() <= 2.0
    upd = of_type(out, LeadUpdate)[0]
    assert upd.result is AttemptResult.ABANDONED
    assert upd.next_contact_at == clock.now + timedelta(hours=72)
    counts = eng.abandon_counts(clock.now)
    assert (counts.live, counts.abandoned) == (2, 1)


def test_agent_freeing_within_the_wait_takes_the_waiting_call(clock: FakeClock) -> None:
    eng, out = start(clock, agents=1, mode=DialMode.POWER)
    c1, c2 = (d.call_id for d in of_type(out, Dial))
    eng.call_answered(clock.advance(5), c1, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.now, c1)
    eng.call_ended(clock.advance(60), c1)
    eng.call_answered(clock.advance(1), c2, AmdVerdict.HUMAN)
    out = eng.disposition(clock.advance(1.5), "a0", c1, "no_need")
    assert of_type(out, BridgeTo) == [BridgeTo(c2, "a0")]
    assert eng.abandon_counts(clock.now).abandoned == 0


def test_greeting_end_clock_start(clock: FakeClock) -> None:
    policy = AbandonPolicy(clock_start=AbandonClockStart.GREETING_END)
    eng, out = start(clock, agents=1, mode=DialMode.POWER, abandon=policy)
    c1, c2 = (d.call_id for d in of_type(out, Dial))
    eng.call_answered(clock.advance(5), c1, AmdVerdict.HUMAN)
    answered = clock.advance(1)
    verdict_at = clock.advance(2.5)  # AMD needed the whole greeting
    eng.call_answered(verdict_at, c2, AmdVerdict.HUMAN, answered_at=answered)
    out = eng.tick(clock.advance(1.79))
    assert not of_type(out, PlayMessage)  # clock started at greeting end, not at answer
    assert of_type(eng.tick(clock.advance(0.02)), PlayMessage)


@pytest.mark.parametrize(
    ("policy", "action"),
    [(MachinePolicy.HANG_UP, EndCall), (MachinePolicy.LEAVE_MESSAGE, PlayMessage)],
)
def test_machine_policy(clock: FakeClock, policy: MachinePolicy, action: type) -> None:
    eng, out = start(clock, agents=1, machine_policy=policy)
    cid = of_type(out, Dial)[0].call_id
    out = eng.call_answered(clock.advance(6), cid, AmdVerdict.MACHINE)
    assert of_type(out, action)
    assert not of_type(out, BridgeTo)
    out = eng.call_ended(clock.advance(20), cid)
    assert of_type(out, AttemptFinished)[0].result is AttemptResult.MACHINE
    assert of_type(out, LeadUpdate)[0].next_contact_at == clock.now + timedelta(hours=4)
    c = eng.abandon_counts(clock.now)
    assert (c.live, c.machines) == (0, 1)


def test_bridge_failure_pauses_agent_and_hands_customer_to_another(clock: FakeClock) -> None:
    eng, out = start(clock, agents=2)
    c1 = of_type(out, Dial)[0].call_id
    eng.call_answered(clock.advance(5), c1, AmdVerdict.HUMAN)  # -> a0
    out = eng.bridge_failed(clock.advance(0.5), c1, "no answer on agent phone")
    assert eng.agent_state("a0") is AgentState.PAUSED
    changed = [a for a in of_type(out, AgentStateChanged) if a.agent_id == "a0"]
    assert changed[0].reason is not None and changed[0].reason.startswith("bridge_failed")
    assert of_type(out, BridgeTo) == [BridgeTo(c1, "a1")]


def test_bridge_failure_with_nobody_else_abandons_at_deadline(clock: FakeClock) -> None:
    eng, out = start(clock, agents=1)
    c1 = of_type(out, Dial)[0].call_id
    eng.call_answered(clock.advance(5), c1, AmdVerdict.HUMAN)
    eng.bridge_failed(clock.advance(1.0), c1, "timeout")
    out = eng.tick(clock.advance(0.8))
    assert of_type(out, PlayMessage) == [PlayMessage(c1, "abandon", True)]


def test_unanswered_call_applies_retry_rules(clock: FakeClock) -> None:
    eng, out = start(clock, agents=1)
    cid = of_type(out, Dial)[0].call_id
    with pytest.raises(ValueError, match="result must be one of"):
        eng.call_ended(clock.advance(25), cid)
    out = eng.call_ended(clock.now, cid, AttemptResult.NO_ANSWER)
    assert of_type(out, AttemptFinished)[0].result is AttemptResult.NO_ANSWER
    assert of_type(out, LeadUpdate)[0].next_contact_at == clock.now + timedelta(hours=2)
    assert len(of_type(out, Dial)) == 1  # the freed line is used again


def test_disposition_flow_and_pending_pause(clock: FakeClock) -> None:
    eng, out = start(clock, agents=1)
    cid = of_type(out, Dial)[0].call_id
    eng.call_answered(clock.advance(5), cid, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.now, cid)
    eng.agent_pause(clock.advance(10), "a0", "lunch")
    assert eng.agent_state("a0") is AgentState.TALKING  # never pulled out of a call
    with pytest.raises(IllegalTransitionError, match="talking"):
        eng.disposition(clock.now, "a0", cid, "no_need")
    eng.call_ended(clock.advance(100), cid)
    assert eng.agent_state("a0") is AgentState.WRAP_UP
    with pytest.raises(InvalidDispositionError, match="unknown disposition"):
        eng.disposition(clock.now, "a0", cid, "nope")
    when = clock.now + timedelta(days=2)
    out = eng.disposition(clock.advance(10), "a0", cid, "callback", next_contact_at=when,
                          callback_scope=CallbackScope.AGENT)
    upd = of_type(out, LeadUpdate)[0]
    assert (upd.owner, upd.next_contact_at, upd.disposition) == ("a0", when, "callback")
    assert eng.agent_state("a0") is AgentState.PAUSED
    times = eng.agent_times(clock.now, "a0")
    assert times[AgentState.TALKING] == pytest.approx(110.0)
    assert times[AgentState.WRAP_UP] == pytest.approx(10.0)


def test_preview_offer_accept_and_skip(clock: FakeClock) -> None:
    eng, out = start(clock, agents=1, mode=DialMode.PREVIEW)
    offer = of_type(out, PreviewOffer)[0]
    assert not of_type(out, Dial)
    out = eng.preview_skip(clock.advance(3), "a0")
    assert of_type(out, AttemptFinished)[0].result is AttemptResult.SKIPPED
    out += eng.tick(clock.advance(1))
    offer2 = of_type(out, PreviewOffer)[0]
    assert offer2.lead.lead_id != offer.lead.lead_id
    out = eng.preview_accept(clock.advance(4), "a0")
    assert of_type(out, Dial) == [Dial(offer2.call_id, offer2.lead, "a0")]
    out = eng.call_answered(clock.advance(6), offer2.call_id, AmdVerdict.HUMAN)
    assert of_type(out, BridgeTo) == [BridgeTo(offer2.call_id, "a0")]


def test_agent_owned_callback_is_dialed_only_for_its_owner(clock: FakeClock) -> None:
    eng = make_engine(mode=DialMode.PROGRESSIVE)
    cb = lead(status=LeadStatus.HOT, callback_owner="bob",
              callback_due_at=clock.now - timedelta(minutes=1))
    eng.add_leads(clock.now, [cb])
    out = eng.agent_login(clock.now, "alice", ready=True)
    assert not of_type(out, Dial)
    out = eng.agent_login(clock.advance(1), "bob", ready=True)
    assert of_type(out, Dial) == [Dial(of_type(out, Dial)[0].call_id, cb, "bob")]
    assert eng.agent_state("bob") is AgentState.RESERVED


def test_a_few_agents_keep_a_hopper_sized_by_them(clock: FakeClock) -> None:
    """One working agent: 2 leads per agent, below the low water mark (refilled to twice
    that), so an instance with few agents does not hold leads others wait for."""
    eng = make_engine(mode=DialMode.PROGRESSIVE, hopper_low_water=20)
    out = eng.agent_login(clock.now, "a0", ready=True)
    assert [n.n for n in of_type(out, NeedLeads)] == [4]


def test_need_leads_when_hopper_runs_low(clock: FakeClock) -> None:
    eng = make_engine(mode=DialMode.PROGRESSIVE, hopper_low_water=5,
                      hopper_leads_per_agent=10.0)
    out = eng.agent_login(clock.now, "a0", ready=True)
    need = of_type(out, NeedLeads)
    assert need and need[0].n >= 5
    assert not of_type(eng.tick(clock.advance(2)), NeedLeads)  # request outstanding
    out = eng.add_leads(clock.advance(1), [])
    assert not of_type(out, NeedLeads)
    out = eng.tick(clock.advance(11))  # unanswered for longer than the timeout: ask again
    assert of_type(out, NeedLeads)


def test_no_dialing_without_working_agents(clock: FakeClock) -> None:
    eng = make_engine(mode=DialMode.PREDICTIVE)
    eng.add_leads(clock.now, [lead() for _ in range(10)])
    out = eng.agent_login(clock.now, "a0")  # paused on login
    out += eng.tick(clock.advance(5))
    assert not of_type(out, Dial)


def test_bad_inputs_raise_clear_errors(clock: FakeClock) -> None:
    eng = make_engine()
    with pytest.raises(UnknownAgentError, match="ghost"):
        eng.agent_ready(clock.now, "ghost")
    with pytest.raises(UnknownCallError, match="nope"):
        eng.bridge_ok(clock.now, "nope")
    with pytest.raises(ValueError, match="timezone-aware"):
        eng.tick(clock.now.replace(tzinfo=None))
    with pytest.raises(EngineConfigError, match="agent_wait_seconds"):
        EngineConfig(campaign_id="x", agent_wait_seconds=2.5)
    with pytest.raises(EngineConfigError, match="timezone"):
        EngineConfig(campaign_id="x", timezone="Mars/Olympus")


# --------------------------------------------------------------- property: one call per agent
_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["answer_h", "answer_m", "end", "bridge_ok", "bridge_fail", "dispo",
                         "pause", "ready", "tick", "logout", "login"]),
        st.integers(0, 30),
        st.floats(0.0, 20.0),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_EVENTS, st.sampled_from([DialMode.PROGRESSIVE, DialMode.POWER, DialMode.PREDICTIVE]))
def test_router_never_gives_one_agent_two_calls(events: list, mode: DialMode) -> None:
    clock = FakeClock()
    eng = make_engine(mode=mode)
    eng.add_leads(clock.now, [lead() for _ in range(60)])
    agents = [f"a{i}" for i in range(4)]
    for a in agents:
        eng.agent_login(clock.now, a, ready=True)
    open_calls: list[str] = []
    agent_call: dict[str, str] = {}

    def absorb(out: list) -> None:
        for a in out:
            if isinstance(a, Dial):
                open_calls.append(a.call_id)
            elif isinstance(a, BridgeTo):
                holder = [ag for ag, c in agent_call.items() if c != a.call_id and ag == a.agent_id]
                assert not holder, f"{a.agent_id} already holds {agent_call[a.agent_id]}"
                for ag, c in list(agent_call.items()):
                    if c == a.call_id:
                        del agent_call[ag]
                agent_call[a.agent_id] = a.call_id
            elif isinstance(a, AttemptFinished):
                if a.call_id in open_calls:
                    open_calls.remove(a.call_id)
            elif isinstance(a, AgentStateChanged) and a.new in (
                AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT
            ):
                agent_call.pop(a.agent_id, None)

    for kind, k, dt in events:
        now = clock.advance(dt)
        call = open_calls[k % len(open_calls)] if open_calls else None
        agent = agents[k % len(agents)]
        try:
            if kind == "answer_h" and call:
                absorb(eng.call_answered(now, call, AmdVerdict.HUMAN))
            elif kind == "answer_m" and call:
                absorb(eng.call_answered(now, call, AmdVerdict.MACHINE))
            elif kind == "end" and call:
                absorb(eng.call_ended(now, call, AttemptResult.NO_ANSWER))
            elif kind == "bridge_ok" and call:
                absorb(eng.bridge_ok(now, call))
            elif kind == "bridge_fail" and call:
                absorb(eng.bridge_failed(now, call, "x"))
            elif kind == "dispo" and call:
                absorb(eng.disposition(now, agent, call, "no_need"))
            elif kind == "pause":
                absorb(eng.agent_pause(now, agent, "break"))
            elif kind == "ready":
                absorb(eng.agent_ready(now, agent))
            elif kind == "logout":
                absorb(eng.agent_logout(now, agent))
            elif kind == "login":
                absorb(eng.agent_login(now, agent, ready=True))
            else:
                absorb(eng.tick(now))
        except (IllegalTransitionError, InvalidDispositionError, ValueError):
            continue  # an input that does not fit the state is refused, never half-applied
        # invariant: each agent is on at most one call, and the engine agrees
        seen: dict[str, str] = {}
        for rec in eng.board:
            if rec.call_id is not None:
                assert rec.call_id not in seen.values() or rec.state is AgentState.RESERVED
                seen[rec.agent_id] = rec.call_id
        assert len(set(agent_call.values())) == len(agent_call)


# ---------------------------------------------------------------- surplus ringing calls
def _busy_agent_with_ringing_calls(clock: FakeClock, **cfg: object):  # type: ignore[no-untyped-def]
    """One agent, predictive: answer the first call, bridge it; the others keep ringing."""
    # a high risk level makes the pacer over-dial its one agent
    gov = GovernorSettings(initial_risk=0.4)
    eng, out = start(clock, agents=1, leads=20, mode=DialMode.PREDICTIVE, governor=gov, **cfg)
    dials = of_type(out, Dial)
    assert len(dials) >= 2, "the predictive pacer should over-dial one ready agent"
    first, rest = dials[0].call_id, [d.call_id for d in dials[1:]]
    rung_at = clock.now
    for d in dials:  # the network rings at once (first 18x at the dial)
        eng.call_ringing(rung_at, d.call_id)
    eng.call_answered(clock.advance(3), first, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.advance(0.2), first)
    assert eng.agent_state("a0") is AgentState.TALKING
    # answers spread over 8-24 s after the dial: a call ringing 15 s may still be answered
    late = CallEstimator(grid_seconds=45, prior_live_rate=0.3, prior_live_seconds=16.0)
    eng.model = PacingModel(calls=late.dist, talk=eng.model.talk, wrap=eng.model.wrap)
    return eng, dials[0], rest, rung_at


def test_surplus_ringing_call_is_cancelled_only_after_min_ring(clock: FakeClock) -> None:
    eng, _first, rest, rung_at = _busy_agent_with_ringing_calls(clock)
    dialed_at = rung_at  # the calls' first 18x: the minimum ring counts from there
    hangups: list[EndCall] = []
    # tick every half second up to just before the minimum ring time: nothing is cancelled
    while clock.now + timedelta(seconds=0.5) < dialed_at + timedelta(seconds=15):
        hangups += of_type(eng.tick(clock.advance(0.5)), EndCall)
    assert [h for h in hangups if h.call_id in rest] == []
    # the engine asks to be woken when the calls reach the minimum ring time
    wake = eng.next_wakeup
    assert wake is not None
    assert dialed_at + timedelta(seconds=15) <= wake <= dialed_at + timedelta(seconds=15.01)
    out = eng.tick(clock.advance((wake - clock.now).total_seconds()))
    hangups = [h for h in of_type(out, EndCall) if h.call_id in rest]
    # the agent has just begun a call of ~180 s: no agent for any of them if answered
    assert {h.call_id for h in hangups} == set(rest)
    assert eng.counters().surplus_cancels == len(rest)
    # the driver reports the SIP result of the cancel; the lead gets a no-answer
    out = eng.call_ended(clock.advance(0.1), rest[0], AttemptResult.CANCELLED)
    fin = of_type(out, AttemptFinished)[0]
    assert fin.result is AttemptResult.NO_ANSWER
    assert (fin.ended_at - fin.dialed_at).total_seconds() >= 15.0
    upd = of_type(out, LeadUpdate)[0]
    assert upd.result is AttemptResult.NO_ANSWER and upd.status is LeadStatus.POTENTIAL


def test_min_ring_counts_from_the_first_18x_not_the_dial(clock: FakeClock) -> None:
    """A 180 Ringing that comes late moves the earliest cancel; no 18x at all, no cancel."""
    gov = GovernorSettings(initial_risk=0.4)
    eng, out = start(clock, agents=1, leads=20, mode=DialMode.PREDICTIVE, governor=gov)
    dials = [d.call_id for d in of_type(out, Dial)]
    assert len(dials) >= 2
    first, late = dials[0], dials[1]
    silent = dials[2] if len(dials) > 2 else None
    eng.call_ringing(clock.now, first)
    eng.call_answered(clock.advance(3), first, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.advance(0.2), first)
    # answers spread over 8-24 s after the dial: a call ringing 15 s may still be answered
    est = CallEstimator(grid_seconds=45, prior_live_rate=0.3, prior_live_seconds=16.0)
    eng.model = PacingModel(calls=est.dist, talk=eng.model.talk, wrap=eng.model.wrap)
    eng.call_ringing(clock.advance(2.0), late)  # post-dial delay: 18x at T0 + 5.2 s
    ring_start = clock.now
    hangups: list[str] = []
    while clock.now < ring_start + timedelta(seconds=15) - timedelta(seconds=0.25):
        hangups += [h.call_id for h in of_type(eng.tick(clock.advance(0.25)), EndCall)]
    assert late not in hangups  # 15 s after the dial is not 15 s of ringing
    for _ in range(40):  # up to 10 s more
        hangups += [h.call_id for h in of_type(eng.tick(clock.advance(0.25)), EndCall)]
    assert late in hangups
    if silent is not None:
        assert silent not in hangups  # never rang: left to the SIP setup timeout


def test_ringing_call_is_kept_when_an_agent_is_free(clock: FakeClock) -> None:
    eng, out = start(clock, agents=3, leads=1, mode=DialMode.PREDICTIVE)
    dials = [d.call_id for d in of_type(out, Dial)]
    assert len(dials) == 1
    late = CallEstimator(grid_seconds=45, prior_live_rate=0.3, prior_live_seconds=16.0)
    eng.model = PacingModel(calls=late.dist, talk=eng.model.talk, wrap=eng.model.wrap)
    hangups = []
    for _ in range(40):  # 20 s: every call is past the minimum ring, agents all ready
        hangups += of_type(eng.tick(clock.advance(0.5)), EndCall)
    assert hangups == []
    assert eng.counters().surplus_cancels == 0


def test_cancelling_is_off_when_configured_and_in_other_modes(clock: FakeClock) -> None:
    eng, _first, rest, _rung = _busy_agent_with_ringing_calls(clock, cancel_surplus_calls=False)
    hangups = []
    for _ in range(40):
        hangups += of_type(eng.tick(clock.advance(0.5)), EndCall)
    assert [h for h in hangups if h.call_id in rest] == []
    eng = make_engine(mode=DialMode.POWER)
    assert eng.snapshot(clock.now).cancel_after is None


def test_answer_crossing_the_cancel_counts_as_abandoned(clock: FakeClock) -> None:
    eng, _first, rest, _rung = _busy_agent_with_ringing_calls(clock)
    out = eng.tick(clock.advance(12.0))
    hung = [h.call_id for h in of_type(out, EndCall) if h.call_id in rest]
    assert hung
    before = eng.counters().abandoned
    out = eng.call_answered(clock.advance(0.1), hung[0], AmdVerdict.HUMAN)
    assert of_type(out, BridgeTo) == []
    out = eng.call_ended(clock.advance(0.1), hung[0])
    assert of_type(out, AttemptFinished)[0].result is AttemptResult.ABANDONED
    assert eng.counters().abandoned == before + 1


def test_min_ring_must_not_be_negative() -> None:
    with pytest.raises(EngineConfigError, match="min_ring_seconds"):
        EngineConfig(campaign_id="x", min_ring_seconds=-1.0)
    with pytest.raises(EngineConfigError, match="min_ring_seconds"):
        EngineConfig(campaign_id="x", min_ring_seconds=float("nan"))


def test_a_refused_input_does_not_swallow_an_abandon_message(clock: FakeClock) -> None:
    """An input first expires overdue waiting calls, then checks its arguments: when the
    check raises, the abandon message decided on the way is held and delivered next."""
    from common.vocabulary import AttemptStage
    from dialer.core import CoreError

    eng = make_engine(mode=DialMode.POWER)
    eng.add_leads(clock.now, [lead() for _ in range(5)])
    dials = of_type(eng.agent_login(clock.now, "a0", ready=True)
                    + eng.tick(clock.advance(1)), Dial)
    first, second = dials[0].call_id, dials[1].call_id
    eng.call_answered(clock.advance(4), first, AmdVerdict.HUMAN)
    eng.bridge_ok(clock.now, first)
    eng.call_answered(clock.advance(1), second, AmdVerdict.HUMAN)  # no agent free: waits
    with pytest.raises(CoreError):  # the deadline passed; then the input is refused
        eng.disposition(clock.advance(3), "a0", first, "no_need")
    assert eng.call_stage(second) is AttemptStage.MESSAGE
    assert eng.next_wakeup == clock.now  # due at once
    played = of_type(eng.tick(clock.now), PlayMessage)
    assert [p.call_id for p in played] == [second]
    assert not of_type(eng.tick(clock.advance(0.1)), PlayMessage)  # delivered once
