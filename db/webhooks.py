"""Outcome webhooks' store, the delivery side: subscriptions, fan-out, claims, retries and
dead letters (docs/webhooks.md). What writes the outbox (`webhook_events`), in the
transaction of the change it reports, is db/webhook_events.py; the outbox is the truth.

Fan-out happens at delivery time, not at write time: the write path only INSERTs one event
row (it never reads the subscriptions, which the API may change at any moment), and the
worker's `fan_out` makes one `webhook_deliveries` row per matching active subscription. A
subscription therefore receives the events fanned out after it was created. Each delivery
keeps its own retry state, so a receiver that is down holds back nobody else.

Order: deliveries of one subscription that share an `order_key` ("lead:<id>": every event of
a lead) go out one at a time in event order: `claim` never hands out a delivery while an
earlier one of the same key is still pending (in flight or waiting for its retry); a
delivered or dead one no longer holds the key.

Several dialer processes may run the worker on one PostgreSQL database: `fan_out` and
`claim` lock the rows they take with FOR UPDATE SKIP LOCKED, and a claimed delivery carries a
lease (`lease_until`, `leased_by`); another worker takes it only once the lease has run out
(its holder died). SQLite has one writer at a time, so the same statements are atomic there.

Errors: like db.repositories, functions raise `RepositoryError` for database errors.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from db import audit
from db.audit import Actor
from db.models import WebhookDelivery, WebhookEvent, WebhookSubscription
from db.repositories import Sessions, translated
from db.webhook_events import EVENTS

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


# ------------------------------------------------------------------ retry policy
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter until the retry horizon.

    The n-th failed attempt waits `first_backoff_s * 2**(n-1)`, capped at `max_backoff_s`,
    times a random factor in [1 - jitter, 1] (spreads a receiver's recovery load). A failure
    at or after `give_up_at` (created + `horizon_s`) makes the delivery a dead letter."""

    horizon_s: float = 24 * 3600.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 3600.0
    jitter: float = 0.5

    def backoff_s(self, failures: int, rng: random.Random | None = None) -> float:
        base = min(self.max_backoff_s, self.first_backoff_s * 2.0 ** max(0, failures - 1))
        r = (rng or random).random()
        return base * (1.0 - self.jitter * r)


# ------------------------------------------------------------------ subscriptions
@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: datetime


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def check_events(events: Sequence[str]) -> list[str]:
    bad = [e for e in events if e not in EVENTS]
    if bad or not events:
        raise ValueError(f"events must be a non-empty list of {list(EVENTS)}; got {list(events)}")
    return sorted(set(events))


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) > 2000 or " " in url:
        raise ValueError("url must be an http:// or https:// URL of at most 2000 characters")
    return url


def _sub(r: WebhookSubscription) -> Subscription:
    return Subscription(r.id, r.url, list(r.events), r.active, r.created_by, r.created_at)


@translated
async def create_subscription(sessions: Sessions, url: str, events: Sequence[str], *,
                              created_by: str, now: datetime, secret: str | None = None,
                              actor: Actor | None = None) -> tuple[Subscription, str]:
    """A new subscription and its secret (the only time the secret is returned); audited
    (`webhook.create`, no URL: it may hold a token) in the same transaction."""
    secret = secret or new_secret()
    async with sessions.begin() as s:
        row = WebhookSubscription(url=check_url(url), events=check_events(events),
                                  secret=secret, active=True, created_by=created_by[:100],
                                  created_at=now)
        s.add(row)
        await s.flush()
        if actor is not None:
            audit.add_entry(s, actor, "webhook.create", f"webhook:{row.id}",
                            {"events": list(row.events)}, now=now)
        return _sub(row), secret


@translated
async def subscriptions(sessions: Sessions) -> list[Subscription]:
    async with sessions() as s:
        rows = await s.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
        return [_sub(r) for r in rows]


@translated
async def update_subscription(sessions: Sessions, subscription_id: int, *, now: datetime,
                              url: str | None = None, events: Sequence[str] | None = None,
                              active: bool | None = None,
                              actor: Actor | None = None) -> Subscription | None:
    """Change a subscription's URL, events or `active` (None: leave it); None if there is no
    such subscription. Its pending deliveries go to the new URL at their next try; a new
    event list applies to the events fanned out from now on. An inactive subscription gets
    no new deliveries and its pending ones are held (not tried, not dead) until it is
    active again. Audited (`webhook.update`, the names of the fields changed; never the
    URL) in the same transaction when something changed."""
    async with sessions.begin() as s:
        row = await s.get(WebhookSubscription, subscription_id, with_for_update=True)
        if row is None:
            return None
        changed: dict[str, Any] = {}
        if url is not None and check_url(url) != row.url:
            row.url = url
            changed["url"] = "changed"
        if events is not None:
            wanted = check_events(events)
            if wanted != sorted(row.events):
                row.events = wanted
                changed["events"] = wanted
        if active is not None and active != row.active:
            row.active = active
            changed["active"] = active
        await s.flush()
        if changed and actor is not None:
            audit.add_entry(s, actor, "webhook.update", f"webhook:{row.id}", changed, now=now)
        return _sub(row)


