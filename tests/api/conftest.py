"""Fixtures of the CRM API tests: every test runs on SQLite and on PostgreSQL (`db_url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_harness import NOW, ApiDb, make_deps, seed, token
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import ManualClock
from db.session import session_factory
from dialer.web.deps import WebDeps
from dialer.web.server import create_app


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def api_db(db_engine: AsyncEngine) -> ApiDb:
    db = await seed(session_factory(db_engine))
    await token(db, "crm")
    return db


@pytest.fixture
def deps(api_db: ApiDb, clock: ManualClock) -> WebDeps:
    return make_deps(api_db, clock)


@pytest.fixture
async def client(deps: WebDeps, api_db: ApiDb) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(deps), client=("10.0.0.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 headers={"Authorization":
                                          f"Bearer {api_db.tokens['crm']}"}) as c:
        yield c
