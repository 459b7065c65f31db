"""Repositories and the SqlStore on real SQLite and PostgreSQL: atomic hopper claims, attempts,
abandon figures, the store's reads, and driver errors translated at the boundary."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import (
    AgentState,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DialMode,
    LeadStatus,
)
from db import repositories as repo
from db.models import Attempt, Campaign, Lead
from db.repositories import RepositoryError
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.config import CampaignConfig

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


async def test_claim_one_lead_for_a_manual_call(db_engine: AsyncEngine) -> None:
    """A manual call claims its lead whatever its due time, never one a hopper holds, only
    of its campaign, and may give it the typed number in the same statement."""
    cid = await _seed(db_engine, 2)
    sessions = session_factory(db_engine)
    ttl = timedelta(minutes=5)
    (held,) = await repo.claim_leads(sessions, campaign_id=cid, now=NOW, limit=1, holder="a",
                                     ttl=ttl)
    assert await repo.claim_lead(sessions, lead_id=held.id, campaign_id=cid, now=NOW,
                                 holder="b", ttl=ttl) is None
    async with sessions() as s:
        later = (await s.scalars(select(Lead).where(Lead.phone_e164 == "+14155559991"))).one()
    assert await repo.claim_lead(sessions, lead_id=later.id, campaign_id=cid + 1, now=NOW,
                                 holder="b", ttl=ttl) is None
    got = await repo.claim_lead(sessions, lead_id=later.id, campaign_id=cid, now=NOW,
                                holder="b", ttl=timedelta(hours=3), phone_e164="+14155550199")
    assert got is not None and got.claimed_by == "b" and got.phone_e164 == "+14155550199"
    again = await repo.claim_leads(sessions, campaign_id=cid, now=NOW + timedelta(hours=2),
                                   limit=50, holder="c", ttl=ttl)
    assert later.id not in {r.id for r in again}  # held by the manual call


async def test_an_outcome_keeps_the_lead_out_of_the_hopper_until_it_is_recomputed(
    db_engine: AsyncEngine,
) -> None:
    """The claim is released with the outcome, but the lead's old "due now" time must not let
    a concurrent refill claim (and dial) the person again before the callability refresh."""
    cid = await _seed(db_engine, 1)
    sessions = session_factory(db_engine)
    (lead,) = await repo.claim_leads(sessions, campaign_id=cid, now=NOW, limit=1, holder="a",
                                     ttl=timedelta(minutes=5))
    await repo.update_lead(sessions, lead.id, now=NOW, status=LeadStatus.SERVED)
    assert await repo.claim_leads(sessions, campaign_id=cid, now=NOW, limit=5, holder="b",
                                  ttl=timedelta(minutes=5)) == []
    async with sessions() as s:
        row = await s.get(Lead, lead.id)
        assert row is not None and row.claimed_by is None and row.next_call_at is None


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


async def test_store_reads_on_every_backend(db_engine: AsyncEngine) -> None:
    """db.store.SqlStore: the runtime's and the app's reads, as typed values."""
    cid = await _seed(db_engine, 3)
    store = SqlStore(session_factory(db_engine))
    ids = await store.claim_leads(campaign_id=cid, now=NOW, limit=3, holder="d1",
                                  ttl=timedelta(minutes=5))
    assert len(ids) == 3
    agent = await store.upsert_agent("ann", "sip:ann@127.0.0.1", "Ann")
    assert await store.agent_login(agent.id) == "ann"
    await store.add_callback(campaign_id=cid, lead_id=ids[0], scope=CallbackScope.AGENT,
                             owner_agent_id=agent.id, due_at=NOW, attempt_id=None, notes=None,
                             created_at=NOW)
    hopper = await store.hopper_leads(list(reversed(ids)))
    assert [h.id for h in hopper] == list(reversed(ids))  # in the order asked for
    owned = next(h for h in hopper if h.id == ids[0])
    assert (owned.callback_owner, owned.callback_due_at) == ("ann", NOW)
    attempt = await store.create_attempt(
        now=NOW, campaign_id=cid, lead_id=ids[0], phone_e164=hopper[-1].phone_e164,
        dial_mode=DialMode.PREDICTIVE, dialer_id="d1", trunk=None, agent_id=agent.id)
    await store.update_attempt(attempt, answered_at=NOW)
    assert await store.finish_attempt(attempt, result=AttemptResult.CONNECTED, ended_at=NOW,
                                      talk_s=30.0)
    card = await store.lead_card(ids[0])
    assert card is not None and card.phone_e164 == await store.lead_phone(ids[0])
    (entry,) = await store.lead_history(ids[0])
    assert (entry.attempt_id, entry.result, entry.agent) == (attempt, AttemptResult.CONNECTED,
                                                              "ann")
    assert await store.lead_history(ids[0], exclude_attempt_id=attempt) == []
    assert await store.answered_outcomes(cid, NOW - timedelta(days=1)) == [
        (NOW, AttemptResult.CONNECTED)]
    (outcome,) = await store.recent_outcomes(cid, NOW - timedelta(days=1))
    assert outcome.result is AttemptResult.CONNECTED and outcome.talk_s == 30.0
    # the seed's 3 due leads (claimed, but still due and dialable); not the held-back ones
    assert (await store.callable_counts([cid], NOW))[cid] == 3
    assert [c.id for c in await store.campaigns()] == [cid]
    # who held the call when (db.handlers): a retried write adds nothing
    later = NOW + timedelta(seconds=30)
    for _ in range(2):
        await store.hand_over(attempt, agent.id, NOW, "answered")
    bob = await store.upsert_agent("bob", "sip:bob@127.0.0.1", "Bob")
    await store.hand_over(attempt, bob.id, later, "transfer_warm")
    await store.close_handlers(attempt, later + timedelta(seconds=60))
    assert [(h.agent_id, h.how, h.from_at, h.to_at) for h in await store.handlers_of(attempt)] \
        == [(agent.id, "answered", NOW, later),
            (bob.id, "transfer_warm", later, later + timedelta(seconds=60))]


async def test_every_store_operation_translates_driver_errors(tmp_path: Path) -> None:
    """The boundary promise of db/repositories.py: any SQLAlchemy/driver error comes out as
    RepositoryError naming the operation (here: a database without the schema)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    sessions = session_factory(engine)
    store = SqlStore(sessions)
    ttl = timedelta(minutes=1)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "close_orphaned_attempts": lambda: store.close_orphaned_attempts(dialer_id="d", now=NOW),
        "upsert_campaign": lambda: store.upsert_campaign(
            CampaignConfig(name="c", caller_id="+14155550100")),
        "upsert_agent": lambda: store.upsert_agent("a", "sip:a@h", "A"),
        "seed_agent_campaign": lambda: store.seed_agent_campaign("a", "c"),
        "campaigns": store.campaigns,
        "agent_login": lambda: store.agent_login(1),
        "callable_counts": lambda: store.callable_counts([1], NOW),
        "recent_outcomes": lambda: store.recent_outcomes(1, NOW),
        "answered_outcomes": lambda: store.answered_outcomes(1, NOW),
        "claim_leads": lambda: store.claim_leads(campaign_id=1, now=NOW, limit=1, holder="d",
                                                 ttl=ttl),
        "hopper_leads": lambda: store.hopper_leads([1]),
        "renew_claims": lambda: store.renew_claims(holder="d", lead_ids=[1], now=NOW, ttl=ttl),
        "release_claims": lambda: store.release_claims(holder="d", lead_ids=[1]),
        "claim_lead": lambda: store.claim_lead(lead_id=1, campaign_id=1, now=NOW, holder="d",
                                               ttl=timedelta(minutes=5)),
        "create_attempt": lambda: store.create_attempt(
            now=NOW, campaign_id=1, lead_id=1, phone_e164="+14155550100",
            dial_mode=DialMode.PREDICTIVE, dialer_id="d", trunk=None, agent_id=None),
        "update_attempt": lambda: store.update_attempt(1, notes="x"),
        "finish_attempt": lambda: store.finish_attempt(1, result=AttemptResult.FAILED,
                                                       ended_at=NOW),
        "update_lead": lambda: store.update_lead(1, now=NOW, notes="x"),
        "add_callback": lambda: store.add_callback(
            campaign_id=1, lead_id=1, scope=CallbackScope.CAMPAIGN, owner_agent_id=None,
            due_at=NOW, attempt_id=None, notes=None, created_at=NOW),
        "lead_phone": lambda: store.lead_phone(1),
        "add_dnc": lambda: store.add_dnc("+14155550100", now=NOW, reason="r", attempt_id=None),
        "is_dnc": lambda: store.is_dnc("+14155550100"),
        "log_agent_state": lambda: store.log_agent_state(
            agent_id=1, campaign_id=None, state=AgentState.READY, reason=None, at=NOW),
        "lead_card": lambda: store.lead_card(1),
        "lead_history": lambda: store.lead_history(1),
        "hold_for_outcome": lambda: store.hold_for_outcome([1]),
        "hold_orphaned_outcomes": lambda: store.hold_orphaned_outcomes(dialer_id="d"),
        "open_outcomes": lambda: store.open_outcomes(campaign_id=1),
        "attempt_outcome": lambda: store.attempt_outcome(1),
        "release_outcome": lambda: store.release_outcome(1),
        "last_agent_states": lambda: store.last_agent_states(1),
        "hand_over": lambda: store.hand_over(1, 1, NOW, "answered"),
        "close_handlers": lambda: store.close_handlers(1, NOW),
        "handlers_of": lambda: store.handlers_of(1),
        # repository functions the store does not wrap
        "expire_claims": lambda: repo.expire_claims(sessions, now=NOW),
        "campaign_by_name": lambda: repo.campaign_by_name(sessions, "c"),
        "attempt_counts": lambda: repo.attempt_counts(sessions, 1),
        "abandon_figures": lambda: repo.abandon_figures(sessions, 1, NOW),
    }
    public = {n for n, f in vars(SqlStore).items()
              if inspect.iscoroutinefunction(f) and not n.startswith("_")}
    assert public <= set(calls), f"add the new store operations here: {public - set(calls)}"
    try:
        for name, call in calls.items():
            with pytest.raises(RepositoryError) as err:
                await call()
            assert isinstance(err.value.__cause__, SQLAlchemyError), name
            # a store method made of several operations names the one that failed
            inner = {"add_dnc": "dnc add", "is_dnc": "dnc lookup",
                     "hold_orphaned_outcomes": "unheld_connected_attempts"}
            assert err.value.operation in (name, inner.get(name)), (name, err.value.operation)
    finally:
        await engine.dispose()
