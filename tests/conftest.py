"""Shared fixtures: real SQLite and a real PostgreSQL server for every DB test.

`db_url` is parametrized over both backends (one contract suite, every backend).
PostgreSQL runs once per test session on a loopback port in a temporary data directory; each
test gets a fresh database cloned from a migrated template, so tests never see each other's rows.
In CI (CI=true) a missing PostgreSQL is an error, never a skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from db.migrate import upgrade
from db.pgserver import PostgresUnavailable, TempPostgres
from db.session import create_engine

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres]:
    try:
        server = TempPostgres(database="template_dialer").start()
    except PostgresUnavailable as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not available: {e}")
    upgrade(server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    """A migrated, empty database URL (async driver) on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "dialer.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    server: TempPostgres = request.getfixturevalue("pg_server")
    return server.create_database(f"t{os.getpid()}_{next(_counter)}", template="template_dialer")


@pytest.fixture
async def db_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def wide_cli() -> Iterator[None]:
    """The CLI's consoles 220 columns wide for the test (tests/support/cli.py says why)."""
    from support.cli import wide_consoles

    with wide_consoles():
        yield
