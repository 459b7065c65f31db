"""One console for the campaign whole (dialer/control/cluster_view.py), without processes:
two instances' controls and campaign runtimes (in-memory SIP pool, not dialing) over one
SQLite or PostgreSQL database, their cluster heartbeats driven by hand on a manual clock.

* a pause taken by instance a's console reaches b at b's next beat; a resume too; a restarted
  instance starts held; the dial settings follow; each control is one audit row;
* each beat publishes the instance's boards; a's snapshot sums a's and b's agents and calls,
  says who contributed and how old, and drops b once b's heartbeat has lapsed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import ManualClock
from common.vocabulary import AgentState, DialMode
from db import audit
from db.cluster_boards import PublishedBoard
from db.models import Campaign
from db.session import session_factory
from db.store import SqlStore
from dialer.bus.runner import AgentCommandRunner
from dialer.cluster import Cluster
from dialer.config import CampaignConfig
from dialer.control import Control
from dialer.control.board import campaign_board
from dialer.control.cluster_view import ClusterView, merge_boards
from dialer.hopper import SchedulingCallability
from dialer.runtime import CampaignRuntime
from sip.memory import MemoryPool
from support.live_runtime import Bus

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
SUE = audit.Actor.user("sue")


@contextlib.asynccontextmanager
async def instance(db_engine: AsyncEngine, clock: ManualClock, dialer_id: str,
                   agents: tuple[str, ...], tmp_path: Path,
                   ) -> AsyncIterator[tuple[Cluster, Control, CampaignRuntime]]:
    """One instance: its runtime of campaign `c` serving `agents`, its controls, its view."""
    sessions = session_factory(db_engine)
    store = SqlStore(sessions)
    camp = await store.upsert_campaign(CampaignConfig(
        name="c", caller_id="+14155550100", dial_mode=DialMode.PROGRESSIVE))
    rows = {a: await store.upsert_agent(a, f"sip:{a}@memory.invalid", a.upper())
            for a in agents}
    pool = MemoryPool(on_event=lambda _e: None)
    await pool.start()
    rt = CampaignRuntime(
        campaign=camp, store=store, callability=SchedulingCallability(sessions), pool=pool,
        dialer_id=dialer_id, agents=rows, target_for=lambda _p: "sip:x@memory.invalid",
        bus=Bus(), recordings_dir=tmp_path / dialer_id, clock=clock, max_lines=1)
    for a in agents:
        rt.agent_login(a)
    rt.agent_ready(agents[0])
    cluster = Cluster(dialer_id=dialer_id, sessions=sessions, clock=clock, heartbeat_s=1.0,
                      lease_ttl_s=4.0)
    await cluster.start({"c": rt})
    assert cluster._task is not None
    cluster._task.cancel()  # the test beats by hand, on its own clock
    control = Control(sessions=sessions, clock=clock, runtimes={"c": rt}, agent_campaign={},
                      runner=AgentCommandRunner(lambda *_a: None))  # type: ignore[arg-type]
    await control.restore()
    control.cluster_view = ClusterView(cluster, control, sessions)
    try:
        yield cluster, control, rt
    finally:
        rt.stop()
        await rt.flush()
        await pool.close(drain_deadline_s=0)


async def _holds(db_engine: AsyncEngine) -> list[str]:
    return [r.action for r in reversed(await audit.entries(session_factory(db_engine),
                                                           limit=100))]


async def test_a_control_on_one_instance_reaches_the_others(
        db_engine: AsyncEngine, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    async with instance(db_engine, clock, "a", ("a1",), tmp_path) as (ca, xa, ra), \
            instance(db_engine, clock, "b", ("b1",), tmp_path) as (cb, xb, rb):
        ra.resume_dialing()
        rb.resume_dialing()
        await xa.pause_campaign("c", SUE, "script change")
        assert not ra.dialing and rb.dialing  # a at once; b not before its beat
        clock.advance(1)
        await cb.beat()
        assert not rb.dialing and xb.state_of("c") == "paused"
        assert xb.holds["c"].actor == "sue" and xb.holds["c"].reason == "script change"
        await ca.beat()  # a's own beat changes nothing
        assert xa.state_of("c") == "paused"

        # a restarted instance starts held
        async with instance(db_engine, clock, "b2", ("b2",), tmp_path) as (_c2, x2, r2):
            assert x2.state_of("c") == "paused" and not r2.dialing

        await xb.resume_campaign("c", SUE, "done")  # taken on b this time
        assert rb.dialing and not ra.dialing
        clock.advance(1)
        await ca.beat()
        assert ra.dialing and xa.state_of("c") == "dialing"

        await xa.set_dial("c", SUE, mode=DialMode.PREDICTIVE, max_dial_level=2.5)
        clock.advance(1)
        await cb.beat()
        assert rb.campaign.dial_mode is DialMode.PREDICTIVE
        assert rb.campaign.max_dial_level == 2.5
        assert rb.engine.config.limits.max_lines_per_agent == 2.5

        await xa.stop_campaign("c", SUE)
        clock.advance(1)
        await cb.beat()
        assert xb.state_of("c") == "stopped"
        await xb.start_campaign("c", SUE)
        clock.advance(1)
        await ca.beat()
        assert xa.state_of("c") == "dialing"
    # one audit row per control, whichever instance took it and however many followed
    assert [a for a in await _holds(db_engine) if a.startswith("campaign.")] == [
        "campaign.pause", "campaign.resume", "campaign.set_dial", "campaign.stop",
        "campaign.start"]
    async with session_factory(db_engine)() as s:
        row = (await s.scalars(select(Campaign).where(Campaign.name == "c"))).one()
    assert (row.dial_mode, row.max_dial_level) == (DialMode.PREDICTIVE, 2.5)


async def test_the_snapshot_sums_the_live_instances(
        db_engine: AsyncEngine, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    async with instance(db_engine, clock, "a", ("a1", "a2"), tmp_path) as (ca, xa, ra), \
            instance(db_engine, clock, "b", ("b1", "b2", "b3"), tmp_path) as (cb, _xb, _rb):
        clock.advance(1)
        await cb.beat()  # publishes b's board
        await ca.beat()  # a sees b as a member
        now = clock.now()
        assert xa.cluster_view is not None
        own = campaign_board(ra, xa, now)
        [board] = await xa.cluster_view.merged([own], now)
        assert [(a["login"], a["instance"]) for a in board["agents"]] == [
            ("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b"), ("b3", "b")]
        assert board["agents_by_state"][AgentState.READY.value] == 2  # a1 and b1
        assert board["agents_by_state"][AgentState.PAUSED.value] == 3
        assert board["working_agents"] == own["working_agents"] + 1
        assert [(i["dialer_id"], i["agents"]) for i in board["instances"]] == [
            ("a", 2), ("b", 3)]
        assert board["instances"][1]["age_s"] == 0.0
        assert own["agents_by_state"][AgentState.PAUSED.value] == 1  # a's own is untouched

        clock.advance(6)  # b stops beating: past its TTL it is no part of the campaign
        await ca.beat()
        now = clock.now()
        [alone] = await xa.cluster_view.merged([campaign_board(ra, xa, now)], now)
        assert [i["dialer_id"] for i in alone["instances"]] == ["a"]
        assert {a["login"] for a in alone["agents"]} == {"a1", "a2"}


def _board(agents: list[dict[str, Any]], **figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "c", "state": "dialing", "agents": agents,
        "agents_by_state": {s.value: 0 for s in AgentState},
        "in_flight": {"dialing": 0, "ringing": 0, "bridged": 0},
        "live_calls": 0, "working_agents": 0, "dials": 0, "live_answers": 0, "machines": 0,
        "abandoned_run": 0, "hopper_depth": 0, "dial_level": 0.0, "answer_rate": 0.0,
        "abandon": {"rolling_30d": {"rate": 0.01}}, "callable_leads": 40}
    base.update(figures)
    return base


def test_merge_sums_shares_and_keeps_the_campaign_wide_figures() -> None:
    now = T0
    own = _board([{"login": "a1", "state": "talking", "seconds_in_state": 3.0}],
                 live_calls=2, working_agents=1, dials=10, live_answers=3, machines=1,
                 hopper_depth=5, in_flight={"dialing": 1, "ringing": 0, "bridged": 1})
    other = _board([{"login": "b1", "state": "ready", "seconds_in_state": 10.0},
                    {"login": "a1", "state": "ready", "seconds_in_state": 50.0}],
                   live_calls=4, working_agents=2, dials=30, live_answers=5, machines=1,
                   hopper_depth=7, in_flight={"dialing": 2, "ringing": 1, "bridged": 1},
                   callable_leads=999, abandon={"rolling_30d": {"rate": 0.5}})
    got = merge_boards(own, "a", [PublishedBoard("b", "c", now - timedelta(seconds=1.5),
                                                 other)], now)
    assert [(a["login"], a["instance"], a["state"]) for a in got["agents"]] == [
        ("a1", "a", "talking"), ("b1", "b", "ready")]  # a1 counted once, where it is live
    assert got["agents"][1]["seconds_in_state"] == 11.5  # as of now
    assert got["agents_by_state"]["talking"] == 1 and got["agents_by_state"]["ready"] == 1
    assert (got["live_calls"], got["working_agents"], got["hopper_depth"]) == (6, 3, 12)
    assert got["in_flight"] == {"dialing": 3, "ringing": 1, "bridged": 2}
    assert got["dial_level"] == 2.0 and got["answer_rate"] == 10 / 40
    assert got["callable_leads"] == 40 and got["abandon"] == own["abandon"]
    assert [(i["dialer_id"], i["age_s"]) for i in got["instances"]] == [("a", 0.0), ("b", 1.5)]
    assert own["live_calls"] == 2 and "instance" not in own["agents"][0]  # not mutated