@translated
async def rotate_secret(sessions: Sessions, subscription_id: int, *, now: datetime,
                        actor: Actor | None = None) -> tuple[Subscription, str] | None:
    """A new signing secret (returned: the only time it is shown); every post from now on,
    retries of older deliveries too, is signed with it. Audited (`webhook.rotate_secret`,
    without the secret)."""
    secret = new_secret()
    async with sessions.begin() as s:
        row = await s.get(WebhookSubscription, subscription_id, with_for_update=True)
        if row is None:
            return None
        row.secret = secret
        await s.flush()
        if actor is not None:
            audit.add_entry(s, actor, "webhook.rotate_secret", f"webhook:{row.id}", now=now)
        return _sub(row), secret


@translated
async def delete_subscription(sessions: Sessions, subscription_id: int, *,
                              actor: Actor | None = None, now: datetime | None = None) -> bool:
    """Delete a subscription with its deliveries (pending ones are dropped)."""
    async with sessions.begin() as s:
        await s.execute(delete(WebhookDelivery)
                        .where(WebhookDelivery.subscription_id == subscription_id))
        res = await s.execute(delete(WebhookSubscription)
                              .where(WebhookSubscription.id == subscription_id))
        gone = bool(res.rowcount)  # type: ignore[attr-defined]
        if gone and actor is not None and now is not None:
            audit.add_entry(s, actor, "webhook.delete", f"webhook:{subscription_id}", now=now)
        return gone


# ------------------------------------------------------------------ the worker's side
@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery to post now: everything the worker needs, read in the claim."""

    id: int
    uid: str
    subscription_id: int
    event_id: int
    event: str
    order_key: str
    payload: dict[str, Any]
    event_created_at: datetime
    url: str
    secret: str
    attempts: int


@translated
async def fan_out(sessions: Sessions, *, now: datetime, policy: RetryPolicy,
                  limit: int = 500) -> int:
    """Make the deliveries of events not fanned out yet (oldest first); returns how many
    events were fanned out. Events no subscription wants are only marked.

    One UPDATE ... RETURNING takes the events (atomic on SQLite, SKIP LOCKED between
    PostgreSQL workers); a read first, so an idle poll takes no write lock."""
    e = WebhookEvent
    async with sessions() as s:
        if await s.scalar(select(e.id).where(e.fanned_out.is_(False)).limit(1)) is None:
            return 0
    pick = (select(e.id).where(e.fanned_out.is_(False)).order_by(e.id).limit(limit)
            .with_for_update(skip_locked=True))
    take = (update(e).where(e.id.in_(pick.scalar_subquery())).values(fanned_out=True)
            .returning(e.id, e.event, e.order_key)
            .execution_options(synchronize_session=False))
    async with sessions.begin() as s:
        events = sorted((await s.execute(take)).all())
        if not events:
            return 0
        subs = list((await s.scalars(
            select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))).all())
        give_up = now + timedelta(seconds=policy.horizon_s)
        for event_id, event, order_key in events:
            for sub in subs:
                if event in sub.events:
                    s.add(WebhookDelivery(
                        uid=str(uuid.uuid4()), event_id=event_id, subscription_id=sub.id,
                        order_key=order_key, status=PENDING, attempts=0,
                        next_attempt_at=now, give_up_at=give_up, created_at=now))
        return len(events)


@translated
async def claim(sessions: Sessions, *, now: datetime, holder: str, lease_s: float,
                limit: int = 50) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest event first, at most one per subscription
    and order key, none behind an earlier pending one of its key (see the module doc).

    Like `fan_out`: a read first (an idle poll takes no write lock), then one
    UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING."""
    d = WebhookDelivery
    earlier = aliased(WebhookDelivery)
    due = (
        d.status == PENDING, d.next_attempt_at <= now,
        or_(d.lease_until.is_(None), d.lease_until < now),
        ~exists().where(earlier.subscription_id == d.subscription_id,
                        earlier.order_key == d.order_key, earlier.status == PENDING,
                        earlier.event_id < d.event_id),
        # an inactive subscription's deliveries are held (PATCH active=false)
        exists().where(WebhookSubscription.id == d.subscription_id,
                       WebhookSubscription.active.is_(True)),
    )
    async with sessions() as s:
        if await s.scalar(select(d.id).where(*due).limit(1)) is None:
            return []
    pick = select(d.id).where(*due).order_by(d.event_id).limit(limit) \
        .with_for_update(skip_locked=True)
    take = (update(d).where(d.id.in_(pick.scalar_subquery()))
            .values(lease_until=now + timedelta(seconds=lease_s), leased_by=holder)
            .returning(d.id).execution_options(synchronize_session=False))
    async with sessions.begin() as s:
        ids = list((await s.scalars(take)).all())
        if not ids:
            return []
        rows = (await s.execute(
            select(d.id, d.uid, d.subscription_id, d.event_id, WebhookEvent.event, d.order_key,
                   WebhookEvent.payload, WebhookEvent.created_at, WebhookSubscription.url,
                   WebhookSubscription.secret, d.attempts)
            .join(WebhookEvent, WebhookEvent.id == d.event_id)
            .join(WebhookSubscription, WebhookSubscription.id == d.subscription_id)
            .where(d.id.in_(ids)).order_by(d.event_id))).all()
    return [Claimed(*r) for r in rows]


