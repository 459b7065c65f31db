"""A config agent's campaign: the config file seeds agents.campaign_id, a supervisor's move
outlives restarts until the file names another campaign (db.repositories.seed_agent_campaign),
on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import repositories as repo
from db.audit import Actor
from db.console_store import set_agent_campaign
from db.models import Agent, Campaign
from db.session import session_factory
from dialer.config import CampaignConfig

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


async def _row(sessions: repo.Sessions, login: str) -> tuple[str | None, str | None]:
    async with sessions() as s:
        a = await s.scalar(select(Agent).where(Agent.login == login))
        assert a is not None
        name = await s.scalar(select(Campaign.name).where(Campaign.id == a.campaign_id))
        return name, a.config_campaign


async def test_the_file_seeds_a_move_stands_until_the_file_changes(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    for name in ("spring", "autumn", "winter"):
        await repo.upsert_campaign(sessions, CampaignConfig(name=name, caller_id="+14155550100"))
    await repo.upsert_agent(sessions, "ann", "sip:ann@x", "Ann")

    # first start: the file's campaign is written and remembered
    assert await repo.seed_agent_campaign(sessions, "ann", "spring") == "spring"
    assert await _row(sessions, "ann") == ("spring", "spring")
    # a supervisor moves her; the next starts (same file) keep the move
    assert await set_agent_campaign(sessions, "ann", "autumn", actor=Actor("web", "sue"),
                                    action="agent.move", detail={}, now=NOW)
    for _ in range(2):
        assert await repo.seed_agent_campaign(sessions, "ann", "spring") == "autumn"
    assert await _row(sessions, "ann") == ("autumn", "spring")
    # the file now names another campaign: the file wins, and is remembered
    assert await repo.seed_agent_campaign(sessions, "ann", "winter") == "winter"
    assert await _row(sessions, "ann") == ("winter", "winter")
    # a row written before the column existed (config_campaign NULL) is seeded from the file
    async with sessions.begin() as s:
        a = await s.scalar(select(Agent).where(Agent.login == "ann"))
        assert a is not None
        a.config_campaign = None
    assert await repo.seed_agent_campaign(sessions, "ann", "spring") == "spring"
    # an unknown agent: nothing to say
    assert await repo.seed_agent_campaign(sessions, "zed", "spring") is None
