"""Cluster pieces without processes: the ledger's external contribution (pure core), the
lease SQL of db/cluster.py on SQLite and PostgreSQL, the gated command runner, rendezvous."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from common.vocabulary import AbandonPolicy, AbandonWindow, AttemptResult
from db import cluster as dbc
from db.session import session_factory
from dialer.bus.messages import LoginCmd
from dialer.cluster import NOT_MINE, ClusterRunner, rendezvous
from dialer.core.abandon import AbandonLedger, ExternalCounts
from dialer.core.governor import AbandonGovernor

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


# ------------------------------------------------------------------ the pure ledger
def _ledger() -> AbandonLedger:
    return AbandonLedger(AbandonPolicy(cap=0.03, window=AbandonWindow.ROLLING_30D))


def test_external_counts_add_to_their_window_only() -> None:
    led = _ledger()
    for i in range(10):
        led.record(T0.timestamp() - 60 + i, live=True, abandoned=i == 0)
    assert led.counts(T0).live == 10
    led.set_external({AbandonWindow.ROLLING_30D: ExternalCounts(live=90, abandoned=2,
                                                                 machines=5),
                      3600: ExternalCounts(live=40, abandoned=1)})
    c = led.counts(T0)  # the policy's window
    assert (c.live, c.abandoned, c.machines) == (100, 3, 5)
    assert led.counts(T0, 3600.0).live == 50 and led.counts(T0, 3600.0).abandoned == 2
    # a window without an entry: own events only
    assert led.counts(T0, AbandonWindow.ROLLING_24H).live == 10
    led.set_external({})
    assert led.counts(T0).live == 10


def test_external_counts_reject_impossible_values() -> None:
    with pytest.raises(ValueError):
        ExternalCounts(live=1, abandoned=2)
    with pytest.raises(ValueError):
        ExternalCounts(live=-1)


def test_governor_sees_the_campaign_not_its_share() -> None:
    """An instance with a clean record alone would take risk; with the others' abandons
    the campaign has no spare abandon and its guard closes."""
    led = _ledger()
    gov = AbandonGovernor(0.025, 0.03)
    for i in range(100):
        led.record(T0.timestamp() - 600 + i, live=True)
    assert gov.has_spare_abandon(led.counts(T0))
    led.set_external({AbandonWindow.ROLLING_30D: ExternalCounts(live=100, abandoned=6)})
    assert not gov.has_spare_abandon(led.counts(T0))


# ------------------------------------------------------------------ rendezvous and the runner
def test_rendezvous_spreads_agents_and_moves_few() -> None:
    members = ["a", "b", "c"]
    logins = [f"agent{i}" for i in range(300)]
    owner = {x: rendezvous(x, members) for x in logins}
    per = {m: sum(1 for o in owner.values() if o == m) for m in members}
    assert min(per.values()) > 60, per
    after = {x: rendezvous(x, ["a", "b"]) for x in logins}
    moved = [x for x in logins if owner[x] != after[x]]
    assert all(owner[x] == "c" for x in moved)  # only the dead member's agents move
    assert rendezvous("x", []) is None


async def test_runner_drops_commands_of_agents_served_elsewhere() -> None:
    handled: list[str] = []
    replies: list[object] = []

    async def handler(login: str, cmd: object) -> None:
        handled.append(login)

    runner = ClusterRunner(handler)

    async def gate(login: str, cmd: object) -> bool:
        return login == "mine"

    runner.gate = gate
    for login in ("mine", "other"):
        runner.submit(login, LoginCmd(login=login), lambda c, r, f: replies.append(r))
    assert await runner.settle(2.0)
    await runner.close()
    assert handled == ["mine"]
    assert replies == [None]  # the other's command got no reply at all
    assert NOT_MINE not in replies


async def test_runner_stays_silent_when_the_gate_cannot_decide() -> None:
    """A database outage on an instance that may not serve the agent: no error reply (the
    serving instance answers; an error from another would make the desktop give up)."""
    replies: list[object] = []

    async def handler(login: str, cmd: object) -> None:
        raise AssertionError("not admitted: never handled")

    async def gate(login: str, cmd: object) -> bool:
        raise ConnectionRefusedError("database down")

    runner = ClusterRunner(handler)
    runner.gate = gate
    runner.submit("a", LoginCmd(login="a"), lambda c, r, f: replies.append(r))
    assert await runner.settle(2.0)
    await runner.close()
    assert replies == []


# ------------------------------------------------------------------ the lease SQL
async def test_leases_heartbeats_and_dead_instances(db_engine) -> None:
    ses = session_factory(db_engine)
    ttl = timedelta(seconds=5)
    for d in ("a", "b", "c"):
        await dbc.heartbeat(ses, dialer_id=d, started=T0, now=T0, ttl=ttl)
    ms = await dbc.members(ses)
    assert [m.dialer_id for m in ms] == ["a", "b", "c"] and all(m.alive(T0) for m in ms)
    # three instances race for one agent: exactly one wins
    wins = await asyncio.gather(*(dbc.take_agent(ses, login="ag1", dialer_id=d, now=T0, ttl=ttl)
                                  for d in ("a", "b", "c")))
    assert sum(wins) == 1
    holder = (await dbc.agent_leases(ses))["ag1"].holder
    assert await dbc.take_agent(ses, login="ag1", dialer_id=holder, now=T0, ttl=ttl)
    other = next(d for d in "abc" if d != holder)
    assert not await dbc.take_agent(ses, login="ag1", dialer_id=other, now=T0, ttl=ttl)
    # renewals keep it; a lapsed lease is free for another
    assert await dbc.renew_agents(ses, dialer_id=holder, logins=["ag1"], now=T0, ttl=ttl) == []
    later = T0 + timedelta(seconds=6)
    assert await dbc.take_agent(ses, login="ag1", dialer_id=other, now=later, ttl=ttl)
    assert await dbc.renew_agents(ses, dialer_id=holder, logins=["ag1"], now=later,
                                  ttl=ttl) == ["ag1"]
    # "a" stops beating: exactly one survivor claims the clean-up
    for d in ("b", "c"):
        await dbc.heartbeat(ses, dialer_id=d, started=T0, now=later, ttl=ttl)
    claims = await asyncio.gather(*(dbc.claim_dead(ses, dead_id="a", by=d, now=later, ttl=ttl)
                                    for d in ("b", "c")))
    assert sum(claims) == 1
    by = "b" if claims[0] else "c"
    assert not await dbc.mark_dead(ses, dead_id="a", by="c" if by == "b" else "b")
    assert await dbc.mark_dead(ses, dead_id="a", by=by)
    a = next(m for m in await dbc.members(ses) if m.dialer_id == "a")
    assert a.occurrence == dbc.DEAD and not a.alive(later)
    assert not await dbc.claim_dead(ses, dead_id="a", by=by, now=later, ttl=ttl)
    # "a" comes back: alive again
    await dbc.heartbeat(ses, dialer_id="a", started=later, now=later, ttl=ttl)
    assert next(m for m in await dbc.members(ses) if m.dialer_id == "a").alive(later)
    await dbc.leave(ses, dialer_id="a")
    assert "a" not in [m.dialer_id for m in await dbc.members(ses)]


async def test_answered_by_others_counts_per_window(db_engine) -> None:
    ses = session_factory(db_engine)
    from db.models import Attempt, Campaign, Lead

    async with ses.begin() as s:
        camp = Campaign(name="c", caller_id="+14155550100")
        s.add(camp)
        await s.flush()
        cid = camp.id

    async with ses.begin() as s:
        lead = Lead(campaign_id=cid, phone_e164="+14155550101", name="x", custom_fields={},
                    priority=0, created_at=T0, updated_at=T0)
        s.add(lead)
        await s.flush()
        rows = [  # (dialer, result, answered minutes ago, ended after the start?)
            ("b", AttemptResult.CONNECTED, 5, True), ("b", AttemptResult.ABANDONED, 10, True),
            ("c", AttemptResult.MACHINE, 20, True), ("c", AttemptResult.CONNECTED, 120, True),
            ("a", AttemptResult.ABANDONED, 5, True),  # our own: not external
            ("b", AttemptResult.CONNECTED, 30, False),  # ended before we started: seeded
            ("b", AttemptResult.NO_ANSWER, 5, True),
        ]
        for d, res, ago, after in rows:
            at = T0 - timedelta(minutes=ago)
            s.add(Attempt(campaign_id=cid, lead_id=lead.id, phone_e164="+14155550101",
                          dial_mode="predictive", dialer_id=d, stage="ended", result=res,
                          created_at=at, answered_at=at if res is not AttemptResult.NO_ANSWER
                          else None, abandoned=res is AttemptResult.ABANDONED,
                          ended_at=T0 + timedelta(seconds=1) if after else T0 - timedelta(
                              minutes=1)))
    got = await dbc.answered_by_others(
        ses, campaign_id=cid, dialer_id="a", ended_after=T0,
        starts={"hour": T0 - timedelta(hours=1), "day": T0 - timedelta(days=1)})
    assert got == {"hour": (2, 1, 1), "day": (3, 1, 1)}



async def test_abandon_read_uses_the_answered_index_on_postgres(pg_server) -> None:
    """The per-heartbeat read of the others' answers goes through ix_attempts_campaign_answered
    (migration 0011), not a scan of the campaign's attempts: 3 campaigns x 8,000 attempts over
    13 days, one in ten answered, ANALYZEd; EXPLAIN of the very statement the cluster runs."""
    import os

    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    from db.models import Attempt, Campaign, Lead
    from db.session import create_engine

    url = pg_server.create_database(f"explain{os.getpid()}", template="template_dialer")
    engine = create_engine(url)
    try:
        ses = session_factory(engine)
        seeds: list[tuple[int, int]] = []  # (campaign id, its first attempt's id)
        for i in range(3):
            async with ses.begin() as s:
                camp = Campaign(name=f"c{i}", caller_id="+14155550100")
                s.add(camp)
                await s.flush()
                lead = Lead(campaign_id=camp.id, phone_e164="+14155550101", name="x",
                            custom_fields={}, priority=0)
                s.add(lead)
                await s.flush()
                att = Attempt(campaign_id=camp.id, lead_id=lead.id, phone_e164="+14155550101",
                              dial_mode="predictive", dialer_id="d0")
                s.add(att)
                await s.flush()
                seeds.append((camp.id, att.id))
        async with engine.begin() as c:
            cols = [r[0] for r in await c.execute(text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'attempts' AND column_name <> 'id'"))]
            over = {  # every other column is copied from the seed row
                "dialer_id": "'d' || (g % 3)",
                "created_at": "now() - g * interval '144 seconds'",
                "answered_at": "CASE WHEN g % 10 = 0 THEN now() - g * interval '144 seconds' END",
                "ended_at": "now() - g * interval '144 seconds' + interval '30 seconds'",
                "result": "CASE WHEN g % 10 = 0 THEN 'connected' ELSE 'no_answer' END",
            }
            values = ", ".join(over.get(k, f"t.{k}") for k in cols)
            for _cid, tid in seeds:
                await c.execute(text(
                    f"INSERT INTO attempts ({', '.join(cols)}) SELECT {values} "
                    f"FROM attempts t CROSS JOIN generate_series(1, 8000) g WHERE t.id = :t"),
                    {"t": tid})
            await c.execute(text("ANALYZE attempts"))
        now = datetime.now(UTC)
        stmt = dbc.answered_by_others_query(
            campaign_id=seeds[1][0], dialer_id="d0", ended_after=now - timedelta(days=30),
            starts=[now - timedelta(days=30), now - timedelta(days=1), now - timedelta(hours=1)])
        sql = str(stmt.compile(dialect=postgresql.dialect(),
                               compile_kwargs={"literal_binds": True}))
        async with engine.connect() as c:
            plan = "\n".join(r[0] for r in await c.execute(text("EXPLAIN " + sql)))
        assert "ix_attempts_campaign_answered" in plan, plan
        assert "Seq Scan on attempts" not in plan, plan
    finally:
        await engine.dispose()
