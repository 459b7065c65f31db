"""The supervisor console's controls against the whole DialerApp (in-memory SIP pool, the real
web server on a loopback port), on SQLite and PostgreSQL: pause / resume / stop / start a
campaign (the calendar's open edge does not undo a hold; a restart keeps it), dial mode and
maximum dial level (live in the engine, stored in the row), force-pause, force-logout and
move an agent. Each control lands exactly one audit row; refusals land none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, DialMode
from db import audit, web_accounts
from db.audit import Actor
from db.models import Agent, Attempt, Campaign
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.bus.messages import DispositionCmd, LoginCmd, ReadyCmd
from dialer.config import AgentConfig, CampaignConfig, Settings, WebSection
from dialer.passwords import hash_password
from dialer.ports import SipEventHandler
from sip.memory import MemoryPool
from support.app_run import Running, agent_cmd, until
from support.leads import add_leads, loopback_settings, make_numbers, seed_campaign

PW = {"sue": "sue-console-pw", "ann": "ann-agent-pw", "dan": "dan-agent-pw"}


def _settings(url: str, data: Path) -> Settings:
    main = CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                          dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5,
                          max_wrapup_s=1.0)
    other = main.model_copy(update={"name": "other"})
    s = loopback_settings("console", url, data, 5060, [AgentConfig(
        login="ann", sip_uri="sip:ann@memory.invalid", password_hash=hash_password(PW["ann"]),
        campaign="mem")], main)
    return s.model_copy(update={"web": WebSection(port=0), "campaigns": [main, other]})


def _pool(on_event: SipEventHandler) -> MemoryPool:
    return MemoryPool(on_event=on_event, trunks={"pstn"})


async def run_app(url: str, data: Path) -> Running:
    return await Running.start(DialerApp(
        _settings(url, data), clock=SYSTEM_CLOCK,
        target_for=lambda e164: "sip:answer_0.2_1.0@memory.invalid", pool_factory=_pool))


@pytest.fixture
async def stack(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    now = SYSTEM_CLOCK.now()
    await seed_campaign(db_url, "mem", make_numbers(now, {f"{i:03d}": 5 for i in range(8)}), now)
    await add_leads(db_url, "other", make_numbers(now, {"900": 5}, seed=5), now)
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    await web_accounts.create_user(sessions, login="sue", role="supervisor",
                                   password_hash=hash_password(PW["sue"]), now=now)
    # a database agent (`dialer agents add`): its campaign lives in agents.campaign_id
    await web_accounts.add_agent(sessions, login="dan", sip_uri="sip:dan@memory.invalid",
                                 password_hash=hash_password(PW["dan"]), now=now,
                                 campaign="mem")
    try:
        yield db_url, sessions
    finally:
        await engine.dispose()


async def _signed_in(base: str, login: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    http = httpx.AsyncClient(base_url=base, timeout=20)
    r = await http.post("/api/session", json={"login": login, "password": PW[login]})
    assert r.status_code == 200, r.text
    return http, {"X-CSRF-Token": r.json()["csrf"]}


async def _attempts(sessions: Any, campaign: str) -> int:
    async with sessions() as s:
        return int(await s.scalar(
            select(func.count()).select_from(Attempt).join(Campaign)
            .where(Campaign.name == campaign)) or 0)


async def _audit(sessions: Any) -> list[tuple[str, str, str]]:
    return [(r.action, r.target, r.actor.name)
            for r in reversed(await audit.entries(sessions, limit=1000))]


async def test_controls_hold_audit_and_survive_a_restart(
        stack: tuple[str, Any], tmp_path: Path) -> None:
    url, sessions = stack
    run = await run_app(url, tmp_path / "var")
    app = run.app
    try:
        assert app.web is not None and app.control is not None
        http, csrf = await _signed_in(app.web.url, "sue")
        rt = app.runtimes["mem"]
        assert await agent_cmd(app, "ann", LoginCmd(login="ann")) is None
        assert await agent_cmd(app, "ann", ReadyCmd(login="ann")) is None
        await until(lambda: rt.stats.placed >= 2, 30, "calls to be placed")

        # ---- pause: no new attempt leaves; the calendar's open edge does not undo it
        r = await http.post("/api/console/campaigns/mem/pause", headers=csrf,
                            json={"reason": "script change"})
        assert r.status_code == 200 and r.json()["state"] == "paused", r.text
        assert not rt.dialing
        await until(lambda: rt.live_calls == 0, 20, "calls in flight to end")
        placed = await _attempts(sessions, "mem")
        await app._open(rt.campaign.id)  # the calendar opens: the hold stays
        assert not rt.dialing
        await asyncio.sleep(3.0)
        assert await _attempts(sessions, "mem") == placed
        r = await http.post("/api/console/campaigns/mem/pause", headers=csrf, json={})
        assert r.status_code == 409 and "paused already" in r.json()["detail"]
        snap = (await http.get("/api/console/snapshot")).json()
        board = next(c for c in snap["campaigns"] if c["name"] == "mem")
        # one instance: an agent may be moved to the campaigns running here
        assert snap["move_to"] == sorted(c["name"] for c in snap["campaigns"])
        assert board["state"] == "paused" and board["hold"]["by"] == "sue"
        assert board["hold"]["reason"] == "script change"

        # ---- resume: dialing restarts
        r = await http.post("/api/console/campaigns/mem/resume", headers=csrf, json={})
        assert r.status_code == 200 and r.json()["state"] == "dialing", r.text
        await until(lambda: rt.stats.placed > placed, 30, "dialing to restart")

        # ---- dial mode and maximum dial level: live and stored; bad values name the field
        r = await http.put("/api/console/campaigns/mem/dial", headers=csrf,
                           json={"dial_mode": "power", "max_dial_level": 4})
        assert r.status_code == 200, r.text
        assert r.json() == {"campaign": "mem", "dial_mode": "power", "max_dial_level": 4.0}
        assert rt.engine.config.mode is DialMode.POWER
        assert rt.engine.config.limits.max_lines_per_agent == 4.0
        async with sessions() as s:
            row = await s.scalar(select(Campaign).where(Campaign.name == "mem"))
            assert row is not None and row.dial_mode is DialMode.POWER
            assert row.max_dial_level == 4.0
        for body, field in (({"dial_mode": "turbo"}, "dial_mode"),
                            ({"max_dial_level": 0.5}, "max_dial_level"),
                            ({"max_dial_level": 11}, "max_dial_level"), ({}, "dial_mode")):
            r = await http.put("/api/console/campaigns/mem/dial", headers=csrf, json=body)
            assert r.status_code == 422 and field in r.json()["detail"], (body, r.text)
        r = await http.put("/api/console/campaigns/nope/dial", headers=csrf,
                           json={"dial_mode": "preview"})
        assert r.status_code == 404
        r = await http.put("/api/console/campaigns/mem/dial", headers=csrf,
                           json={"dial_mode": "progressive", "max_dial_level": 3})
        assert r.status_code == 200

        # ---- force-pause ann: applied at once or after the call; then no call is routed to
        # her (she is the only agent: nothing is dialed either)
        r = await http.post("/api/console/agents/ann/pause", headers=csrf,
                            json={"reason": "coaching"})
        assert r.status_code == 200, r.text
        assert r.json()["applies"] in ("now", "after_call")

        async def close_wrapups() -> None:
            for call in list(rt.calls.values()):
                if call.engine_done and call.agent_login == "ann":
                    await agent_cmd(app, "ann", DispositionCmd(
                        login="ann", attempt_id=call.attempt_id, code="no_need"))

        async def paused() -> bool:
            await close_wrapups()
            return app.control.agent_state("ann") is AgentState.PAUSED  # type: ignore[union-attr]

        await until(paused, 30, "ann to be paused")
        assert rt.engine.board.get("ann").reason == "coaching"
        await until(lambda: rt.live_calls == 0, 20, "calls in flight to end")
        routed = await _attempts(sessions, "mem")
        await asyncio.sleep(2.5)
        assert await _attempts(sessions, "mem") == routed
        assert rt.engine.board.get("ann").state is AgentState.PAUSED

        # ---- force-logout, then a refusal (already out): no audit row for it
        r = await http.post("/api/console/agents/ann/logout", headers=csrf, json={})
        assert r.status_code == 200 and r.json()["state"] == "logged_out", r.text
        r = await http.post("/api/console/agents/ann/logout", headers=csrf, json={})
        assert r.status_code == 409
        r = await http.post("/api/console/agents/zed/pause", headers=csrf, json={})
        assert r.status_code == 404

        # ---- move dan (a database agent) to "other": runtime sets and agents.campaign_id
        r = await http.post("/api/console/agents/dan/move", headers=csrf,
                            json={"campaign": "other"})
        assert r.status_code == 200, r.text
        assert "dan" in app.runtimes["other"].agents and "dan" not in rt.agents
        assert app.campaign_of("dan") is app.runtimes["other"].campaign
        async with sessions() as s:
            dan = await s.scalar(select(Agent).where(Agent.login == "dan"))
            assert dan is not None and dan.campaign_id == app.runtimes["other"].campaign.id
        r = await http.post("/api/console/agents/dan/move", headers=csrf,
                            json={"campaign": "other"})
        assert r.status_code == 409
        # ---- and ann, a config file agent (logged out above): her row says "other" now
        r = await http.post("/api/console/agents/ann/move", headers=csrf,
                            json={"campaign": "other"})
        assert r.status_code == 200, r.text
        assert "ann" in app.runtimes["other"].agents and "ann" not in rt.agents

        # ---- stop wins over pause; resume refuses a stop; start lifts it; pause to restart
        r = await http.post("/api/console/campaigns/mem/stop", headers=csrf,
                            json={"reason": "list done"})
        assert r.status_code == 200 and r.json()["state"] == "stopped"
        r = await http.post("/api/console/campaigns/mem/resume", headers=csrf, json={})
        assert r.status_code == 409 and "start it" in r.json()["detail"]
        r = await http.post("/api/console/campaigns/mem/pause", headers=csrf, json={})
        assert r.status_code == 409
        r = await http.post("/api/console/campaigns/mem/start", headers=csrf, json={})
        assert r.status_code == 200 and r.json()["state"] == "dialing"
        # the calendar closes: a resume lifts the hold but does not dial before it opens
        await app._close(rt.campaign.id)
        assert not rt.dialing and app.control.state_of("mem") == "closed"
        r = await http.post("/api/console/campaigns/mem/pause", headers=csrf, json={})
        assert r.status_code == 200 and r.json()["state"] == "paused"
        r = await http.post("/api/console/campaigns/mem/resume", headers=csrf, json={})
        assert r.status_code == 200 and r.json()["state"] == "closed"
        assert not rt.dialing
        await app._open(rt.campaign.id)
        assert rt.dialing and app.control.state_of("mem") == "dialing"
        r = await http.post("/api/console/campaigns/mem/pause", headers=csrf,
                            json={"reason": "overnight"})
        assert r.status_code == 200
        # no CSRF token: refused, nothing recorded
        r = await http.post("/api/console/campaigns/mem/resume", json={})
        assert r.status_code == 403

        expected = [
            ("campaign.pause", "campaign:mem", "sue"), ("campaign.resume", "campaign:mem", "sue"),
            ("campaign.set_dial", "campaign:mem", "sue"),
            ("campaign.set_dial", "campaign:mem", "sue"),
            ("agent.force_pause", "agent:ann", "sue"), ("agent.force_logout", "agent:ann", "sue"),
            ("agent.move", "agent:dan", "sue"), ("agent.move", "agent:ann", "sue"),
            ("campaign.stop", "campaign:mem", "sue"),
            ("campaign.start", "campaign:mem", "sue"), ("campaign.pause", "campaign:mem", "sue"),
            ("campaign.resume", "campaign:mem", "sue"), ("campaign.pause", "campaign:mem", "sue"),
        ]
        assert await _audit(sessions) == expected
        log = (await http.get("/api/console/audit?limit=3")).json()["entries"]
        assert [e["action"] for e in log] == ["campaign.pause", "campaign.resume",
                                              "campaign.pause"]
        assert log[0]["detail"]["reason"] == "overnight" and log[0]["actor"] == "sue"
        await http.aclose()
    finally:
        await run.stop()

    # ---- a restart keeps the pause and the move
    run = await run_app(url, tmp_path / "var")
    try:
        app = run.app
        assert app.control is not None
        hold = app.control.holds["mem"]
        assert hold.kind.value == "paused" and hold.actor == "sue" and hold.reason == "overnight"
        assert not app.runtimes["mem"].dialing and app.runtimes["other"].dialing
        assert app.agent_campaign["dan"] == "other"
        # the config file still says ann works on "mem": the move made since stands
        assert app.agent_campaign["ann"] == "other" and "ann" in app.runtimes["other"].agents
        assert "ann" not in app.runtimes["mem"].agents
        await app.control.move_agent("ann", "mem", Actor("web", "sue"))
        before = await _attempts(sessions, "mem")
        assert await agent_cmd(app, "ann", LoginCmd(login="ann")) is None
        assert await agent_cmd(app, "ann", ReadyCmd(login="ann")) is None
        await asyncio.sleep(3.0)
        assert await _attempts(sessions, "mem") == before
    finally:
        await run.stop()
