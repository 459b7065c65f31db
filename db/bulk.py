"""Bulk writes shared by the DNC lists (db/dnc.py) and the lead import (db/lead_import.py).

Both load many rows into a table with a unique key while a running dialer may write the same
rows: `insert_ignoring_conflicts` builds the dialect's INSERT ... ON CONFLICT DO NOTHING, and
`analyze` refreshes PostgreSQL's planner statistics once a big load is done.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db.repositories import Sessions

log = logging.getLogger(__name__)

__all__ = ["analyze", "insert_ignoring_conflicts"]


def insert_ignoring_conflicts(s: AsyncSession, table: Table,
                              conflict: list[str] | None) -> Any:
    """INSERT into `table` that skips rows whose `conflict` columns are already taken (None:
    rows that would break any unique key of the table).

    The statement is dialect-specific (SQLite and PostgreSQL spell ON CONFLICT the same but
    SQLAlchemy builds it per dialect), so it is chosen by the session's bind.
    """
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=conflict)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=conflict)


async def analyze(sessions: Sessions, table: str, *, after: str = "bulk load") -> None:
    """Refresh PostgreSQL's planner statistics of `table` after a bulk load.

    Autovacuum gets there within a minute or so; until then the hopper's and the importer's
    `phone IN (...)` look-ups would be planned for the table as it was before the load.
    SQLite plans from its indexes and needs nothing here. Only speed is at stake, so a
    failure is logged (naming `after`, the load it followed), never raised.
    """
    try:
        async with sessions() as s:
            if s.get_bind().dialect.name != "postgresql":
                return
            await s.execute(text(f"ANALYZE {table}"))
            await s.commit()
    except SQLAlchemyError as e:
        log.warning("ANALYZE %s after %s failed: %s", table, after, e)
