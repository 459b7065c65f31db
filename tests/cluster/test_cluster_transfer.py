"""Transfers to an agent another cluster member serves (docs/cluster.md, "Transfers across
members"), without processes: two whole DialerApps `a` and `b` (in-memory SIP pools) over
one PostgreSQL and ONE real Mosquitto, which also carries the members' lend requests.

ann is served by b and talks to the campaign's one lead; cat and dan are served by a (cat
ready, dan paused), both in group "closers":

* b's picker lists cat (from a's board) with the group's count;
* a transfer to dan is refused (not ready on a): ann keeps the call, dan stays on a;
* a transfer to group "closers" brings cat to b (a hands over her lease), b's node rings her
  phone, her desktop gets the screen pop naming ann; ann is free; cat's hangup and
  disposition are b's to answer; the agent state log has no log out for cat;
* a warm transfer of ann's next call to dan (ready on a by then) brings dan over, the two
  talk, `transfer_complete` hands the customer to dan;
* a lend that the lender answers after the borrower stopped waiting still leaves the agent
  served (by the borrower).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptStage, DialMode
from db import cluster as dbc
from db.models import AgentStateLog
from db.pgserver import TempPostgres
from dialer.app import DialerApp
from dialer.bus.messages import (
    DispositionCmd,
    HangupCmd,
    LoginCmd,
    PauseCmd,
    ReadyCmd,
    TransferCmd,
    TransferCompleteCmd,
)
from dialer.config import AgentConfig, CampaignConfig, ClusterSection, MqttSection, Settings
from dialer.passwords import hash_password
from support.leads import loopback_settings, make_numbers, seed_campaign
from support.mosquitto import MosquittoServer

from .test_cluster_desktop_ws import DIALER, _pool, broker  # noqa: F401 (the fixture)
from .test_cluster_forwarding import agent_cmd, until

GROUPS = {"ann": [], "cat": ["closers"], "dan": ["closers"]}


def _settings(db_url: str, mqtt_url: str, data: Path, dialer_id: str) -> Settings:
    main = CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                          dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5,
                          max_wrapup_s=30.0)
    agents = [AgentConfig(login=login, sip_uri=f"sip:{login}@memory.invalid",
                          password_hash=hash_password(f"{login}-pw"), campaign="mem",
                          groups=groups)
              for login, groups in GROUPS.items()]
    s = loopback_settings(dialer_id, db_url, data / dialer_id, 5060, agents, main)
    return s.model_copy(update={
        "dialer": s.dialer.model_copy(update={"wrapup_deadline_s": 2.0}),
        "mqtt": MqttSection(url=mqtt_url),
        "cluster": ClusterSection(enabled=True, heartbeat_s=0.5, lease_ttl_s=2.0),
    })


async def _start(db_url: str, mqtt_url: str, data: Path, dialer_id: str,
                 callee: str) -> tuple[DialerApp, asyncio.Task[Any]]:
    app = DialerApp(_settings(db_url, mqtt_url, data, dialer_id), clock=SYSTEM_CLOCK,
                    target_for=lambda _e164: f"sip:{callee}@memory.invalid",
                    pool_factory=_pool)
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.ready.wait(), 30)
    return app, task


@pytest.fixture
async def two(pg_server: TempPostgres, tmp_path: Path,
              broker: MosquittoServer) -> AsyncIterator[Any]:  # noqa: F811
    mqtt_url = f"mqtt://{DIALER[0]}:{DIALER[1]}@127.0.0.1:{broker.port}"
    db_url = pg_server.create_database(f"xfr_{uuid.uuid4().hex[:12]}",
                                       template="template_dialer")
    now = SYSTEM_CLOCK.now()
    await seed_campaign(db_url, "mem", make_numbers(now, {f"{i:03d}": 5 for i in range(4)}), now)
    # b's callees answer after 0.2 s and never hang up; a's are busy after 1 s, so cat
    # stays ready on a while a dials for her
    a, ta = await _start(db_url, mqtt_url, tmp_path, "a", "status486_1_0")
    b, tb = await _start(db_url, mqtt_url, tmp_path, "b", "answer_0.2_0")
    try:
        yield a, b, broker
    finally:
        for app, task in ((b, tb), (a, ta)):
            app.stop()
            await asyncio.wait_for(task, 30)


async def _ok(app: DialerApp, cmd: Any) -> None:
    err = await agent_cmd(app, cmd)
    assert err is None, (err.code, err.message)


async def test_a_transfer_brings_a_ready_agent_from_another_member(
    two: tuple[DialerApp, DialerApp, MosquittoServer],
) -> None:
    a, b, mosquitto = two
    assert a.cluster is not None and b.cluster is not None
    assert a.cluster.lending is not None and b.cluster.lending is not None
    rt_a, rt_b = a.runtimes["mem"], b.runtimes["mem"]

    # cat's desktop over MQTT (the dialer's user reads every agent's events here)
    pops: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username=DIALER[0],
                              password=DIALER[1]) as desk:
        await desk.subscribe("dialer/agents/cat/evt", qos=1)

        async def read() -> None:
            async for m in desk.messages:
                body = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                if body["type"] == "screen_pop":
                    pops.append(body)
        reader = asyncio.create_task(read())
        try:
            # ---- cat (ready) and dan (paused) on a, ann on b with the campaign's one call
            await _ok(a, LoginCmd(login="cat"))
            await _ok(a, LoginCmd(login="dan"))
            await _ok(a, PauseCmd(login="dan", reason="break"))
            await _ok(b, LoginCmd(login="ann"))
            await _ok(b, ReadyCmd(login="ann"))
            call = await until(lambda: next((c for c in rt_b.calls.values()
                                             if c.agent_login == "ann" and rt_b.engine.call_stage(
                                                 c.call_id) is AttemptStage.BRIDGED), None),
                               20, "ann's call bridged on b")
            await _ok(a, ReadyCmd(login="cat"))
            assert {"cat", "dan"} <= a.cluster.mine and "ann" in b.cluster.mine

            # ---- b's picker shows cat, ready on a (from a's board, within a heartbeat)
            await until(lambda: "cat" in b.transfer_targets("ann"), 10, "cat in b's picker")
            assert "dan" not in b.transfer_targets("ann")
            assert b.transfer_groups("ann") == [{"name": "closers", "ready": 1}]

            # ---- dan is paused on a: refused, nothing moves
            err = await agent_cmd(b, TransferCmd(login="ann", attempt_id=call.attempt_id,
                                                 to="dan"))
            assert err is not None, "a transfer to a paused agent elsewhere was accepted"
            assert err.code == "invalid_state" and "dan" in err.message, err
            assert "dan" in a.cluster.mine and "dan" not in rt_b.agents
            assert rt_a.engine.board.get("dan").state is AgentState.PAUSED
            assert rt_b.engine.board.get("ann").state is AgentState.TALKING
            assert ("dan", "a", "refused: agent not ready") in b.cluster.lending.history

            # ---- group "closers": nobody ready on b, so cat comes from a and takes the call
            await _ok(b, TransferCmd(login="ann", attempt_id=call.attempt_id,
                                     group="closers", notes="wants the annual plan"))
            assert "cat" in b.cluster.mine and "cat" not in a.cluster.mine
            assert "cat" not in rt_a.engine.board and "cat" not in rt_a.agents
            lease = await dbc.agent_lease(b.cluster.sessions, "cat")
            assert lease is not None and lease.holder == "b"
            assert rt_b.engine.board.get("cat").state is AgentState.TALKING
            assert rt_b.engine.board.get("ann").state is AgentState.READY
            assert any(c.agent_login == "cat" and c.attempt_id == call.attempt_id
                       for c in rt_b.calls.values())
            pop = await until(lambda: next((p for p in pops
                                            if p.get("attempt_id") == call.attempt_id), None),
                              10, "cat's screen pop")
            assert pop["transfer"] == {"from_agent": "ann", "mode": "blind",
                                       "notes": "wants the annual plan"}

            # ---- cat's commands are b's now (a's gate refuses them: b holds her lease)
            assert not await a.cluster.admit("cat", HangupCmd(login="cat",
                                                              attempt_id=call.attempt_id))
            await _ok(b, HangupCmd(login="cat", attempt_id=call.attempt_id))
            await _ok(b, DispositionCmd(login="cat", attempt_id=call.attempt_id,
                                        code="no_need"))
            # she went on being ready without a log out in between (no LOGGED_OUT row)
            async with b.cluster.sessions() as s:
                states = [r.state for r in (await s.scalars(
                    select(AgentStateLog).order_by(AgentStateLog.id))).all()
                    if r.agent_id == rt_b.agents["cat"].id]
            assert AgentState.LOGGED_OUT not in states, states

            # ---- a warm transfer of ann's next call on b to dan, ready on a by then
            await _ok(a, ReadyCmd(login="dan"))
            await until(lambda: "dan" in b.transfer_targets("ann"), 10, "dan in b's picker")
            call2 = await until(lambda: next((c for c in rt_b.calls.values()
                                              if c.agent_login == "ann" and rt_b.engine.call_stage(
                                                  c.call_id) is AttemptStage.BRIDGED), None),
                                20, "ann's next call bridged on b")
            await _ok(b, TransferCmd(login="ann", attempt_id=call2.attempt_id, to="dan",
                                     mode="warm"))
            assert "dan" in b.cluster.mine and "dan" not in a.cluster.mine
            assert rt_b.engine.board.get("dan").state is AgentState.RESERVED  # consulting
            await _ok(b, TransferCompleteCmd(login="ann", attempt_id=call2.attempt_id))
            assert rt_b.engine.board.get("dan").state is AgentState.TALKING
            assert any(c.agent_login == "dan" and c.attempt_id == call2.attempt_id
                       for c in rt_b.calls.values())
            assert [w[:3] for w in b.cluster.lending.history
                    if w[2] == "borrowed"] == [("cat", "a", "borrowed"), ("dan", "a", "borrowed")]
            # dialer_cluster_agent_handovers_total{result}: b borrowed two, a lent two and
            # refused one (dan, paused); b counted that refusal too
            def handovers(app: DialerApp, result: str) -> float | None:
                return app.metrics.registry.get_sample_value(
                    "dialer_cluster_agent_handovers_total", {"result": result})
            assert [handovers(b, r) for r in ("borrowed", "lent", "refused")] == [2, 0, 1]
            assert [handovers(a, r) for r in ("borrowed", "lent", "refused")] == [0, 2, 1]
        finally:
            reader.cancel()


async def test_a_late_answer_still_leaves_the_agent_served(
    two: tuple[DialerApp, DialerApp, MosquittoServer],
) -> None:
    """The borrower gave up waiting, then the lender's `lent` came: the borrower serves the
    agent (its lease is the borrower's now, nobody else would take it)."""
    a, b, _broker = two
    assert a.cluster is not None and b.cluster is not None
    assert a.cluster.lending is not None and b.cluster.lending is not None
    await _ok(a, LoginCmd(login="cat"))
    await _ok(a, ReadyCmd(login="cat"))
    # a lend request b never waits for (as if its wait had timed out)
    assert a.cluster.lending.send is not None
    a.cluster.lending.on_message(json.dumps(
        {"type": "lend", "req": "b-late", "login": "cat", "campaign": "mem",
         "to": "b"}).encode())
    await until(lambda: "cat" in b.cluster.mine, 10, "b serving cat")  # type: ignore[union-attr]
    assert "cat" not in a.cluster.mine
    assert b.runtimes["mem"].engine.board.get("cat").state is AgentState.READY
    assert ("cat", "a", "borrowed") in b.cluster.lending.history
