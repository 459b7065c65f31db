"""Who may use the supervisor console: every `/api/console/...` path (listed from the console's
routers, so a new one is covered the day it is added) answers 401 without a session or with a
forged one, 403 to an agent's session, 403 without the CSRF header on writes, and 403 to a
supervisor on the admin-only paths; the page answers 303 to /login and 403 likewise."""

from __future__ import annotations

import re

import httpx
import pytest
from web_harness import NOW, sign_in

from db import web_accounts
from dialer.passwords import hash_password
from dialer.web import console_admin, console_api, console_companies
from dialer.web.auth import COOKIE
from dialer.web.deps import WebDeps
from dialer.web.server import create_app

#: paths only an admin may use (account management)
ADMIN_ONLY = {("POST", "/api/console/agents")}


def _console_routes(d: WebDeps) -> list[tuple[str, str]]:
    out = []
    create_app(d)  # the routers are the app's (server.py includes each of them)
    routes = [*console_api.router.routes, *console_companies.router.routes,
              *console_admin.router.routes]
    for r in routes:
        path = getattr(r, "path", "")
        if not path.startswith("/api/console"):
            continue
        concrete = re.sub(r"\{(\w+)\}", lambda m: "x1" if m.group(1) != "key" else "Acme", path)
        for method in sorted(getattr(r, "methods", set()) - {"HEAD"}):
            out.append((method, concrete))
    return out


async def _call(c: httpx.AsyncClient, method: str, path: str,
                headers: dict[str, str] | None = None) -> httpx.Response:
    if method == "GET":
        return await c.get(path, headers=headers)
    return await c.request(method, path, headers=headers, json={})


async def test_every_console_path_needs_a_supervisor(client: httpx.AsyncClient,
                                                     deps: WebDeps) -> None:
    routes = _console_routes(deps)
    assert len(routes) >= 12, routes
    for method, path in routes:
        r = await _call(client, method, path)
        assert r.status_code == 401, (method, path, r.status_code)
    client.cookies.set(COOKIE, "forged-" + "x" * 40)
    for method, path in routes:
        r = await _call(client, method, path)
        assert r.status_code == 401, (method, path, r.status_code)
    client.cookies.clear()
    csrf = await sign_in(client, "alice")
    for method, path in routes:
        r = await _call(client, method, path, {"X-CSRF-Token": csrf})
        assert r.status_code == 403, (method, path, r.status_code)
        assert "supervisor" in r.json()["detail"] or "admin" in r.json()["detail"]


async def test_writes_need_csrf_and_admin_paths_an_admin(client: httpx.AsyncClient,
                                                         deps: WebDeps) -> None:
    await web_accounts.create_user(deps.sessions, login="ada", role="admin",
                                   password_hash=hash_password("ada-admin-pw"), now=NOW)
    csrf = await sign_in(client, "sue")
    routes = _console_routes(deps)
    for method, path in routes:
        if method == "GET":
            continue
        r = await _call(client, method, path)
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"], (method, path)
    for method, path in ADMIN_ONLY:
        r = await _call(client, method, path, {"X-CSRF-Token": csrf})
        assert r.status_code == 403 and "admin" in r.json()["detail"], (method, path)
    # without a dialer the live paths say so (503), never a crash
    r = await client.get("/api/console/snapshot")
    assert r.status_code == 503 and "running dialer" in r.json()["detail"]
    r = await client.post("/api/console/campaigns/spring/pause", headers={"X-CSRF-Token": csrf},
                          json={})
    assert r.status_code == 503
    # the database reads work without one
    r = await client.get("/api/console/campaigns")
    assert r.status_code == 200 and r.json()["campaigns"][0]["name"] == "spring"
    assert r.json()["campaigns"][0]["state"] == "not_running"
    assert (await client.get("/api/console/audit")).json() == {"entries": []}
    await client.delete("/api/session", headers={"X-CSRF-Token": csrf})
    csrf = await sign_in(client, "ada", "ada-admin-pw")
    assert (await client.get("/api/console/audit")).status_code == 200


@pytest.mark.parametrize("who", [None, "alice", "sue"])
async def test_the_console_page(client: httpx.AsyncClient, who: str | None) -> None:
    if who is not None:
        await sign_in(client, who)
    r = await client.get("/supervisor")
    if who is None:
        assert r.status_code == 303 and r.headers["location"] == "/login"
    elif who == "alice":
        assert r.status_code == 403
    else:
        assert r.status_code == 200 and 'src="/static/js/console.js"' in r.text
