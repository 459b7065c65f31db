"""The whole DialerApp with its web server, over the in-memory SIP pool: a person at a web
desktop signs in, logs in over the WebSocket, takes a real call (the screen pop comes
through DialerApp.send_agent), reads its context and dispositions it; a database agent
(`dialer agents add`) is taken on at start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from common.clock import SYSTEM_CLOCK
from common.vocabulary import DialMode
from db import web_accounts
from db.models import Attempt
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.config import AgentConfig, CampaignConfig, WebSection
from dialer.passwords import hash_password
from dialer.ports import SipEventHandler
from dialer.web.auth import COOKIE
from sip.memory import MemoryPool
from support.leads import loopback_settings, make_numbers, seed_campaign


async def _until(ws: ClientConnection, type_: str, wait_s: float = 20.0,
                 **match: Any) -> dict[str, Any]:
    async with asyncio.timeout(wait_s):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                return dict(msg)


def _cmd(type_: str, id_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, "v": 1, "id": id_, "ts": SYSTEM_CLOCK.now().isoformat(),
                       "login": "ann", "session": "tab-ann-0001", **fields})


async def test_a_web_agent_takes_a_call_from_the_memory_pool(tmp_path: Path) -> None:
    now = SYSTEM_CLOCK.now()
    url = f"sqlite:///{tmp_path / 'app.db'}"
    await seed_campaign(url, "mem", make_numbers(now, {"000": 1}), now)
    engine = create_engine(url)
    await web_accounts.add_agent(session_factory(engine), login="dan", sip_uri="sip:dan@x",
                                 password_hash=hash_password("dan-pw-123"), now=now,
                                 campaign="mem")
    settings = loopback_settings(
        "mem", url, tmp_path / "var", 5060,
        [AgentConfig(login="ann", sip_uri="sip:ann@memory.invalid",
                     password_hash=hash_password("ann-pw-123"))],
        CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                       dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5))
    settings = settings.model_copy(update={"web": WebSection(port=0)})

    def memory_pool(on_event: SipEventHandler) -> MemoryPool:
        return MemoryPool(on_event=on_event, trunks={"pstn"})

    app = DialerApp(settings, target_for=lambda e164: "sip:answer_0.2_1.0@memory.invalid",
                    pool_factory=memory_pool)
    task = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        assert app.web is not None
        assert "dan" in app.runtimes["mem"].agents and app.campaign_of("dan") is not None
        assert app.broker is not None
        async with httpx.AsyncClient(base_url=app.web.url) as http:
            r = await http.post("/api/session", json={"login": "ann", "password": "ann-pw-123"})
            assert r.status_code == 200, r.text
            csrf = r.json()["csrf"]
            assert (await http.get("/api/me")).json()["campaign"] == "mem"
            ws_url = app.web.url.replace("http", "ws") + f"/ws/agent?csrf={csrf}"
            async with connect(ws_url, origin=app.web.url, open_timeout=5,
                               additional_headers={"Cookie": f"{COOKIE}={http.cookies[COOKIE]}"}
                               ) as ws:
                await ws.send(_cmd("login", "c1"))
                # the change to paused ("login"), then the full state (catalog), then the ack
                assert (await _until(ws, "state"))["state"] == "paused"
                full = await _until(ws, "state")
                assert full["state"] == "paused" and full["dispositions"]
                await _until(ws, "ack", ref_id="c1")
                await ws.send(_cmd("ready", "c2"))
                await _until(ws, "ack", ref_id="c2")
                pop = await _until(ws, "screen_pop")
                attempt_id = pop["attempt_id"]
                assert pop["lead"]["phone"].startswith("+")
                ctx = await http.get(f"/api/agent/context/{attempt_id}")
                assert ctx.status_code == 200, ctx.text
                assert ctx.json()["callee"]["zone"]
                await _until(ws, "call_ended", attempt_id=attempt_id)
                code = next(d["code"] for d in pop["dispositions"]
                            if not d["needs_callback"])
                await ws.send(_cmd("disposition", "c3", attempt_id=attempt_id, code=code,
                                   notes="spoke to them"))
                await _until(ws, "ack", ref_id="c3")
                day = (await http.get("/api/agent/day")).json()
                assert day["called"] >= 1 and day["agent"] == "ann"
        async with session_factory(engine)() as s:
            row = await s.get(Attempt, attempt_id)
            assert row is not None and row.disposition == code
            assert row.notes == "spoke to them"
            assert (await s.scalars(select(Attempt))).all()
        app.stop()
        await asyncio.wait_for(task, 30)
    finally:
        if not task.done():
            app.stop()
            await asyncio.wait_for(task, 30)
        await engine.dispose()
