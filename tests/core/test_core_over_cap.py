"""Issue 12, point 3: over the cap, no risk.

With no abandon to spare in the regulatory window (one more would pass the cap, or the
window is over it already, e.g. a restart that seeded the ledger from old rows) the engine
dials at most one line per READY agent, in every dial mode; and a trunk outage's failed
calls do not teach the answer-time model that answers are rare.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.vocabulary import (
    AbandonPolicy,
    AbandonWindow,
    AgentState,
    AmdVerdict,
    AttemptResult,
    DialMode,
)
from dialer.core import (
    AttemptFinished,
    CampaignEngine,
    Dial,
    GovernorSettings,
    IllegalTransitionError,
    InvalidDispositionError,
    LineLimits,
    UnknownCallError,
)
from dialer.core.governor import settings_for_window
from dialer.core.stats import NETWORK_RESULTS, CallEstimator

from .conftest import FakeClock, lead, make_engine, of_type

CAP = 0.03  # the default AbandonPolicy cap


def seed_ledger(eng: CampaignEngine, now: datetime, live: int, abandoned: int) -> None:
    """What the runtime does at start: one ledger entry per answered attempt row."""
    t = (now - timedelta(days=2)).timestamp()
    for i in range(live):
        eng.ledger.record(t + i, live=True, abandoned=i < abandoned)


def min_abandons_without_spare(live: int) -> int:
    """Fewest abandons among ``live`` answers that leave no abandon to spare (the guard)."""
    return math.floor(max(CAP * (live + 1), 1.0) - 1.0) + 1


def no_spare(eng: CampaignEngine, now: datetime) -> bool:
    """The guard, from the ledger alone (not the governor's own test): one more abandon
    would put the window over the cap, or it is over already (docs/pacing.md)."""
    c = eng.ledger.counts(now)
    return c.numerator + 1 > max(CAP * (c.denominator + 1), 1.0)


def lines_for_ready_agents(eng: CampaignEngine) -> tuple[int, int]:
    """(calls that need a ready agent: unanswered unreserved + answered waiting, ready agents)"""
    return len(eng.calls.inflight) + len(eng.calls.waiting), len(eng.board.ready)


def tempting_engine(mode: DialMode, **cfg: object) -> CampaignEngine:
    """An engine that wants to over-dial: a high risk level, power 3, short wrap-ups."""
    return make_engine(
        mode=mode,
        governor=GovernorSettings(initial_risk=0.5, max_risk=0.6),
        limits=LineLimits(power_lines_per_agent=3.0, max_lines_per_agent=6.0),
        expected_wrap_seconds=5.0,
        **cfg,
    )


# ------------------------------------------------------------------ the property
_RESULTS = [
    AttemptResult.BUSY, AttemptResult.NO_ANSWER, AttemptResult.INVALID_NUMBER,
    AttemptResult.REJECTED, AttemptResult.FAILED, AttemptResult.CANCELLED, AttemptResult.LOST,
]
_EVENTS = st.lists(
    st.tuples(
        # ring-outs, answers and ticks are what free or fill lines: drawn more often
        st.sampled_from(["answer_h", "answer_h", "answer_m", "end", "end", "end", "bridge_ok",
                         "bridge_ok", "bridge_fail", "dispo", "dispo", "pause", "ready", "tick",
                         "tick", "login", "accept", "skip", "abandon_row"]),
        st.integers(0, 40),
        st.floats(0.0, 20.0),
    ),
    min_size=20,
    max_size=80,
)


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[int, int]:
    """(live, abandoned) with no abandon to spare: at the edge of the cap or far over it."""
    live = draw(st.integers(0, 3000))
    abandoned = min_abandons_without_spare(live) + draw(
        st.one_of(st.just(0), st.integers(0, 5), st.integers(0, 200))
    )
    return max(live, abandoned), abandoned


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(list(DialMode)),
    agents=st.integers(1, 8),
    busy=st.integers(0, 8),
    warm_up=st.booleans(),
    ledger=ledgers(),
    events=_EVENTS,
)
def test_no_dial_puts_more_lines_than_ready_agents_without_a_spare_abandon(
    mode: DialMode, agents: int, busy: int, warm_up: bool, ledger: tuple[int, int],
    events: list,
) -> None:
    clock = FakeClock()
    eng = tempting_engine(mode)
    eng.add_leads(clock.now, [lead() for _ in range(150)])
    if not warm_up:  # over the cap from the start, as after a restart
        seed_ledger(eng, clock.now, *ledger)
    names = [f"a{i}" for i in range(agents)]
    out = []
    for a in names:
        out += eng.agent_login(clock.now, a, ready=True)
    # with warm_up, a first pass with a clean ledger over-dials (predictive, power); then
    # some calls are answered and agents get busy: calls in flight, ready and busy agents
    out += eng.tick(clock.advance(1))
    open_calls = [d.call_id for d in of_type(out, Dial)]
    for cid in open_calls[:busy]:
        eng.call_answered(clock.advance(0.5), cid, AmdVerdict.HUMAN)
        call = eng.calls.find(cid)
        if call is not None and call.agent_id is not None:
            eng.bridge_ok(clock.now, cid)
    # now the window has no abandon to spare (seeded as at a restart; topped up with
    # abandons if the warm-up's connected calls made room)
    if warm_up:
        seed_ledger(eng, clock.now, *ledger)
    while not no_spare(eng, clock.now):
        eng.ledger.record(clock.now.timestamp(), live=True, abandoned=True)

    def check(now: datetime, out: list) -> None:
        for a in out:
            if isinstance(a, Dial):
                open_calls.append(a.call_id)
            elif isinstance(a, AttemptFinished) and a.call_id in open_calls:
                open_calls.remove(a.call_id)
        unreserved = [d for d in of_type(out, Dial) if d.agent_id is None]
        if mode is DialMode.PREVIEW:
            assert not unreserved  # preview dials only for the agent who accepted
        if unreserved and no_spare(eng, now):
            lines, ready = lines_for_ready_agents(eng)
            assert lines <= ready, (
                f"{mode}: {len(unreserved)} dials made {lines} lines for {ready} ready agents"
            )

    for kind, k, dt in events:
        now = clock.advance(dt)
        call = open_calls[k % len(open_calls)] if open_calls else None
        agent = names[k % len(names)]
        try:
            if kind == "answer_h" and call:
                out = eng.call_answered(now, call, AmdVerdict.HUMAN)
            elif kind == "answer_m" and call:
                out = eng.call_answered(now, call, AmdVerdict.MACHINE)
            elif kind == "end" and call:
                out = eng.call_ended(now, call, _RESULTS[k % len(_RESULTS)])
            elif kind == "bridge_ok" and call:
                out = eng.bridge_ok(now, call)
            elif kind == "bridge_fail" and call:
                out = eng.bridge_failed(now, call, "x")
            elif kind == "dispo" and call:
                out = eng.disposition(now, agent, call, "no_need")
            elif kind == "pause":
                out = eng.agent_pause(now, agent, "break")
            elif kind == "ready":
                out = eng.agent_ready(now, agent)
            elif kind == "login":
                out = eng.agent_login(now, agent, ready=True)
            elif kind == "accept":
                out = eng.preview_accept(now, agent)
            elif kind == "skip":
                out = eng.preview_skip(now, agent)
            elif kind == "abandon_row":
                # a fault: an abandon the engine did not see (another node, a late row)
                eng.ledger.record(now.timestamp(), live=True, abandoned=True)
                out = eng.tick(now)
            else:
                out = eng.tick(now)
        except (IllegalTransitionError, InvalidDispositionError, UnknownCallError, ValueError):
            continue
        check(now, out)


# ------------------------------------------------------- a restart over the cap, tick by tick
def _run_ticks(eng: CampaignEngine, clock: FakeClock, ticks: int) -> list[int]:
    """Dials per pacing pass while nothing is answered (the calls keep ringing)."""
    per_tick = []
    for _ in range(ticks):
        per_tick.append(len(of_type(eng.tick(clock.advance(2.0)), Dial)))
    return per_tick


def _three_ready_two_in_wrap_up(clock: FakeClock, mode: DialMode, over_cap: bool):  # type: ignore[no-untyped-def]
    """The live case of issue 12: 3 ready agents, 2 about to leave wrap-up, rate 6.7 %."""
    eng = tempting_engine(mode, cancel_surplus_calls=False)
    if over_cap:
        seed_ledger(eng, clock.now, live=300, abandoned=20)  # 6.7 %, cap 3 %
    eng.add_leads(clock.now, [lead() for _ in range(100)])
    # two agents take a call each and are in wrap-up (5 s expected) when the others log in
    out = eng.agent_login(clock.now, "w0", ready=True)
    out += eng.agent_login(clock.now, "w1", ready=True)
    out += eng.tick(clock.advance(1.0))
    first = [d.call_id for d in of_type(out, Dial)]
    assert len(first) >= 2
    for cid in first[:2]:
        eng.call_answered(clock.advance(0.1), cid, AmdVerdict.HUMAN)
        eng.bridge_ok(clock.advance(0.1), cid)
    for cid in first[:2]:
        eng.call_ended(clock.advance(30.0), cid)
    assert {eng.agent_state(a) for a in ("w0", "w1")} == {AgentState.WRAP_UP}
    for i in range(3):
        eng.agent_login(clock.now, f"r{i}", ready=False)
    clock.advance(4.0)  # the wrap-ups are nearly over: the forecast expects both free soon
    if over_cap:
        assert no_spare(eng, clock.now)
        assert eng.ledger.counts(clock.now).rate > CAP
    # drain whatever the previous passes left in flight, then the three agents get ready
    for cid in [c.call_id for c in list(eng.calls.inflight.values())]:
        eng.call_ended(clock.now, cid, AttemptResult.NO_ANSWER)
    out = []
    for i in range(3):
        out += eng.agent_ready(clock.now, f"r{i}")
    out += eng.tick(clock.advance(1.0))  # events closer than min_pace_gap share a pass
    return eng, len(of_type(out, Dial))


def test_restart_over_the_cap_dials_one_line_per_ready_agent_per_tick(clock: FakeClock) -> None:
    for mode in (DialMode.PREDICTIVE, DialMode.POWER):
        c = FakeClock(clock.now)
        eng, first = _three_ready_two_in_wrap_up(c, mode, over_cap=True)
        per_tick = [first, *_run_ticks(eng, c, 5)]
        # 3 ready agents, 2 about to free: 3 lines, then nothing while they ring
        assert per_tick == [3, 0, 0, 0, 0, 0], (mode, per_tick)
        lines, ready = lines_for_ready_agents(eng)
        assert (lines, ready) == (3, 3)


def test_with_a_spare_abandon_the_same_campaign_dials_ahead(clock: FakeClock) -> None:
    """The clamp is what stops it: the same campaign under the cap over-dials."""
    for mode in (DialMode.PREDICTIVE, DialMode.POWER):
        _eng, first = _three_ready_two_in_wrap_up(FakeClock(clock.now), mode, over_cap=False)
        assert first > 3, mode


def test_over_the_cap_lines_freed_by_ring_outs_are_redialed_one_for_one(
    clock: FakeClock,
) -> None:
    eng, first = _three_ready_two_in_wrap_up(clock, DialMode.PREDICTIVE, over_cap=True)
    assert first == 3
    ringing = [c.call_id for c in eng.calls.inflight.values()]
    out = eng.call_ended(clock.advance(20.0), ringing[0], AttemptResult.NO_ANSWER)
    out += eng.tick(clock.advance(1.0))
    assert len(of_type(out, Dial)) == 1  # one ring-out frees one ready agent's line
    # a live answer takes a ready agent: its line is not replaced
    out = eng.call_answered(clock.advance(1.0), ringing[1], AmdVerdict.HUMAN)
    out += eng.tick(clock.advance(1.0))
    assert not of_type(out, Dial)
    assert lines_for_ready_agents(eng) == (2, 2)


# ----------------------------------------------------------- a trunk outage teaches nothing
def test_a_burst_of_network_failures_leaves_the_learned_answer_rate_unchanged() -> None:
    est = CallEstimator(grid_seconds=45, prior_live_rate=0.3)
    for i in range(400):
        est.add(8.0 if i % 4 else 25.0, i % 4 == 0)
    before = est.dist
    for i in range(1000):
        rebuilt = est.add(0.5, False, result=(AttemptResult.FAILED, AttemptResult.LOST,
                                              AttemptResult.CANCELLED)[i % 3])
        assert not rebuilt
    assert est.dist is before
    # the callee's own outcomes still teach it
    for _ in range(200):
        est.add(3.0, False, result=AttemptResult.BUSY)
    assert est.dist.p_live < before.p_live
    assert {AttemptResult.FAILED, AttemptResult.LOST, AttemptResult.CANCELLED,
            AttemptResult.SKIPPED} == NETWORK_RESULTS


def test_engine_learns_nothing_from_a_trunk_outage(clock: FakeClock) -> None:
    eng = make_engine(mode=DialMode.PROGRESSIVE)
    eng.add_leads(clock.now, [lead() for _ in range(400)])
    for i in range(5):
        eng.agent_login(clock.now, f"a{i}", ready=True)

    def round_of(result: AttemptResult | None) -> None:
        dials = of_type(eng.tick(clock.advance(2.0)), Dial)
        assert dials
        for d in dials:
            if result is None:
                eng.call_answered(clock.advance(0.1), d.call_id, AmdVerdict.MACHINE)
                eng.call_ended(clock.advance(0.1), d.call_id)
            else:
                eng.call_ended(clock.advance(0.1), d.call_id, result)

    for _ in range(10):  # some history: machines and no-answers
        round_of(None)
        round_of(AttemptResult.NO_ANSWER)
    model = eng.model.calls
    p_live = model.p_live
    for r in (AttemptResult.FAILED, AttemptResult.LOST, AttemptResult.CANCELLED) * 20:
        round_of(r)  # the trunk is down: 300 calls fail at once
    assert eng.model.calls is model
    assert eng.model.calls.p_live == p_live
    for _ in range(20):  # busy signals are the callee's: they count
        round_of(AttemptResult.BUSY)
    assert eng.model.calls.p_live < p_live


def test_calls_connected_under_the_clamp_do_not_raise_the_risk_level(clock: FakeClock) -> None:
    """A call the clamp bought without risk is no evidence that more risk would be fine."""
    for over_cap in (True, False):
        c = FakeClock(clock.now)
        eng = make_engine(mode=DialMode.PREDICTIVE)
        if over_cap:
            seed_ledger(eng, c.now, live=300, abandoned=20)
        eng.add_leads(c.now, [lead() for _ in range(20)])
        out = eng.agent_login(c.now, "a0", ready=True) + eng.tick(c.advance(1.0))
        cid = of_type(out, Dial)[0].call_id
        before = eng.governor.risk_level
        eng.call_answered(c.advance(5.0), cid, AmdVerdict.HUMAN)
        eng.bridge_ok(c.advance(0.2), cid)
        assert eng.agent_state("a0") is AgentState.TALKING
        if over_cap:
            assert eng.governor.risk_level == before
        else:
            assert eng.governor.risk_level > before


def test_the_hour_guard_keeps_room_for_the_calls_already_placed() -> None:
    from dialer.core.abandon import WindowCounts
    from dialer.core.governor import AbandonGovernor, GovernorSettings

    gov = AbandonGovernor(0.024, 0.03, GovernorSettings())
    window = WindowCounts(live=10_000, abandoned=100, machines=0, est_false_positives=0.0)
    # 40 live answers, none abandoned this hour: the guard aims at 0.06 x 0.8 (its margin),
    # allowing 0.048 x 41 = 1.97 abandons, so 0.97 to spare after one more
    hour = WindowCounts(live=40, abandoned=0, machines=0, est_false_positives=0.0)
    assert gov.has_spare_abandon(window, hour, hour_exposure=0.0)
    # ringing calls that may go live: no risk until the hour has room for them
    assert not gov.has_spare_abandon(window, hour, hour_exposure=1.0)
    assert gov.allowed_risk(window, hour, hour_exposure=1.0) == gov.settings.min_risk
    assert gov.has_spare_abandon(window, hour, exposure=1.0)  # the 30-day window has room
    one = WindowCounts(live=40, abandoned=1, machines=0, est_false_positives=0.0)
    assert not gov.has_spare_abandon(window, one)  # 2 of 41 would pass 4.8 %


def test_the_hour_guard_holds_for_the_hours_ending_soon() -> None:
    """The last hour is fine, but its answers are mostly old and its two abandons recent:
    the hour ending 45 minutes from now keeps both abandons and only the last quarter's
    answers, plus the answers expected meanwhile at half the last hour's rate - over the
    hour's limit, so no risk now. Looking only at the last hour (the rule before) dials on."""
    from dataclasses import replace

    from dialer.core.governor import HourOutlook

    now = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    eng = make_engine(mode=DialMode.PREDICTIVE)
    seed_ledger(eng, now, live=5000, abandoned=50)  # the 30-day window has room
    t = now.timestamp()
    for i in range(60):  # 55 to 45 minutes ago
        eng.ledger.record(t - 3300 + i * 10, live=True)
    for i in range(10):  # the last 15 minutes, two of them abandoned
        eng.ledger.record(t - 900 + i * 60, live=True, abandoned=i in (3, 7))
    window = eng.ledger.counts(now)
    outlook = eng.hour_counts(now)
    assert outlook is not None
    hour = outlook.hour
    assert (hour.live, hour.abandoned) == (70, 2)
    # the last hour alone: 0.048 x 71 = 3.4 allowed, 2 + 1 taken
    assert eng.governor.has_spare_abandon(window, HourOutlook.of(hour))
    # the hour ending in 45 min: 10 answers kept + 0.5 x 70 x 0.75 to come = 36.25;
    # 0.048 x 37.25 = 1.8 allowed < 3
    assert not eng.governor.has_spare_abandon(window, outlook)
    assert eng.governor.allowed_risk(window, outlook) == eng.governor.settings.min_risk
    # the projection is a setting: off, the engine reads the last hour alone again
    eng.config = replace(eng.config, governor=replace(eng.config.governor, hour_lookahead_s=0.0))
    off = eng.hour_counts(now)
    assert off is not None and len(off.windows) == 1
    assert eng.governor.has_spare_abandon(window, off)


def test_exposure_counts_the_ringing_calls_above_their_mean(clock: FakeClock) -> None:
    """More calls ringing than agents staying ready (two asked for a break while their
    calls ring): the exposure is above the expected overflow, by exposure_z standard
    deviations of the number that go live."""
    eng = make_engine(mode=DialMode.PREDICTIVE)
    eng.add_leads(clock.now, [lead() for _ in range(40)])
    for i in range(3):
        eng.agent_login(clock.now, f"a{i}", ready=True)
    eng.tick(clock.advance(1))
    for i in (1, 2):
        eng.agent_pause(clock.advance(0.1), f"a{i}", "break")
    calls = eng.model.calls
    t = clock.now.timestamp()
    ps = [calls.live_within(t - c.dialed_t, 60.0) for c in eng.calls.inflight.values()]
    assert len(ps) > eng._ready_staying()
    mean = sum(ps)
    sd = sum(p * (1 - p) for p in ps) ** 0.5
    z = eng.config.governor.exposure_z
    assert z > 0
    want = max(0.0, mean + z * sd - eng._ready_staying()) + len(eng.calls.waiting)
    assert math.isclose(eng._abandon_exposure(t), want, rel_tol=1e-9)
    assert eng._abandon_exposure(t) >= max(0.0, mean - eng._ready_staying())


@given(waiting=st.integers(0, 5), n_ringing=st.integers(0, 60), p=st.floats(0.01, 0.99),
       ready=st.integers(0, 40), budget=st.floats(0.0, 10.0), z=st.floats(0.0, 3.0),
       p_new=st.floats(0.01, 0.99))
@settings(max_examples=200, deadline=None)
def test_room_for_calls_is_the_largest_count_within_the_budget(
    waiting: int, n_ringing: int, p: float, ready: int, budget: float, z: float, p_new: float,
) -> None:
    from dialer.core.governor import AbandonGovernor, InflightRisk

    risk = InflightRisk(waiting, n_ringing * p, n_ringing * p * (1 - p), ready)
    room = AbandonGovernor.room_for_calls(budget, risk, p_new, z)
    assert room >= 0
    if risk.exposure(z) > budget:
        assert room == 0
    else:
        assert risk.exposure(z, room, p_new) <= budget + 1e-9
        assert risk.exposure(z, room + 1, p_new) > budget  # one more would not fit


def test_a_burst_reserve_limits_the_overdial_but_never_a_line_per_ready_agent(
    clock: FakeClock,
) -> None:
    """The UK's 24-hour window on a Monday morning (few answers, a little spare): the
    predictive pacer may overdial only as far as the calls' exposure fits the spare."""
    from dialer.core.governor import AbandonGovernor, InflightRisk, settings_for_window
    from dialer.core.pacer import AbandonBudget, over_cap_limit

    gov = AbandonGovernor(0.024, 0.03, settings_for_window(AbandonWindow.ROLLING_24H))
    few = InflightRisk(waiting=0, mean=13.5, var=10.0, ready=59)
    room = gov.room_for_calls(1.0, few, 0.3, gov.settings.exposure_z)
    # about (59 - 13.5 - the margin) / 0.3 more calls: far fewer than the 184 seen
    assert 80 < room < 150
    snap_budget = AbandonBudget(cap=0.03, target=0.024, window_live=42, window_abandoned=0.2,
                                risk=0.0137, spare=True, room=0)

    class Snap:
        abandon = snap_budget
        agents_ready = 5
        inflight_ages = (1.0, 2.0)
        waiting = 0
    assert over_cap_limit(Snap()) == 3  # type: ignore[arg-type]  # a line per ready agent


def test_over_the_cap_a_callback_owner_covering_a_ringing_call_waits(clock: FakeClock) -> None:
    """Over the cap, two ready agents and two calls ringing for them: bob's due callback
    would take one of them away and leave a ringing call without an agent. It waits, and
    goes as soon as a ringing call ends and leaves bob to spare."""
    eng = make_engine(mode=DialMode.PROGRESSIVE)
    seed_ledger(eng, clock.now, 100, 10)
    eng.add_leads(clock.now, [lead(), lead()])
    out = eng.agent_login(clock.now, "alice", ready=True)
    out += eng.agent_login(clock.now, "bob", ready=True)
    out += eng.tick(clock.advance(1))
    ringing = [d.call_id for d in of_type(out, Dial)]
    assert len(ringing) == 2 and no_spare(eng, clock.now)
    cb = lead(callback_owner="bob", callback_due_at=clock.now - timedelta(minutes=1))
    out = eng.add_leads(clock.advance(0.5), [cb]) + eng.tick(clock.advance(2))
    assert not [d for d in of_type(out, Dial) if d.agent_id == "bob"]
    assert eng.agent_state("bob") is AgentState.READY
    out = eng.call_ended(clock.advance(20), ringing[0], AttemptResult.NO_ANSWER)
    out += eng.tick(clock.advance(2))
    assert [d.lead for d in of_type(out, Dial) if d.agent_id == "bob"] == [cb]


def test_a_machine_goes_to_a_free_agent_while_its_estimate_would_break_a_young_window(
        clock: FakeClock) -> None:
    """Under a policy counting AMD false positives (the UK's), a machine verdict adds
    rate x 1 to both sides of the window: in a window with no live answer yet that alone is
    100 %, with 1 live answer and 3 machines 3.5 %. While it would pass the guard's cap and
    an agent is free, the engine hands the call to the agent (no estimate counted); once the
    window holds enough live answers, machines are hung up on as before."""
    from dialer.core.abandon import AbandonLedger
    from dialer.core.actions import BridgeTo, EndCall

    uk = AbandonPolicy(cap=0.03, window=AbandonWindow.ROLLING_24H,
                       count_amd_false_positives=True, amd_false_positive_rate=0.012)

    def first_answer(live_before: int) -> list[object]:
        eng = make_engine(mode=DialMode.PROGRESSIVE, abandon=uk,
                          governor=settings_for_window(AbandonWindow.ROLLING_24H))
        assert isinstance(eng.ledger, AbandonLedger)
        t = (clock.now - timedelta(hours=2)).timestamp()
        for i in range(live_before):
            eng.ledger.record(t + i, live=True)
        eng.add_leads(clock.now, [lead() for _ in range(3)])
        out = eng.agent_login(clock.now, "a0", ready=True) + eng.tick(clock.advance(1.0))
        cid = of_type(out, Dial)[0].call_id
        eng.call_picked_up(clock.advance(3.0), cid)
        return eng.call_answered(clock.advance(2.0), cid, AmdVerdict.MACHINE)

    young = first_answer(0)
    assert not of_type(young, EndCall) and of_type(young, BridgeTo)
    grown = first_answer(40)  # 0.012 / 40.012 = 0.03 % : the window carries it
    assert of_type(grown, EndCall) and not of_type(grown, BridgeTo)
