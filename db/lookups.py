"""Look-ups for the operator's command line (dialer/cli_data.py, dialer/cli_schedule.py).

Small read-only queries: campaigns by name, agents by login, leads by id, lead counts.
Each opens its own session; none writes.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select

from db.models import Agent, Campaign, Lead
from db.repositories import Sessions, translated

__all__ = ["agent_id_by_login", "agent_logins", "campaigns_by_name", "lead_counts",
           "leads_by_id"]


@translated
async def campaigns_by_name(sessions: Sessions, name: str | None = None) -> list[Campaign]:
    """All campaigns ordered by name, or only the one called `name` (empty if none is)."""
    q = select(Campaign).order_by(Campaign.name)
    if name is not None:
        q = q.where(Campaign.name == name)
    async with sessions() as s:
        return list((await s.scalars(q)).all())


@translated
async def agent_id_by_login(sessions: Sessions, login: str) -> int | None:
    async with sessions() as s:
        return await s.scalar(select(Agent.id).where(Agent.login == login))


@translated
async def agent_logins(sessions: Sessions) -> dict[int, str]:
    """Every agent's login by id."""
    async with sessions() as s:
        return {int(i): str(login) for i, login in (await s.execute(
            select(Agent.id, Agent.login))).all()}


@translated
async def leads_by_id(sessions: Sessions, lead_ids: Collection[int]) -> dict[int, Lead]:
    if not lead_ids:
        return {}
    async with sessions() as s:
        return {lead.id: lead for lead in (await s.scalars(
            select(Lead).where(Lead.id.in_(list(lead_ids))))).all()}


@translated
async def lead_counts(
    sessions: Sessions, campaign_id: int | None = None
) -> dict[int, dict[str, int]]:
    """Campaign id -> lead status value -> number of leads (one campaign, or all)."""
    stmt = select(Lead.campaign_id, Lead.status, func.count()).group_by(
        Lead.campaign_id, Lead.status)
    if campaign_id is not None:
        stmt = stmt.where(Lead.campaign_id == campaign_id)
    counts: dict[int, dict[str, int]] = {}
    async with sessions() as s:
        for cid, status, n in await s.execute(stmt):
            counts.setdefault(cid, {})[status.value] = n
    return counts
