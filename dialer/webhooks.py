"""Outcome webhooks' delivery worker: an asyncio task of `dialer run` (docs/webhooks.md).

It reads the outbox (db/webhooks.py), makes each event's deliveries (one per subscription
that wants it), and POSTs each one, signed, to its subscriber. A delivery is leased while it
is posted; a 2xx marks it delivered, anything else (a non-2xx status, a timeout, a refused
connection) is retried after an exponential backoff with jitter until the retry horizon
(24 h by default), then it is a dead letter. Order: a lead's later event is posted only once
every earlier one to the same subscription was delivered or died (the store's `claim`).

At least once: a POST whose 2xx is lost (a crash between the answer and the commit, a
connection cut after the receiver committed) is posted again with the same
`X-Dialer-Delivery`; receivers dedupe by it. Nothing is lost across restarts: the outbox is
the truth, and deliveries this process had in flight when it died are due again at its next
start (`release_leases`), or when their lease runs out if another process takes over.

Nothing here logs a payload, a secret or a subscriber's URL (it may carry a token): logs
name the subscription id and the delivery id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from common.clock import SYSTEM_CLOCK, Clock
from db import webhook_events
from db import webhooks as store
from db.repositories import RepositoryError, Sessions
from dialer.metrics import WebhookMetrics

log = logging.getLogger(__name__)

#: a receiver that checks X-Dialer-Timestamp refuses older requests (replays); docs suggest it
TOLERANCE_S = 300
USER_AGENT = "dialer-webhooks/1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Dialer-Signature value: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance_s: float = TOLERANCE_S) -> bool:
    """What a receiver does (docs/webhooks.md): the signature matches and the timestamp is
    recent (a captured request replayed later is refused)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def body_of(c: store.Claimed) -> bytes:
    """The JSON body: the same bytes on every retry of a delivery."""
    return json.dumps({
        "delivery_id": c.uid, "event": c.event, "event_id": c.event_id,
        "created_at": c.event_created_at.isoformat(), "data": c.payload,
    }, separators=(",", ":"), sort_keys=True, default=str).encode()


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The `[webhooks]` section as the worker uses it (dialer.config.WebhooksSection)."""

    policy: store.RetryPolicy = field(default_factory=store.RetryPolicy)
    timeout_s: float = 10.0
    poll_interval_s: float = 0.2
    max_in_flight: int = 16
    keep_delivered: timedelta = timedelta(days=7)

    @classmethod
    def from_section(cls, s: Any) -> WorkerSettings:
        return cls(policy=store.RetryPolicy(horizon_s=s.retry_horizon_s,
                                            first_backoff_s=s.first_backoff_s,
                                            max_backoff_s=s.max_backoff_s),
                   timeout_s=s.timeout_s, poll_interval_s=s.poll_interval_s,
                   max_in_flight=s.max_in_flight,
                   keep_delivered=timedelta(days=s.keep_delivered_days))

    @property
    def lease_s(self) -> float:
        """Longer than any POST may take: another process never takes a live delivery."""
        return self.timeout_s + 30.0


class WebhookWorker:
    """`async with WebhookWorker(sessions, holder=...)`: delivers until the block ends."""

    #: how often the backlog gauges are read, and delivered rows pruned
    BACKLOG_EVERY_S = 5.0
    PRUNE_EVERY_S = 3600.0

    def __init__(self, sessions: Sessions, *, holder: str,
                 settings: WorkerSettings | None = None, metrics: WebhookMetrics | None = None,
                 clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.sessions = sessions
        self.holder = holder
        self.settings = settings or WorkerSettings()
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self._client = client
        self._own_client = client is None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failing: set[int] = set()  # subscriptions whose last POST failed
        self._backlog_at = -1e9
        self._pruned_at = -1e9
        #: POSTs by outcome in this process (tests and the bench read them)
        self.delivered = 0
        self.failed = 0
        self.dead = 0
        #: seconds from the outbox commit to the 2xx, of each delivery of this process
        self.lags_s: list[float] = []

    async def __aenter__(self) -> WebhookWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout_s, follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=self.settings.max_in_flight))
        try:
            released = await store.release_leases(self.sessions, holder=self.holder)
        except RepositoryError as e:  # the loop retries the database; so will the leases
            log.warning("webhooks: could not release this process's old leases: %s", e)
            released = 0
        if released:
            log.info("webhooks: %d deliveries in flight at the last stop are due again",
                     released)
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop claiming; POSTs in flight get `grace_s` to finish (the rest are posted again
        after the next start: at least once)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._in_flight:
            _, late = await asyncio.wait(self._in_flight, timeout=grace_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                got = await self._claim()
                await self._housekeeping()
                failures = 0
            except Exception as e:  # the database (retried), or a bug (logged, retried)
                failures += 1
                if not isinstance(e, RepositoryError):
                    log.exception("webhooks: the delivery loop failed; retrying")
                elif failures == 1:
                    log.warning("webhooks: database unavailable (%s); retrying", e.operation)
                await self._wait(min(10.0, self.settings.poll_interval_s * 2 ** failures))
                continue
            if got:
                continue  # more may be due, or a slot frees soon
            await self._wait(self.settings.poll_interval_s)

    async def _wait(self, wait_s: float) -> None:
        """Until a POST finishes (a lead's next event may be due), the stop, or `wait_s`."""
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({*self._in_flight, stop}, timeout=wait_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _claim(self) -> int:
        free = self.settings.max_in_flight - len(self._in_flight)
        now = self.clock.now()
        await store.fan_out(self.sessions, now=now, policy=self.settings.policy)
        if free <= 0:
            return 0
        claimed = await store.claim(self.sessions, now=now, holder=self.holder,
                                    lease_s=self.settings.lease_s, limit=free)
        for c in claimed:
            task = asyncio.create_task(self._deliver(c), name=f"webhook-{c.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def _housekeeping(self) -> None:
        mono = self.clock.monotonic()
        if self.metrics is not None and mono - self._backlog_at >= self.BACKLOG_EVERY_S:
            self._backlog_at = mono
            b = await store.backlog(self.sessions)
            oldest = (self.clock.now() - b.oldest_pending_at).total_seconds() \
                if b.oldest_pending_at is not None else 0.0
            self.metrics.backlog(pending=b.pending, dead=b.dead, oldest_s=oldest)
        if mono - self._pruned_at >= self.PRUNE_EVERY_S:
            self._pruned_at = mono
            n = await store.prune(self.sessions,
                                  before=self.clock.now() - self.settings.keep_delivered)
            if n:
                log.info("webhooks: pruned %d delivered deliveries", n)

    # ------------------------------------------------------------------ one POST
    async def _deliver(self, c: store.Claimed) -> None:
        try:
            error = await self._post(c)
            now = self.clock.now()
            if error is None:
                await store.mark_delivered(self.sessions, c.id, now=now)
                self._delivered(c, now)
                return
            dead = await store.mark_failed(self.sessions, c.id, now=now, error=error,
                                           policy=self.settings.policy, rng=self.rng)
        except RepositoryError as e:
            # the lease runs out and the delivery is posted again (the receiver dedupes)
            log.warning("webhooks: could not record delivery %s: %s", c.uid, e.operation)
            return
        except Exception:
            log.exception("webhooks: delivery %s failed unexpectedly; it is retried when its "
                          "lease runs out", c.uid)
            return
        self._failed(c, error, dead=dead)

    async def _post(self, c: store.Claimed) -> str | None:
        """POST the delivery; None on a 2xx, else why it failed (no URL, no body)."""
        assert self._client is not None, "started"
        body = body_of(c)
        ts = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json", "X-Dialer-Event": c.event,
            "X-Dialer-Delivery": c.uid, "X-Dialer-Timestamp": ts,
            "X-Dialer-Signature": sign(c.secret, ts, body),
        }
        try:
            resp = await self._client.post(c.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return f"timeout after {self.settings.timeout_s:.0f} s"
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {str(e)[:200]}"
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}"

    def _delivered(self, c: store.Claimed, now: datetime) -> None:
        lag = max(0.0, (now - c.event_created_at).total_seconds())
        self.delivered += 1
        self.lags_s.append(lag)
        if len(self.lags_s) > 100_000:
            del self.lags_s[:50_000]
        if self.metrics is not None:
            self.metrics.delivered(lag)
        if c.subscription_id in self._failing:
            self._failing.discard(c.subscription_id)
            log.info("webhooks: subscription %d receives again", c.subscription_id)

    def _failed(self, c: store.Claimed, error: str, *, dead: bool) -> None:
        self.failed += 1
        if self.metrics is not None:
            self.metrics.failed(dead=dead)
        if dead:
            self.dead += 1
            log.warning("webhooks: delivery %s (%s, subscription %d) is a dead letter after "
                        "%d attempts: %s", c.uid, c.event, c.subscription_id, c.attempts + 1,
                        error)
        elif c.subscription_id not in self._failing:
            self._failing.add(c.subscription_id)
            log.warning("webhooks: subscription %d failed (%s); retrying with backoff",
                        c.subscription_id, error)
        else:
            log.debug("webhooks: delivery %s failed again: %s", c.uid, error)


async def report_pause(sessions: Sessions, campaign_id: int, reason: str,
                       at: datetime) -> None:
    """`campaign.paused` (the app calls it through the campaign's record writer)."""
    await webhook_events.campaign_paused(sessions, campaign_id, reason, at)
