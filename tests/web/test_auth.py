"""Sign-in, sessions, CSRF and roles over HTTP (docs/web.md), in-process."""

from __future__ import annotations

import httpx
import pytest
from web_harness import PASSWORDS, WebDb, make_deps, sign_in

from common.clock import ManualClock
from db import web_accounts
from dialer.passwords import hash_password
from dialer.web.auth import COOKIE, token_hash
from dialer.web.deps import WebDeps
from dialer.web.server import create_app


def _value(metrics_text: bytes, line_start: str) -> float:
    for line in metrics_text.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not exposed")


async def test_sign_in_me_and_cookie(client: httpx.AsyncClient, deps: WebDeps) -> None:
    r = await client.post("/api/session", json={"login": "alice", "password": "alice-pw-1"})
    assert r.status_code == 200
    body = r.json()
    assert body["login"] == "alice" and body["role"] == "agent" and len(body["csrf"]) == 64
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attr in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attr.lower() in cookie.lower()
    assert "secure" not in cookie.lower()
    # only the token's hash is stored
    token = client.cookies[COOKIE]
    async with deps.sessions() as s:
        from sqlalchemy import text
        stored = (await s.execute(text("SELECT token_hash FROM web_sessions"))).scalars().all()
    assert stored == [token_hash(token)] and token not in stored
    me = (await client.get("/api/me")).json()
    assert me == {"login": "alice", "role": "agent", "display_name": "Alice",
                  "csrf": body["csrf"], "campaign": "spring",
                  "pause_reasons": ["break", "lunch", "training", "meeting", "technical"]}
    assert (await client.get("/api/me")).headers["cache-control"] == "no-store"
    await deps.refresh_gauges()
    assert deps.metrics is not None
    assert _value(deps.metrics.render(), 'dialer_web_sessions{role="agent"}') == 1


async def test_wrong_password_and_unknown_login_get_the_same_401(
        client: httpx.AsyncClient, deps: WebDeps) -> None:
    wrong = await client.post("/api/session", json={"login": "alice", "password": "nope-nope"})
    nobody = await client.post("/api/session", json={"login": "zed", "password": "nope-nope"})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json() == {"detail": "wrong login or password"}
    assert COOKIE not in client.cookies
    assert (await client.get("/api/me")).status_code == 401
    assert deps.metrics is not None
    assert _value(deps.metrics.render(), "dialer_web_sign_in_failures_total") == 2
    bad = await client.post("/api/session", json={"login": "alice"})
    assert bad.status_code == 422 and "password" in bad.json()["detail"]
    # only JSON: a cross-site form cannot post a sign-in
    form = await client.post("/api/session", content=b'{"login": "alice", "password": '
                             b'"alice-pw-1"}', headers={"content-type": "text/plain"})
    assert form.status_code == 422


async def test_five_failures_lock_the_login_for_the_window(
        client: httpx.AsyncClient, clock: ManualClock) -> None:
    for _ in range(5):
        r = await client.post("/api/session", json={"login": "alice", "password": "guess-1"})
        assert r.status_code == 401
    r = await client.post("/api/session", json={"login": "alice", "password": "alice-pw-1"})
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= 300
    clock.advance(301)
    await sign_in(client, "alice")


async def test_five_failures_lock_the_client_address_for_every_login(
        client: httpx.AsyncClient, clock: ManualClock) -> None:
    for i in range(5):
        r = await client.post("/api/session", json={"login": f"user{i}", "password": "guess-1"})
        assert r.status_code == 401
    r = await client.post("/api/session", json={"login": "bob", "password": PASSWORDS["bob"]})
    assert r.status_code == 429 and "retry-after" in r.headers


async def test_state_changing_requests_need_the_csrf_header(client: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, "alice")
    assert (await client.delete("/api/session")).status_code == 403
    r = await client.delete("/api/session", headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    assert (await client.get("/api/me")).status_code == 200  # still signed in
    assert (await client.delete("/api/session", headers={"X-CSRF-Token": csrf})).status_code \
        == 204
    assert (await client.get("/api/me")).status_code == 401


async def test_forged_and_expired_sessions_are_refused(
        client: httpx.AsyncClient, clock: ManualClock, deps: WebDeps) -> None:
    client.cookies.set(COOKIE, "forged-token-" + "x" * 30)
    assert (await client.get("/api/me")).status_code == 401
    client.cookies.clear()
    await sign_in(client, "alice")
    clock.advance(deps.web.session_idle_s - 120)
    assert (await client.get("/api/me")).status_code == 200  # used: the idle time restarts
    clock.advance(deps.web.session_idle_s - 120)
    assert (await client.get("/api/me")).status_code == 200
    clock.advance(deps.web.session_idle_s + 1)
    assert (await client.get("/api/me")).status_code == 401


async def test_roles_guard_the_pages(client: httpx.AsyncClient) -> None:
    r = await client.get("/agent")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await client.get("/")).headers["location"] == "/login"
    await sign_in(client, "alice")
    assert (await client.get("/supervisor")).status_code == 403
    assert (await client.get("/")).headers["location"] == "/agent"
    page = await client.get("/agent")
    assert page.status_code in (200, 404)  # 404 only while the page is not written yet
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    client.cookies.clear()
    await sign_in(client, "sue")
    assert (await client.get("/agent")).status_code == 403
    assert (await client.get("/api/agent/day")).status_code == 403
    assert (await client.get("/")).headers["location"] == "/supervisor"


async def test_password_change_ends_the_other_sessions(
        deps: WebDeps, web_db: WebDb) -> None:
    app = create_app(deps)

    def new_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver")

    async with new_client() as tab1, new_client() as tab2:
        csrf = await sign_in(tab1, "bob")
        await sign_in(tab2, "bob")
        r = await tab1.put("/api/me/password", headers={"X-CSRF-Token": csrf},
                           json={"current": "wrong-one", "new": "bob-new-pw-1"})
        assert r.status_code == 403
        r = await tab1.put("/api/me/password", headers={"X-CSRF-Token": csrf},
                           json={"current": PASSWORDS["bob"], "new": "bob-new-pw-1"})
        assert r.status_code == 204
        assert (await tab1.get("/api/me")).status_code == 200
        assert (await tab2.get("/api/me")).status_code == 401
    async with new_client() as tab3:
        r = await tab3.post("/api/session", json={"login": "bob", "password": PASSWORDS["bob"]})
        assert r.status_code == 401
        await sign_in(tab3, "bob", "bob-new-pw-1")


async def test_a_session_survives_a_new_server_on_the_same_database(
        web_db: WebDb, clock: ManualClock) -> None:
    first = make_deps(web_db, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(first)),
                                 base_url="http://testserver") as c:
        await sign_in(c, "alice")
        cookie = c.cookies[COOKIE]
    second = make_deps(web_db, clock)  # a restart: nothing of the first server is kept
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(second)),
                                 base_url="http://testserver",
                                 cookies={COOKIE: cookie}) as c:
        assert (await c.get("/api/me")).json()["login"] == "alice"


async def test_a_disabled_account_and_a_cli_password_change_end_sessions(
        client: httpx.AsyncClient, deps: WebDeps) -> None:
    await sign_in(client, "alice")
    await web_accounts.set_password(deps.sessions, login="alice", role="agent",
                                    password_hash=hash_password("another-pw-1"),
                                    now=deps.clock.now())
    assert (await client.get("/api/me")).status_code == 401


@pytest.mark.parametrize("path", ["/api/agent/day", "/api/agent/callbacks",
                                  "/api/agent/context/1"])
async def test_agent_reads_need_a_session(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 401
