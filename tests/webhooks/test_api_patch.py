"""Changing a subscription: `PATCH /api/v1/webhooks/{id}` (url, events, active) and
`POST /api/v1/webhooks/{id}/rotate-secret`, over the real app and then through the real
delivery worker to real receivers on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import LeadStatus
from db import audit
from db import webhooks as wh
from db.models import WebhookDelivery
from db.repositories import Sessions
from db.session import session_factory
from dialer.webhooks import WebhookWorker

from .receiver import Receiver, verify_signature
from .test_api import bearer, client, sessions  # noqa: F401 - fixtures
from .test_worker import FAST, NOW, emit_round_robin, seed, until


async def test_patch_changes_url_events_and_active(client: httpx.AsyncClient,  # noqa: F811
                                                   sessions: Sessions) -> None:  # noqa: F811
    made = (await client.post("/api/v1/webhooks", json={
        "url": "https://crm.example.com/a?token=abc", "events": ["dnc.added"]})).json()
    wid = made["id"]
    r = await client.patch(f"/api/v1/webhooks/{wid}", json={
        "url": "https://crm.example.com/b?token=xyz",
        "events": ["lead.status_changed", "disposition.saved"], "active": False})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["url"], got["events"], got["active"]) == (
        "https://crm.example.com/b?token=xyz", ["disposition.saved", "lead.status_changed"],
        False)
    assert "secret" not in got
    assert (await client.get("/api/v1/webhooks")).json()["webhooks"] == [got]
    # a field left out stays; the same values again change (and audit) nothing
    r = await client.patch(f"/api/v1/webhooks/{wid}", json={"active": True})
    assert r.json()["active"] is True and r.json()["url"].endswith("/b?token=xyz")
    assert (await client.patch(f"/api/v1/webhooks/{wid}", json={"active": True})).status_code \
        == 200
    updates = await audit.entries(sessions, action_prefix="webhook.update")
    assert [(e.actor.name, e.target) for e in updates] == [("crm", f"webhook:{wid}")] * 2
    assert "xyz" not in str([e.detail for e in updates]), "never the URL in the audit log"
    for body, field in (({"url": "ftp://x.example.com/"}, "url"),
                        ({"events": ["lead.deleted"]}, "events"),
                        ({"events": []}, "events"),
                        ({"secret": "mine"}, "secret")):
        r = await client.patch(f"/api/v1/webhooks/{wid}", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in str(r.json()["errors"]), r.json()
    r = await client.patch("/api/v1/webhooks/999", json={"active": False})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await client.patch(f"/api/v1/webhooks/{wid}", json={"active": False},
                           headers=await bearer(sessions, "ro", {"webhooks:read"}))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    assert (await client.get("/api/v1/webhooks")).json()["webhooks"][0]["active"] is True


async def test_rotate_secret_shows_the_new_one_once(client: httpx.AsyncClient,  # noqa: F811
                                                    sessions: Sessions) -> None:  # noqa: F811
    made = (await client.post("/api/v1/webhooks", json={
        "url": "https://crm.example.com/a", "events": ["dnc.added"]})).json()
    r = await client.post(f"/api/v1/webhooks/{made['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != made["secret"]
    listed = (await client.get("/api/v1/webhooks")).json()["webhooks"]
    assert new not in str(listed) and "secret" not in listed[0]
    (entry,) = await audit.entries(sessions, action_prefix="webhook.rotate")
    assert entry.action == "webhook.rotate_secret" and new not in str(entry.detail)
    assert (await client.post("/api/v1/webhooks/999/rotate-secret")).status_code == 404
    r = await client.post(f"/api/v1/webhooks/{made['id']}/rotate-secret",
                          headers=await bearer(sessions, "ro", {"webhooks:read"}))
    assert r.status_code == 403


async def deliveries(ses: Sessions) -> int:
    async with ses() as s:
        return int(await s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


async def test_the_worker_follows_a_new_url_a_new_secret_and_a_pause(
        db_engine: AsyncEngine) -> None:
    ses = session_factory(db_engine)
    leads = await seed(ses, 1)
    async with Receiver() as a, Receiver() as b, WebhookWorker(ses, holder="w1",
                                                               settings=FAST):
        sub, old = await wh.create_subscription(ses, a.url, ["lead.status_changed"],
                                                created_by="crm", now=NOW)
        await emit_round_robin(ses, leads, 1)
        await until(lambda: len(a.accepted()) == 1, 10, "the first delivery at A")
        # a new URL and a new secret: the next deliveries go to B, signed with the new one
        await wh.update_subscription(ses, sub.id, now=NOW, url=b.url)
        done = await wh.rotate_secret(ses, sub.id, now=NOW)
        assert done is not None
        new = done[1]
        await emit_round_robin(ses, leads, 1)
        await until(lambda: len(b.accepted()) == 1, 10, "a delivery at B")
        assert all(verify_signature(new, q.headers, q.body) and
                   not verify_signature(old, q.headers, q.body) for q in b.requests)
        # B down: a delivery waits for its retry; paused, it is held (not tried, not dead)
        await b.stop()
        await emit_round_robin(ses, leads, 1)
        await asyncio.sleep(0.5)
        await wh.update_subscription(ses, sub.id, now=NOW, active=False)
        await asyncio.sleep(0.3)  # a try already under way ends
        before = await deliveries(ses)
        await emit_round_robin(ses, leads, 1)  # fanned out while paused: not for it
        await b.start()
        seen = len(b.requests)
        await asyncio.sleep(1.5)
        assert len(b.requests) == seen, "a paused subscription's deliveries are held"
        assert await deliveries(ses) == before, "no new delivery for a paused subscription"
        backlog = await wh.backlog(ses)
        assert backlog.pending == 1 and backlog.dead == 0 and backlog.oldest_pending_at is None
        await wh.update_subscription(ses, sub.id, now=NOW, active=True)
        await until(lambda: len(b.accepted()) == 2, 10, "the held delivery after the pause")
    assert len(a.accepted()) == 1
    ids = [q.json["event_id"] for q in b.accepted()]
    assert ids == sorted(ids) and {q.json["data"]["to"] for q in b.accepted()} == \
        {LeadStatus.HOT.value}
