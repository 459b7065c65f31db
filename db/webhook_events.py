"""Outcome webhooks' events: what writes the outbox (`webhook_events`), in the transaction
of the change it reports (docs/webhooks.md, "How it works").

`emit` adds an event row to an open session. `reporting(sessions, before, after)` wraps a
session factory so an existing repository write (`db.repositories.finish_attempt`,
`update_attempt`, `update_lead`, `close_orphaned_attempts`) runs as it is, with `before(s)`
first and `after(s, before's result)` last inside its own transaction: the change and its
event commit together or not at all (db/store.py uses the `*_hooks` pairs below; db/dnc.py
calls `report_dnc`). Payloads name leads by ids, never by phone number.

The delivery side (subscriptions, fan-out, claims, retries) is db/webhooks.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.vocabulary import AttemptStage, LeadStatus
from db.bulk import insert_ignoring_conflicts
from db.models import Agent, Attempt, Callback, Campaign, Lead, WebhookDelivery, WebhookEvent
from db.repositories import Sessions, translated
from db.types import utcnow

#: every event a subscription may ask for
EVENTS = ("attempt.finished", "disposition.saved", "lead.status_changed", "dnc.added",
          "campaign.paused")

_EVENTS_TABLE = cast(Table, WebhookEvent.__table__)

#: (before, after) of `reporting`: run first and last in the reported write's transaction
Hooks = tuple[Callable[[AsyncSession], Awaitable[Any]],
              Callable[[AsyncSession, Any], Awaitable[None]]]


def emit(session: AsyncSession, event: str, payload: dict[str, Any], *, order_key: str,
         lead_id: int | None = None, key: str | None = None) -> Awaitable[Any]:
    """Add an event to the outbox in `session`'s open transaction (awaited by the caller).

    With a `key`, a second event of the same key is ignored: a write that is applied again
    (the record writer retries after an outage) reports its change once."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; known: {EVENTS}")
    row = {"event": event, "key": key, "order_key": order_key, "lead_id": lead_id,
           "payload": payload, "fanned_out": False, "created_at": utcnow()}
    if key is None:
        return session.execute(_EVENTS_TABLE.insert().values(**row))
    return session.execute(insert_ignoring_conflicts(session, _EVENTS_TABLE, ["key"])
                           .values(**row))


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


async def lead_ref(s: AsyncSession, lead_id: int) -> dict[str, Any]:
    """What identifies a lead to the CRM: its ids and campaign (never its phone number)."""
    row = (await s.execute(
        select(Lead.id, Lead.external_id, Lead.campaign_id, Campaign.name, Lead.status)
        .join(Campaign, Campaign.id == Lead.campaign_id).where(Lead.id == lead_id))
    ).one_or_none()
    if row is None:  # never blocks the change it reports
        return {"lead_id": lead_id, "external_id": None, "campaign_id": None,
                "campaign": None, "status": None}
    return {"lead_id": row[0], "external_id": row[1], "campaign_id": row[2],
            "campaign": row[3], "status": LeadStatus(row[4]).value}


