"""The lead import's reads and writes (dialer/importer.py validates rows and drives it).

`import_context` reads the campaign and the known companies once; `lead_import_batch` opens
one transaction per chunk of rows, in which the importer drops do-not-call numbers, creates
the companies the chunk founds and inserts the leads with INSERT ... ON CONFLICT DO NOTHING
RETURNING, so a chunk is all-or-nothing and a re-run skips what an earlier run added.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`;
`db_error_hint` turns one into the line an operator reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.audit import Actor
from db.bulk import insert_ignoring_conflicts
from db.dnc import listed_in_session
from db.models import Campaign, Company, Lead
from db.repositories import RepositoryError, Sessions, transaction, translated

__all__ = ["LeadImportBatch", "db_error_hint", "import_context", "lead_import_batch"]

_LEADS = cast(Table, Lead.__table__)
#: a number is in a campaign at most once (the leads table's unique key)
_LEAD_KEY = ["campaign_id", "phone_e164"]


@translated
async def import_context(
    sessions: Sessions, campaign_name: str
) -> tuple[Campaign | None, dict[str, int]]:
    """The campaign named `campaign_name` (None if there is none) and every company's id by
    name."""
    async with sessions() as s:
        campaign = await s.scalar(select(Campaign).where(Campaign.name == campaign_name))
        companies = {n: i for i, n in (await s.execute(select(Company.id, Company.name)))}
    return campaign, companies


class LeadImportBatch:
    """One chunk's reads and writes, inside one transaction."""

    def __init__(self, s: AsyncSession) -> None:
        self._s = s

    async def dnc_listed(self, phones: Sequence[str]) -> set[str]:
        """The given E.164 numbers that are on any do-not-call list."""
        return await listed_in_session(self._s, phones)

    async def in_campaign(self, campaign_id: int, phones: Collection[str]) -> set[str]:
        """The given numbers the campaign already has."""
        return set((await self._s.scalars(
            select(Lead.phone_e164).where(Lead.campaign_id == campaign_id,
                                          Lead.phone_e164.in_(list(phones)))
        )).all())

    async def add_company(
        self, *, name: str, timezone: str, weekly_hours: Mapping[str, Any],
        holiday_country: str | None, now: datetime,
    ) -> int:
        """Create a company and return its id (visible to the rest of the transaction)."""
        company = Company(name=name, timezone=timezone, weekly_hours=weekly_hours,
                          holiday_country=holiday_country, created_at=now)
        self._s.add(company)
        await self._s.flush()
        return company.id

    async def by_external_id(self, campaign_id: int,
                             external_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """The campaign's leads with these external ids: external id -> the columns an
        upsert compares (db/models.py `Lead`), with `id`."""
        cols = [Lead.id, Lead.external_id, Lead.phone_e164, Lead.name, Lead.company_id,
                Lead.timezone, Lead.priority, Lead.status, Lead.custom_fields,
                Lead.next_contact_at, Lead.next_call_at, Lead.hopper_tier,
                Lead.has_open_complaint]
        rows = await self._s.execute(select(*cols).where(
            Lead.campaign_id == campaign_id, Lead.external_id.in_(list(external_ids))))
        return {r.external_id: dict(r._mapping) for r in rows}

    def audit(self, actor: Actor, action: str, target: str, detail: dict[str, Any], *,
              now: datetime) -> None:
        """The chunk's audit row, committed with it (db/audit.py)."""
        audit.add_entry(self._s, actor, action, target, detail, now=now)

    async def update_leads(self, edits: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Set columns of leads by id: one executemany UPDATE per set of columns."""
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for lead_id, values in edits:
            shapes.setdefault(tuple(sorted(values)), []).append({"b_id": lead_id, **values})
        for cols, params in shapes.items():
            stmt = update(_LEADS).where(_LEADS.c.id == bindparam("b_id")).values(
                {c: bindparam(c) for c in cols})
            await self._s.execute(stmt, params)

    async def insert_leads(self, values: Sequence[dict[str, Any]], *,
                           any_conflict: bool = False) -> dict[str, int]:
        """Insert lead rows (column -> value), skipping numbers the campaign already has (and,
        with `any_conflict`, external ids it already has); returns number -> lead id of the
        rows really inserted.

        The INSERT itself finds the duplicates (ON CONFLICT DO NOTHING RETURNING), which
        always uses the unique index: a SELECT ... IN (...) pre-check would not, since on
        PostgreSQL a table growing during one import has stale planner statistics and every
        chunk's check becomes a sequential scan.
        """
        stmt = insert_ignoring_conflicts(self._s, _LEADS, None if any_conflict else _LEAD_KEY)
        stmt = stmt.returning(_LEADS.c.phone_e164, _LEADS.c.id)
        return {p: i for p, i in (await self._s.execute(stmt, list(values))).all()}


@asynccontextmanager
async def lead_import_batch(sessions: Sessions) -> AsyncIterator[LeadImportBatch]:
    """One transaction for one chunk: committed at the end, rolled back on error."""
    async with transaction(sessions, "lead import") as s:
        yield LeadImportBatch(s)


def db_error_hint(e: BaseException) -> str:
    """One line for an operator about a database failure (the schema hint when it is missing).

    A `RepositoryError` is read through to the driver's error it wraps, so the line names
    what the database said, as it did before the store translated errors.
    """
    if isinstance(e, RepositoryError) and isinstance(e.__cause__, SQLAlchemyError):
        e = e.__cause__
    text = str(getattr(e, "orig", None) or e)
    if "no such table" in text or "does not exist" in text:
        return "the database has no dialer schema; run `dialer db upgrade` first"
    return f"{e.__class__.__name__}: {text.splitlines()[0] if text else ''}"
