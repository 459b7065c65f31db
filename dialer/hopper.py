"""Hopper refill: claim due leads, re-check every calling rule at this instant, and turn the
callable ones into the engine's `LeadTicket`s (the rest are released at once)."""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from db.repositories import Sessions
from dialer.core.tickets import LeadTicket
from dialer.ports import Callability, Store
from scheduling.facts import RefreshStats, refresh_callability


class SchedulingCallability:
    """The production `Callability`: `scheduling.facts.refresh_callability` on a session
    factory. Not part of the Store: the calling rules are scheduling's, above db/."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def refresh(
        self, *, campaign_id: int, now: datetime, lead_ids: Sequence[int] | None = None,
        abandon_lockout: timedelta,
    ) -> RefreshStats:
        return await refresh_callability(self.sessions, campaign_id=campaign_id, now=now,
                                         lead_ids=lead_ids, abandon_lockout=abandon_lockout)


@dataclass(slots=True)
class Claimed:
    """What a refill got: tickets for the engine (their leads stay claimed by this dialer)
    and, per calling rule, how many claimed leads it held back."""

    tickets: list[LeadTicket] = field(default_factory=list)
    held_back: dict[str, int] = field(default_factory=dict)


async def claim_tickets(
    store: Store, callability: Callability, *, campaign_id: int, now: datetime, n: int,
    holder: str, ttl: timedelta, abandon_lockout: timedelta, agents: Container[str],
) -> Claimed:
    """Claim up to `n` (at least 1) due leads for `holder`; see the module doc.

    A callback owned by an agent not on this campaign's board goes to any agent."""
    out = Claimed()
    ids = await store.claim_leads(campaign_id=campaign_id, now=now, limit=max(n, 1),
                                  holder=holder, ttl=ttl)
    if not ids:
        return out
    refreshed = await callability.refresh(campaign_id=campaign_id, now=now, lead_ids=ids,
                                          abandon_lockout=abandon_lockout)
    out.held_back = dict(refreshed.held_back)
    release: list[int] = []
    for lead in await store.hopper_leads(ids):
        # the rules moved it to later (or never): not this dialer's to hold now
        if lead.next_call_at is None or lead.next_call_at > now:
            release.append(lead.id)
            continue
        owner = lead.callback_owner
        out.tickets.append(LeadTicket(
            lead_id=str(lead.id), phone_e164=lead.phone_e164, priority=lead.priority,
            due_at=lead.next_contact_at or lead.next_call_at or now,
            status=lead.status, has_open_complaint=lead.has_open_complaint,
            callback_owner=owner if owner in agents else None,
            callback_due_at=lead.callback_due_at,
            attempts=lead.attempts, timezone=lead.timezone,
            company_lead=lead.company_id is not None,
        ))
    await store.release_claims(holder=holder, lead_ids=release)
    return out
