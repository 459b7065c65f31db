"""The agent state log keeps one timeline per agent even when the changes are written out of
order (two campaigns' write queues: an agent visiting another campaign for a transfer), on
real SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import AgentState
from db import repositories as repo
from db.models import AgentStateLog
from db.session import session_factory
from dialer.config import CampaignConfig

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
S = AgentState


async def _timeline(sessions: repo.Sessions, agent_id: int) -> list[tuple[object, ...]]:
    async with sessions() as s:
        rows = (await s.scalars(select(AgentStateLog).where(AgentStateLog.agent_id == agent_id)
                                .order_by(AgentStateLog.started_at))).all()
    return [(r.state, (r.started_at - T0).total_seconds(),
             None if r.ended_at is None else (r.ended_at - T0).total_seconds(), r.duration_s)
            for r in rows]


async def test_late_writes_take_their_place_in_time(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    home = await repo.upsert_campaign(sessions, CampaignConfig(name="close",
                                                               caller_id="+14155550100"))
    away = await repo.upsert_campaign(sessions, CampaignConfig(name="mem",
                                                               caller_id="+14155550100"))
    agent = await repo.upsert_agent(sessions, "cal", "sip:cal@x", "Cal")
    # what happened (seconds after T0), and one order the two queues may write it in
    changes = [(0, home.id, S.PAUSED), (1, home.id, S.READY), (2, away.id, S.RESERVED),
               (3, away.id, S.TALKING), (4, away.id, S.WRAP_UP), (5, home.id, S.READY),
               (9, home.id, S.LOGGED_OUT), (12, home.id, S.PAUSED)]
    expected = [(S.PAUSED, 0.0, 1.0, 1.0), (S.READY, 1.0, 2.0, 1.0),
                (S.RESERVED, 2.0, 3.0, 1.0), (S.TALKING, 3.0, 4.0, 1.0),
                (S.WRAP_UP, 4.0, 5.0, 1.0), (S.READY, 5.0, 9.0, 4.0),
                (S.PAUSED, 12.0, None, None)]
    # each campaign writes its own changes in order; the two queues interleave any way
    home_q, away_q = [0, 1, 5, 6, 7], [2, 3, 4]
    orders = []
    for slots in itertools.combinations(range(8), len(away_q)):
        h, a = iter(home_q), iter(away_q)
        orders.append([next(a) if i in slots else next(h) for i in range(8)])
    assert len(orders) == 56
    for i, order in enumerate(orders):
        async with sessions.begin() as s:
            for r in (await s.scalars(select(AgentStateLog))).all():
                await s.delete(r)
        for k in order:
            sec, campaign_id, state = changes[k]
            await repo.log_agent_state(sessions, agent_id=agent.id, campaign_id=campaign_id,
                                       state=state, reason=None,
                                       at=T0 + timedelta(seconds=sec))
        assert await _timeline(sessions, agent.id) == expected, (i, order)