class _Hooked:
    """A session factory whose `begin()` transactions run `before(s)` first and
    `after(s, before_result)` last, inside the same transaction (see `reporting`)."""

    def __init__(self, sessions: Sessions, before: Callable[[AsyncSession], Awaitable[Any]],
                 after: Callable[[AsyncSession, Any], Awaitable[None]]) -> None:
        self._sessions, self._before, self._after = sessions, before, after

    def __call__(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions.begin() as s:
            seen = await self._before(s)
            yield s
            await self._after(s, seen)


def reporting(sessions: Sessions, before: Callable[[AsyncSession], Awaitable[Any]],
              after: Callable[[AsyncSession, Any], Awaitable[None]]) -> Sessions:
    """`sessions` for a repository write whose transaction also writes its events."""
    return cast(Sessions, _Hooked(sessions, before, after))


def finished_attempt_hooks(attempt_id: int) -> Hooks:
    """attempt.finished, when the write closed the attempt (an already closed one: none)."""

    async def before(s: AsyncSession) -> object:
        return await s.scalar(select(Attempt.ended_at).where(Attempt.id == attempt_id))

    async def after(s: AsyncSession, ended_before: object) -> None:
        if ended_before is None:
            await emit_finished(s, attempt_id)

    return before, after


def orphaned_attempts_hooks(dialer_id: str) -> Hooks:
    """attempt.finished (result `lost`) for each attempt a crashed run left open, closed at
    the next start (db.repositories.close_orphaned_attempts)."""

    async def before(s: AsyncSession) -> list[int]:
        return list((await s.scalars(select(Attempt.id).where(
            Attempt.dialer_id == dialer_id, Attempt.stage != AttemptStage.ENDED)
            .order_by(Attempt.id))).all())

    async def after(s: AsyncSession, ids: list[int]) -> None:
        for attempt_id in ids:
            await emit_finished(s, attempt_id)

    return before, after


async def emit_finished(s: AsyncSession, attempt_id: int) -> None:
    """attempt.finished of a closed attempt (once per attempt: keyed by its id)."""
    row = (await s.execute(
        select(Attempt, Agent.login).outerjoin(Agent, Agent.id == Attempt.agent_id)
        .where(Attempt.id == attempt_id).execution_options(populate_existing=True)
    )).one_or_none()
    if row is None or row[0].result is None:
        return
    a, login = row
    payload = {**await lead_ref(s, a.lead_id), "attempt_id": a.id,
               "result": a.result.value, "sip_code": a.sip_code,
               "created_at": _iso(a.created_at), "answered_at": _iso(a.answered_at),
               "ended_at": _iso(a.ended_at), "ring_s": a.ring_s, "talk_s": a.talk_s,
               "agent": login, "abandoned": a.abandoned}
    await emit(s, "attempt.finished", payload, order_key=f"lead:{a.lead_id}",
               lead_id=a.lead_id, key=f"attempt.finished:{a.id}")


def disposition_hooks(attempt_id: int) -> Hooks:
    """disposition.saved: the attempt's disposition with the lead's status, notes, next
    contact and the callback booked by it (written before it by the record writer)."""

    async def before(s: AsyncSession) -> None:
        return None

    async def after(s: AsyncSession, _: object) -> None:
        row = (await s.execute(
            select(Attempt, Agent.login).outerjoin(Agent, Agent.id == Attempt.agent_id)
            .where(Attempt.id == attempt_id).execution_options(populate_existing=True)
        )).one_or_none()
        if row is None or row[0].disposition is None:
            return
        a, login = row
        cb = (await s.execute(
            select(Callback.due_at, Callback.scope, Agent.login)
            .outerjoin(Agent, Agent.id == Callback.owner_agent_id)
            .where(Callback.attempt_id == attempt_id).order_by(Callback.id.desc()).limit(1)
        )).one_or_none()
        callback = None if cb is None else {
            "due_at": _iso(cb[0]), "scope": getattr(cb[1], "value", cb[1]), "agent": cb[2]}
        payload = {**await lead_ref(s, a.lead_id), "attempt_id": a.id,
                   "disposition": a.disposition, "notes": a.notes,
                   "next_contact_at": _iso(a.next_contact_at), "callback": callback,
                   "agent": login, "at": _iso(a.wrapup_ended_at)}
        await emit(s, "disposition.saved", payload, order_key=f"lead:{a.lead_id}",
                   lead_id=a.lead_id, key=f"disposition.saved:{a.id}")

    return before, after


def lead_status_hooks(lead_id: int, at: datetime) -> Hooks:
    """lead.status_changed, when the write changed the lead's status."""

    async def before(s: AsyncSession) -> object:
        return await s.scalar(select(Lead.status).where(Lead.id == lead_id))

    async def after(s: AsyncSession, old: object) -> None:
        lead = await s.get(Lead, lead_id)  # the write's own (modified) instance
        if lead is None or old is None or lead.status == old:
            return
        await s.flush()
        await emit_status_change(s, lead_id, LeadStatus(cast(str, old)), lead.status, at)

    return before, after


async def emit_status_change(s: AsyncSession, lead_id: int, old: LeadStatus | str,
                             new: LeadStatus | str, at: datetime) -> None:
    payload = {**await lead_ref(s, lead_id), "from": LeadStatus(old).value,
               "to": LeadStatus(new).value, "at": _iso(at)}
    await emit(s, "lead.status_changed", payload, order_key=f"lead:{lead_id}", lead_id=lead_id)


async def report_dnc(s: AsyncSession, added: Sequence[str], stopped: dict[int, Any], *,
                     source: str, reason: dict[str, str | None], attempt_id: int | None,
                     at: datetime) -> None:
    """db/dnc.py's events, in its transaction: `dnc.added` for each number it added one at a
    time (a registry import reports only the leads it stops: not millions of numbers), then
    `lead.status_changed` for each lead it stopped (`stopped`: lead id -> status before).
    The number itself is not sent: the leads it stopped identify it to the CRM."""
    for number in added:
        leads = (await s.execute(
            select(Lead.id, Lead.external_id, Lead.campaign_id)
            .where(Lead.phone_e164 == number).order_by(Lead.id))).all()
        await emit(s, "dnc.added", {
            "source": source, "reason": reason.get(number), "attempt_id": attempt_id,
            "at": _iso(at), "leads": [{"lead_id": i, "external_id": x, "campaign_id": c}
                                      for i, x, c in leads]}, order_key="dnc")
    for lead_id, old in stopped.items():
        await emit_status_change(s, lead_id, old, LeadStatus.DNC, at)


async def forget_lead(s: AsyncSession, lead_id: int) -> int:
    """In an erasure's transaction (GDPR): drop the lead's events and their deliveries,
    pending or dead, so no payload of the person (notes) outlives the erasure. Returns how
    many events were dropped."""
    ids = select(WebhookEvent.id).where(WebhookEvent.lead_id == lead_id).scalar_subquery()
    await s.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(ids))
                    .execution_options(synchronize_session=False))
    res = await s.execute(delete(WebhookEvent).where(WebhookEvent.lead_id == lead_id)
                          .execution_options(synchronize_session=False))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


@translated
async def campaign_paused(sessions: Sessions, campaign_id: int, reason: str,
                          at: datetime) -> None:
    """campaign.paused: the dialer stopped dialing a campaign by a rule (reason
    "trunk_down" or "calendar_closed"); a runtime state with no row of its own to change, so
    the event is the transaction's only write."""
    async with sessions.begin() as s:
        name = await s.scalar(select(Campaign.name).where(Campaign.id == campaign_id))
        await emit(s, "campaign.paused", {"campaign_id": campaign_id, "campaign": name,
                                          "reason": reason, "at": _iso(at)},
                   order_key=f"campaign:{campaign_id}")
