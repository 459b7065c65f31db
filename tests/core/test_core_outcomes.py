from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.vocabulary import (
    AttemptResult,
    CallbackScope,
    LeadStatus,
    RetryPolicy,
    disposition_catalog,
)
from dialer.core import InvalidDispositionError, apply_disposition, apply_system_result

from .conftest import T0, lead

CAT = disposition_catalog()
RETRY = RetryPolicy(max_attempts=3)


def test_busy_applies_retry_delay_and_counts_attempt() -> None:
    u = apply_system_result(lead(attempts=0), AttemptResult.BUSY, T0, RETRY)
    assert u.next_contact_at == T0 + timedelta(minutes=15)
    assert u.attempts == 1
    assert u.status is LeadStatus.POTENTIAL
    assert u.result is AttemptResult.BUSY


def test_max_attempts_exhausts_lead() -> None:
    u = apply_system_result(lead(attempts=2), AttemptResult.NO_ANSWER, T0, RETRY)
    assert u.status is LeadStatus.EXHAUSTED
    assert u.next_contact_at is None


def test_invalid_number_ends_lead_and_skip_is_not_an_attempt() -> None:
    assert apply_system_result(lead(), AttemptResult.INVALID_NUMBER, T0, RETRY).status is (
        LeadStatus.INVALID
    )
    u = apply_system_result(lead(attempts=2), AttemptResult.SKIPPED, T0, RETRY)
    assert u.attempts == 2
    assert u.next_contact_at == T0 + timedelta(hours=1)


def test_connected_needs_a_disposition() -> None:
    with pytest.raises(ValueError, match="disposition"):
        apply_system_result(lead(), AttemptResult.CONNECTED, T0, RETRY)


def test_agent_callback_sets_owner_and_time() -> None:
    when = T0 + timedelta(days=1)
    u = apply_disposition(lead(), CAT["callback"], T0, RETRY, agent_id="alice",
                          next_contact_at=when, callback_scope=CallbackScope.AGENT)
    assert (u.owner, u.next_contact_at, u.callback_scope) == ("alice", when, CallbackScope.AGENT)
    camp = apply_disposition(lead(), CAT["callback"], T0, RETRY, agent_id="alice",
                             next_contact_at=when)
    assert camp.owner is None and camp.callback_scope is CallbackScope.CAMPAIGN


def test_callback_without_time_is_refused_naming_code() -> None:
    with pytest.raises(InvalidDispositionError, match="callback"):
        apply_disposition(lead(), CAT["callback"], T0, RETRY, agent_id="a")


def test_next_contact_in_the_past_is_refused() -> None:
    with pytest.raises(InvalidDispositionError, match="not after now"):
        apply_disposition(lead(), CAT["callback"], T0, RETRY, agent_id="a",
                          next_contact_at=T0 - timedelta(minutes=1))


def test_dnc_and_final_outcomes() -> None:
    u = apply_disposition(lead(), CAT["do_not_call"], T0, RETRY, agent_id="a")
    assert u.dnc and u.status is LeadStatus.DNC and u.next_contact_at is None
    w = apply_disposition(lead(), CAT["wrong_number"], T0, RETRY, agent_id="a")
    assert w.status is LeadStatus.INVALID and w.next_contact_at is None


def test_lifecycle_potential_hot_served_and_churn_back_with_cool_off() -> None:
    hot = apply_disposition(lead(), CAT["interested"], T0, RETRY, agent_id="a")
    assert hot.status is LeadStatus.HOT
    served = apply_disposition(lead(status=LeadStatus.HOT), CAT["contract"], T0, RETRY,
                               agent_id="a")
    assert served.status is LeadStatus.SERVED
    churn = apply_disposition(lead(status=LeadStatus.SERVED), CAT["churned"], T0, RETRY,
                              agent_id="a")
    assert churn.status is LeadStatus.POTENTIAL
    assert churn.next_contact_at == T0 + timedelta(days=90)


def test_complaint_resolution_is_reported() -> None:
    u = apply_disposition(lead(has_open_complaint=True), CAT["complaint_resolved"], T0, RETRY,
                          agent_id="a")
    assert u.complaint_closed


@given(st.sampled_from(sorted(r.value for r in AttemptResult if r is not AttemptResult.CONNECTED)),
       st.integers(min_value=0, max_value=10))
def test_system_results_never_schedule_into_the_past(result: str, attempts: int) -> None:
    u = apply_system_result(lead(attempts=attempts), AttemptResult(result), T0, RETRY)
    assert u.next_contact_at is None or u.next_contact_at >= T0
    assert u.attempts >= attempts
