"""Repositories on real SQLite and PostgreSQL: atomic hopper claims, attempts, abandon figures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import AttemptResult, AttemptStage, DialMode, LeadStatus
from db import repositories as repo
from db.models import Attempt, Campaign, Lead
from db.session import session_factory

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


async def _seed(engine: AsyncEngine, n: int) -> int:
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        c = Campaign(name="c", caller_id="+14155550100")
        s.add(c)
        await s.flush()
        for i in range(n):
            s.add(Lead(campaign_id=c.id, phone_e164=f"+1415555{i:04d}", priority=i % 3,
                       hopper_tier=2 if i % 5 else 1, next_call_at=NOW - timedelta(minutes=i)))
        # never callable, not due yet, and not dialable: none of these may be claimed
        s.add(Lead(campaign_id=c.id, phone_e164="+14155559990", next_call_at=None))
        s.add(Lead(campaign_id=c.id, phone_e164="+14155559991",
                   next_call_at=NOW + timedelta(hours=1)))
        s.add(Lead(campaign_id=c.id, phone_e164="+14155559992", next_call_at=NOW,
                   status=LeadStatus.DNC))
        return c.id


async def test_claim_orders_by_tier_priority_due(db_engine: AsyncEngine) -> None:
    cid = await _seed(db_engine, 20)
    sessions = session_factory(db_engine)
    got = await repo.claim_leads(sessions, campaign_id=cid, now=NOW, limit=50, holder="a",
                                 ttl=timedelta(minutes=5))
    assert len(got) == 20
    keys = [(lead.hopper_tier, -lead.priority, lead.next_call_at) for lead in got]
    assert keys == sorted(keys)
    # claimed leads are not handed out again until the lease expires
    again = await repo.claim_leads(sessions, campaign_id=cid, now=NOW, limit=50, holder="b",
                                   ttl=timedelta(minutes=5))
    assert again == []
    later = NOW + timedelta(minutes=6)
    assert await repo.expire_claims(sessions, now=later) == 20
    taken = await repo.claim_leads(sessions, campaign_id=cid, now=later, limit=50, holder="b",
                                   ttl=timedelta(minutes=5))
    assert len(taken) == 20  # the lead due in an hour is still not due six minutes later


async def test_concurrent_claimers_never_share_a_lead(db_engine: AsyncEngine) -> None:
    cid = await _seed(db_engine, 200)
    engines = [db_engine]
    sessions = [session_factory(e) for e in engines]

    async def claimer(name: str) -> list[int]:
        out: list[int] = []
        while True:
            rows = await repo.claim_leads(sessions[0], campaign_id=cid, now=NOW, limit=7,
                                          holder=name, ttl=timedelta(minutes=5))
            if not rows:
                return out
            out += [r.id for r in rows]

    results = await asyncio.gather(*(claimer(f"d{i}") for i in range(4)))
    flat = [i for r in results for i in r]
    assert len(flat) == len(set(flat)) == 200
    async with sessions[0]() as s:
        holders = dict((await s.execute(select(Lead.id, Lead.claimed_by))).all())
    for name, ids in zip([f"d{i}" for i in range(4)], results, strict=True):
        assert all(holders[i] == name for i in ids)


async def test_attempt_lifecycle_and_orphans(db_engine: AsyncEngine) -> None:
    cid = await _seed(db_engine, 3)
    sessions = session_factory(db_engine)
    leads = await repo.claim_leads(sessions, campaign_id=cid, now=NOW, limit=3, holder="d1",
                                   ttl=timedelta(minutes=5))
    ids = [
        await repo.create_attempt(sessions, now=NOW, campaign_id=cid, lead_id=lead.id,
                                  phone_e164=lead.phone_e164, dial_mode=DialMode.PREDICTIVE,
                                  dialer_id="d1")
        for lead in leads
    ]
    await repo.update_attempt(sessions, ids[0], stage=AttemptStage.ANSWERED, answered_at=NOW)
    assert await repo.finish_attempt(sessions, ids[0], result=AttemptResult.CONNECTED,
                                     ended_at=NOW + timedelta(seconds=60), talk_s=60.0)
    # a second close of the same attempt is refused: one final state only
    assert not await repo.finish_attempt(sessions, ids[0], result=AttemptResult.FAILED,
                                         ended_at=NOW)
    await repo.update_attempt(sessions, ids[1], answered_at=NOW)
    await repo.finish_attempt(sessions, ids[1], result=AttemptResult.ABANDONED, ended_at=NOW)
    # the third is left open, as by a crash; restart closes it as LOST and frees the claims
    assert await repo.close_orphaned_attempts(sessions, dialer_id="d1", now=NOW) == 1
    async with sessions() as s:
        rows = (await s.scalars(select(Attempt).order_by(Attempt.id))).all()
        assert [r.result for r in rows] == [AttemptResult.CONNECTED, AttemptResult.ABANDONED,
                                            AttemptResult.LOST]
        assert all(r.stage is AttemptStage.ENDED for r in rows)
        assert rows[1].abandoned and not rows[0].abandoned
        assert (await s.scalar(select(Lead.claimed_by).where(Lead.id == leads[2].id))) is None
    figs = await repo.abandon_figures(sessions, cid, since=NOW - timedelta(days=30))
    assert (figs.live, figs.abandoned) == (2, 1)
    assert await repo.attempt_counts(sessions, cid) == {"connected": 1, "abandoned": 1, "lost": 1}
