"""Several dialers starting together on a fresh database upsert the same campaign and agents
at the same moment: every one of them succeeds (one inserts, the others update), on real
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import repositories as repo
from db.models import Agent, Campaign
from db.session import session_factory
from dialer.config import CampaignConfig


async def test_concurrent_upserts_of_one_campaign_and_agent_all_succeed(
        db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    cfg = CampaignConfig(name="spring", caller_id="+14155550100")
    for _ in range(3):  # a few rounds: the collision depends on timing
        got = await asyncio.gather(*(repo.upsert_campaign(sessions, cfg) for _ in range(3)),
                                   *(repo.upsert_agent(sessions, "ann", "sip:ann@x", "Ann")
                                     for _ in range(3)))
        assert len({c.id for c in got[:3]}) == 1 and len({a.id for a in got[3:]}) == 1
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Campaign)) == 1
        assert await s.scalar(select(func.count()).select_from(Agent)) == 1
