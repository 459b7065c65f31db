"""Moving an agent to a campaign that runs on another cluster member only (docs/cluster.md,
"Moving an agent"), without processes: members `a` (campaigns mem and other) and `b` (mem
only) over one PostgreSQL and ONE real Mosquitto (the members' move notices ride on it).

* ann, served by b on mem, is moved by b's console control to `other`: b logs her out,
  writes the row and the audit entry, releases her lease and tells a; a takes her on for
  `other`, and her next login lands on a's `other` board;
* a move to a campaign no live member runs is refused (409), nothing written;
* cat, served by a, moved by a between its own two campaigns: b (which does not run `other`)
  forgets her within a heartbeat (it read the move in the audit log), so a take-over could
  never put her back on `mem`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, DialMode
from db import cluster as dbc
from db.audit import Actor
from db.pgserver import TempPostgres
from dialer.app import DialerApp
from dialer.bus.messages import LoginCmd
from dialer.config import AgentConfig, CampaignConfig, ClusterSection, MqttSection, Settings
from dialer.control import ControlError
from support.leads import loopback_settings, make_numbers, seed_campaign
from support.mosquitto import MosquittoServer

from .test_cluster_desktop_ws import DIALER, _pool, broker  # noqa: F401 (the fixture)
from .test_cluster_forwarding import agent_cmd, until

SUE = Actor.user("sue")


def _campaign(name: str) -> CampaignConfig:
    return CampaignConfig(name=name, caller_id="+14155550100", trunk="pstn",
                          dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5)


def _settings(db_url: str, mqtt_url: str, data: Path, dialer_id: str,
              campaigns: list[str]) -> Settings:
    agents = [AgentConfig(login=login, sip_uri=f"sip:{login}@memory.invalid", campaign="mem")
              for login in ("ann", "cat")]
    s = loopback_settings(dialer_id, db_url, data / dialer_id, 5060, agents, _campaign("mem"))
    return s.model_copy(update={
        "campaigns": [_campaign(n) for n in campaigns],
        "mqtt": MqttSection(url=mqtt_url),
        "cluster": ClusterSection(enabled=True, heartbeat_s=0.5, lease_ttl_s=2.0),
    })


@pytest.fixture
async def two(pg_server: TempPostgres, tmp_path: Path,
              broker: MosquittoServer) -> AsyncIterator[Any]:  # noqa: F811
    mqtt_url = f"mqtt://{DIALER[0]}:{DIALER[1]}@127.0.0.1:{broker.port}"
    db_url = pg_server.create_database(f"mov_{uuid.uuid4().hex[:12]}",
                                       template="template_dialer")
    now = SYSTEM_CLOCK.now()
    await seed_campaign(db_url, "nowhere", make_numbers(now, {"000": 1}), now)
    apps: list[tuple[DialerApp, asyncio.Task[Any]]] = []
    for dialer_id, campaigns in (("a", ["mem", "other"]), ("b", ["mem"])):
        app = DialerApp(_settings(db_url, mqtt_url, tmp_path, dialer_id, campaigns),
                        clock=SYSTEM_CLOCK, target_for=lambda _e: "sip:answer_0.2_0@x.invalid",
                        pool_factory=_pool)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.ready.wait(), 30)
        apps.append((app, task))
    try:
        yield apps[0][0], apps[1][0]
    finally:
        for app, task in reversed(apps):
            app.stop()
            await asyncio.wait_for(task, 30)


async def test_an_agent_moves_to_a_campaign_another_member_runs(
    two: tuple[DialerApp, DialerApp],
) -> None:
    a, b = two
    assert a.cluster is not None and b.cluster is not None
    assert a.control is not None and b.control is not None
    # both members' boards are published (the move asks who runs the campaign)
    await until(lambda: a.cluster.beats >= 2 and b.cluster.beats >= 2, 10, "heartbeats")

    # b's console offers `other` as a move target (a runs it)
    assert b.control.cluster_view is not None
    assert await b.control.cluster_view.campaigns_elsewhere() == ["mem", "other"]

    # ---- ann on b (mem), moved by b to `other`, which only a runs
    assert await agent_cmd(b, LoginCmd(login="ann")) is None
    assert "ann" in b.cluster.mine
    got = await b.control.move_agent("ann", "other", SUE)
    assert got == {"login": "ann", "from": "mem", "to": "other", "state": "logged_out",
                   "instances": ["a"]}
    assert "ann" not in b.cluster.mine and "ann" not in b.cluster.spare
    assert "ann" not in b.runtimes["mem"].agents and "ann" not in b.runtimes["mem"].engine.board
    assert b.agent_campaign["ann"] == "other"
    lease = await dbc.agent_lease(b.cluster.sessions, "ann")
    assert lease is None, lease  # released: the next member to hear from her takes it
    # a heard of it at once (the notice), not only at its next heartbeat
    await until(lambda: a.cluster.spare.get("ann", (None,))[0] is a.runtimes["other"], 2,
                "a taking ann on for `other`")
    assert a.agent_campaign["ann"] == "other"
    # her next login (every member hears it) is a's, on `other`
    assert await agent_cmd(a, LoginCmd(login="ann")) is None
    assert "ann" in a.cluster.mine and "ann" in a.runtimes["other"].agents
    assert a.runtimes["other"].engine.board.get("ann").state is AgentState.PAUSED
    assert not await b.cluster.admit("ann", LoginCmd(login="ann"))  # b does not serve her

    # ---- a campaign no live member runs: refused, nothing written
    assert await agent_cmd(a, LoginCmd(login="cat")) is None
    with pytest.raises(ControlError) as err:
        await a.control.move_agent("cat", "nowhere", SUE)
    assert err.value.status == 409 and "runs on no live" in str(err.value)
    assert "cat" in a.runtimes["mem"].agents
    moves = await dbc.moves_after(a.cluster.sessions, after_id=0, since=a.cluster.started)
    assert [(login, to) for _i, login, to in moves] == [("ann", "other")]

    # ---- cat moved by a between its own campaigns: b forgets her (it does not run `other`)
    assert b.cluster.spare["cat"][0] is b.runtimes["mem"]
    await a.control.move_agent("cat", "other", SUE)
    await until(lambda: "cat" not in b.cluster.spare, 5, "b following cat's move")
    assert b.agent_campaign["cat"] == "other"
