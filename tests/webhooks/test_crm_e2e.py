"""Issue #15's combined test: a CRM drives a live `dialer run` over /api/v1 and gets every
outcome back through webhooks, on SQLite (embedded broker) and PostgreSQL (Mosquitto).

The stack is the fault harness's call center with the web server on (tests/support/crm.py:
SIPp callees behind Kamailio, SIPp agent phones, simulated agents over MQTT). With tokens
from the real `dialer tokens create`, an httpx client:

* subscribes a real receiver on 127.0.0.1 (`POST /api/v1/webhooks`);
* creates a campaign and changes its settings (`POST`, `PATCH /campaigns`); the calls go to
  the config's campaign, since a `dialer run` dials the campaigns of its config file (and
  writes the config's settings over the stored ones at each start);
* pushes 1,000 leads in one bulk upsert and re-sends the batch: nothing is created twice,
  the report says `unchanged` for all of them. Only `DUE` of them are due now, the others
  have a next contact days away (so the run stays short);
* checks the refusals, and that none of them wrote anything: a token without the scope
  (403), a revoked token (401), malformed JSON (400) and an oversized body (413), all
  problem+json;
* reads the calls back: `/attempts` paged three at a time by cursor gives every attempt of
  the database once; a lead shows its calls; a lead not called yet is erased (GDPR).

The agents give dispositions; the receiver is down for 30 s, and while it is down the
dialer is killed (SIGKILL) after a disposition was saved and before it could be delivered,
then started again. In the end the receiver has every event of the outbox exactly once after
dedupe by delivery id, in order per lead, each signature valid by the recipe of docs/api.md
(the code block itself, taken from the markdown).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.pgserver import TempPostgres
from dialer.agentsim import AgentProfile
from dialer.webhooks import sign
from support.crm import (
    CAMPAIGN,
    CrmStack,
    WebSpec,
    backend,
    check_deliveries,
    create_token,
    fresh_numbers,
    revoke_token,
    until,
    wait_calls_done,
    wait_delivered,
)
from support.faults import wait_for

from .receiver import Receiver

DOCS = Path(__file__).resolve().parents[2] / "docs"
LEADS = 1000
DUE = 12
OUTAGE_S = 30.0
PROBLEM = "application/problem+json"
SCOPES = ["campaigns:read", "campaigns:write", "leads:read", "leads:write", "attempts:read",
          "webhooks:read", "webhooks:write"]


def recipe(doc: str) -> str:
    """The python block of docs/<doc> that defines `verify`."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), re.S)
    code = [b for b in blocks if "def verify(" in b]
    assert len(code) == 1, f"one python block defining verify() in docs/{doc}"
    return str(code[0])


def docs_verify(doc: str = "api.md") -> Any:
    """That block's `verify`, compiled as it is written."""
    ns: dict[str, Any] = {}
    exec(compile(recipe(doc), f"docs/{doc}", "exec"), ns)
    return ns["verify"]


def test_the_docs_recipe_checks_a_signature() -> None:
    """The recipe of docs/api.md is that of docs/webhooks.md, and it accepts what the
    dialer signs and refuses a changed body, another secret and an old timestamp."""
    assert recipe("api.md") == recipe("webhooks.md"), "the walk-through copies the recipe"
    verify = docs_verify("api.md")
    body = b'{"delivery_id": "d-1", "event": "dnc.added", "event_id": 1, "data": {}}'
    ts = str(int(time.time()))
    headers = httpx.Headers({"x-dialer-timestamp": ts,
                             "x-dialer-signature": sign("whsec_k", ts, body)})
    assert verify("whsec_k", headers, body)
    assert docs_verify("webhooks.md")("whsec_k", headers, body)
    assert not verify("whsec_k", headers, body.replace(b"1", b"2"))
    assert not verify("whsec_other", headers, body)
    old = str(int(time.time()) - 3600)
    assert not verify("whsec_k", httpx.Headers({
        "x-dialer-timestamp": old, "x-dialer-signature": sign("whsec_k", old, body)}), body)


