"""Agent controls and listen-in on any instance's console (docs/cluster.md, "Agent controls
and listen-in on any console"), without processes: two whole DialerApps `a` and `b` in one
cluster (in-memory SIP pools, each with its real web server on a loopback port) over one
PostgreSQL. Agent ann is served by `b`; the supervisor uses `a`'s console only:

* listen-in start on ann's call (bridged on b) creates the session on b; a second listen is
  b's own `node_full` refusal; a's list shows b's session; the mode change and the stop go
  to b; one audit row each;
* force pause (after the call), groups, log out and move act on b's runtime, one audit row
  each;
* an agent's session is refused through a (403) as directly, and b refuses a forwarded
  request of an agent (or without CSRF) itself;
* ann's desktop signed in on a: its transfer picker and call context are b's answers;
* a request marked as forwarded is not forwarded again (a answers it itself: 404);
* a member that is not live, or whose console cannot be reached: 503 naming it, nothing
  changed, no audit row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptStage, DialMode
from db import audit, web_accounts
from db import cluster as dbc
from db.models import Agent
from db.pgserver import TempPostgres
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.bus.messages import AgentCommand, DispositionCmd, HangupCmd, LoginCmd, ReadyCmd
from dialer.config import AgentConfig, CampaignConfig, ClusterSection, Settings, WebSection
from dialer.passwords import hash_password
from dialer.ports import SipEventHandler
from dialer.web.console_forward import ANSWERED_BY, FORWARDED
from sip.memory import MemoryPool
from support.leads import add_leads, loopback_settings, make_numbers, seed_campaign

PW = {"sue": "sue-cluster-pw", "ann": "ann-agent-pw"}
PHONE = "sip:sue-desk@pbx.example.test:5070"


def _settings(url: str, data: Path, dialer_id: str) -> Settings:
    main = CampaignConfig(
        name="mem",
        caller_id="+14155550100",
        trunk="pstn",
        dial_mode=DialMode.PROGRESSIVE,
        ring_timeout_s=5,
        min_ring_s=5,
        max_wrapup_s=30.0,
    )
    other = main.model_copy(update={"name": "other"})
    s = loopback_settings(
        dialer_id,
        url,
        data / dialer_id,
        5060,
        [
            AgentConfig(
                login="ann",
                sip_uri="sip:ann@memory.invalid",
                password_hash=hash_password(PW["ann"]),
                campaign="mem",
            ),
            AgentConfig(
                login="bob",
                sip_uri="sip:bob@memory.invalid",
                password_hash=hash_password("bob-agent-pw"),
                campaign="mem",
                groups=["closers"],
            ),
        ],
        main,
    )
    # each instance keeps its embedded broker: the agent's commands reach b's runner directly
    # (the shared-broker rule of `dialer config check` is not what is tested here)
    return s.model_copy(
        update={
            # a failed test leaves ann wrapping up: the stop must not wait the default minute
            "dialer": s.dialer.model_copy(update={"wrapup_deadline_s": 2.0}),
            "web": WebSection(port=0),
            "campaigns": [main, other],
            "cluster": ClusterSection(enabled=True, heartbeat_s=0.5, lease_ttl_s=2.0),
        }
    )


def _pool(on_event: SipEventHandler) -> MemoryPool:
    # a call and its agent leg take 2 slots, a listen leg the third: a second listen on the
    # same call finds the node full
    return MemoryPool(on_event=on_event, trunks={"pstn"}, capacity=3)


async def _start(url: str, data: Path, dialer_id: str) -> tuple[DialerApp, asyncio.Task[Any]]:
    # the callee answers after 0.2 s and never hangs up: a call stays bridged until the agent
    # ends it
    app = DialerApp(
        _settings(url, data, dialer_id),
        clock=SYSTEM_CLOCK,
        target_for=lambda _e164: "sip:answer_0.2_0@memory.invalid",
        pool_factory=_pool,
    )
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.ready.wait(), 30)
    return app, task


async def until(cond: Any, seconds: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def agent_cmd(app: DialerApp, cmd: AgentCommand) -> Any:
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    assert app.runner.submit(cmd.login, cmd, lambda _c, err, _f: done.set_result(err)) is None
    return await asyncio.wait_for(done, 10)


async def _signed_in(base: str, login: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    http = httpx.AsyncClient(base_url=base, timeout=40)
    r = await http.post("/api/session", json={"login": login, "password": PW[login]})
    assert r.status_code == 200, r.text
    return http, {"X-CSRF-Token": r.json()["csrf"]}


@pytest.fixture
async def two(pg_server: TempPostgres, tmp_path: Path) -> AsyncIterator[Any]:
    url = pg_server.create_database(f"fwd_{uuid.uuid4().hex[:12]}", template="template_dialer")
    now = SYSTEM_CLOCK.now()
    await seed_campaign(url, "mem", make_numbers(now, {f"{i:03d}": 5 for i in range(2)}), now)
    await add_leads(url, "other", make_numbers(now, {"900": 5}, seed=5), now)
    engine = create_engine(url)
    sessions = session_factory(engine)
    await web_accounts.create_user(
        sessions, login="sue", role="supervisor", password_hash=hash_password(PW["sue"]), now=now
    )
    a, ta = await _start(url, tmp_path, "a")
    b, tb = await _start(url, tmp_path, "b")
    try:
        yield a, b, sessions
    finally:
        for app, task in ((b, tb), (a, ta)):
            app.stop()
            await asyncio.wait_for(task, 30)
        await engine.dispose()


async def _rows(sessions: Any) -> list[tuple[str, str, str]]:
    return [
        (r.action, r.target, r.actor.name)
        for r in reversed(await audit.entries(sessions, limit=100))
    ]


async def test_agent_controls_and_listen_in_through_another_instances_console(
    two: tuple[DialerApp, DialerApp, Any],
) -> None:
    a, b, sessions = two
    assert a.web is not None and b.web is not None and a.cluster and b.cluster
    rt = b.runtimes["mem"]

    # ---- ann works on b (her first command took b's lease) and takes a call there
    assert await agent_cmd(b, LoginCmd(login="ann")) is None
    assert await agent_cmd(b, ReadyCmd(login="ann")) is None
    assert "ann" in b.cluster.mine and "ann" not in a.runtimes["mem"].agents

    def bridged() -> int | None:
        for c in rt.calls.values():
            if (
                c.agent_login == "ann"
                and not c.engine_done
                and rt.engine.call_stage(c.call_id) is AttemptStage.BRIDGED
            ):
                return int(c.attempt_id)
        return None

    attempt = await until(bridged, 30, "a call bridged to ann on b")
    # each console advertises where it is, in its heartbeat row
    urls = {m.dialer_id: m.console_url for m in await dbc.members(sessions)}
    assert urls == {"a": a.web.url, "b": b.web.url}

    sue, csrf = await _signed_in(a.web.url, "sue")
    ann, ann_csrf = await _signed_in(a.web.url, "ann")
    ann_b, ann_b_csrf = await _signed_in(b.web.url, "ann")
    try:
        # a's wallboard names b as ann's instance, with the call to listen to
        async def ann_on_a() -> dict[str, Any] | None:
            snap = (await sue.get("/api/console/snapshot")).json()
            row = next(
                (x for c in snap["campaigns"] for x in c["agents"] if x["login"] == "ann"), None
            )
            return row if row and row.get("attempt_id") == attempt else None

        row = await until(ann_on_a, 10, "a's wallboard to show ann's call on b")
        assert row["instance"] == "b" and row["state"] == "talking"
        # and a's agents tab lists her with her state on b and the instance serving her
        r = await sue.get("/api/console/agents")
        assert r.status_code == 200, r.text
        listed = {x["login"]: x for x in r.json()["agents"]}
        assert listed["ann"]["state"] == "talking" and listed["ann"]["instance"] == "b"

        # ---- ann's desktop on a: the reads that ask a runtime are answered by b, which
        # serves her (a serves nobody: its own answer would list no group and no call of hers)
        assert await agent_cmd(b, LoginCmd(login="bob")) is None  # on b; not ready: no calls
        r = await ann.get("/api/agent/transfer-targets")
        assert r.status_code == 200 and r.headers[ANSWERED_BY] == "b", r.text
        assert [g["name"] for g in r.json()["groups"]] == ["closers"]
        r = await ann.get(f"/api/agent/context/{attempt}")
        assert r.status_code == 200 and r.headers[ANSWERED_BY] == "b", r.text
        assert r.json()["attempt_id"] == attempt
        r = await ann_b.get("/api/agent/transfer-targets")  # b's own answer: not forwarded
        assert r.status_code == 200 and ANSWERED_BY not in r.headers, r.text
        # the reads of the database are a's own, for her campaign (its row's, on a)
        for path in ("/api/me", "/api/agent/callbacks", "/api/agent/day"):
            r = await ann.get(path)
            assert r.status_code == 200 and ANSWERED_BY not in r.headers, (path, r.text)
            assert r.json()["campaign"] == "mem", (path, r.text)

        # ---- an agent's session: refused on a as it is directly, and b refuses a
        # forwarded request of an agent (or one without CSRF) itself
        for path, body in (
            ("/api/console/agents/ann/pause", {"reason": "x"}),
            ("/api/console/listen", {"attempt_id": attempt, "phone": PHONE}),
        ):
            r = await ann.post(path, headers=ann_csrf, json=body)
            assert r.status_code == 403 and ANSWERED_BY not in r.headers, r.text
            r = await ann_b.post(path, headers={**ann_b_csrf, FORWARDED: "a"}, json=body)
            assert r.status_code == 403, r.text
        r = await ann_b.get("/api/console/listen", headers={FORWARDED: "a"})
        assert r.status_code == 403
        r = await sue.post("/api/console/agents/ann/pause", json={"reason": "x"})
        assert r.status_code == 403  # no CSRF header: refused before anything is forwarded
        token = sue.cookies.get("dialer_session")
        assert token
        async with httpx.AsyncClient(
            base_url=b.web.url, cookies={"dialer_session": token}, timeout=10
        ) as forged:
            r = await forged.post(
                "/api/console/agents/ann/pause", json={"reason": "x"}, headers={FORWARDED: "a"}
            )
            assert r.status_code == 403 and "CSRF" in r.text  # b checks it itself

        # ---- listen-in through a: the session is b's
        r = await sue.post(
            "/api/console/listen",
            headers=csrf,
            json={"attempt_id": attempt, "phone": PHONE, "mode": "monitor"},
        )
        assert r.status_code == 200, r.text
        assert r.headers[ANSWERED_BY] == "b"
        got = r.json()
        sid = got["session_id"]
        assert (got["agent"], got["mode"], got["by"], got["instance"]) == (
            "ann",
            "monitor",
            "sue",
            "b",
        )
        assert [s.session_id for s in b.listen_in.sessions()] == [sid]
        assert a.listen_in.sessions() == []
        # b's real refusal comes back as it is: its node has no slot for a second leg
        r = await sue.post(
            "/api/console/listen",
            headers=csrf,
            json={"attempt_id": attempt, "phone": PHONE, "mode": "barge"},
        )
        assert r.status_code == 409 and r.json()["reason"] == "node_full", r.text
        assert r.headers[ANSWERED_BY] == "b"
        listed = (await sue.get("/api/console/listen")).json()
        assert [
            (s["session_id"], s["instance"], s["by"], s["mode"]) for s in listed["sessions"]
        ] == [(sid, "b", "sue", "monitor")]
        assert "unreachable" not in listed
        r = await sue.put(f"/api/console/listen/{sid}", headers=csrf, json={"mode": "whisper"})
        assert r.status_code == 200 and r.json()["mode"] == "whisper", r.text
        assert [s.mode for s in b.listen_in.sessions()] == ["whisper"]
        r = await sue.delete(f"/api/console/listen/{sid}", headers=csrf)
        assert r.status_code == 200 and r.json() == {"session_id": sid, "stopped": True}
        assert b.listen_in.sessions() == []
        r = await sue.delete(f"/api/console/listen/{sid}", headers=csrf)
        assert r.status_code == 404, r.text

        # ---- a request marked as forwarded is never forwarded again: a answers it itself
        r = await sue.post(
            "/api/console/agents/ann/pause",
            json={"reason": "loop"},
            headers={**csrf, FORWARDED: "b"},
        )
        assert r.status_code == 404 and ANSWERED_BY not in r.headers, r.text
        r = await sue.post(
            "/api/console/listen",
            headers={**csrf, FORWARDED: "b"},
            json={"attempt_id": attempt, "phone": PHONE},
        )
        assert r.status_code == 404 and r.json()["reason"] == "no_such_call", r.text
        assert rt.engine.board.get("ann").pending is None
        assert b.listen_in.sessions() == []

        # ---- force pause through a, on a talking agent: after the call, on b
        r = await sue.post(
            "/api/console/agents/ann/pause", headers=csrf, json={"reason": "coaching"}
        )
        assert r.status_code == 200, r.text
        assert r.headers[ANSWERED_BY] == "b"
        assert r.json()["applies"] == "after_call"
        assert rt.engine.board.get("ann").pending is not None
        assert await agent_cmd(b, HangupCmd(login="ann", attempt_id=attempt)) is None

        async def paused() -> bool:
            if b.control and b.control.agent_state("ann") is AgentState.WRAP_UP:
                await agent_cmd(b, DispositionCmd(login="ann", attempt_id=attempt, code="no_need"))
            return rt.engine.board.get("ann").state is AgentState.PAUSED

        await until(paused, 20, "ann to be paused on b")
        assert rt.engine.board.get("ann").reason == "coaching"

        # ---- a member that is not live: 503 naming it, nothing sent anywhere
        now = SYSTEM_CLOCK.now()
        gone = now.replace(year=now.year - 1)
        await dbc.heartbeat(
            sessions,
            dialer_id="z",
            started=gone,
            now=gone,
            ttl=b.cluster.ttl,
            console_url="http://127.0.0.1:9",
        )
        await dbc.take_agent(sessions, login="zed", dialer_id="z", now=gone, ttl=b.cluster.ttl)
        r = await sue.post("/api/console/agents/zed/logout", headers=csrf, json={})
        assert r.status_code == 503, r.text
        assert r.json()["instance"] == "z" and "'z'" in r.json()["detail"]

        # ---- an agent's groups through a: b's running dialer has them at once
        r = await sue.put(
            "/api/console/agents/ann/groups", headers=csrf, json={"groups": ["closers"]}
        )
        assert r.status_code == 200 and r.headers[ANSWERED_BY] == "b", r.text
        assert rt.agents["ann"].groups == ["closers"]

        # ---- log out and move through a
        r = await sue.post("/api/console/agents/ann/logout", headers=csrf, json={})
        assert r.status_code == 200 and r.json()["state"] == "logged_out", r.text
        assert (
            "ann" not in rt.engine.board
            or rt.engine.board.get("ann").state is AgentState.LOGGED_OUT
        )
        r = await sue.post("/api/console/agents/ann/move", headers=csrf, json={"campaign": "other"})
        assert r.status_code == 200 and r.json()["to"] == "other", r.text
        assert "ann" in b.runtimes["other"].agents and "ann" not in rt.agents
        async with sessions() as s:
            row_ann = await s.scalar(select(Agent).where(Agent.login == "ann"))
            assert row_ann is not None
            assert row_ann.campaign_id == b.runtimes["other"].campaign.id

        # ---- b's console cannot be reached: 503 naming b, nothing changed on b
        assert await agent_cmd(b, LoginCmd(login="ann")) is None
        state = b.control.agent_state("ann") if b.control else None
        assert state is not None and state is not AgentState.LOGGED_OUT
        await b.web.stop()
        before = await _rows(sessions)
        r = await sue.post("/api/console/agents/ann/logout", headers=csrf, json={})
        assert r.status_code == 503, r.text
        assert r.json()["instance"] == "b" and r.json()["reason"] == "instance_unavailable"
        assert "nothing was changed" in r.json()["detail"]
        assert b.control is not None and b.control.agent_state("ann") is state
        listed = (await sue.get("/api/console/listen")).json()
        assert listed["sessions"] == []
        assert [x["instance"] for x in listed["unreachable"]] == ["b"]
        r = await sue.delete("/api/console/listen/nope", headers=csrf)
        assert r.status_code == 503 and r.json()["instance"] == "b", r.text
        assert await _rows(sessions) == before
    finally:
        for http in (sue, ann, ann_b):
            await http.aclose()

    # one audit row per control, written by b; none for the refusals
    assert await _rows(sessions) == [
        ("listen.start", f"attempt:{attempt}", "sue"),
        ("listen.mode", f"attempt:{attempt}", "sue"),
        ("listen.stop", f"attempt:{attempt}", "sue"),
        ("agent.force_pause", "agent:ann", "sue"),
        ("agent.groups", "agent:ann", "sue"),
        ("agent.force_logout", "agent:ann", "sue"),
        ("agent.move", "agent:ann", "sue"),
    ]
