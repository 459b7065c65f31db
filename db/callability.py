"""The reads and writes of the callability refresh (scheduling/facts.py applies the rules).

`campaign_and_leads` reads a campaign, its company and the ids of the leads to refresh;
`callability_batch` opens one transaction per batch of leads, in which the refresh reads the
facts it needs (DNC entries, recent attempts, pending callbacks, companies) in one query each
and writes every lead's new `next_call_at` / `never_reason` / `hopper_tier` in one
statement, so a lead is never stored with facts from another moment.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Attempt, Callback, Campaign, Company, DncEntry, Lead
from db.repositories import Sessions, transaction, translated

__all__ = ["CallabilityBatch", "RefreshScope", "callability_batch", "campaign_and_leads"]


@dataclass(frozen=True, slots=True)
class RefreshScope:
    """What a refresh works on: the campaign, its company (if any) and lead ids in id order."""

    campaign: Campaign
    company: Company | None
    lead_ids: list[int]


@translated
async def campaign_and_leads(
    sessions: Sessions, campaign_id: int, lead_ids: Sequence[int] | None = None
) -> RefreshScope | None:
    """The campaign, its company and its lead ids (only those in `lead_ids` if given);
    None when there is no such campaign."""
    async with sessions() as s:
        campaign = await s.get(Campaign, campaign_id)
        if campaign is None:
            return None
        company = await s.get(Company, campaign.company_id) if campaign.company_id else None
        q = select(Lead.id).where(Lead.campaign_id == campaign_id).order_by(Lead.id)
        if lead_ids is not None:
            q = q.where(Lead.id.in_(list(lead_ids)))
        ids = list((await s.execute(q)).scalars())
    return RefreshScope(campaign, company, ids)


class CallabilityBatch:
    """One batch's reads and its write, inside one transaction."""

    def __init__(self, s: AsyncSession) -> None:
        self._s = s

    async def leads(self, ids: Collection[int]) -> list[Lead]:
        return list((await self._s.execute(select(Lead).where(Lead.id.in_(list(ids))))).scalars())

    async def dnc_among(self, phones: Collection[str]) -> set[str]:
        """The given E.164 numbers that are on any do-not-call list."""
        return set((await self._s.execute(
            select(DncEntry.phone_e164).where(DncEntry.phone_e164.in_(list(phones)))
        )).scalars())

    async def attempts_since(
        self, lead_ids: Collection[int], since: datetime
    ) -> list[tuple[int, datetime, str | None]]:
        """(lead id, created_at, disposition) of the leads' attempts created since `since`."""
        rows = await self._s.execute(
            select(Attempt.lead_id, Attempt.created_at, Attempt.disposition).where(
                Attempt.lead_id.in_(list(lead_ids)), Attempt.created_at >= since
            )
        )
        return [(lead_id, created, disp) for lead_id, created, disp in rows.all()]

    async def earliest_pending_callbacks(self, lead_ids: Collection[int]) -> dict[int, datetime]:
        """Lead id -> due time of its earliest pending callback (leads without one left out)."""
        rows = await self._s.execute(
            select(Callback.lead_id, func.min(Callback.due_at))
            .where(Callback.lead_id.in_(list(lead_ids)), Callback.status == "pending")
            .group_by(Callback.lead_id)
        )
        return {int(lead_id): due for lead_id, due in rows.all()}

    async def company(self, company_id: int) -> Company | None:
        return await self._s.get(Company, company_id)

    async def set_callability(self, updates: Sequence[dict[str, Any]]) -> None:
        """Write each lead's computed fields: dicts of `id` plus the columns to set."""
        if updates:
            await self._s.execute(update(Lead), list(updates))


@asynccontextmanager
async def callability_batch(sessions: Sessions) -> AsyncIterator[CallabilityBatch]:
    """One transaction for one batch: committed at the end, rolled back on error."""
    async with transaction(sessions, "callability refresh") as s:
        yield CallabilityBatch(s)
