from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.vocabulary import DialMode
from dialer.core import (
    AbandonBudget,
    LineLimits,
    PacerSnapshot,
    over_cap_clamp,
    power_pacer,
    predictive_pacer,
    preview_pacer,
    progressive_pacer,
)
from dialer.core.pacer import EXACT_TERMS, risk_curve
from dialer.sim.baselines import IssabelPacer, VicidialAdaptivePacer

from .conftest import make_engine

MODEL = make_engine().model
PACERS = [preview_pacer, progressive_pacer, power_pacer, predictive_pacer]


def snap(**kw: object) -> PacerSnapshot:
    base: dict[str, object] = {
        "mode": DialMode.PREDICTIVE,
        "t": 1000.0,
        "agents_logged_in": 10,
        "agents_working": 10,
        "agents_ready": 0,
        "talking_elapsed": (),
        "wrap_elapsed": (),
        "inflight_ages": (),
        "reserved_calls": 0,
        "waiting": 0,
        "lines_in_use": 0,
        "leads_available": 1000,
        "limits": LineLimits(),
        "model": MODEL,
        "abandon": AbandonBudget(cap=0.03, target=0.024, window_live=0, window_abandoned=0,
                                 risk=0.02),
        "agent_wait": 1.8,
    }
    base.update(kw)
    return PacerSnapshot(**base)  # type: ignore[arg-type]


@st.composite
def snapshots(draw: st.DrawFn) -> PacerSnapshot:
    logged = draw(st.integers(0, 60))
    working = draw(st.integers(0, logged))
    ready = draw(st.integers(0, working))
    busy = working - ready
    talking = tuple(draw(st.lists(st.floats(0, 900), min_size=0, max_size=busy)))
    wrap = tuple(draw(st.lists(st.floats(0, 60), max_size=busy - len(talking))))
    inflight = tuple(draw(st.lists(st.floats(0, 40), max_size=120)))
    waiting = draw(st.integers(0, 5))
    extra = draw(st.integers(0, 20))
    max_lines = draw(st.one_of(st.none(), st.integers(0, 200)))
    per_agent = draw(st.floats(1.0, 6.0))
    power = draw(st.floats(1.0, per_agent))
    return snap(
        agents_logged_in=logged,
        agents_working=working,
        agents_ready=ready,
        talking_elapsed=talking,
        wrap_elapsed=wrap,
        inflight_ages=inflight,
        waiting=waiting,
        lines_in_use=len(talking) + len(inflight) + waiting + extra,
        leads_available=draw(st.integers(0, 500)),
        limits=LineLimits(max_lines=max_lines, max_lines_per_agent=per_agent,
                          power_lines_per_agent=power),
        abandon=AbandonBudget(cap=0.03, target=0.024, window_live=0, window_abandoned=0,
                              risk=draw(st.floats(0.0001, 0.6))),
    )


