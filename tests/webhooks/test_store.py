"""The webhook store on real SQLite and PostgreSQL: an event lands with its change or not at
all, once per change; per-lead order; the backoff schedule; dead letters after the retry
horizon (an injected clock); leases between two workers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import AttemptResult, CallbackScope, DialMode, LeadStatus
from db import dnc, webhook_events
from db import webhooks as wh
from db.models import Agent, Campaign, Lead, WebhookEvent
from db.repositories import RepositoryError, Sessions
from db.session import session_factory
from db.store import SqlStore

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
POLICY = wh.RetryPolicy(horizon_s=24 * 3600.0, first_backoff_s=1.0, max_backoff_s=3600.0)


async def seed(sessions: Sessions, n: int = 3) -> tuple[int, list[int], int]:
    """A campaign, `n` leads (lead i has external id "crm-i") and an agent."""
    async with sessions.begin() as s:
        c = Campaign(name="sales", caller_id="+14155550100")
        s.add(c)
        await s.flush()
        leads = [Lead(campaign_id=c.id, phone_e164=f"+1415555{i:04d}", external_id=f"crm-{i}")
                 for i in range(n)]
        agent = Agent(login="alice", sip_uri="sip:alice@127.0.0.1")
        s.add_all([*leads, agent])
        await s.flush()
        return c.id, [lead.id for lead in leads], agent.id


async def events(sessions: Sessions) -> list[WebhookEvent]:
    async with sessions() as s:
        return list((await s.scalars(select(WebhookEvent).order_by(WebhookEvent.id))).all())


async def attempt(store: SqlStore, cid: int, lead_id: int, agent_id: int | None = None) -> int:
    return await store.create_attempt(now=NOW, campaign_id=cid, lead_id=lead_id,
                                      phone_e164="+14155550000", dial_mode=DialMode.PREDICTIVE,
                                      dialer_id="d1", trunk=None, agent_id=agent_id)


async def test_a_finished_attempt_reports_once_with_no_phone_number(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    store = SqlStore(sessions)
    cid, leads, agent_id = await seed(sessions)
    aid = await attempt(store, cid, leads[0], agent_id)
    assert await store.finish_attempt(aid, result=AttemptResult.CONNECTED, ended_at=NOW,
                                      talk_s=42.0)
    # a second close (the record writer retrying, the stop closing what is open) reports none
    assert not await store.finish_attempt(aid, result=AttemptResult.LOST, ended_at=NOW)
    (ev,) = await events(sessions)
    assert (ev.event, ev.order_key, ev.key) == ("attempt.finished", f"lead:{leads[0]}",
                                                f"attempt.finished:{aid}")
    p = ev.payload
    assert p["attempt_id"] == aid and p["result"] == "connected" and p["talk_s"] == 42.0
    assert p["external_id"] == "crm-0" and p["campaign"] == "sales" and p["agent"] == "alice"
    assert "+1415555" not in str(p), "no phone number in a payload"


async def test_a_disposition_reports_status_notes_next_contact_and_callback(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    store = SqlStore(sessions)
    cid, leads, agent_id = await seed(sessions)
    aid = await attempt(store, cid, leads[1], agent_id)
    due = NOW + timedelta(days=2)
    # the record writer's order (dialer/dispositions.py): lead, callback, disposition last
    await store.update_lead(leads[1], now=NOW, callback_pending=True,
                            status=LeadStatus.HOT, next_contact_at=due)
    await store.add_callback(campaign_id=cid, lead_id=leads[1], scope=CallbackScope.AGENT,
                             owner_agent_id=agent_id, due_at=due, attempt_id=aid,
                             notes="call after lunch", created_at=NOW)
    await store.update_attempt(aid, disposition="callback", notes="call after lunch",
                               next_contact_at=due, wrapup_ended_at=NOW)
    status, saved = await events(sessions)
    assert status.event == "lead.status_changed"
    assert (status.payload["from"], status.payload["to"]) == ("potential", "hot")
    assert saved.event == "disposition.saved" and saved.order_key == f"lead:{leads[1]}"
    p = saved.payload
    assert p["disposition"] == "callback" and p["status"] == "hot"
    assert p["notes"] == "call after lunch" and p["next_contact_at"] == due.isoformat()
    assert p["callback"] == {"due_at": due.isoformat(), "scope": "agent", "agent": "alice"}
    # other attempt updates (stages, agent) report nothing
    await store.update_attempt(aid, notes="typo fixed")
    assert len(await events(sessions)) == 2


async def test_an_event_lands_with_its_change_or_not_at_all(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    store = SqlStore(sessions)
    _, leads, _ = await seed(sessions)
    # the status change and a bad owner in one transaction: the foreign key fails at commit
    with pytest.raises(RepositoryError):
        await store.update_lead(leads[0], now=NOW, status=LeadStatus.HOT,
                                owner_agent_id=999_999)
    async with sessions() as s:
        assert await s.scalar(select(Lead.status).where(Lead.id == leads[0])) \
            is LeadStatus.POTENTIAL
    assert await events(sessions) == []
    # and a hook that fails after its event was added rolls back the change with it
    before, after = webhook_events.lead_status_hooks(leads[0], NOW)

    async def failing_after(s: object, seen: object) -> None:
        await after(s, seen)  # type: ignore[arg-type]
        raise RuntimeError("crash after the event row")

    hooked = webhook_events.reporting(sessions, before, failing_after)
    async with sessions() as s:
        lead_before = await s.get(Lead, leads[0])
    assert lead_before is not None
    with pytest.raises(RuntimeError):
        from db import repositories as repo
        await repo.update_lead(hooked, leads[0], now=NOW, status=LeadStatus.HOT)
    assert await events(sessions) == []
    await store.update_lead(leads[0], now=NOW, status=LeadStatus.HOT)
    assert [e.event for e in await events(sessions)] == ["lead.status_changed"]


async def test_dnc_reports_the_number_added_and_each_lead_it_stops(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    await seed(sessions)
    async with sessions.begin() as s:  # the same number in a second campaign
        c2 = Campaign(name="renewals", caller_id="+14155550100")
        s.add(c2)
        await s.flush()
        s.add(Lead(campaign_id=c2.id, phone_e164="+14155550002", status=LeadStatus.HOT))
    r = await dnc.add(sessions, "+14155550002", now=NOW, reason="agent request", attempt_id=None)
    assert (r.added, r.leads_stopped) == (1, 2)
    evs = await events(sessions)
    assert [e.event for e in evs] == ["dnc.added", "lead.status_changed", "lead.status_changed"]
    assert {x["external_id"] for x in evs[0].payload["leads"]} == {"crm-2", None}
    assert "+1415555" not in str(evs[0].payload)
    assert sorted(e.payload["from"] for e in evs[1:]) == ["hot", "potential"]
    # again: nothing new, nothing reported
    await dnc.add(sessions, "+14155550002", now=NOW)
    assert len(await events(sessions)) == 3
    # a registry import reports the leads it stops, not each number
    await dnc.bulk_add(sessions, [("+14155550000", None), ("+14155559999", None)], now=NOW)
    assert [e.event for e in (await events(sessions))[3:]] == ["lead.status_changed"]


async def subscribe(sessions: Sessions, events_: list[str] | None = None) -> int:
    sub, secret = await wh.create_subscription(
        sessions, "http://127.0.0.1:9/x", events_ or list(wh.EVENTS), created_by="crm", now=NOW)
    assert secret.startswith("whsec_")
    return sub.id


async def status_events(sessions: Sessions, lead_ids: list[int]) -> None:
    """One lead.status_changed per lead id given, in that order."""
    async with sessions.begin() as s:
        for lead_id in lead_ids:
            await webhook_events.emit_status_change(s, lead_id, LeadStatus.POTENTIAL,
                                                    LeadStatus.HOT, NOW)


async def test_deliveries_of_a_lead_go_one_at_a_time_in_order(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    _, (a, b, _c), _ = await seed(sessions)
    await subscribe(sessions)
    await subscribe(sessions, ["dnc.added"])  # wants none of these
    await status_events(sessions, [a, a, b, a])
    assert await wh.fan_out(sessions, now=NOW, policy=POLICY) == 4
    e1, e2, e3, e4 = [e.id for e in await events(sessions)]
    first = await wh.claim(sessions, now=NOW, holder="w1", lease_s=40)
    assert [(c.order_key, c.event_id) for c in first] == [(f"lead:{a}", e1), (f"lead:{b}", e3)]
    await wh.mark_delivered(sessions, first[1].id, now=NOW)
    # a's second event waits while the first is in flight
    assert await wh.claim(sessions, now=NOW, holder="w1", lease_s=40) == []
    await wh.mark_delivered(sessions, first[0].id, now=NOW)
    (second,) = await wh.claim(sessions, now=NOW, holder="w1", lease_s=40)
    assert second.event_id == e2
    # a failure holds the lead's later events until its retry...
    assert not await wh.mark_failed(sessions, second.id, now=NOW, error="HTTP 500",
                                    policy=POLICY)
    assert await wh.claim(sessions, now=NOW, holder="w1", lease_s=40) == []
    (retry,) = await wh.claim(sessions, now=NOW + timedelta(minutes=5), holder="w1",
                              lease_s=40)
    assert retry.event_id == e2 and retry.attempts == 1
    # ...succeeds, or it dies
    later = NOW + timedelta(hours=25)
    assert await wh.mark_failed(sessions, second.id, now=later, error="HTTP 500", policy=POLICY)
    (fourth,) = await wh.claim(sessions, now=later, holder="w1", lease_s=40)
    assert fourth.event_id == e4


async def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    p = wh.RetryPolicy(first_backoff_s=1.0, max_backoff_s=3600.0, jitter=0.5)
    for n, base in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0), (12, 2048.0), (13, 3600.0),
                    (40, 3600.0)]:
        for _ in range(20):
            assert base * 0.5 <= p.backoff_s(n, rng) <= base
    # how many attempts 24 h holds: about 12 ramping up, then one an hour
    t, n = 0.0, 0
    while t < 24 * 3600:
        n += 1
        t += wh.RetryPolicy(jitter=0.0).backoff_s(n)
    assert 30 <= n <= 40


async def test_a_delivery_dies_after_the_retry_horizon_and_can_be_requeued(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    _, (a, *_), _ = await seed(sessions)
    await subscribe(sessions)
    await status_events(sessions, [a])
    await wh.fan_out(sessions, now=NOW, policy=POLICY)
    rng = random.Random(1)
    clock = NOW
    tries = 0
    while True:
        (c,) = await wh.claim(sessions, now=clock, holder="w", lease_s=40)
        tries += 1
        if await wh.mark_failed(sessions, c.id, now=clock, error="HTTP 503", policy=POLICY,
                                rng=rng):
            break
        # not due before its backoff ends
        assert await wh.claim(sessions, now=clock + timedelta(milliseconds=400), holder="w",
                              lease_s=40) == [] or tries == 1
        async with sessions() as s:
            from db.models import WebhookDelivery
            due = await s.scalar(select(WebhookDelivery.next_attempt_at)
                                 .where(WebhookDelivery.id == c.id))
        assert due is not None and due > clock
        clock = due
    assert clock >= NOW + timedelta(hours=24), "retried for at least 24 h"
    assert 20 <= tries <= 60
    (dead,) = await wh.dead_letters(sessions)
    assert dead.attempts == tries and dead.last_error == "HTTP 503"
    assert dead.event == "lead.status_changed" and dead.payload["lead_id"] == a
    b = await wh.backlog(sessions)
    assert (b.pending, b.dead) == (0, 1)
    assert await wh.requeue(sessions, dead.id, now=clock, policy=POLICY)
    assert not await wh.requeue(sessions, dead.id, now=clock, policy=POLICY)  # not dead now
    (again,) = await wh.claim(sessions, now=clock, holder="w", lease_s=40)
    assert again.uid == dead.delivery_id, "the same delivery id: receivers dedupe"
    assert await wh.dead_letters(sessions) == []


async def test_a_lease_keeps_a_delivery_from_a_second_worker_until_it_expires(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    _, leads, _ = await seed(sessions)
    await subscribe(sessions)
    await status_events(sessions, leads)
    await wh.fan_out(sessions, now=NOW, policy=POLICY)
    one = await wh.claim(sessions, now=NOW, holder="w1", lease_s=40, limit=2)
    two = await wh.claim(sessions, now=NOW, holder="w2", lease_s=60)
    assert len(one) == 2 and len(two) == 1
    assert not {c.id for c in one} & {c.id for c in two}
    # w1 died: after its lease another worker takes its deliveries
    three = await wh.claim(sessions, now=NOW + timedelta(seconds=41), holder="w2", lease_s=40)
    assert {c.id for c in three} == {c.id for c in one}
    # w2 restarts: what it had in flight is due at once
    assert await wh.release_leases(sessions, holder="w2") == 3
    assert len(await wh.claim(sessions, now=NOW + timedelta(seconds=42), holder="w2",
                              lease_s=40)) == 3


async def test_subscriptions_are_checked_listed_and_deleted(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    _, (a, *_), _ = await seed(sessions)
    with pytest.raises(ValueError):
        await wh.create_subscription(sessions, "ftp://x", ["dnc.added"], created_by="t",
                                     now=NOW)
    with pytest.raises(ValueError):
        await wh.create_subscription(sessions, "http://x", ["lead.deleted"], created_by="t",
                                     now=NOW)
    sid = await subscribe(sessions)
    assert [s.id for s in await wh.subscriptions(sessions)] == [sid]
    await status_events(sessions, [a])
    await wh.fan_out(sessions, now=NOW, policy=POLICY)
    assert await wh.delete_subscription(sessions, sid)
    assert not await wh.delete_subscription(sessions, sid)
    assert await wh.claim(sessions, now=NOW, holder="w", lease_s=40) == []
    # delivered rows are pruned after the keep time; the event with them
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    await wh.prune(sessions, before=datetime.now(UTC) + timedelta(seconds=1))
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookEvent)) == 0


async def test_an_erased_lead_leaves_no_event_behind(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    _, (a, b, _c), _ = await seed(sessions)
    await subscribe(sessions)
    await status_events(sessions, [a, b, a])
    await wh.fan_out(sessions, now=NOW, policy=POLICY)
    async with sessions.begin() as s:
        assert await webhook_events.forget_lead(s, a) == 2
    assert [e.lead_id for e in await events(sessions)] == [b]
    assert [c.order_key for c in await wh.claim(sessions, now=NOW, holder="w",
                                                lease_s=40)] == [f"lead:{b}"]


async def test_attempts_a_crash_left_open_are_reported_lost_at_the_next_start(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    store = SqlStore(sessions)
    cid, leads, _ = await seed(sessions)
    open_ids = [await attempt(store, cid, lead) for lead in leads[:2]]
    assert await store.close_orphaned_attempts(dialer_id="d1", now=NOW) == 2
    evs = await events(sessions)
    assert [(e.event, e.payload["attempt_id"], e.payload["result"]) for e in evs] == [
        ("attempt.finished", i, "lost") for i in open_ids]
    assert await store.close_orphaned_attempts(dialer_id="d1", now=NOW) == 0
    assert len(await events(sessions)) == 2
