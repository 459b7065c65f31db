"""Hopper: the small buffer of claimed, callable leads of one campaign, in dialing order.

Order (issue 4): due callbacks first (an agent-owned callback only for its owner until the
grace time after its due time passes, then for the whole campaign), then hot leads and
customers with an open complaint, then the rest by priority (high first) and due time
(oldest first). "Callable now" (calendars, windows, DNC, retry delays) is decided by the
driver through scheduling before leads get here; this module only orders them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta

from common.vocabulary import LeadStatus
from dialer.core.tickets import LeadTicket

TIER_CALLBACK = 0
TIER_HOT = 1
TIER_REST = 2


def lead_tier(ticket: LeadTicket) -> int:
    """Static tier of a lead (callbacks are tier 0 once due; see `callback_holder`)."""
    if ticket.callback_due_at is not None:
        return TIER_CALLBACK
    if ticket.status is LeadStatus.HOT or ticket.has_open_complaint:
        return TIER_HOT
    return TIER_REST


def callback_holder(ticket: LeadTicket, now: datetime, grace: timedelta) -> str | None:
    """Who may take a due callback now: the owning agent's id, or None for anyone.

    An agent-owned callback belongs to its owner until ``callback_due_at + grace``; after
    that the campaign takes it so an absent agent does not make the customer wait.
    """
    if ticket.callback_owner is None or ticket.callback_due_at is None:
        return None
    if now < ticket.callback_due_at + grace:
        return ticket.callback_owner
    return None


def order_leads(
    tickets: Iterable[LeadTicket],
    now: datetime,
    grace: timedelta,
    for_agent: str | None = None,
) -> list[LeadTicket]:
    """Pure ordering of ``tickets`` as the hopper dials them, for ``for_agent`` if given.

    Callbacks not yet due, and agent-owned callbacks held for another agent, are left out.
    """
    keyed: list[tuple[tuple[int, float, float, str], LeadTicket]] = []
    for t in tickets:
        if t.callback_due_at is not None:
            if t.callback_due_at > now:
                continue
            holder = callback_holder(t, now, grace)
            if holder is not None and holder != for_agent:
                continue
            # the owner's own callbacks come before campaign callbacks
            own = 0.0 if holder is not None else 1.0
            keyed.append(((TIER_CALLBACK, own, t.callback_due_at.timestamp(), t.lead_id), t))
        else:
            keyed.append(((lead_tier(t), -float(t.priority), t.due_at.timestamp(), t.lead_id), t))
    keyed.sort(key=lambda kt: kt[0])
    return [t for _, t in keyed]


class Hopper:
    """Buffer of leads with cheap ordered takes.

    Non-callback leads have a static order and live in a heap; callbacks (few, and whose
    holder changes with time) live in a list scanned on each take.
    """

    def __init__(self, callback_grace: timedelta) -> None:
        self._grace = callback_grace
        self._heap: list[tuple[int, float, float, int, LeadTicket]] = []
        self._callbacks: list[LeadTicket] = []
        self._seq = itertools.count()
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._heap) + len(self._callbacks)

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._ids

    def add(self, tickets: Iterable[LeadTicket]) -> int:
        """Add tickets, ignoring ones already buffered. Returns how many were added."""
        added = 0
        for t in tickets:
            if t.lead_id in self._ids:
                continue
            self._ids.add(t.lead_id)
            added += 1
            if t.callback_due_at is not None:
                self._callbacks.append(t)
            else:
                heapq.heappush(
                    self._heap,
                    (lead_tier(t), -float(t.priority), t.due_at.timestamp(), next(self._seq), t),
                )
        return added

    def owners_with_due_callbacks(self, now: datetime) -> set[str]:
        """Agents for whom a callback is due and still reserved to them."""
        out: set[str] = set()
        for t in self._callbacks:
            if t.callback_due_at is not None and t.callback_due_at <= now:
                holder = callback_holder(t, now, self._grace)
                if holder is not None:
                    out.add(holder)
        return out

    def take_for_owner(self, agent_id: str, now: datetime) -> LeadTicket | None:
        """The owner's earliest due callback still reserved to them, removed from the hopper."""
        best: LeadTicket | None = None
        for t in self._callbacks:
            if (
                t.callback_due_at is not None
                and t.callback_due_at <= now
                and callback_holder(t, now, self._grace) == agent_id
                and (best is None or t.callback_due_at < best.callback_due_at)  # type: ignore[operator]
            ):
                best = t
        if best is not None:
            self._remove_callback(best)
        return best

    def take(self, n: int, now: datetime) -> list[LeadTicket]:
        """Up to ``n`` leads anyone may dial now, in hopper order, removed from the hopper."""
        out: list[LeadTicket] = []
        if n <= 0:
            return out
        if self._callbacks:
            due = [
                t
                for t in self._callbacks
                if t.callback_due_at is not None
                and t.callback_due_at <= now
                and callback_holder(t, now, self._grace) is None
            ]
            due.sort(key=lambda t: (t.callback_due_at, t.lead_id))
            for t in due[:n]:
                self._remove_callback(t)
                out.append(t)
        while len(out) < n and self._heap:
            t = heapq.heappop(self._heap)[-1]
            self._ids.discard(t.lead_id)
            out.append(t)
        return out

    def available(self, now: datetime) -> int:
        """How many leads a take() could return now (callbacks held for owners excluded)."""
        held = 0
        for t in self._callbacks:
            if (
                t.callback_due_at is None
                or t.callback_due_at > now
                or callback_holder(t, now, self._grace) is not None
            ):
                held += 1
        return len(self) - held

    def next_callback_change(self, now: datetime) -> datetime | None:
        """Next time a buffered callback becomes due or falls back to the campaign."""
        best: datetime | None = None
        for t in self._callbacks:
            if t.callback_due_at is None:
                continue
            for at in (t.callback_due_at, t.callback_due_at + self._grace):
                if at > now and (best is None or at < best):
                    best = at
        return best

    def drain(self) -> list[LeadTicket]:
        """Remove and return every buffered lead (campaign stop: release the claims)."""
        out = [entry[-1] for entry in self._heap] + list(self._callbacks)
        self._heap.clear()
        self._callbacks.clear()
        self._ids.clear()
        return out

    def _remove_callback(self, t: LeadTicket) -> None:
        self._callbacks.remove(t)
        self._ids.discard(t.lead_id)
