"""The agent desktop's reads: call context, next-contact check, callbacks, the day so far."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from web_harness import NOW, WebDb, sign_in

from common.vocabulary import AgentState, CallbackScope, LeadStatus
from db.models import Attempt, Callback, Lead
from dialer.bus.messages import LeadCard, PreviewEvt, StateEvt
from dialer.web.deps import WebDeps


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await sign_in(client, "alice")
    return client


async def test_context_of_an_own_call(alice: httpx.AsyncClient, web_db: WebDb) -> None:
    r = await alice.get(f"/api/agent/context/{web_db.attempts['alice']}")
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert ctx["callee"]["zone"] == "America/New_York"
    assert ctx["callee"]["local_time"].startswith("2026-12-02T10:00:00-05:00")
    assert ctx["callee"]["callable_now"] is True and ctx["callee"]["window"] == "us_federal"
    assert ctx["callee"]["hours_today"] == [["08:00", "21:00"]]
    company = ctx["company"]
    assert company["name"] == "Acme SIA" and company["zone"] == "Europe/Riga"
    assert company["local_time"].startswith("2026-12-02T17:00:00+02:00")
    assert company["open_now"] is False
    assert company["hours_today"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert company["closed_reason"].startswith("company closed after 17:00")
    assert company["next_open"] == "2026-12-03T07:00:00+00:00"
    # the same as a code a page translates, with its params (the words stay for API users)
    assert company["closed_reason_code"] == "company_closed_after"
    assert company["closed_reason_params"] == {"time": "17:00",
                                               "hours": "09:00-12:00, 13:00-17:00"}
    assert ctx["callee"]["reason"] is None and ctx["callee"]["reason_code"] is None
    # who the call was with (a call known only by its id after a restart is titled by it)
    assert ctx["lead"] == {"id": web_db.lead_id, "name": "Test Lead", "company": "Acme SIA",
                           "phone": "+12125550123"}
    assert ctx["attempt_id"] == web_db.attempts["alice"] and ctx["ended_at"] is None


async def test_context_says_when_the_call_ended(alice: httpx.AsyncClient,
                                                web_db: WebDb) -> None:
    async with web_db.sessions.begin() as s:
        a = await s.get(Attempt, web_db.attempts["alice"])
        assert a is not None
        a.ended_at = NOW - timedelta(minutes=3)
    r = await alice.get(f"/api/agent/context/{web_db.attempts['alice']}")
    assert r.status_code == 200, r.text
    assert r.json()["ended_at"] == "2026-12-02T14:57:00+00:00"


async def _other_lead(web_db: WebDb) -> int:
    """A lead of the campaign that no agent has called yet."""
    async with web_db.sessions.begin() as s:
        lead = Lead(campaign_id=web_db.campaign_id, phone_e164="+33142685300",
                    timezone="Europe/Paris", name="Offered Lead", next_call_at=NOW)
        s.add(lead)
        await s.flush()
        return lead.id


def _preview(lead_id: int) -> PreviewEvt:
    return PreviewEvt(lead=LeadCard(id=lead_id, name="Offered Lead", phone="+33142685300",
                                    status=LeadStatus.POTENTIAL))


async def test_lead_context_of_a_preview_offer(client: httpx.AsyncClient, web_db: WebDb,
                                               deps: WebDeps) -> None:
    lead_id = await _other_lead(web_db)
    await sign_in(client, "alice")
    # not offered, never called by alice: not hers to read
    assert (await client.get(f"/api/agent/lead-context/{lead_id}")).status_code == 404
    # the dialer offers it to alice in preview (the message passes the socket hub)
    await deps.hub.send("alice", StateEvt(state=AgentState.RESERVED))
    await deps.hub.send("alice", _preview(lead_id))
    r = await client.get(f"/api/agent/lead-context/{lead_id}")
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert ctx["attempt_id"] is None and ctx["ended_at"] is None
    assert ctx["lead"] == {"id": lead_id, "name": "Offered Lead", "company": None,
                           "phone": "+33142685300"}
    assert ctx["callee"]["zone"] == "Europe/Paris"
    assert ctx["callee"]["local_time"].startswith("2026-12-02T16:00:00+01:00")
    # the same body as an attempt's context: the company is the campaign's (none here)
    own = (await client.get(f"/api/agent/context/{web_db.attempts['alice']}")).json()
    assert set(ctx) == set(own) and ctx["company"] is None
    # bob is not offered it (signing in replaces the client's session cookie)
    await sign_in(client, "bob")
    assert (await client.get(f"/api/agent/lead-context/{lead_id}")).status_code == 404
    # alice skips it (she is ready again): the offer is over
    await deps.hub.send("alice", StateEvt(state=AgentState.READY))
    await sign_in(client, "alice")
    assert (await client.get(f"/api/agent/lead-context/{lead_id}")).status_code == 404


async def test_lead_context_of_a_lead_the_agent_called(alice: httpx.AsyncClient,
                                                       web_db: WebDb) -> None:
    r = await alice.get(f"/api/agent/lead-context/{web_db.lead_id}")
    assert r.status_code == 200, r.text
    assert r.json()["lead"]["name"] == "Test Lead" and r.json()["attempt_id"] is None
    for missing in (999_999, await _other_lead(web_db)):
        assert (await alice.get(f"/api/agent/lead-context/{missing}")).status_code == 404


async def test_another_agents_call_is_not_found(alice: httpx.AsyncClient, web_db: WebDb) -> None:
    for attempt in (web_db.attempts["bob"], 999_999):
        r = await alice.get(f"/api/agent/context/{attempt}")
        assert r.status_code == 404
        r = await alice.get("/api/agent/check-contact",
                            params={"attempt_id": attempt, "at": "2026-12-03T14:00:00+00:00"})
        assert r.status_code == 404


@pytest.mark.parametrize(("at", "allowed", "reason", "code", "params"), [
    ("2026-12-03T14:00:00+00:00", True, None, None, None),
    ("2026-12-03T09:00:00+00:00", False, "outside the callee's calling hours 08:00-21:00",
     "callee_outside_hours", {"hours": "08:00-21:00", "start": "08:00", "end": "21:00",
                              "zone": "America/New_York"}),
    ("2026-12-05T14:00:00+00:00", False, "company closed on Saturdays",
     "company_closed_weekday", {"weekday": "saturday"}),
    ("2026-12-25T14:00:00+00:00", False, "company closed: public holiday (Christmas Day, LV)",
     "company_holiday", {"country": "LV", "name": "Christmas Day"}),
    ("2026-12-03T10:30:00+00:00", False, "company closed 12:00-13:00",
     "company_lunch", None),
    ("2026-12-01T14:00:00+00:00", False, "that time has passed", "time_passed", {}),
])
async def test_check_contact_words_the_calling_rules(
        alice: httpx.AsyncClient, web_db: WebDb, at: str, allowed: bool,
        reason: str | None, code: str | None, params: dict[str, str] | None) -> None:
    r = await alice.get("/api/agent/check-contact",
                        params={"attempt_id": web_db.attempts["alice"], "at": at})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allowed"] is allowed and body["zone"] == "America/New_York"
    if reason is None:
        assert body["reason"] is None and body["next_allowed"] == at
        assert body["reason_code"] is None and body["reason_params"] is None
    else:
        assert reason in body["reason"]
        assert body["next_allowed"] is not None and body["next_allowed"] > at
        # the same, as codes a page translates (with the words kept for API users)
        why = next(w for w in body["reasons"] if w["code"] == code)
        assert reason in why["text"]
        if params is not None:
            assert why["params"] == params
        # the first refusal also as top-level fields
        assert body["reason_code"] == body["reasons"][0]["code"]
        assert body["reason_params"] == body["reasons"][0]["params"]


async def test_check_contact_needs_an_offset(alice: httpx.AsyncClient, web_db: WebDb) -> None:
    for at in ("2026-12-03T14:00:00", "tomorrow at two"):
        r = await alice.get("/api/agent/check-contact",
                            params={"attempt_id": web_db.attempts["alice"], "at": at})
        assert r.status_code == 422 and "at:" in r.json()["detail"]


async def test_callbacks_due_today_own_first(alice: httpx.AsyncClient, web_db: WebDb) -> None:
    ids = web_db.agent_ids

    def cb(scope: CallbackScope, owner: int | None, due_h: float, status: str = "pending",
           notes: str = "") -> Callback:
        return Callback(campaign_id=web_db.campaign_id, lead_id=web_db.lead_id, scope=scope,
                        owner_agent_id=owner, due_at=NOW + timedelta(hours=due_h),
                        timezone="America/New_York", status=status, notes=notes)

    async with web_db.sessions.begin() as s:
        s.add_all([
            cb(CallbackScope.CAMPAIGN, None, 1.0, notes="anyone"),
            cb(CallbackScope.AGENT, ids["alice"], 2.0, notes="mine later"),
            cb(CallbackScope.AGENT, ids["alice"], -3.0, notes="mine overdue"),
            cb(CallbackScope.AGENT, ids["bob"], 1.0, notes="bob's"),
            cb(CallbackScope.AGENT, ids["alice"], 30.0, notes="tomorrow"),
            cb(CallbackScope.AGENT, ids["alice"], 1.5, status="done", notes="done"),
        ])
    r = await alice.get("/api/agent/callbacks")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["date"] == "2026-12-02" and body["campaign"] == "spring"
    assert [c["notes"] for c in body["callbacks"]] == ["mine overdue", "mine later", "anyone"]
    first = body["callbacks"][0]
    assert first["overdue"] is True and first["mine"] is True and first["scope"] == "agent"
    assert first["lead_name"] == "Test Lead" and first["company"] == "Acme SIA"
    assert first["due_local"].endswith("-05:00")


async def test_day_is_the_agents_row_of_the_report(alice: httpx.AsyncClient) -> None:
    r = await alice.get("/api/agent/day")
    assert r.status_code == 200, r.text
    assert r.json() == {"date": "2026-12-02", "campaign": "spring", "agent": "alice",
                        "planned": 0, "called": 1, "reached": 1, "meetings": 0,
                        "contracts": 0, "callbacks": 0, "talk_s": 30.0}
