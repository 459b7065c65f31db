"""The simulator drives the real engine: final states, determinism, compliance counters."""

from __future__ import annotations

import dataclasses

import pytest

from common.vocabulary import AttemptResult, DialMode
from dialer.core import LineLimits
from dialer.sim.baselines import AdaptMode, VicidialAdaptivePacer, clairvoyant_bound
from dialer.sim.report import benchmark_policies, run_matrix, summarize
from dialer.sim.simulator import PolicySpec, Simulation, run_one, standard_policies
from dialer.sim.workload import LeadTape, Outcome, Workload

SMALL = Workload(agents=4, answer_rate=0.4, mean_talk=60, hours=0.5, break_every_hours=0.2,
                 break_minutes=2, callback_share=0.2, bridge_fail_rate=0.05)


@pytest.mark.parametrize("policy", standard_policies(), ids=lambda p: p.name)
def test_every_attempt_ends_in_exactly_one_final_state(policy: PolicySpec) -> None:
    sim = Simulation(SMALL, policy, seed=7, keep_final_states=True)
    r = sim.run()
    assert r.dials > 50
    assert r.double_finals == 0
    assert r.unfinished == 0
    # every dial placed (during the shift and the drain after it) has one final result
    assert len(r.final_states) == sim.engine.counters().dials
    assert set(r.final_states.values()) <= set(AttemptResult)
    assert r.abandons_without_message == 0
    assert r.late_messages == 0
    assert r.early_cancels == 0
    assert r.lockout_redials == 0


def test_preview_mode_runs_and_finishes_every_attempt() -> None:
    policy = PolicySpec(name="preview", mode=DialMode.PREVIEW)
    w = dataclasses.replace(SMALL, bridge_fail_rate=0.0)
    sim = Simulation(w, policy, seed=3, keep_final_states=True)
    r = sim.run()
    skipped = sum(1 for v in r.final_states.values() if v is AttemptResult.SKIPPED)
    assert skipped > 0
    assert len(r.final_states) - skipped == sim.engine.counters().dials
    assert r.abandoned == 0  # an agent is reserved for every preview call


def test_same_seed_same_result_and_same_tape_for_every_policy() -> None:
    w = Workload(agents=3, answer_rate=0.3, mean_talk=90, hours=0.3)
    a = run_one(w, standard_policies()[2], 11)
    b = run_one(w, standard_policies()[2], 11)
    assert (a.dials, a.connected, a.abandoned, a.talk_seconds) == (
        b.dials, b.connected, b.abandoned, b.talk_seconds
    )
    t1, t2 = LeadTape(w, 5), LeadTape(w, 5)
    assert [t1.draw(i, 0) for i in range(50)] == [t2.draw(i, 0) for i in range(50)]
    assert t1.draw(3, 2) == t2.draw(3, 2)
    assert LeadTape(w, 6).draw(0, 0) != t1.draw(0, 0) or LeadTape(w, 6).draw(1, 0) != t1.draw(1, 0)


def test_tape_matches_the_workload_mix() -> None:
    w = Workload(agents=1, answer_rate=0.5, machine_share=0.2, busy_rate=0.1, fail_rate=0.05)
    tape = LeadTape(w, 1)
    draws = [tape.draw(i, 0) for i in range(20000)]
    share = {o: sum(d.outcome is o for d in draws) / len(draws) for o in Outcome}
    assert share[Outcome.HUMAN] == pytest.approx(0.4, abs=0.015)
    assert share[Outcome.MACHINE] == pytest.approx(0.1, abs=0.01)
    assert share[Outcome.BUSY] == pytest.approx(0.1, abs=0.01)
    assert all(d.ring <= w.ring_timeout for d in draws)
    assert all(d.ring == w.ring_timeout for d in draws if d.outcome is Outcome.NO_ANSWER)