async def read_back(st: CrmStack, c: httpx.AsyncClient, batch: list[dict[str, Any]],
                    ids: list[int]) -> None:
    """The calls read back over the API: `/attempts` paged by cursor gives every attempt of
    the database once, with the numbers the CRM pushed; a lead shows its calls; a lead not
    called yet is erased and keeps no number."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (await c.get("/api/v1/attempts", params={
            "campaign": CAMPAIGN, "limit": 3, **({"cursor": cursor} if cursor else {})})).json()
        seen += page["attempts"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    in_db = {a.id for a in await st.attempts()}
    assert sorted(a["id"] for a in seen) == sorted(in_db), "pages skip or repeat no call"
    assert {a["phone"] for a in seen} <= {x["phone"] for x in batch}
    done = [a for a in seen if a["result"] == "connected" and a["talk_s"]]
    assert done, "a connected call with its talk time"
    one = (await c.get(f"/api/v1/leads/{done[0]['lead_id']}")).json()
    assert one["external_id"].startswith("crm-") and one["calls"], one
    never_called = ids[-1]
    gone = await c.delete(f"/api/v1/leads/{never_called}")
    assert gone.status_code == 200 and gone.json()["erased"] is True, gone.text
    erased = (await c.get(f"/api/v1/leads/{never_called}")).json()
    assert erased["external_id"] is None and erased["status"] == "done", erased


@pytest.fixture(params=["default", "production"])
def stack_kind(request: pytest.FixtureRequest) -> tuple[str, TempPostgres | None]:
    """default: SQLite and the embedded broker; production: PostgreSQL and Mosquitto."""
    return backend(request)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def written(st: CrmStack) -> tuple[int, int, int]:
    """Rows a refused request must not add: leads, audit entries, subscriptions."""
    counts = []
    for table in ("leads", "audit_log", "webhook_subscriptions"):
        counts.append((await st.query(f"SELECT count(*) FROM {table}"))[0][0])
    return counts[0], counts[1], counts[2]


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = dict(r.json())
    assert body["status"] == status and body["code"] == code, body
    return body


async def refusals(st: CrmStack, c: httpx.AsyncClient, reader: str, revoked: str,
                   batch: list[dict[str, Any]]) -> None:
    """403, 401, 400 and 413, problem+json each, and nothing written by any of them."""
    before = await written(st)
    one = {"campaign": CAMPAIGN, "leads": batch[:1]}
    body = assert_problem(await c.post("/api/v1/leads/bulk", json=one, headers=bearer(reader)),
                          403, "insufficient_scope")
    assert "leads:write" in str(body)
    assert_problem(await c.post("/api/v1/webhooks", headers=bearer(reader),
                                json={"url": "http://127.0.0.1:9/x", "events": ["dnc.added"]}),
                   403, "insufficient_scope")
    r = await c.post("/api/v1/leads/bulk", json=one, headers=bearer(revoked))
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await c.get("/api/v1/campaigns", headers=bearer(revoked)), 401,
                   "unauthorized")
    assert_problem(await c.post("/api/v1/leads/bulk", content=b'{"campaign": "faults", '
                                b'"leads": [{"phone": "+12125550101",',
                                headers={"Content-Type": "application/json"}),
                   400, "malformed_json")
    big = [{**x, "name": x["name"] + " " + "x" * 600, "external_id": f"big-{i}"}
           for i, x in enumerate(batch)]
    raw = httpx.Request("POST", "/", json={"campaign": CAMPAIGN, "leads": big}).content
    assert len(raw) > st.api_max_body_bytes > len(httpx.Request(
        "POST", "/", json={"campaign": CAMPAIGN, "leads": batch}).content)
    assert_problem(await c.post("/api/v1/leads/bulk", content=raw,
                                headers={"Content-Type": "application/json"}),
                   413, "too_large")
    assert await written(st) == before, "a refused request wrote something"


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.sipp
@pytest.mark.timeout(400)
async def test_crm_drives_the_dialer_and_gets_every_outcome_once(
        tmp_path: Path, stack_kind: tuple[str, TempPostgres | None]) -> None:
    kind, pg = stack_kind
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (Debian package sip-tester)")
    from support.kamailio import available as kamailio_available
    if not kamailio_available():
        pytest.skip("kamailio not installed (scripts/setup installs it)")
    spec = WebSpec(
        kind=kind, leads={}, web_agents={},
        profile=AgentProfile(wrapup_s=(0.8, 1.5), break_probability=0.0,
                             settle_s=(0.2, 0.4), auto_resume_s=(1.0, 2.0),
                             reply_timeout_s=5.0,
                             disposition_mix={"interested": 0.4, "callback": 0.25,
                                              "do_not_call": 0.15, "no_need": 0.2}))
    t0 = time.monotonic()
    async with Receiver() as r, CrmStack(tmp_path, spec, pg) as st:
        token = await create_token(st, "crm", SCOPES)
        reader = await create_token(st, "reader", ["leads:read", "webhooks:read"])
        revoked = await create_token(st, "gone", SCOPES)
        await revoke_token(st, "gone")
        later = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
        batch = [{"external_id": f"crm-{i}", "phone": p, "name": f"Live {i}",
                  "timezone": z, "priority": 50,
                  **({} if i < DUE else {"next_contact_at": later.isoformat()})}
                 for i, (p, z) in enumerate(fresh_numbers(st, LEADS))]
        async with httpx.AsyncClient(base_url=st.web_url, timeout=60,
                                     headers=bearer(token)) as c:
            # the receiver first: it gets every event of the leads pushed after it
            made = await c.post("/api/v1/webhooks", json={"url": r.url, "events": [
                "attempt.finished", "disposition.saved", "lead.status_changed",
                "dnc.added", "campaign.paused"]})
            assert made.status_code == 201, made.text
            hook = made.json()
            secret = hook.pop("secret")
            assert secret.startswith("whsec_")
            listed = (await c.get("/api/v1/webhooks")).json()["webhooks"]
            assert listed == [hook] and secret not in str(listed)

            # a campaign made and changed over the API (not dialled: see the docstring)
            r1 = await c.post("/api/v1/campaigns", json={
                "name": "crm-spring", "caller_id": "+14155550100",
                "timezone": "America/New_York", "dial_mode": "progressive"})
            assert r1.status_code == 201, r1.text
            r2 = await c.patch("/api/v1/campaigns/crm-spring", json={"max_attempts": 4})
            assert r2.status_code == 200 and r2.json()["max_attempts"] == 4, r2.text

            rep = (await c.post("/api/v1/leads/bulk",
                                json={"campaign": CAMPAIGN, "leads": batch})).json()
            assert (rep["created"], rep["rejected"], rep["skipped"]) == (LEADS, 0, 0), \
                    rep["issues"][:5]
            again = (await c.post("/api/v1/leads/bulk",
                                  json={"campaign": CAMPAIGN, "leads": batch})).json()
            assert (again["created"], again["updated"], again["unchanged"]) == \
                    (0, 0, LEADS), again["issues"][:5]
            assert [x["id"] for x in again["results"]] == [x["id"] for x in rep["results"]]
            await refusals(st, c, reader, revoked, batch)

            def dispositions_received() -> int:
                return sum(1 for q in r.accepted() if q.event == "disposition.saved")

            await until(lambda: dispositions_received() >= 2, 90,
                        "two dispositions posted")
            await r.stop()
            down_at = time.monotonic()
            disposed = sum(1 for a in await st.attempts() if a.disposition)

            async def one_more() -> bool:
                return sum(1 for a in await st.attempts() if a.disposition) > disposed

            # a disposition saved while the receiver is down: in the outbox only
            await wait_for(one_more, 25, "a disposition during the outage")
            killed_at = datetime.now(UTC)
            await st.kill_dialer()
            st.start_dialer()
            await st.wait_dialer_up()
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            await r.start()
            back_at = time.monotonic()

            await wait_calls_done(st, 120)
            await wait_delivered(st, 60)
            assert (await c.get("/api/v1/webhooks/dead-letters")).json() == \
                    {"dead_letters": []}
            stats = (await c.get(f"/api/v1/campaigns/{CAMPAIGN}/stats")).json()
            assert stats["leads"] == LEADS, stats
            await read_back(st, c, batch, [x["id"] for x in rep["results"]])
        rc, _ = await st.sigterm_dialer(st.spec.drain_deadline_s + 30)
        assert rc == 0, st.log_tail()
        events = await st.query("SELECT id, event FROM webhook_events ORDER BY id")
        rows = await st.attempts()
        restarts = st.log_text().count("dialer faults running")
        phones = await st.query("SELECT count(DISTINCT phone_e164), count(*) FROM leads")

    accepted = r.accepted()
    assert restarts == 2, "the dialer was killed and started again"
    assert phones[0] == (LEADS, LEADS), "no lead twice"
    verify = docs_verify("api.md")
    check_deliveries(r.requests, accepted, [e[0] for e in events],
                     lambda h, b: bool(verify(secret, httpx.Headers(h), b)))
    saved = {q.json["data"]["attempt_id"] for q in accepted if q.event == "disposition.saved"}
    disposed_ids = {a.id for a in rows if a.disposition}
    assert any(q.event == "disposition.saved" and q.at >= back_at and
               datetime.fromisoformat(q.json["created_at"]) < killed_at for q in accepted), \
        "a disposition saved before the kill was delivered after the restart"
    assert disposed_ids <= saved, "every saved disposition was posted"
    assert len(disposed_ids) >= 4
    finished = {q.json["data"]["attempt_id"] for q in accepted if q.event == "attempt.finished"}
    assert finished == {a.id for a in rows if a.ended_at is not None}, \
        "every closed attempt was posted (crash orphans too)"
    assert {a.lead_id for a in rows} <= {x["id"] for x in rep["results"][:DUE]}, \
        "only the leads due now were called"
    ours = {x["external_id"] for x in batch}
    assert all(q.json["data"]["external_id"] in ours for q in accepted
               if "external_id" in q.json["data"]), "events name the CRM's keys"
    assert {"attempt.finished", "disposition.saved", "lead.status_changed"} <= \
        {e[1] for e in events}
    assert time.monotonic() - t0 < 240, "the run stays bounded"
