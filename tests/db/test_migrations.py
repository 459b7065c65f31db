"""Migrations upgrade from empty and downgrade cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from db.migrate import downgrade, upgrade
from db.models import Base
from db.pgserver import TempPostgres
from db.session import create_engine


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    server: TempPostgres = request.getfixturevalue("pg_server")
    return server.create_database(f"mig_{tmp_path.name[-20:].replace('-', '_').lower()}")


def test_upgrade_downgrade_roundtrip(empty_url: str) -> None:
    upgrade(empty_url)
    tables = asyncio.run(_tables(empty_url))
    assert set(Base.metadata.tables) <= tables
    downgrade(empty_url, "base")
    assert asyncio.run(_tables(empty_url)) <= {"alembic_version"}
    upgrade(empty_url)  # and back up again: downgrade left nothing behind that blocks it
    assert set(Base.metadata.tables) <= asyncio.run(_tables(empty_url))


def test_models_match_migrations(tmp_path: Path) -> None:
    """Autogenerate against a migrated DB finds no difference: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine as sync_engine

    path = tmp_path / "cmp.db"
    upgrade(f"sqlite:///{path}")
    with sync_engine(f"sqlite:///{path}").connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


async def _campaign_rows(url: str, insert: bool) -> list[dict[str, object]]:
    """The campaigns table's rows as dicts; first insert one with the model's defaults for the
    columns that need a value (`insert`), through a table naming those columns only, so it
    works on an older schema."""
    import sqlalchemy as sa

    from db.models import Campaign

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            if insert:
                cols = [c for c in Campaign.__table__.columns if not c.nullable
                        and c.server_default is None and not c.primary_key]
                values = {c.name: c.default.arg(None) if callable(c.default.arg)
                          else c.default.arg for c in cols if c.default is not None}
                values.update(name="old", caller_id="+14155550100")
                table = sa.table("campaigns", *(sa.column(c.name, c.type) for c in cols))
                await conn.execute(sa.insert(table).values(**values))
            rows = await conn.execute(sa.text("SELECT * FROM campaigns"))
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


def test_0020_gives_existing_campaigns_the_default_amd_deadline(empty_url: str) -> None:
    """campaigns.amd_decide_by_ms: a campaign made before the column keeps the 2.5 s deadline
    it ran with; the downgrade drops the column and leaves the row."""
    upgrade(empty_url, "0019")
    (before,) = asyncio.run(_campaign_rows(empty_url, insert=True))
    assert "amd_decide_by_ms" not in before
    upgrade(empty_url, "0020")
    (after,) = asyncio.run(_campaign_rows(empty_url, insert=False))
    assert after["amd_decide_by_ms"] == 2500 and after["name"] == "old"
    downgrade(empty_url, "0019")
    (down,) = asyncio.run(_campaign_rows(empty_url, insert=False))
    assert "amd_decide_by_ms" not in down and down["name"] == "old"