def test_abandon_accounting_matches_the_compliance_definition() -> None:
    """Recompute the rate from the attempts' final states, as a regulator would."""
    w = Workload(agents=3, answer_rate=0.5, mean_talk=60, hours=1.0, break_minutes=0)
    policy = PolicySpec(name="power3", mode=DialMode.POWER,
                        limits=LineLimits(power_lines_per_agent=3.0, max_lines_per_agent=5.0))
    sim = Simulation(w, policy, seed=2, keep_final_states=True, drain=False)
    r = sim.run()
    assert r.abandoned > 0  # three lines per agent at 40 % live answers must overflow
    # numerator: live answers not connected within the grace; denominator: live answers.
    # Machines are excluded, calls still waiting at the end are not yet counted.
    assert r.abandon_rate == pytest.approx(r.abandoned / r.live)
    assert r.live == r.connected + r.abandoned
    ledger = sim.engine.abandon_counts(sim._now())
    finals = list(r.final_states.values())
    assert ledger.abandoned >= finals.count(AttemptResult.ABANDONED)
    assert ledger.machines >= finals.count(AttemptResult.MACHINE)


def test_vicidial_level_stays_within_documented_bounds() -> None:
    w = Workload(agents=10, answer_rate=0.3, mean_talk=90, hours=0.5)
    pacer_box: list[VicidialAdaptivePacer] = []

    def factory() -> VicidialAdaptivePacer:
        p = VicidialAdaptivePacer(mode=AdaptMode.HARD_LIMIT, shift_seconds=1800)
        pacer_box.append(p)
        return p

    run_one(w, PolicySpec(name="v", mode=DialMode.PREDICTIVE, pacer_factory=factory), 1)
    assert 1.0 <= pacer_box[0].level <= 3.0


def test_clairvoyant_bound_is_talk_over_talk_plus_wrap() -> None:
    w = Workload(agents=20, answer_rate=0.3, mean_talk=180, hours=4, break_minutes=0)
    b = clairvoyant_bound(w, 1)
    assert b.occupancy == pytest.approx(180 / 195, abs=0.02)


def test_matrix_report_and_summary_line() -> None:
    w = [Workload(agents=a, answer_rate=0.5, mean_talk=60, hours=0.25) for a in (5, 20)]
    rows = run_matrix(w, benchmark_policies(0.25), [1])
    assert {r.policy for r in rows} == {"bound", "progressive", "power2", "vicidial", "issabel",
                                        "predictive"}
    line = summarize(rows).line()
    assert line.startswith("pacing: occ_vs_bound_20=")
    assert "vs_best_5=" in line


def test_predictive_cancels_surplus_calls_never_before_min_ring() -> None:
    policy = PolicySpec(name="predictive", mode=DialMode.PREDICTIVE)
    w = dataclasses.replace(SMALL, answer_rate=0.5, mean_talk=120.0, hours=1.0)
    sim = Simulation(w, policy, seed=5, keep_final_states=True)
    r = sim.run()
    assert sim.engine.counters().surplus_cancels > 0
    assert r.early_cancels == 0
    assert r.double_finals == 0 and r.unfinished == 0
    assert len(r.final_states) == sim.engine.counters().dials
    # baselines dial by their own rules: the engine's cancelling stays off for them
    base = PolicySpec(
        name="issabel", mode=DialMode.PREDICTIVE, pacer_factory=lambda: (lambda snap: 0)
    )
    assert Simulation(w, base, seed=5).config.cancel_surplus_calls is False


def test_agent_oracle_diagnostic_runs_the_real_engine_cleanly() -> None:
    w = dataclasses.replace(SMALL, answer_rate=0.5, mean_talk=120.0, hours=1.0)
    oracle = PolicySpec(name="agent-oracle", mode=DialMode.PREDICTIVE, agent_oracle=True)
    sim = Simulation(w, oracle, seed=3, keep_final_states=True)
    seen: list[tuple[float, ...] | None] = []
    real = sim.engine.snapshot

    def spy(now):  # type: ignore[no-untyped-def]
        s = real(now)
        seen.append(s.known_free_in)
        return s

    sim.engine.snapshot = spy  # type: ignore[method-assign]
    r = sim.run()
    assert seen and all(x is not None for x in seen)
    assert any(x for x in seen)  # busy agents were reported with their free times
    assert all(v >= 0.0 for x in seen if x for v in x)
    assert r.early_cancels == r.double_finals == r.unfinished == r.late_messages == 0
    assert len(r.final_states) == sim.engine.counters().dials
    # a real dialer never gets them
    plain = Simulation(w, PolicySpec(name="p", mode=DialMode.PREDICTIVE), seed=3)
    assert plain.engine.snapshot(plain._now()).known_free_in is None
