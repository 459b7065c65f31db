"""The audit log on real SQLite and PostgreSQL: rows land with their change or not at all,
newest first, paged and filtered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from db import audit
from db.audit import Actor
from db.models import Campaign
from db.session import session_factory

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


async def test_record_and_page(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    for i in range(5):
        await audit.record(sessions, Actor.user("sue"), "campaign.pause", "campaign:sales",
                           {"n": i}, now=NOW + timedelta(seconds=i))
    await audit.record(sessions, Actor.token("crm"), "leads.upsert", "campaign:sales",
                       {"rows": 10}, now=NOW + timedelta(seconds=9))
    first = await audit.entries(sessions, limit=4)
    assert [e.action for e in first] == ["leads.upsert"] + ["campaign.pause"] * 3
    assert first[0].actor == Actor("token", "crm") and first[0].detail == {"rows": 10}
    assert first[0].at == NOW + timedelta(seconds=9)
    rest = await audit.entries(sessions, limit=4, before_id=first[-1].id)
    assert [e.detail["n"] for e in rest] == [1, 0]
    pauses = await audit.entries(sessions, action_prefix="campaign.")
    assert len(pauses) == 5 and all(e.actor.name == "sue" for e in pauses)
    assert await audit.entries(sessions, since=NOW + timedelta(seconds=4)) == first[:2]


async def test_entry_lands_with_its_change_or_not_at_all(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    with pytest.raises(RuntimeError):
        async with sessions.begin() as s:
            s.add(Campaign(name="autumn", caller_id="+14155550100"))
            audit.add_entry(s, Actor.cli("root"), "campaign.create", "campaign:autumn", now=NOW)
            raise RuntimeError("the change fails after the row was added")
    assert await audit.entries(sessions) == []
    async with sessions.begin() as s:
        s.add(Campaign(name="autumn", caller_id="+14155550100"))
        audit.add_entry(s, Actor.cli("root"), "campaign.create", "campaign:autumn", now=NOW)
    [row] = await audit.entries(sessions)
    assert (row.actor.kind, row.action, row.target) == ("cli", "campaign.create",
                                                         "campaign:autumn")
