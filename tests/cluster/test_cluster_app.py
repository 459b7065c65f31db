"""The cluster's edges without processes: its config, its metrics, its judgement of death."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import ManualClock
from db import cluster as dbc
from db.session import session_factory
from dialer.bus.messages import LoginCmd
from dialer.cluster import Cluster
from dialer.config import ConfigError, load_settings

PG = 'url = "postgresql+asyncpg://u@h:5432/d"\n'


@pytest.mark.parametrize(("toml", "expected"), [
    ("[cluster]\nenabled = true\n", "need a shared external broker"),
    (f'[cluster]\nenabled = true\n[database]\n{PG}', "need a shared external broker"),
    (f'[cluster]\nenabled = true\nheartbeat_s = 3\nlease_ttl_s = 4\n[database]\n{PG}'
     '[mqtt]\nurl = "mqtt://h:1883"\n', "cluster.lease_ttl_s = 4.0: expected at least"),
    # the console's advertised URL (agent controls forwarded to it, docs/cluster.md)
    (f'[cluster]\nenabled = true\n[database]\n{PG}[mqtt]\nurl = "mqtt://h:1883"\n'
     '[web]\nhost = "0.0.0.0"\n', "web.advertise_url: [cluster] with web.host = '0.0.0.0'"),
    ('[web]\nadvertise_url = "http://h:8080/console"\n',
     "web.advertise_url = 'http://h:8080/console': expected http(s)://host[:port]"),
    ('[web]\nadvertise_url = "h:8080"\n', "web.advertise_url = 'h:8080': expected"),
])
def test_cluster_config_is_checked(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert expected in str(info.value)


def test_cluster_config_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[cluster]\nenabled = true\n[database]\n{PG}[mqtt]\nurl = "mqtt://h"\n')
    s = load_settings(path)
    assert (s.cluster.heartbeat_s, s.cluster.lease_ttl_s) == (1.0, 5.0)
    assert load_settings(None).cluster.enabled is False
    assert s.web.advertise_url == ""  # the bound http://<host>:<port> is advertised
    path.write_text(f'[cluster]\nenabled = true\n[database]\n{PG}[mqtt]\nurl = "mqtt://h"\n'
                    '[web]\nhost = "::"\nadvertise_url = "https://[fd00::7]:8443/"\n')
    assert load_settings(path).web.advertise_url == "https://[fd00::7]:8443"


async def test_only_a_healthy_instance_judges_others_dead(db_engine: AsyncEngine) -> None:
    """After a database outage every heartbeat is stale at once: an instance that has just
    come back waits a whole TTL of its own beats before it calls anyone dead."""
    ses = session_factory(db_engine)
    t0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    reg = CollectorRegistry()
    a = Cluster(dialer_id="a", sessions=ses, clock=clock, heartbeat_s=1.0, lease_ttl_s=4.0,
                registry=reg)
    await dbc.heartbeat(ses, dialer_id="b", started=t0, now=t0, ttl=timedelta(seconds=4))
    clock.advance(10)  # b's heartbeat is 6 s stale; a has only just (re)started beating
    await a.beat()
    b = next(m for m in await dbc.members(ses) if m.dialer_id == "b")
    assert b.occurrence.startswith("up:"), "judged dead by an instance not healthy a TTL"
    for _ in range(4):
        clock.advance(1)
        await a.beat()
    b = next(m for m in await dbc.members(ses) if m.dialer_id == "b")
    assert b.occurrence == dbc.DEAD and a.cleaned == {"b": (0, 0)}
    assert reg.get_sample_value("dialer_instance_info", {"dialer_id": "a"}) == 1
    assert reg.get_sample_value("dialer_cluster_members") == 1


async def beating_by_hand(ses: Any, clock: ManualClock) -> Cluster:
    """Instance `a` started (1 s beats, 4 s TTL), its heartbeat loop stopped: the test beats
    by hand, on its own clock."""
    a = Cluster(dialer_id="a", sessions=ses, clock=clock, heartbeat_s=1.0, lease_ttl_s=4.0)
    await a.start({})
    assert a._task is not None
    a._task.cancel()
    return a


async def test_a_stalled_instance_fences_itself_and_rejoins(db_engine: AsyncEngine) -> None:
    """`a` stalls past the TTL: it may not dial from that moment (before any beat); a
    survivor judges it dead, so its next beat fences it; it registers again only once the
    survivor's clean-up is over, as a new run, and may dial again. A stall nobody noticed
    costs nothing but the refused dials."""
    ses = session_factory(db_engine)
    t0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    ttl = timedelta(seconds=4)
    a = await beating_by_hand(ses, clock)
    first_run = a.run
    assert not a.fence.stale()
    clock.advance(4.5)  # unnoticed stall: nobody cleaned up
    assert a.fence.stale()
    await a.beat()
    assert not a.fence.stale() and not a.fence.fenced and a.run == first_run
    clock.advance(6)  # a long stall; b, healthy, claims the clean-up after a
    assert a.fence.stale()
    now = clock.now()
    await dbc.heartbeat(ses, dialer_id="b", started=t0, now=now, ttl=ttl)
    assert await dbc.claim_dead(ses, dead_id="a", by="b", now=now, ttl=ttl)
    await a.beat()  # a resumes: fenced, and may not rejoin while b cleans up
    assert a.fence.fenced and a.fence.fences == 1 and a.fence.stale()
    row = next(m for m in await dbc.members(ses) if m.dialer_id == "a")
    assert row.occurrence == dbc.CLEANING and row.holder == "b", "a overwrote b's claim"
    clock.advance(1)
    await a.beat()
    assert a.fence.fenced
    assert await dbc.mark_dead(ses, dead_id="a", by="b")
    clock.advance(1)
    await a.beat()  # the clean-up is over: a new run
    assert not a.fence.fenced and not a.fence.stale() and a.run > first_run
    row = next(m for m in await dbc.members(ses) if m.dialer_id == "a")
    assert row.occurrence == f"up:{a.run.isoformat()}" and row.alive(clock.now())
    await a.stop()


async def test_a_restart_waits_for_the_clean_up_after_its_previous_run(
        db_engine: AsyncEngine) -> None:
    """`a` died; `b` is closing its open attempts (row `cleaning`) when `a` starts again
    with the same id: `a` waits until the clean-up is over before it beats (its new
    attempts would be closed with the old ones), and starts at once when the cleaner died
    (its clean-up lease expired)."""
    ses = session_factory(db_engine)
    t0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    ttl = timedelta(seconds=4)
    await dbc.heartbeat(ses, dialer_id="a", started=t0, now=t0, ttl=ttl)
    clock.advance(5)
    await dbc.heartbeat(ses, dialer_id="b", started=t0, now=clock.now(), ttl=ttl)
    assert await dbc.claim_dead(ses, dead_id="a", by="b", now=clock.now(), ttl=ttl)
    a = Cluster(dialer_id="a", sessions=ses, clock=clock, heartbeat_s=0.02, lease_ttl_s=4.0)
    starting = asyncio.create_task(a.start({}))
    await asyncio.sleep(0.3)
    assert not starting.done(), "started over the clean-up after its previous run"
    row = next(m for m in await dbc.members(ses) if m.dialer_id == "a")
    assert row.occurrence == dbc.CLEANING and row.holder == "b"
    assert await dbc.mark_dead(ses, dead_id="a", by="b")
    await asyncio.wait_for(starting, 5)
    row = next(m for m in await dbc.members(ses) if m.dialer_id == "a")
    assert row.occurrence == f"up:{a.run.isoformat()}" and row.alive(clock.now())
    await a.stop()

    # a dies again; the cleaner dies mid-way: a waits no longer than the clean-up lease
    await dbc.heartbeat(ses, dialer_id="a", started=clock.now(), now=clock.now(), ttl=ttl)
    clock.advance(5)
    assert await dbc.claim_dead(ses, dead_id="a", by="b", now=clock.now(), ttl=ttl)
    a2 = Cluster(dialer_id="a", sessions=ses, clock=clock, heartbeat_s=0.02, lease_ttl_s=4.0)
    starting = asyncio.create_task(a2.start({}))
    await asyncio.sleep(0.2)
    assert not starting.done()
    clock.advance(4.5)
    await asyncio.wait_for(starting, 5)
    await a2.stop()


async def test_a_stalled_instance_does_not_answer_for_an_agent_taken_over(
        db_engine: AsyncEngine) -> None:
    """`a` stalls past the TTL; `b` takes over its agent; `a` resumes and the agent's
    command reaches it before its next heartbeat: `a` does not answer it (`b` does). An
    agent still leased to `a` is answered as before."""
    ses = session_factory(db_engine)
    t0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    ttl = timedelta(seconds=4)
    a = await beating_by_hand(ses, clock)
    for login in ("ann", "bob"):
        assert await dbc.take_agent(ses, login=login, dialer_id="a", now=t0, ttl=ttl)
        a.mine.add(login)
    cmd = LoginCmd(login="ann")
    assert await a.admit("ann", cmd)
    clock.advance(6)  # the stall; b takes ann over, bob's lease lapses unclaimed
    assert a.fence.stale()
    assert await dbc.take_agent(ses, login="ann", dialer_id="b", now=clock.now(), ttl=ttl)
    assert not await a.admit("ann", cmd), "answered for an agent b serves"
    assert await a.admit("bob", LoginCmd(login="bob"))
    await a.stop()


async def test_the_console_url_rides_on_the_heartbeat_row(db_engine: AsyncEngine) -> None:
    """An instance advertises its console in its heartbeat row (docs/cluster.md) once its web
    server listens; a renewal that began before that (no URL yet) does not blank it."""
    ses = session_factory(db_engine)
    t0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    a = await beating_by_hand(ses, clock)

    async def url() -> str | None:
        return next(m.console_url for m in await dbc.members(ses) if m.dialer_id == "a")

    assert await url() is None
    await a.advertise("http://10.0.0.7:8080")
    assert await url() == "http://10.0.0.7:8080"
    assert await dbc.renew_if_mine(ses, dialer_id="a", started=a.run, now=clock.now(),
                                   ttl=timedelta(seconds=4))  # console_url=None: left alone
    assert await url() == "http://10.0.0.7:8080"
    clock.advance(1)
    await a.beat()
    assert await url() == "http://10.0.0.7:8080"
    await a.stop()
