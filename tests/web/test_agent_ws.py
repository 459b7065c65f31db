"""The agent WebSocket on a real uvicorn (127.0.0.1, a free port): who may open it, the
agent protocol over it, the fan-out of dialer messages, and sessions ending under it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from web_harness import WebDb, make_deps, sign_in
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from common.clock import ManualClock
from common.vocabulary import AgentState
from dialer.bus.errors import ProtocolError
from dialer.bus.messages import AgentCommand, LoginCmd, StateEvt
from dialer.bus.runner import AgentCommandRunner
from dialer.web.auth import COOKIE
from dialer.web.deps import WebDeps
from dialer.web.server import WebServer


class Served:
    def __init__(self, server: WebServer, deps: WebDeps) -> None:
        self.server, self.deps = server, deps
        self.handled: list[tuple[str, AgentCommand]] = []

    @property
    def url(self) -> str:
        return self.server.url

    async def session(self, login: str) -> tuple[str, str]:
        """(cookie token, csrf) of a fresh session of `login`."""
        async with httpx.AsyncClient(base_url=self.url) as c:
            csrf = await sign_in(c, login)
            return c.cookies[COOKIE], csrf

    def socket(self, token: str, csrf: str | None, origin: str | None = "same") -> Any:
        uri = self.url.replace("http", "ws") + "/ws/agent" + (f"?csrf={csrf}" if csrf else "")
        kw: dict[str, Any] = {"additional_headers": {"Cookie": f"{COOKIE}={token}"},
                              "open_timeout": 5}
        if origin is not None:
            kw["origin"] = self.url if origin == "same" else origin
        return connect(uri, **kw)


@pytest.fixture
async def served(web_db: WebDb, clock: ManualClock) -> AsyncIterator[Served]:
    runner = AgentCommandRunner()
    deps = make_deps(web_db, clock, runner=runner)
    async with WebServer(deps) as server:
        s = Served(server, deps)

        async def handler(login: str, cmd: AgentCommand) -> ProtocolError | None:
            s.handled.append((login, cmd))
            if isinstance(cmd, LoginCmd):  # as the dialer does: the state, then the ack
                await deps.hub.send(login, StateEvt(state=AgentState.PAUSED, reason="login"))
            return None

        runner.set_handler(handler)
        yield s
    await runner.close()


async def _next(ws: ClientConnection, wait_s: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), wait_s)))


def _cmd(type_: str, login: str, id_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, "v": 1, "id": id_, "ts": "2026-12-02T15:00:00+00:00",
                       "login": login, **fields})


async def test_the_upgrade_needs_session_csrf_and_our_origin(served: Served) -> None:
    token, csrf = await served.session("alice")
    attempts = [
        served.socket(token, None),                                    # no csrf
        served.socket(token, "0" * 64),                                # wrong csrf
        served.socket(token, csrf, origin="http://evil.example"),      # foreign Origin
        served.socket(token, csrf, origin=None),                       # no Origin
        served.socket("forged-" + "x" * 40, csrf),                     # no session
    ]
    sue_token, sue_csrf = await served.session("sue")
    attempts.append(served.socket(sue_token, sue_csrf))                # not an agent
    for attempt in attempts:
        with pytest.raises(InvalidStatus) as e:
            async with attempt:
                pass
        assert e.value.response.status_code == 403
    async with served.socket(token, csrf) as ws:                       # all right
        await ws.send(_cmd("get_state", "alice", "g1"))
        assert (await _next(ws))["type"] == "ack"


async def test_login_state_ack_and_another_agents_login_is_forbidden(served: Served) -> None:
    token, csrf = await served.session("alice")
    async with served.socket(token, csrf) as ws:
        await ws.send(_cmd("login", "alice", "c1", session="tab-0001"))
        state, ack = await _next(ws), await _next(ws)
        assert state["type"] == "state" and state["state"] == "paused"
        assert ack == {**ack, "type": "ack", "ref_id": "c1"}
        await ws.send(_cmd("ready", "bob", "c2"))
        err = await _next(ws)
        assert err["type"] == "error" and err["code"] == "forbidden" and err["ref_id"] == "c2"
        await ws.send("not json")
        assert (await _next(ws))["code"] == "malformed_json"
    assert [(login, c.type) for login, c in served.handled] == [("alice", "login")]


async def test_messages_fan_out_to_every_socket_of_the_login(served: Served) -> None:
    a_token, a_csrf = await served.session("alice")
    b_token, b_csrf = await served.session("bob")
    async with served.socket(a_token, a_csrf) as tab1, served.socket(a_token, a_csrf) as tab2, \
            served.socket(b_token, b_csrf) as bob:
        for _ in range(50):
            if served.deps.hub.count("alice") == 2 and served.deps.hub.count("bob") == 1:
                break
            await asyncio.sleep(0.02)
        await served.deps.hub.send("alice", StateEvt(state=AgentState.READY))
        assert (await _next(tab1))["state"] == "ready"
        assert (await _next(tab2))["state"] == "ready"
        with pytest.raises(TimeoutError):
            await _next(bob, wait_s=0.3)


async def test_sign_out_closes_the_sessions_sockets(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as c:
        csrf = await sign_in(c, "alice")
        async with served.socket(c.cookies[COOKIE], csrf) as ws:
            r = await c.delete("/api/session", headers={"X-CSRF-Token": csrf})
            assert r.status_code == 204
            with pytest.raises(ConnectionClosed) as e:
                await _next(ws)
            assert e.value.rcvd is not None and e.value.rcvd.code == 4401


async def test_the_server_stops_with_sockets_open(web_db: WebDb, clock: ManualClock) -> None:
    deps = make_deps(web_db, clock)
    server = WebServer(deps)
    await server.start()
    s = Served(server, deps)
    token, csrf = await s.session("alice")
    async with s.socket(token, csrf) as ws:
        await asyncio.wait_for(server.stop(), 10)
        with pytest.raises(ConnectionClosed) as e:
            await _next(ws)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1012
