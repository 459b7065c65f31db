"""Fixtures of the web server tests: a seeded SQLite database (web_harness.py), the app
in-process over httpx's ASGITransport, a manual clock."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from web_harness import NOW, PASSWORDS, WebDb, make_deps, seed

from common.clock import ManualClock
from db.session import create_engine, session_factory
from dialer.metrics import DialerMetrics
from dialer.passwords import hash_password
from dialer.web.deps import WebDeps
from dialer.web.server import create_app


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    return {login: hash_password(pw) for login, pw in PASSWORDS.items()}


@pytest.fixture
async def web_db(tmp_path: Path, sqlite_template: Path,
                 password_hashes: dict[str, str]) -> AsyncIterator[WebDb]:
    path = tmp_path / "web.db"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        db = await seed(session_factory(engine), password_hashes)
        db.url = f"sqlite+aiosqlite:///{path}"
        yield db
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def deps(web_db: WebDb, clock: ManualClock) -> WebDeps:
    return make_deps(web_db, clock, metrics=DialerMetrics())


@pytest.fixture
async def client(deps: WebDeps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(deps), client=("10.0.0.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
