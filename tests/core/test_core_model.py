"""Governor, estimators and the lead ticket: small pure pieces of the pacing model."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.core import AbandonGovernor, GovernorSettings, WindowCounts
from dialer.core.stats import CallEstimator, DurationEstimator

from .conftest import lead


def counts(live: int, abandoned: int) -> WindowCounts:
    return WindowCounts(live=live, abandoned=abandoned, machines=0, est_false_positives=0.0)


def test_governor_converges_on_the_target_share() -> None:
    gov = AbandonGovernor(0.024, 0.03)
    start = gov.risk_level
    for _ in range(200):
        gov.observe(abandoned=False)
    assert gov.risk_level > start  # no abandons: it may take more risk
    high = gov.risk_level
    for _ in range(5):
        gov.observe(abandoned=True)
    assert gov.risk_level < high
    # at exactly the target share the expected drift is zero
    g2 = AbandonGovernor(0.025, 0.03)
    before = g2.risk_level
    for i in range(4000):
        g2.observe(abandoned=(i % 40 == 0))
    assert g2.risk_level == pytest.approx(before, rel=0.25)


def test_governor_takes_risk_only_with_an_abandon_to_spare() -> None:
    s = GovernorSettings()
    gov = AbandonGovernor(0.024, 0.03, s)
    assert gov.allowed_risk(counts(100, 5)) == s.min_risk  # already over 3 %
    assert gov.allowed_risk(counts(1000, 10)) == gov.risk_level
    # 3 of 100: a 4th of 101 would pass the cap, so no risk
    assert gov.allowed_risk(counts(100, 3)) == s.min_risk
    # 2 of 100: a 3rd of 101 is still within it
    assert gov.allowed_risk(counts(100, 2)) == gov.risk_level
    # a young campaign may take its first abandon (the credit), then waits for ~66 answers
    assert gov.allowed_risk(counts(0, 0)) == gov.risk_level
    assert gov.allowed_risk(counts(10, 1)) == s.min_risk
    assert gov.allowed_risk(counts(65, 1)) == s.min_risk
    assert gov.allowed_risk(counts(67, 1)) == gov.risk_level
    # the optional soft zone scales the risk down near the edge
    soft = AbandonGovernor(0.024, 0.03, GovernorSettings(soft_headroom=2.0))
    mid = soft.allowed_risk(counts(200, 4))  # 5 of 201 leaves 1 to spare of the 2 wanted
    assert s.min_risk < mid < soft.risk_level
    with pytest.raises(ValueError, match="target"):
        AbandonGovernor(0.05, 0.03)
    with pytest.raises(ValueError, match="soft_headroom"):
        GovernorSettings(soft_headroom=-1.0)


@settings(max_examples=300, deadline=None)
@given(
    live=st.integers(min_value=0, max_value=5000),
    abandoned=st.integers(min_value=0, max_value=200),
)
def test_governor_never_takes_risk_that_could_pass_the_cap(live: int, abandoned: int) -> None:
    gov = AbandonGovernor(0.024, 0.03)
    spare = abandoned + 1 <= max(0.03 * (live + 1), 1.0) + 1e-9
    if gov.allowed_risk(counts(live, abandoned)) > GovernorSettings().min_risk:
        # one more live answer, abandoned, keeps the window within the cap (or the credit)
        assert spare
    # the guard the pacers' hard clamp follows (issue 12): no spare abandon, no overdial
    assert gov.has_spare_abandon(counts(live, abandoned)) == spare


def test_duration_estimator_conditional_remaining_time() -> None:
    est = DurationEstimator(prior_mean=100.0, prior_weight=1.0)
    rng = random.Random(1)
    for _ in range(400):
        est.add(rng.uniform(90.0, 110.0))
    d = est.dist
    assert d.mean == pytest.approx(100.0, abs=3.0)
    # a call that has lasted 105 s of a 90-110 s distribution ends soon; one at 10 s does not
    assert d.done_within(105.0, 10.0) > 0.9
    assert d.done_within(10.0, 10.0) < 0.05


def test_call_estimator_learns_answer_rate_and_ageing() -> None:
    est = CallEstimator(grid_seconds=45, prior_live_rate=0.3)
    rng = random.Random(2)
    for _ in range(3000):
        if rng.random() < 0.2:
            est.add(rng.uniform(5.0, 12.0), True)
        else:
            est.add(25.0, False)
    d = est.dist
    assert d.p_live == pytest.approx(0.2, abs=0.03)
    assert d.live_within(0.0, 15.0) == pytest.approx(d.p_live, abs=0.03)
    assert d.live_within(13.0, 10.0) < 0.02  # past the answer window: a future no-answer


def test_lead_ticket_validation_names_the_field_not_the_number() -> None:
    with pytest.raises(ValueError, match=r"E\.164") as exc:
        lead(phone_e164="0701234567")
    assert "0701234567" not in str(exc.value)
    with pytest.raises(ValueError, match="aware"):
        lead(due_at=lead().due_at.replace(tzinfo=None))