@translated
async def mark_delivered(sessions: Sessions, delivery_id: int, *, now: datetime) -> None:
    async with sessions.begin() as s:
        await s.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                        .values(status=DELIVERED, delivered_at=now, lease_until=None,
                                leased_by=None, last_error=None,
                                attempts=WebhookDelivery.attempts + 1))


@translated
async def mark_failed(sessions: Sessions, delivery_id: int, *, now: datetime, error: str,
                      policy: RetryPolicy, rng: random.Random | None = None) -> bool:
    """Record a failed attempt: retry after the backoff, or a dead letter once past the
    retry horizon. Returns True when it became a dead letter."""
    async with sessions.begin() as s:
        row = await s.get(WebhookDelivery, delivery_id, with_for_update=True)
        if row is None or row.status != PENDING:
            return False
        row.attempts += 1
        row.last_error = error[:300]
        row.lease_until = row.leased_by = None
        if now >= row.give_up_at:
            row.status, row.dead_at = DEAD, now
            return True
        row.next_attempt_at = now + timedelta(seconds=policy.backoff_s(row.attempts, rng))
        return False


@translated
async def release_leases(sessions: Sessions, *, holder: str) -> int:
    """At start: deliveries this process was posting when it stopped are due again now."""
    async with sessions.begin() as s:
        res = await s.execute(update(WebhookDelivery)
                              .where(WebhookDelivery.leased_by == holder,
                                     WebhookDelivery.status == PENDING)
                              .values(lease_until=None, leased_by=None))
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    delivery_id: str
    subscription_id: int
    event: str
    event_id: int
    attempts: int
    last_error: str | None
    created_at: datetime
    dead_at: datetime | None
    payload: dict[str, Any]


@translated
async def dead_letters(sessions: Sessions, *, limit: int = 100,
                       subscription_id: int | None = None) -> list[DeadLetter]:
    d = WebhookDelivery
    q = (select(d.id, d.uid, d.subscription_id, WebhookEvent.event, d.event_id, d.attempts,
                d.last_error, d.created_at, d.dead_at, WebhookEvent.payload)
         .join(WebhookEvent, WebhookEvent.id == d.event_id)
         .where(d.status == DEAD).order_by(d.id.desc()).limit(max(1, min(limit, 1000))))
    if subscription_id is not None:
        q = q.where(d.subscription_id == subscription_id)
    async with sessions() as s:
        return [DeadLetter(*r) for r in (await s.execute(q)).all()]


@translated
async def requeue(sessions: Sessions, delivery_id: int, *, now: datetime,
                  policy: RetryPolicy, actor: Actor | None = None) -> bool:
    """A dead letter is pending again, due now, with a fresh retry horizon (same delivery
    id). It is delivered out of order: later events of its lead went on when it died."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=now, dead_at=None,
                    give_up_at=now + timedelta(seconds=policy.horizon_s),
                    lease_until=None, leased_by=None))
        done = bool(res.rowcount)  # type: ignore[attr-defined]
        if done and actor is not None:
            audit.add_entry(s, actor, "webhook.requeue", f"webhook_delivery:{delivery_id}",
                            now=now)
        return done


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    dead: int
    unfanned: int
    #: created_at of the oldest pending delivery's event (None: nothing pending)
    oldest_pending_at: datetime | None


@translated
async def backlog(sessions: Sessions) -> Backlog:
    d = WebhookDelivery
    async with sessions() as s:
        counts = dict((await s.execute(
            select(d.status, func.count()).where(d.status != DELIVERED).group_by(d.status)
        )).all())
        unfanned = await s.scalar(select(func.count()).select_from(WebhookEvent)
                                  .where(WebhookEvent.fanned_out.is_(False)))
        # held deliveries of an inactive subscription are not a receiver falling behind
        oldest = await s.scalar(select(func.min(WebhookEvent.created_at))
                                .join(d, d.event_id == WebhookEvent.id)
                                .join(WebhookSubscription,
                                      WebhookSubscription.id == d.subscription_id)
                                .where(d.status == PENDING,
                                       WebhookSubscription.active.is_(True)))
    return Backlog(int(counts.get(PENDING, 0)), int(counts.get(DEAD, 0)), int(unfanned or 0),
                   oldest)


@translated
async def prune(sessions: Sessions, *, before: datetime) -> int:
    """Drop delivered deliveries older than `before`, and fanned-out events older than it
    with no delivery left (dead letters stay until re-queued or their subscription goes)."""
    async with sessions.begin() as s:
        res = await s.execute(delete(WebhookDelivery).where(
            WebhookDelivery.status == DELIVERED, WebhookDelivery.delivered_at < before))
        await s.execute(delete(WebhookEvent).where(
            WebhookEvent.fanned_out.is_(True), WebhookEvent.created_at < before,
            ~exists().where(WebhookDelivery.event_id == WebhookEvent.id)))
        return int(res.rowcount or 0)  # type: ignore[attr-defined]
