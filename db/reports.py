"""Storage of the end-of-day reports (scheduling/report.py computes the figures).

`report_transaction` opens one transaction in which the report builder reads the day's
attempts and replaces the stored rows, so the stored report always matches one reading of
the attempts. `load_day_report` reads stored rows back with campaign names and logins;
`report_freshness` tells whether a stored report predates the day's last attempt activity.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from common.vocabulary import AttemptResult
from db.models import Agent, Attempt, Callback, Campaign, DailyReport
from db.repositories import RepositoryError, Sessions, translated

__all__ = [
    "DayAttempt",
    "ReportFigures",
    "ReportTransaction",
    "load_day_report",
    "report_freshness",
    "report_transaction",
]

#: one attempt of the day: (id, agent id, result, disposition code, talk seconds)
DayAttempt = tuple[int, int | None, AttemptResult | None, str | None, float | None]


#: the stored figures of a report row, in `DailyReport` and `scheduling.report.ReportRow` alike
REPORT_COLUMNS = ("report_date", "campaign_id", "agent_id", "planned", "called", "reached",
                  "meetings", "contracts", "callbacks", "talk_s")


class ReportFigures(Protocol):
    """The stored figures of one report row (scheduling.report.ReportRow has these fields)."""

    @property
    def report_date(self) -> date: ...
    @property
    def campaign_id(self) -> int: ...
    @property
    def agent_id(self) -> int | None: ...
    @property
    def planned(self) -> int: ...
    @property
    def called(self) -> int: ...
    @property
    def reached(self) -> int: ...
    @property
    def meetings(self) -> int: ...
    @property
    def contracts(self) -> int: ...
    @property
    def callbacks(self) -> int: ...
    @property
    def talk_s(self) -> float: ...


class ReportTransaction:
    """The reads and the write of one report rebuild, inside one transaction."""

    def __init__(self, s: AsyncSession) -> None:
        self._s = s

    async def campaign(self, campaign_id: int) -> Campaign | None:
        return await self._s.get(Campaign, campaign_id)

    async def attempts_between(
        self, campaign_id: int, start: datetime, end: datetime
    ) -> list[DayAttempt]:
        """The campaign's attempts created in [start, end)."""
        rows = await self._s.execute(
            select(
                Attempt.id, Attempt.agent_id, Attempt.result, Attempt.disposition, Attempt.talk_s
            ).where(
                Attempt.campaign_id == campaign_id,
                Attempt.created_at >= start,
                Attempt.created_at < end,
            )
        )
        return [(a, agent, result, disp, talk) for a, agent, result, disp, talk in rows.all()]

    async def callbacks_per_attempt(
        self, campaign_id: int, attempt_ids: Collection[int]
    ) -> dict[int, int]:
        """How many callbacks each of the given attempts created (attempts without none)."""
        rows = await self._s.execute(
            select(Callback.attempt_id, func.count())
            .where(Callback.campaign_id == campaign_id, Callback.attempt_id.in_(list(attempt_ids)))
            .group_by(Callback.attempt_id)
        )
        return {int(att_id): int(n) for att_id, n in rows.all()}

    async def agent_logins(self, agent_ids: Collection[int]) -> dict[int, str]:
        rows = await self._s.execute(
            select(Agent.id, Agent.login).where(Agent.id.in_(list(agent_ids)))
        )
        return {int(i): str(login) for i, login in rows.all()}

    async def replace_report(
        self, *, campaign_id: int, report_date: date, rows: Sequence[ReportFigures],
        now: datetime,
    ) -> None:
        """Drop the day's stored report of the campaign and store `rows`."""
        await self._s.execute(
            delete(DailyReport).where(
                DailyReport.campaign_id == campaign_id, DailyReport.report_date == report_date
            )
        )
        for r in rows:
            self._s.add(DailyReport(**{k: getattr(r, k) for k in REPORT_COLUMNS}, created_at=now))


@asynccontextmanager
async def report_transaction(sessions: Sessions) -> AsyncIterator[ReportTransaction]:
    """One transaction for a report rebuild: committed at the end, rolled back on error."""
    try:
        async with sessions.begin() as s:
            yield ReportTransaction(s)
    except SQLAlchemyError as e:
        raise RepositoryError("day report", e) from e


@translated
async def load_day_report(
    sessions: Sessions, *, report_date: date, campaign_id: int | None = None
) -> list[tuple[DailyReport, str, str | None]]:
    """Stored report rows of a day (all campaigns unless `campaign_id`), each with its
    campaign's name and its agent's login (None for the dialer's own row)."""
    async with sessions() as s:
        q = (
            select(DailyReport, Campaign.name, Agent.login)
            .join(Campaign, Campaign.id == DailyReport.campaign_id)
            .outerjoin(Agent, Agent.id == DailyReport.agent_id)
            .where(DailyReport.report_date == report_date)
        )
        if campaign_id is not None:
            q = q.where(DailyReport.campaign_id == campaign_id)
        return [(r, cname, login) for r, cname, login in (await s.execute(q)).all()]


@translated
async def report_freshness(
    sessions: Sessions, *, campaign_id: int, report_date: date, start: datetime, end: datetime
) -> tuple[datetime | None, datetime | None]:
    """(when the campaign's stored report of `report_date` was written, or None if there is
    none; the last activity - creation, end or wrap-up end - of the campaign's attempts
    created in [start, end), or None if there are none)."""
    async with sessions() as s:
        stored_at = (await s.execute(
            select(func.min(DailyReport.created_at)).where(
                DailyReport.campaign_id == campaign_id, DailyReport.report_date == report_date)
        )).scalar_one_or_none()
        row = (await s.execute(
            select(func.max(Attempt.created_at), func.max(Attempt.ended_at),
                   func.max(Attempt.wrapup_ended_at)).where(
                Attempt.campaign_id == campaign_id,
                Attempt.created_at >= start,
                Attempt.created_at < end,
            )
        )).one()
        seen = [t for t in row if t is not None]
        return stored_at, (max(seen) if seen else None)
