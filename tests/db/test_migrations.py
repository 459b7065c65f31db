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
