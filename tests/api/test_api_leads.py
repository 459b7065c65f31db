"""Leads over the CRM API: the bulk upsert through the importer's rules (idempotent by
external_id, the per-row report), single create, read with calls, update, GDPR erasure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from api_harness import NOW, ApiDb
from sqlalchemy import select, text

from common.vocabulary import AttemptResult, AttemptStage, CallbackScope, DialMode
from db import audit
from db.models import Attempt, Callback, Lead


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"external_id": f"crm-{i}", "phone": f"+1212555{i:04d}", "name": f"Person {i}",
             "priority": i % 10, "custom_fields": {"plan": "gold", "seats": i}}
            for i in range(start, start + n)]


async def test_bulk_upsert_is_idempotent_and_reports_each_row(client: httpx.AsyncClient,
                                                              api_db: ApiDb) -> None:
    batch = rows(50)
    batch.insert(10, {"external_id": "bad-1", "phone": "12", "name": "x"})
    batch.insert(20, {"external_id": "bad-2", "phone": "+12125559999", "name": "y",
                      "timezone": "Mars/Base"})
    batch.append({"external_id": "crm-3", "phone": "+12125558888", "name": "again"})
    r = await client.post("/api/v1/leads/bulk", json={"campaign": "spring", "leads": batch})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["received"], rep["created"], rep["updated"], rep["unchanged"],
            rep["rejected"], rep["skipped"]) == (53, 50, 0, 0, 2, 1)
    issues = {i["index"]: i for i in rep["issues"]}
    assert issues[10]["reason"] == "bad_phone" and issues[10]["field"] == "phone"
    assert issues[20]["reason"] == "bad_timezone" and issues[20]["field"] == "timezone"
    assert issues[52]["reason"] == "duplicate_in_file" and "external_id" in issues[52]["detail"]
    assert len(rep["results"]) == 50 and {x["result"] for x in rep["results"]} == {"created"}

    again = (await client.post("/api/v1/leads/bulk",
                               json={"campaign": "spring", "leads": rows(50)})).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 50)
    assert [x["id"] for x in again["results"]] == [x["id"] for x in rep["results"]]
    async with api_db.sessions() as s:
        assert len(list(await s.scalars(select(Lead)))) == 50

    changed = rows(50)
    changed[5]["name"] = "Renamed"
    changed[6]["status"] = "done"
    third = (await client.post("/api/v1/leads/bulk",
                               json={"campaign": "spring", "leads": changed})).json()
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 2, 48)
    async with api_db.sessions() as s:
        l6 = await s.scalar(select(Lead).where(Lead.external_id == "crm-6"))
        assert l6.next_call_at is None and l6.never_reason == "status set to done"
    # one audit row per written chunk, in its transaction (three requests of one chunk)
    log = await audit.entries(api_db.sessions, action_prefix="leads.upsert")
    assert len(log) == 3 and log[0].actor.kind == "token" and log[0].actor.name == "crm"
    assert log[-1].target == "campaign:spring"
    # rows: the chunk's valid rows (the parser's rejects and in-batch duplicates wrote nothing)
    assert log[-1].detail == {"rows": 50, "created": 50, "updated": 0, "unchanged": 0,
                              "skipped": 0}
    assert log[1].detail["unchanged"] == 50 and log[0].detail["updated"] == 2
    assert "+1212" not in str([e.detail for e in log])


async def test_bulk_without_external_id_and_dnc_follow_the_csv_rules(
        client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/dnc", json={"phone": "+12125550003"})
    assert r.status_code == 201
    batch = [{"phone": f"+1212555{i:04d}", "name": f"P{i}"} for i in range(5)]
    rep = (await client.post("/api/v1/leads/bulk",
                             json={"campaign": "spring", "leads": batch})).json()
    assert rep["created"] == 4 and rep["issues"] == [
        {"index": 3, "outcome": "skipped", "reason": "dnc", "field": "phone",
         "detail": "number is on a do-not-call list"}]
    rep = (await client.post("/api/v1/leads/bulk",
                             json={"campaign": "spring", "leads": batch})).json()
    assert rep["created"] == 0 and rep["skipped"] == 5
    assert {i["reason"] for i in rep["issues"]} == {"dnc", "duplicate_in_db"}


async def test_bulk_limits_unknown_campaign_and_companies(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/leads/bulk", json={"campaign": "nope", "leads": rows(1)})
    assert r.status_code == 422 and "no campaign named 'nope'" in r.json()["detail"]
    r = await client.post("/api/v1/leads/bulk",
                          json={"campaign": "spring",
                                "leads": [{"phone": "+12125550100"}] * 10_001})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "leads"
    one = [{"phone": "+12125550100", "company": "New Co"}]
    rep = (await client.post("/api/v1/leads/bulk",
                             json={"campaign": "spring", "leads": one})).json()
    assert rep["issues"][0]["reason"] == "bad_company"
    rep = (await client.post("/api/v1/leads/bulk", json={
        "campaign": "spring", "leads": one, "create_companies": True})).json()
    assert rep["created"] == 1 and rep["companies_created"] == ["New Co"]


async def test_single_create_read_update(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/leads", json={
        "campaign": "spring", "external_id": "c-1", "phone": "(212) 555-0142",
        "name": "Ann", "company": "acme sia", "next_contact_at": "2026-12-03 10:00"})
    assert r.status_code == 201, r.text
    lead = r.json()
    assert lead["phone"] == "+12125550142" and lead["result"] == "created"
    assert lead["next_contact_at"] == "2026-12-03T15:00:00+00:00"
    same = {"campaign": "spring", "external_id": "c-1", "phone": "+12125550142", "name": "Ann",
            "company": "Acme SIA", "next_contact_at": "2026-12-03T15:00:00Z"}
    r = await client.post("/api/v1/leads", json=same)
    assert r.status_code == 200 and r.json()["result"] == "unchanged"
    assert r.json()["id"] == lead["id"]
    r = await client.post("/api/v1/leads", json={"campaign": "spring", "phone": "+1 212 555 0142",
                                                 "name": "Dup"})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_in_db"
    r = await client.post("/api/v1/leads", json={"campaign": "spring", "phone": "+12125550143",
                                                 "name": "P", "priority": 1000})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "priority"
    r = await client.patch(f"/api/v1/leads/{lead['id']}", json={"priority": 7,
                                                                "status": "hot"})
    assert r.status_code == 200 and r.json()["priority"] == 7 and r.json()["status"] == "hot"
    r = await client.patch(f"/api/v1/leads/{lead['id']}", json={"status": "boiling"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "status"
    found = (await client.get("/api/v1/leads", params={"campaign": "spring",
                                                       "external_id": "c-1"})).json()
    assert found["id"] == lead["id"]
    got = (await client.get(f"/api/v1/leads/{lead['id']}")).json()
    assert got["calls"] == [] and got["custom_fields"] == {}


async def test_gdpr_erasure_leaves_no_name_or_number(client: httpx.AsyncClient,
                                                     api_db: ApiDb, tmp_path: Path) -> None:
    r = await client.post("/api/v1/leads", json={
        "campaign": "spring", "external_id": "gdpr-1", "phone": "+12125550177",
        "name": "Erin Erasable", "custom_fields": {"email": "erin@example.com"}})
    lead_id = r.json()["id"]
    async with api_db.sessions.begin() as s:
        for k in range(2):
            s.add(Attempt(campaign_id=api_db.campaign_id, lead_id=lead_id,
                          phone_e164="+12125550177", dial_mode=DialMode.PREDICTIVE,
                          stage=AttemptStage.ENDED, result=AttemptResult.CONNECTED,
                          created_at=NOW + timedelta(seconds=k), talk_s=12.0,
                          notes="Erin said call at home", disposition="callback"))
        s.add(Callback(campaign_id=api_db.campaign_id, lead_id=lead_id,
                       scope=CallbackScope.CAMPAIGN, due_at=NOW + timedelta(days=1),
                       notes="Erin prefers mornings"))
    # a recording of one of the calls, where the dialer writes them
    recording = tmp_path / "recordings" / f"spring-{lead_id}.wav"
    recording.parent.mkdir()
    recording.write_bytes(b"RIFF....WAVE")
    elsewhere = tmp_path / "keep.wav"
    elsewhere.write_bytes(b"RIFF....WAVE")
    async with api_db.sessions.begin() as s:
        first, second = (await s.scalars(select(Attempt).where(
            Attempt.lead_id == lead_id).order_by(Attempt.id))).all()
        first.recording_path = str(recording)
        second.recording_path = str(elsewhere)  # not the dialer's: left alone
    got = (await client.get(f"/api/v1/leads/{lead_id}")).json()
    assert len(got["calls"]) == 2
    r = await client.delete(f"/api/v1/leads/{lead_id}")
    assert r.status_code == 200 and r.json() == {"id": lead_id, "erased": True,
                                                 "calls_anonymised": 2,
                                                 "recordings_deleted": 1}
    assert not recording.exists() and elsewhere.exists()
    async with api_db.sessions() as s:
        for table in ("leads", "attempts", "callbacks", "audit_log", "webhook_events"):
            dump = str((await s.execute(text(f"SELECT * FROM {table}"))).all())
            for secret in ("Erin", "5550177", "example.com", "gdpr-1"):
                assert secret not in dump, (table, secret)
        lead = await s.get(Lead, lead_id)
        assert lead.next_call_at is None and lead.status.value == "done"
        cb = await s.scalar(select(Callback))
        assert cb.status == "cancelled"
    got = (await client.get(f"/api/v1/leads/{lead_id}")).json()
    assert [c["talk_s"] for c in got["calls"]] == [12.0, 12.0]
    assert (await client.patch(f"/api/v1/leads/{lead_id}", json={"name": "x"})).status_code \
        == 409
    assert (await client.delete("/api/v1/leads/999999")).status_code == 404
    (entry,) = await audit.entries(api_db.sessions, action_prefix="lead.erase")
    assert entry.target == f"lead:{lead_id}"
    assert entry.detail == {"attempts": 2, "webhook_events": 0, "recordings": 2}


def test_statistics_refresh_after_growth_or_a_minute(monkeypatch) -> None:
    import dialer.web.api_v1.leads as leads_mod

    t = [1000.0]
    monkeypatch.setattr(leads_mod.time, "monotonic", lambda: t[0])
    r = leads_mod.StatisticsRefresh()
    assert not r.due(500)                       # under ANALYZE_AFTER
    assert r.due(5000)                          # the first big batch
    assert r.due(5000)                          # the table doubled
    assert not r.due(4000)                      # grew by 40%: not yet
    assert r.due(1500)                          # by half (5,500 of 10,500)
    t[0] += 61
    assert r.due(1000)                          # a minute passed
    assert not r.due(999)
