"""/api/v1/webhooks over the real app (httpx ASGITransport), on SQLite and PostgreSQL:
create (the secret once), list, delete, scopes, dead letters and their re-queue, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import ManualClock
from common.vocabulary import LeadStatus
from db import audit, webhook_events
from db import webhooks as wh
from db.api_tokens import create_token
from db.audit import Actor
from db.models import Campaign, Lead
from db.repositories import Sessions
from db.session import session_factory
from dialer.bus.runner import AgentCommandRunner
from dialer.config import WebSection
from dialer.web.agent_ws import AgentSocketHub
from dialer.web.auth import SignInLimiter
from dialer.web.deps import WebDeps
from dialer.web.server import create_app

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


async def bearer(sessions: Sessions, name: str, scopes: set[str]) -> dict[str, str]:
    t, _ = await create_token(sessions, name=name, scopes=frozenset(scopes), expires_at=None,
                              actor=Actor.cli("test"), now=NOW)
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture
async def sessions(db_engine: AsyncEngine) -> Sessions:
    return session_factory(db_engine)


@pytest.fixture
async def client(sessions: Sessions) -> AsyncIterator[httpx.AsyncClient]:
    clock = ManualClock(NOW)
    deps = WebDeps(sessions=sessions, web=WebSection(port=0), clock=clock,
                   hub=AgentSocketHub(AgentCommandRunner(), None),
                   limiter=SignInLimiter(clock.monotonic))
    transport = httpx.ASGITransport(app=create_app(deps), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        c.headers.update(await bearer(sessions, "crm", {"webhooks:read", "webhooks:write"}))
        yield c


async def test_create_list_delete_with_the_secret_shown_once(client: httpx.AsyncClient,
                                                             sessions: Sessions) -> None:
    r = await client.post("/api/v1/webhooks", json={
        "url": "https://crm.example.com/hooks?token=abc",
        "events": ["disposition.saved", "dnc.added"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_") and made["created_by"] == "crm"
    listed = (await client.get("/api/v1/webhooks")).json()["webhooks"]
    assert [w["id"] for w in listed] == [made["id"]]
    assert "secret" not in listed[0]
    (entry,) = await audit.entries(sessions, action_prefix="webhook.")
    assert (entry.action, entry.actor.name) == ("webhook.create", "crm")
    assert "abc" not in str(entry.detail), "no URL (it may hold a token) in the audit log"
    assert (await client.delete(f"/api/v1/webhooks/{made['id']}")).status_code == 204
    r = await client.delete(f"/api/v1/webhooks/{made['id']}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem")
    assert (await client.get("/api/v1/webhooks")).json()["webhooks"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://crm.example.com/x", "events": ["dnc.added"]}, "url"),
    ({"url": "https://crm.example.com/x", "events": ["lead.deleted"]}, "events"),
    ({"url": "https://crm.example.com/x", "events": []}, "events"),
])
async def test_bad_subscriptions_are_422_naming_the_field(client: httpx.AsyncClient,
                                                          body: dict, field: str) -> None:
    r = await client.post("/api/v1/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert field in r.text


async def test_scopes(client: httpx.AsyncClient, sessions: Sessions) -> None:
    reader = await bearer(sessions, "reader", {"webhooks:read"})
    r = await client.post("/api/v1/webhooks", headers=reader,
                          json={"url": "https://x.example.com/h", "events": ["dnc.added"]})
    assert r.status_code == 403 and r.json()["scope"] == "webhooks:write"
    assert (await client.get("/api/v1/webhooks", headers=reader)).status_code == 200
    other = await bearer(sessions, "leads", {"leads:read"})
    assert (await client.get("/api/v1/webhooks/dead-letters", headers=other)).status_code == 403


async def test_dead_letters_are_listed_and_requeued(client: httpx.AsyncClient,
                                                    sessions: Sessions) -> None:
    async with sessions.begin() as s:
        c = Campaign(name="spring", caller_id="+14155550100")
        s.add(c)
        await s.flush()
        lead = Lead(campaign_id=c.id, phone_e164="+14155550123", external_id="crm-9")
        s.add(lead)
        await s.flush()
        await webhook_events.emit_status_change(s, lead.id, LeadStatus.POTENTIAL,
                                                LeadStatus.HOT, NOW)
    r = await client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/h",
                                                   "events": ["lead.status_changed"]})
    policy = wh.RetryPolicy(horizon_s=60)
    await wh.fan_out(sessions, now=NOW, policy=policy)
    (c1,) = await wh.claim(sessions, now=NOW, holder="w", lease_s=40)
    assert await wh.mark_failed(sessions, c1.id, now=NOW + timedelta(minutes=2),
                                error="HTTP 500", policy=policy)
    body = (await client.get("/api/v1/webhooks/dead-letters")).json()
    (dead,) = body["dead_letters"]
    assert dead["webhook_id"] == r.json()["id"] and dead["delivery_id"] == c1.uid
    assert dead["data"]["external_id"] == "crm-9" and dead["last_error"] == "HTTP 500"
    r = await client.post(f"/api/v1/webhooks/dead-letters/{dead['id']}/requeue")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert (await client.get("/api/v1/webhooks/dead-letters")).json()["dead_letters"] == []
    r = await client.post(f"/api/v1/webhooks/dead-letters/{dead['id']}/requeue")
    assert r.status_code == 404
    (again,) = await wh.claim(sessions, now=NOW, holder="w", lease_s=40)
    assert again.uid == c1.uid
    assert [e.action for e in await audit.entries(sessions, action_prefix="webhook.")] == [
        "webhook.requeue", "webhook.create"]
