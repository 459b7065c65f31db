"""The web server tests' helpers: a migrated SQLite database with a campaign, a company, leads,
two agents (alice, bob) with their calls, a supervisor, and the app in-process
(httpx over ASGITransport) or on a real uvicorn on 127.0.0.1 (`WebServer`, port 0)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from common.clock import ManualClock
from common.vocabulary import AttemptResult, AttemptStage, DialMode
from db import web_accounts
from db.models import Attempt, Campaign, Company, Lead
from db.repositories import Sessions
from dialer.bus.runner import AgentCommandRunner
from dialer.config import WebSection
from dialer.metrics import DialerMetrics
from dialer.web.agent_ws import AgentSocketHub
from dialer.web.auth import SignInLimiter
from dialer.web.deps import WebDeps

#: a Wednesday: 10:00 in New York (the callee), 17:00 in Riga (the company closes at 17:00)
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-22", "sue": "sue-pw-333"}



@dataclass
class WebDb:
    url: str
    sessions: Sessions
    campaign_id: int
    agent_ids: dict[str, int]
    #: login -> the attempt that agent took
    attempts: dict[str, int]
    lead_id: int


async def seed(sessions: Sessions, hashes: dict[str, str]) -> WebDb:
    async with sessions.begin() as s:
        acme = Company(name="Acme SIA", timezone="Europe/Riga",
                       weekly_hours={d: [["09:00", "12:00"], ["13:00", "17:00"]]
                                     for d in ("mon", "tue", "wed", "thu", "fri")},
                       holiday_country="LV")
        s.add(acme)
        await s.flush()
        camp = Campaign(name="spring", caller_id="+14155550100", timezone="UTC",
                        dial_mode=DialMode.PREDICTIVE, calling_window="us_federal")
        s.add(camp)
        await s.flush()
        lead = Lead(campaign_id=camp.id, company_id=acme.id, phone_e164="+12125550123",
                    timezone="America/New_York", name="Test Lead", next_call_at=NOW)
        s.add(lead)
        await s.flush()
        camp_id, lead_id = camp.id, lead.id
    agent_ids, attempts = {}, {}
    for login in ("alice", "bob"):
        acc = await web_accounts.add_agent(sessions, login=login, sip_uri=f"sip:{login}@x",
                                           password_hash=hashes[login], now=NOW,
                                           display_name=login.title(), campaign="spring")
        assert acc.agent_id is not None
        agent_ids[login] = acc.agent_id
        async with sessions.begin() as s:
            a = Attempt(campaign_id=camp_id, lead_id=lead_id, phone_e164="+12125550123",
                        dial_mode=DialMode.PREDICTIVE, stage=AttemptStage.ENDED,
                        result=AttemptResult.CONNECTED, created_at=NOW, talk_s=30.0,
                        agent_id=acc.agent_id, disposition="interested")
            s.add(a)
            await s.flush()
            attempts[login] = a.id
    await web_accounts.create_user(sessions, login="sue", role="supervisor",
                                   password_hash=hashes["sue"], now=NOW)
    return WebDb(url="", sessions=sessions, campaign_id=camp_id, agent_ids=agent_ids,
                 attempts=attempts, lead_id=lead_id)



def make_deps(db: WebDb, clock: ManualClock, *, metrics: DialerMetrics | None = None,
              runner: AgentCommandRunner | None = None) -> WebDeps:
    """The web server's dependencies over `db`, on a free port, without a dialer."""
    return WebDeps(sessions=db.sessions, web=WebSection(port=0), clock=clock,
                   hub=AgentSocketHub(runner or AgentCommandRunner(), metrics),
                   limiter=SignInLimiter(clock.monotonic), metrics=metrics)



async def sign_in(c: httpx.AsyncClient, login: str, password: str | None = None) -> str:
    """Sign in; returns the CSRF token (the session cookie stays in the client)."""
    r = await c.post("/api/session", json={"login": login,
                                           "password": password or PASSWORDS[login]})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])
