"""Campaigns, companies, DNC, callbacks, attempts (cursor pages), plan and report over the
CRM API, with their audit rows."""

from __future__ import annotations

from datetime import timedelta

import httpx
from api_harness import NOW, ApiDb

from common.vocabulary import AttemptResult, AttemptStage, DialMode
from db import audit
from db.models import Attempt, Lead


async def test_campaign_create_read_update_stats_and_switches(client: httpx.AsyncClient,
                                                              api_db: ApiDb) -> None:
    r = await client.post("/api/v1/campaigns", json={
        "name": "winter", "caller_id": "+14155550199", "timezone": "Europe/Riga",
        "dial_mode": "power", "max_attempts": 4})
    assert r.status_code == 201, r.text
    assert r.json()["dial_mode"] == "power" and r.json()["max_attempts"] == 4
    r = await client.post("/api/v1/campaigns", json={"name": "winter",
                                                     "caller_id": "+14155550199"})
    assert r.status_code == 409
    r = await client.post("/api/v1/campaigns", json={"name": "w2", "caller_id": "12"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "caller_id"
    r = await client.patch("/api/v1/campaigns/winter", json={"abandon_cap": 0.02,
                                                             "script": "Hello {name}"})
    assert r.status_code == 200 and r.json()["abandon_cap"] == 0.02
    assert r.json()["dial_mode"] == "power"
    r = await client.patch("/api/v1/campaigns/winter", json={"ring_timeout_s": 1})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ring_timeout_s"
    r = await client.patch("/api/v1/campaigns/winter", json={"name": "renamed"})
    assert r.status_code == 422
    # no dialer in this process: the hold is recorded, the dialer applies it at its start
    r = await client.post("/api/v1/campaigns/winter/pause", json={"reason": "script change"})
    assert r.json() == {"campaign": "winter", "state": "paused",
                        "applied": "at the dialer's start"}
    assert (await client.post("/api/v1/campaigns/winter/start")).json()["state"] == "idle"
    assert (await client.post("/api/v1/campaigns/winter/stop")).json()["state"] == "stopped"
    assert (await client.post("/api/v1/campaigns/nope/stop")).status_code == 404
    stats = (await client.get("/api/v1/campaigns/spring/stats")).json()
    assert stats["leads"] == 0 and stats["attempts"] == 0 and stats["date"] == "2026-12-02"
    names = [c["name"] for c in (await client.get("/api/v1/campaigns")).json()["campaigns"]]
    assert names == ["spring", "winter"]
    log = await audit.entries(api_db.sessions, action_prefix="campaign.")
    assert [e.action for e in log] == ["campaign.stop", "campaign.start", "campaign.pause",
                                       "campaign.update", "campaign.create"]
    assert log[2].detail == {"reason": "script change", "was": "not running"}
    assert log[2].actor.kind == "token" and log[2].actor.name == "crm"
    assert log[3].detail == {"fields": ["abandon_cap", "script"]}


async def test_companies_with_calendars(client: httpx.AsyncClient, api_db: ApiDb) -> None:
    r = await client.put("/api/v1/companies", json={
        "name": "Birch Ltd", "timezone": "europe/london",
        "hours": "mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00",
        "holidays": "GB", "closures": "2026-12-24..2026-12-26"})
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["timezone"] == "Europe/London" and c["hours"].startswith("mon-thu 08:30-12:00")
    assert c["closures"] == [{"start": "2026-12-24", "end": "2026-12-26"}]
    r = await client.put("/api/v1/companies", json={"name": "Birch Ltd", "hours": "fri 9-5"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "hours"
    r = await client.put("/api/v1/companies", json={"name": "Birch Ltd", "holidays": "none"})
    assert r.status_code == 200 and r.json()["result"] == "updated"
    r = await client.put("/api/v1/companies", json={"name": "Birch Ltd", "holidays": "none"})
    assert r.json()["result"] == "unchanged"
    assert (await client.get(f"/api/v1/companies/{c['id']}")).json()["name"] == "Birch Ltd"
    assert (await client.get("/api/v1/companies/Nope")).status_code == 404
    all_ = (await client.get("/api/v1/companies")).json()["companies"]
    assert {x["name"] for x in all_} == {"Acme SIA", "Birch Ltd"}
    log = await audit.entries(api_db.sessions, action_prefix="company.")
    assert [e.action for e in log] == ["company.update", "company.create"]


async def test_dnc_add_list_delete(client: httpx.AsyncClient, api_db: ApiDb) -> None:
    await client.post("/api/v1/leads", json={"campaign": "spring", "phone": "+12125550101",
                                             "name": "A"})
    r = await client.post("/api/v1/dnc", json={"phone": "212-555-0101", "reason": "asked"})
    assert r.status_code == 201 and r.json()["leads_stopped"] == 1
    assert r.json()["phone"] == "+12125550101"
    r = await client.post("/api/v1/dnc", json={"phone": "not a number"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "phone"
    for i in range(3):
        await client.post("/api/v1/dnc", json={"phone": f"+1212555020{i}"})
    page = (await client.get("/api/v1/dnc", params={"limit": 3})).json()
    assert len(page["entries"]) == 3 and page["next_cursor"]
    rest = (await client.get("/api/v1/dnc", params={"limit": 3,
                                                    "cursor": page["next_cursor"]})).json()
    assert len(rest["entries"]) == 1 and rest["next_cursor"] is None
    entry = page["entries"][0]["id"]
    assert (await client.delete(f"/api/v1/dnc/{entry}")).status_code == 204
    assert (await client.delete(f"/api/v1/dnc/{entry}")).status_code == 404
    actions = [e.action for e in await audit.entries(api_db.sessions, action_prefix="dnc.")]
    assert actions.count("dnc.add") == 4 and actions[0] == "dnc.delete"


async def test_callbacks_create_list_cancel(client: httpx.AsyncClient, api_db: ApiDb) -> None:
    lead = (await client.post("/api/v1/leads", json={
        "campaign": "spring", "phone": "+12125550111", "name": "B"})).json()
    due = (NOW + timedelta(hours=3)).isoformat()
    r = await client.post("/api/v1/callbacks", json={"lead_id": lead["id"], "due_at": due,
                                                     "notes": "after lunch"})
    assert r.status_code == 201 and r.json()["scope"] == "campaign"
    cb = r.json()["id"]
    r = await client.post("/api/v1/callbacks", json={"lead_id": lead["id"],
                                                     "due_at": "2026-12-02T10:00:00"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "due_at"
    r = await client.post("/api/v1/callbacks", json={"lead_id": lead["id"], "due_at": due,
                                                     "agent": "ghost"})
    assert r.status_code == 404
    listed = (await client.get("/api/v1/callbacks",
                               params={"campaign": "spring", "status": "pending"})).json()
    assert [c["id"] for c in listed["callbacks"]] == [cb]
    assert (await client.delete(f"/api/v1/callbacks/{cb}")).json()["status"] == "cancelled"
    assert (await client.delete(f"/api/v1/callbacks/{cb}")).status_code == 409


async def test_attempts_filters_and_cursor_pages(client: httpx.AsyncClient,
                                                 api_db: ApiDb) -> None:
    async with api_db.sessions.begin() as s:
        lead = Lead(campaign_id=api_db.campaign_id, phone_e164="+12125550123", name="C")
        s.add(lead)
        await s.flush()
        for i in range(25):
            # pairs of attempts share a creation time: the cursor's id breaks the tie
            s.add(Attempt(campaign_id=api_db.campaign_id, lead_id=lead.id,
                          phone_e164="+12125550123", dial_mode=DialMode.PREDICTIVE,
                          stage=AttemptStage.ENDED,
                          result=AttemptResult.BUSY if i % 5 == 0 else AttemptResult.NO_ANSWER,
                          created_at=NOW + timedelta(seconds=i // 2)))
    seen: list[int] = []
    cursor = None
    while True:
        params = {"campaign": "spring", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/attempts", params=params)).json()
        seen += [a["id"] for a in page["attempts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and seen == sorted(seen) and len(set(seen)) == 25
    busy = (await client.get("/api/v1/attempts", params={"result": "busy"})).json()
    assert len(busy["attempts"]) == 5
    window = (await client.get("/api/v1/attempts", params={
        "since": (NOW + timedelta(seconds=2)).isoformat(),
        "until": (NOW + timedelta(seconds=4)).isoformat()})).json()
    assert len(window["attempts"]) == 4
    r = await client.get("/api/v1/attempts", params={"cursor": "garbage!"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"
    r = await client.get("/api/v1/attempts", params={"result": "maybe"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("result")


async def test_plan_and_report_as_json(client: httpx.AsyncClient) -> None:
    plan = (await client.get("/api/v1/campaigns/spring/plan")).json()
    assert plan == {"campaign": "spring", "date": "2026-12-02", "built": False, "plans": []}
    report = (await client.get("/api/v1/campaigns/spring/report",
                               params={"date": "2026-12-01"})).json()
    assert report["date"] == "2026-12-01" and isinstance(report["rows"], list)
    r = await client.get("/api/v1/campaigns/spring/report", params={"date": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "date"
