"""Tokens, scopes, rate limits and problem+json errors of the CRM API (docs/api.md)."""

from __future__ import annotations

import hashlib

import httpx
from api_harness import ApiDb, bearer, token
from sqlalchemy import select

from common.clock import ManualClock
from db import audit
from db.api_tokens import revoke_token
from db.audit import Actor
from db.models import ApiToken
from dialer.config import WebSection
from dialer.web.deps import WebDeps
from dialer.web.server import create_app

PROBLEM = "application/problem+json"


def is_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and isinstance(body["detail"], str)
    return body


async def test_no_token_unknown_token_and_bad_scheme_are_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/campaigns", headers={"Authorization": ""})
    assert "Bearer" in r.headers["www-authenticate"]
    is_problem(r, 401)
    is_problem(await client.get("/api/v1/campaigns", headers=bearer("dlr_nope")), 401)
    is_problem(await client.get("/api/v1/campaigns",
                                headers={"Authorization": "Basic abc"}), 401)


async def test_missing_scope_is_403_naming_it(client: httpx.AsyncClient,
                                              api_db: ApiDb) -> None:
    t = await token(api_db, "reader", {"leads:read"})
    body = is_problem(await client.post("/api/v1/leads/bulk", headers=bearer(t),
                                        json={"campaign": "spring", "leads": []}), 403)
    assert body["scope"] == "leads:write" and "leads:write" in body["detail"]
    assert (await client.get("/api/v1/leads/999", headers=bearer(t))).status_code == 404


async def test_revoked_and_expired_tokens_are_401(client: httpx.AsyncClient, api_db: ApiDb,
                                                  clock: ManualClock) -> None:
    t = await token(api_db, "soon-gone")
    assert (await client.get("/api/v1/campaigns", headers=bearer(t))).status_code == 200
    await revoke_token(api_db.sessions, "soon-gone", actor=Actor.cli("test"), now=clock.now())
    is_problem(await client.get("/api/v1/campaigns", headers=bearer(t)), 401)
    rows = await audit.entries(api_db.sessions, action_prefix="token.")
    assert [(r.action, r.target) for r in rows][:2] == [
        ("token.revoke", "token:soon-gone"), ("token.create", "token:soon-gone")]


async def test_tokens_are_stored_only_as_sha256(api_db: ApiDb) -> None:
    async with api_db.sessions() as s:
        rows = list(await s.scalars(select(ApiToken)))
    t = api_db.tokens["crm"]
    (row,) = rows
    assert row.token_hash == hashlib.sha256(t.encode()).hexdigest()
    assert t not in repr(row.__dict__) and t[:12] not in row.prefix + row.name


async def test_rate_limit_is_429_with_retry_after(deps: WebDeps, api_db: ApiDb,
                                                  clock: ManualClock) -> None:
    d = WebDeps(**{**deps.__dict__, "web": WebSection(port=0, api_rate_per_s=1.0,
                                                      api_burst=3)})
    d._refresh = None
    app = create_app(d)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t", headers=bearer(api_db.tokens["crm"])) as c:
        codes = [(await c.get("/api/v1/campaigns")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await c.get("/api/v1/campaigns")
        is_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        clock.advance(2.0)
        assert (await c.get("/api/v1/campaigns")).status_code == 200


async def test_problem_shapes_malformed_json_invalid_fields_and_unknown_paths(
        client: httpx.AsyncClient) -> None:
    body = is_problem(await client.post(
        "/api/v1/leads/bulk", content=b'{"campaign": "spring", "leads": [',
        headers={"content-type": "application/json"}), 400)
    assert body["code"] == "malformed_json" and body["errors"][0]["field"] == "body"
    body = is_problem(await client.post("/api/v1/leads/bulk", json={
        "campaign": "spring", "leads": [{"phone": "+12125550100", "phon": "x"}]}), 422)
    assert {"field": "leads[0].phon", "message": "Extra inputs are not permitted"} in \
        body["errors"]
    body = is_problem(await client.get("/api/v1/nothing-here"), 404)
    assert "/api/v1/nothing-here" in body["detail"]
    is_problem(await client.get("/api/v1/campaigns/nope"), 404)


async def test_other_paths_keep_the_detail_format(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/session", json={"login": ""})
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert "detail" in r.json() and "status" not in r.json()
    r = await client.get("/api/me")
    assert r.status_code == 401 and r.json() == {
        "detail": "not signed in (or the session ended): sign in again"}


async def test_oversized_body_is_413_before_parsing(deps: WebDeps, api_db: ApiDb) -> None:
    d = WebDeps(**{**deps.__dict__, "web": WebSection(port=0, api_max_body_bytes=4096)})
    app = create_app(d)
    big = b'{"campaign": "spring", "leads": [' + b'{"phone": "+12125550100"},' * 400 + b"]}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=bearer(api_db.tokens["crm"])) as c:
        r = await c.post("/api/v1/leads/bulk", content=big,
                         headers={"content-type": "application/json"})
        assert is_problem(r, 413)["code"] == "too_large"

        async def chunks():  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1000

        r = await c.post("/api/v1/leads/bulk", content=chunks(),
                         headers={"content-type": "application/json"})
        is_problem(r, 413)
    async with api_db.sessions() as s:
        from db.models import Lead
        assert (await s.scalars(select(Lead))).first() is None


async def test_openapi_document_and_offline_reference_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/leads/bulk" in doc["paths"] and "/api/v1/attempts" in doc["paths"]
    assert not any(p.startswith("/api/agent") for p in doc["paths"])
    assert doc["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/leads/bulk" in page.text
    assert "<script" not in page.text and "http://" not in page.text.replace(
        "http://testserver", "")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


async def test_requests_and_rows_are_counted(deps: WebDeps, api_db: ApiDb) -> None:
    from dialer.metrics import DialerMetrics

    metrics = DialerMetrics()
    d = WebDeps(**{**deps.__dict__, "metrics": metrics})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(d)),
                                 base_url="http://t") as c:
        await c.get("/api/v1/campaigns", headers=bearer(api_db.tokens["crm"]))
        await c.get("/api/v1/campaigns", headers=bearer("dlr_wrong"))
        await c.post("/api/v1/leads/bulk", headers=bearer(api_db.tokens["crm"]), json={
            "campaign": "spring", "leads": [{"phone": "+12125550100", "name": "A"},
                                            {"phone": "x", "name": "B"}]})
    text = metrics.render().decode() if isinstance(metrics.render(), bytes) \
        else metrics.render()
    assert 'dialer_api_requests_total{code="200"} 2.0' in text
    assert 'dialer_api_requests_total{code="401"} 1.0' in text
    assert 'dialer_api_lead_rows_total{result="created"} 1.0' in text
    assert 'dialer_api_lead_rows_total{result="rejected"} 1.0' in text
    assert "dlr_" not in text
