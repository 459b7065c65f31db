"""Storage of the daily plans (scheduling/plan.py decides what goes in them).

`plan_transaction` opens one transaction in which the plan builder reads what is due and
replaces the day's plans, so a rebuild is all-or-nothing as before. `day_stored` answers
"was this day's plan (or report) already built?" for the scheduled jobs.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Literal, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.vocabulary import DIALABLE_STATUSES
from db.models import Callback, Campaign, DailyPlan, DailyPlanItem, DailyReport, DncEntry, Lead
from db.repositories import Sessions, transaction, translated

__all__ = [
    "PlanItemLike",
    "PlanTransaction",
    "day_stored",
    "load_plan",
    "plan_transaction",
    "planned_counts",
]


class PlanItemLike(Protocol):
    """What a stored plan line is made of (scheduling.plan.PlanEntry has these fields)."""

    @property
    def lead_id(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def due_at(self) -> datetime | None: ...


class PlanTransaction:
    """The reads and the write of one plan rebuild, inside one transaction."""

    def __init__(self, s: AsyncSession) -> None:
        self._s = s

    async def campaign(self, campaign_id: int) -> Campaign | None:
        return await self._s.get(Campaign, campaign_id)

    async def due_callbacks(
        self, campaign_id: int, before: datetime
    ) -> list[tuple[Callback, Lead]]:
        """Pending callbacks due before `before` on dialable, not-DNC leads, earliest first."""
        dnc = select(DncEntry.phone_e164)
        rows = await self._s.execute(
            select(Callback, Lead)
            .join(Lead, Lead.id == Callback.lead_id)
            .where(
                Callback.campaign_id == campaign_id,
                Callback.status == "pending",
                Callback.due_at < before,
                Lead.status.in_(DIALABLE_STATUSES),
                Lead.phone_e164.not_in(dnc),
            )
            .order_by(Callback.due_at)
        )
        return [(cb, lead) for cb, lead in rows.all()]

    async def due_leads(self, campaign_id: int, before: datetime) -> list[Lead]:
        """Dialable, not-DNC leads whose cached next_call_at falls before `before`."""
        dnc = select(DncEntry.phone_e164)
        rows = await self._s.execute(
            select(Lead).where(
                Lead.campaign_id == campaign_id,
                Lead.status.in_(DIALABLE_STATUSES),
                Lead.next_call_at.is_not(None),
                Lead.next_call_at < before,
                Lead.phone_e164.not_in(dnc),
            )
        )
        return list(rows.scalars())

    async def replace_plans(
        self,
        *,
        campaign_id: int,
        plan_date: date,
        plans: Sequence[tuple[int | None, Sequence[PlanItemLike]]],
        now: datetime,
    ) -> None:
        """Drop the day's stored plans and store `plans` (agent id or None, ordered items)."""
        old = select(DailyPlan.id).where(
            DailyPlan.campaign_id == campaign_id, DailyPlan.plan_date == plan_date
        )
        # items first: do not rely on ON DELETE CASCADE being enforced (SQLite pragma)
        await self._s.execute(delete(DailyPlanItem).where(DailyPlanItem.plan_id.in_(old)))
        await self._s.execute(
            delete(DailyPlan).where(
                DailyPlan.campaign_id == campaign_id, DailyPlan.plan_date == plan_date
            )
        )
        for agent_id, items in plans:
            plan = DailyPlan(
                campaign_id=campaign_id,
                agent_id=agent_id,
                plan_date=plan_date,
                size=len(items),
                built_at=now,
            )
            plan.items = [
                DailyPlanItem(lead_id=e.lead_id, position=i, reason=e.reason, due_at=e.due_at)
                for i, e in enumerate(items)
            ]
            self._s.add(plan)


@asynccontextmanager
async def plan_transaction(sessions: Sessions) -> AsyncIterator[PlanTransaction]:
    """One transaction for a plan rebuild: committed when the block ends, rolled back on error."""
    async with transaction(sessions, "daily plan") as s:
        yield PlanTransaction(s)


@translated
async def day_stored(
    sessions: Sessions, what: Literal["plan", "report"], *, campaign_id: int, day: date
) -> bool:
    """Whether campaign `campaign_id` has a stored daily plan / day report for local `day`."""
    if what == "plan":
        q = select(DailyPlan.id).where(
            DailyPlan.campaign_id == campaign_id, DailyPlan.plan_date == day
        )
    else:
        q = select(DailyReport.id).where(
            DailyReport.campaign_id == campaign_id, DailyReport.report_date == day
        )
    async with sessions() as s:
        return (await s.execute(q.limit(1))).first() is not None


@translated
async def load_plan(
    sessions: Sessions,
    *,
    campaign_id: int,
    plan_date: date,
    agent_id: int | None = None,
    shared: bool | None = None,
) -> list[tuple[DailyPlan, list[DailyPlanItem]]]:
    """Stored plans of a day: all, one agent's (`agent_id`), or only the shared one."""
    async with sessions() as s:
        q = select(DailyPlan).where(
            DailyPlan.campaign_id == campaign_id, DailyPlan.plan_date == plan_date
        )
        if agent_id is not None:
            q = q.where(DailyPlan.agent_id == agent_id)
        elif shared:
            q = q.where(DailyPlan.agent_id.is_(None))
        plans = list((await s.execute(q.order_by(DailyPlan.agent_id))).scalars())
        out = []
        for p in plans:
            items = list(
                (
                    await s.execute(
                        select(DailyPlanItem)
                        .where(DailyPlanItem.plan_id == p.id)
                        .order_by(DailyPlanItem.position)
                    )
                ).scalars()
            )
            out.append((p, items))
        return out


@translated
async def planned_counts(
    sessions: Sessions, *, campaign_id: int, plan_date: date
) -> dict[int | None, int]:
    """Plan sizes per agent (None = shared plan): the report's "planned" figure."""
    async with sessions() as s:
        rows = await s.execute(
            select(DailyPlan.agent_id, DailyPlan.size).where(
                DailyPlan.campaign_id == campaign_id, DailyPlan.plan_date == plan_date
            )
        )
        return {a: int(n) for a, n in rows.all()}
