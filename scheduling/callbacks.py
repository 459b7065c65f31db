"""Callbacks: agreed times to call a lead again, owned by one agent or by the campaign.

Pure rules (no IO, injected `now`):

* the agreed time is given in the *lead's* local zone and stored in UTC (`local_to_utc`, exact
  across DST: a time skipped by spring-forward moves to the instant the clocks jump, a time
  repeated by fall-back means its first occurrence);
* an agent-owned callback is reserved for its agent from its due time for a grace time, then
  any agent of the campaign may take it (`route`);
* the owning agent gets a reminder a configurable time before it is due (`due_reminders`):
  reminders are returned as frozen events; the MQTT agent protocol delivers them and the
  caller records `reminded_at` so each is sent once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.vocabulary import CallbackScope
from scheduling.calendar import zone

__all__ = [
    "CallbackError",
    "CallbackFacts",
    "CallbackPolicy",
    "CallbackReminder",
    "CallbackRoute",
    "Routing",
    "due_reminders",
    "local_to_utc",
    "next_wakeup",
    "route",
    "validate_new_callback",
]


class CallbackError(ValueError):
    """A callback request is invalid (message names the field)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackPolicy:
    #: how long an owned callback waits for its agent before any agent may take it
    grace: timedelta = timedelta(minutes=15)
    #: how long before the due time the owning agent is reminded (0 disables reminders)
    reminder_before: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.grace < timedelta(0) or self.reminder_before < timedelta(0):
            raise CallbackError(f"grace and reminder_before must be >= 0, got {self!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackFacts:
    """One pending callback as the rules see it (mirrors the `callbacks` table)."""

    callback_id: int
    lead_id: int
    campaign_id: int
    scope: CallbackScope
    owner_agent_id: int | None
    due_at: datetime
    reminded_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> CallbackFacts:
        return cls(
            callback_id=row.id,
            lead_id=row.lead_id,
            campaign_id=row.campaign_id,
            scope=CallbackScope(row.scope),
            owner_agent_id=row.owner_agent_id,
            due_at=row.due_at,
            reminded_at=row.reminded_at,
        )


class CallbackRoute(enum.StrEnum):
    NOT_DUE = "not_due"  # before its time: nobody calls it yet
    OWNER = "owner"  # due, reserved for the owning agent (inside the grace time)
    CAMPAIGN = "campaign"  # due, any agent of the campaign may take it


@dataclass(frozen=True, slots=True)
class Routing:
    route: CallbackRoute
    #: the only agent allowed now (OWNER), else None
    agent_id: int | None
    #: when the routing changes next (due time, end of the grace), None when final
    changes_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackReminder:
    """Event for the agent protocol: "your callback for lead X is due at T"."""

    callback_id: int
    lead_id: int
    campaign_id: int
    agent_id: int
    due_at: datetime
    #: when the reminder was meant to go out (due_at - reminder_before)
    remind_at: datetime
    #: True when produced after the due time (the dialer was down at remind_at)
    late: bool

    def to_message(self) -> dict[str, Any]:
        """JSON-ready payload (ids and times only: no names or numbers, see common rules)."""
        return {
            "type": "callback_reminder",
            "callback_id": self.callback_id,
            "lead_id": self.lead_id,
            "campaign_id": self.campaign_id,
            "agent_id": self.agent_id,
            "due_at": self.due_at.isoformat(),
            "remind_at": self.remind_at.isoformat(),
            "late": self.late,
        }


def local_to_utc(local: datetime, zone_name: str) -> datetime:
    """A naive wall time in `zone_name` -> aware UTC.

    A wall time that does not exist (spring-forward gap) maps to the instant the clocks jump
    (the first existing time after it); an ambiguous one (fall-back) to its first occurrence.
    """
    if local.tzinfo is not None:
        raise CallbackError(
            f"expected a naive local time in {zone_name}, got an aware {local.isoformat()}"
        )
    zi = zone(zone_name)
    first = local.replace(tzinfo=zi, fold=0).astimezone(UTC)
    if first.astimezone(zi).replace(tzinfo=None) == local:
        return first
    # In a gap: fold=1 reads the wall time with the offset after the jump, which lands
    # before the jump; the jump lies between the two readings. Find it to the second.
    second = local.replace(tzinfo=zi, fold=1).astimezone(UTC)
    lo, hi = sorted((int(first.timestamp()), int(second.timestamp())))
    off_lo = datetime.fromtimestamp(lo, zi).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zi).utcoffset() == off_lo:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def validate_new_callback(
    *, scope: CallbackScope, owner_agent_id: int | None, due_at: datetime, now: datetime
) -> None:
    """Refuse a callback an agent cannot have meant: no owner for an agent callback, or past."""
    if due_at.tzinfo is None:
        raise CallbackError(f"callback due_at {due_at!r} is naive; give an aware time")
    if scope is CallbackScope.AGENT and owner_agent_id is None:
        raise CallbackError("an agent-owned callback needs owner_agent_id")
    if due_at < now:
        raise CallbackError(
            f"callback due_at {due_at.isoformat()} is in the past (now {now.isoformat()})"
        )


def route(cb: CallbackFacts, now: datetime, policy: CallbackPolicy) -> Routing:
    """Who may take this callback at `now`."""
    if now < cb.due_at:
        return Routing(CallbackRoute.NOT_DUE, None, cb.due_at)
    if cb.scope is CallbackScope.AGENT and cb.owner_agent_id is not None:
        release = cb.due_at + policy.grace
        if now < release:
            return Routing(CallbackRoute.OWNER, cb.owner_agent_id, release)
    return Routing(CallbackRoute.CAMPAIGN, None, None)


def due_reminders(
    callbacks: Iterable[CallbackFacts], now: datetime, policy: CallbackPolicy
) -> list[CallbackReminder]:
    """Reminders to send at `now`: owned, not yet reminded, inside [due - before, due + grace).

    Past the grace the callback is the campaign's, so a reminder to the old owner is noise.
    """
    if policy.reminder_before <= timedelta(0):
        return []
    out: list[CallbackReminder] = []
    for cb in callbacks:
        if (
            cb.scope is not CallbackScope.AGENT
            or cb.owner_agent_id is None
            or cb.reminded_at is not None
        ):
            continue
        remind_at = cb.due_at - policy.reminder_before
        if remind_at <= now < cb.due_at + policy.grace:
            out.append(
                CallbackReminder(
                    callback_id=cb.callback_id,
                    lead_id=cb.lead_id,
                    campaign_id=cb.campaign_id,
                    agent_id=cb.owner_agent_id,
                    due_at=cb.due_at,
                    remind_at=remind_at,
                    late=now >= cb.due_at,
                )
            )
    out.sort(key=lambda r: (r.due_at, r.callback_id))
    return out


def next_wakeup(
    callbacks: Iterable[CallbackFacts], now: datetime, policy: CallbackPolicy
) -> datetime | None:
    """The next instant after `now` at which a reminder or a routing change happens.

    A driver arms one timer for it instead of polling.
    """
    best: datetime | None = None
    for cb in callbacks:
        candidates = [route(cb, now, policy).changes_at]
        if (
            policy.reminder_before > timedelta(0)
            and cb.scope is CallbackScope.AGENT
            and cb.owner_agent_id is not None
            and cb.reminded_at is None
        ):
            candidates.append(cb.due_at - policy.reminder_before)
        for c in candidates:
            if c is not None and c > now and (best is None or c < best):
                best = c
    return best
