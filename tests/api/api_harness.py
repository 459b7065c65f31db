"""The CRM API tests' helpers: a migrated database (SQLite and PostgreSQL, tests/conftest.py)
with a campaign, a company and an agent; tokens of chosen scopes; the app in-process over
httpx's ASGITransport."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from common.clock import ManualClock
from db.api_tokens import create_token
from db.audit import Actor
from db.models import Campaign, Company
from db.repositories import Sessions
from dialer.bus.runner import AgentCommandRunner
from dialer.config import WebSection
from dialer.web.agent_ws import AgentSocketHub
from dialer.web.api_v1.auth import SCOPES
from dialer.web.auth import SignInLimiter
from dialer.web.deps import WebDeps

#: a Wednesday, 10:00 in New York
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
ALL = frozenset(SCOPES)


@dataclass
class ApiDb:
    sessions: Sessions
    campaign_id: int
    company_id: int
    tokens: dict[str, str] = field(default_factory=dict)


async def seed(sessions: Sessions) -> ApiDb:
    async with sessions.begin() as s:
        acme = Company(name="Acme SIA", timezone="Europe/Riga",
                       weekly_hours={d: [["09:00", "17:00"]]
                                     for d in ("mon", "tue", "wed", "thu", "fri")})
        s.add(acme)
        await s.flush()
        camp = Campaign(name="spring", caller_id="+14155550100", timezone="America/New_York")
        s.add(camp)
        await s.flush()
        db = ApiDb(sessions=sessions, campaign_id=camp.id, company_id=acme.id)
    return db


async def token(db: ApiDb, name: str, scopes: frozenset[str] | set[str] = ALL) -> str:
    t, _ = await create_token(db.sessions, name=name, scopes=frozenset(scopes),
                              expires_at=None, actor=Actor.cli("test"), now=NOW)
    db.tokens[name] = t
    return t


def make_deps(db: ApiDb, clock: ManualClock, web: WebSection | None = None) -> WebDeps:
    return WebDeps(sessions=db.sessions, web=web or WebSection(port=0), clock=clock,
                   hub=AgentSocketHub(AgentCommandRunner(), None),
                   limiter=SignInLimiter(clock.monotonic))


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}
