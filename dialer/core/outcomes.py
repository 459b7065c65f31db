"""Outcome rules: what a disposition or a system result does to a lead (pure).

Both functions take the lead as it was when claimed (its `LeadTicket`) plus `now` and the
campaign's policies, and return the `LeadUpdate` the driver writes. They never look at a
clock or a calendar: scheduling decides later whether ``next_contact_at`` falls in a window.
"""

from __future__ import annotations

from datetime import datetime

from common.vocabulary import (
    AttemptResult,
    CallbackScope,
    DispositionSpec,
    LeadStatus,
    RetryPolicy,
)
from dialer.core.actions import LeadUpdate
from dialer.core.errors import InvalidDispositionError, InvalidInputError
from dialer.core.tickets import LeadTicket

#: results that need an agent's disposition instead of a retry rule
_NEEDS_DISPOSITION = frozenset({AttemptResult.CONNECTED})
#: results that did not place a call and so do not count as an attempt
_NOT_AN_ATTEMPT = frozenset({AttemptResult.SKIPPED})


def apply_system_result(
    lead: LeadTicket,
    result: AttemptResult,
    now: datetime,
    retry: RetryPolicy,
    *,
    call_id: str | None = None,
) -> LeadUpdate:
    """Apply a result reached without an agent (busy, no answer, machine, abandoned, ...).

    The lead keeps its status and callback owner; the next contact is ``now`` plus the retry
    delay for ``result``; an invalid number ends the lead; reaching ``retry.max_attempts``
    exhausts it.
    """
    if result in _NEEDS_DISPOSITION:
        raise InvalidInputError(
            f"lead {lead.lead_id}: result {result.value!r} needs an agent disposition, "
            "use apply_disposition()"
        )
    _check_aware(now)
    attempts = lead.attempts + (0 if result in _NOT_AN_ATTEMPT else 1)
    status = lead.status
    next_at: datetime | None
    if result is AttemptResult.INVALID_NUMBER:
        status, next_at = LeadStatus.INVALID, None
    elif attempts >= retry.max_attempts and result not in _NOT_AN_ATTEMPT:
        status, next_at = LeadStatus.EXHAUSTED, None
    else:
        next_at = now + retry.delay_after(result)
    keeps_callback = lead.callback_owner is not None and next_at is not None
    return LeadUpdate(
        lead_id=lead.lead_id,
        status=status,
        next_contact_at=next_at,
        attempts=attempts,
        owner=lead.callback_owner if keeps_callback else None,
        dnc=False,
        result=result,
        call_id=call_id,
        callback_scope=(
            CallbackScope.AGENT
            if keeps_callback
            else (CallbackScope.CAMPAIGN if lead.is_callback and next_at else None)
        ),
        at=now,
    )


def apply_disposition(
    lead: LeadTicket,
    spec: DispositionSpec,
    now: datetime,
    retry: RetryPolicy,
    *,
    agent_id: str,
    next_contact_at: datetime | None = None,
    callback_scope: CallbackScope | None = None,
    notes: str | None = None,
    call_id: str | None = None,
) -> LeadUpdate:
    """Apply an agent's coded outcome to the lead of a connected call.

    - status: ``spec.new_status`` (DNC when ``spec.add_to_dnc``); a final spec without a new
      status ends the lead as DONE;
    - next contact: the agent's date, else ``spec.default_next_contact``, else the retry
      delay for a connected call; none for final outcomes;
    - owner: the agent for an agent-scoped callback, else the campaign (None);
    - max attempts: only outcomes where nobody was reached (``spec.reached`` False) count
      toward exhausting a lead; a conversation is progress, not a failed attempt.
    """
    _check_aware(now)
    if spec.needs_callback and next_contact_at is None:
        raise InvalidDispositionError(
            f"disposition {spec.code!r} needs a next contact time (callback date)"
        )
    if next_contact_at is not None:
        _check_aware(next_contact_at)
        if next_contact_at <= now:
            raise InvalidDispositionError(
                f"disposition {spec.code!r}: next contact {next_contact_at.isoformat()} "
                f"is not after now ({now.isoformat()})"
            )
        if spec.final:
            raise InvalidDispositionError(
                f"disposition {spec.code!r} is final: it takes no next contact time"
            )
    attempts = lead.attempts + 1
    status = spec.new_status if spec.new_status is not None else lead.status
    dnc = spec.add_to_dnc
    if dnc:
        status = LeadStatus.DNC
    next_at: datetime | None
    if spec.final or dnc:
        next_at = None
        if spec.new_status is None and not dnc:
            status = LeadStatus.DONE
    elif next_contact_at is not None:
        next_at = next_contact_at
    elif spec.default_next_contact is not None:
        next_at = now + spec.default_next_contact
    else:
        next_at = now + retry.delay_after(AttemptResult.CONNECTED)
    if next_at is not None and not spec.reached and attempts >= retry.max_attempts:
        status, next_at = LeadStatus.EXHAUSTED, None
    scope: CallbackScope | None = None
    owner: str | None = None
    if next_at is not None and next_contact_at is not None:
        scope = callback_scope or CallbackScope.CAMPAIGN
        owner = agent_id if scope is CallbackScope.AGENT else None
    return LeadUpdate(
        lead_id=lead.lead_id,
        status=status,
        next_contact_at=next_at,
        attempts=attempts,
        owner=owner,
        dnc=dnc,
        result=AttemptResult.CONNECTED,
        disposition=spec.code,
        call_id=call_id,
        callback_scope=scope,
        complaint_closed=spec.closes_complaint,
        notes=notes,
        at=now,
    )


def _check_aware(dt: datetime) -> None:
    if dt.tzinfo is None:
        raise InvalidInputError(f"datetime {dt.isoformat()} must be timezone-aware (UTC)")