def _all_pacers() -> list[object]:
    return [*PACERS, VicidialAdaptivePacer(), IssabelPacer()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_no_pacer_dials_without_working_agents_or_beyond_line_limits(s: PacerSnapshot) -> None:
    for pacer in _all_pacers():
        n = pacer(s)  # type: ignore[operator]
        assert n >= 0
        if s.agents_logged_in == 0 or s.agents_working == 0:
            assert n == 0, pacer
        assert n <= s.leads_available
        if s.limits.max_lines is not None:
            assert s.lines_in_use + n <= max(s.limits.max_lines, s.lines_in_use)
        cap = math.floor(s.limits.max_lines_per_agent * s.agents_working + 1e-9)
        assert n == 0 or s.lines_in_use + n <= cap


def test_progressive_one_line_per_ready_agent() -> None:
    assert progressive_pacer(snap(agents_ready=3)) == 3
    assert progressive_pacer(snap(agents_ready=3, inflight_ages=(1.0, 2.0), lines_in_use=2)) == 1
    assert progressive_pacer(snap(agents_ready=3, waiting=3, lines_in_use=3)) == 0


def test_power_keeps_fixed_lines_per_ready_agent() -> None:
    s = snap(agents_ready=2, limits=LineLimits(power_lines_per_agent=2.5))
    assert power_pacer(s) == 5
    assert power_pacer(replace(s, inflight_ages=(1.0,) * 4, lines_in_use=4)) == 1


def test_preview_never_dials_by_itself() -> None:
    assert preview_pacer(snap(agents_ready=10)) == 0


def test_predictive_dials_more_with_more_ready_agents_and_more_risk() -> None:
    a = predictive_pacer(snap(agents_ready=2, talking_elapsed=(30.0,) * 8))
    b = predictive_pacer(snap(agents_ready=6, talking_elapsed=(30.0,) * 4))
    assert 0 < a < b
    low = snap(agents_ready=2, talking_elapsed=(30.0,) * 8)
    high = replace(low, abandon=replace(low.abandon, risk=0.3))
    assert predictive_pacer(high) > predictive_pacer(low)


def test_predictive_stops_when_answers_already_exceed_agents() -> None:
    s = snap(agents_ready=0, talking_elapsed=(5.0,) * 10, waiting=2, lines_in_use=12)
    assert predictive_pacer(s) == 0


def test_predictive_dials_ahead_for_agents_finishing_wrap_up() -> None:
    wrap = snap(agents_ready=0, talking_elapsed=(5.0,) * 5, wrap_elapsed=(14.0,) * 5)
    talk = snap(agents_ready=0, talking_elapsed=(5.0,) * 10)
    assert predictive_pacer(wrap) > predictive_pacer(talk)


def test_exact_and_normal_models_agree_on_a_mid_size_team() -> None:
    s = snap(agents_ready=3, talking_elapsed=tuple(float(x) for x in range(0, 400, 20)),
             inflight_ages=tuple(float(x) for x in range(0, 25, 2)))
    exact = risk_curve(s)
    assert len(s.talking_elapsed) + len(s.inflight_ages) <= EXACT_TERMS
    from dialer.core import pacer as pacer_mod

    old = pacer_mod.EXACT_TERMS
    pacer_mod.EXACT_TERMS = 0
    try:
        normal = risk_curve(s)
    finally:
        pacer_mod.EXACT_TERMS = old
    for n in (0, 3, 8):
        assert abs(exact.risk(n) - normal.risk(n)) < 0.08


def test_known_free_times_replace_the_forecast() -> None:
    """The agent-oracle diagnostic: exact free times stand in for talk/wrap forecasts."""
    busy = snap(talking_elapsed=(60.0,))
    soon = replace(busy, known_free_in=(0.0,))
    late = replace(busy, known_free_in=(120.0,))
    none_busy = replace(busy, known_free_in=())
    # an agent free now takes the first call's answer whenever it comes
    assert risk_curve(soon).risk(0) == 0.0
    # one that is busy for two more minutes is no supply at all: like nobody busy
    assert risk_curve(late).risk(0) == risk_curve(none_busy).risk(0)
    assert risk_curve(late).risk(0) == pytest.approx(1.0)
    assert predictive_pacer(soon) >= 1
    assert predictive_pacer(late) == 0


# ------------------------------------------------ over the cap: one line per ready agent
#: the engine's own pacers; each must respect the hard clamp by itself (the engine
#: applies it again in its pacing pass, tests/core/test_core_engine.py)
_DIALING_PACERS = [progressive_pacer, power_pacer, predictive_pacer]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.integers(0, 20))
def test_no_pacer_dials_beyond_ready_agents_without_a_spare_abandon(
    s: PacerSnapshot, more_wrap: int
) -> None:
    """No spare abandon: calls in flight + waiting + new calls <= ready agents, or no dial.

    The snapshot is made as tempting as possible: agents about to leave wrap-up, the
    highest risk level, power ratios up to 6 - none of it may buy a line beyond the
    ready agents.
    """
    s = replace(
        s,
        wrap_elapsed=s.wrap_elapsed + (14.0,) * more_wrap,
        abandon=replace(s.abandon, risk=0.6, spare=False),
    )
    limit = max(0, s.agents_ready - len(s.inflight_ages) - s.waiting)
    for pacer in _DIALING_PACERS:
        n = pacer(s)
        assert 0 <= n <= limit, (pacer.__name__, n, limit)
    # with an abandon to spare the same snapshot may dial ahead (the clamp is the guard's)
    free = replace(s, abandon=replace(s.abandon, spare=True))
    assert power_pacer(free) >= power_pacer(s)


def test_over_the_cap_predictive_and_power_dial_only_for_ready_agents() -> None:
    """The live case of issue 12: 3 free agents, others finishing wrap-up, no spare abandon."""
    tempting = snap(
        agents_ready=3,
        wrap_elapsed=(14.0,) * 4,
        limits=LineLimits(power_lines_per_agent=2.0),
        abandon=AbandonBudget(cap=0.03, target=0.024, window_live=300, window_abandoned=20,
                              risk=0.3),
    )
    assert predictive_pacer(tempting) > 3  # with a spare abandon it dials ahead
    assert power_pacer(tempting) == 6
    over = replace(tempting, abandon=replace(tempting.abandon, spare=False))
    assert predictive_pacer(over) == 3
    assert power_pacer(over) == 3
    assert progressive_pacer(over) == 3
    # calls already in flight and waiting count against the ready agents
    busy_lines = replace(over, inflight_ages=(3.0, 20.0), waiting=1, lines_in_use=3)
    for pacer in _DIALING_PACERS:
        assert pacer(busy_lines) == 0
    assert over_cap_clamp(busy_lines, 5) == 0
    assert over_cap_clamp(replace(over, inflight_ages=(3.0,), lines_in_use=1), 5) == 2
    assert over_cap_clamp(tempting, 5) == 5  # with a spare abandon: no clamp
