"""Three `dialer run` instances, each in its own network namespace, on one campaign with one
PostgreSQL and one Mosquitto (docs/cluster.md). One is killed (-9) mid-campaign.

Checks: the agents are spread over the instances and each is served by one; every instance
dials; every instance's abandon rate is the campaign's; after the kill a survivor closes the
dead instance's open attempts as `lost`, its agents get calls from the survivors within
seconds; after a clean stop of a second one, its agents get calls from the last one; every
attempt ends in exactly one final state, no lead has two overlapping attempts (so no lead is
dialed by two instances at once), a bridged call has a disposition or waits as "needs
outcome" (tests/faults/invariants).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faults.invariants import assert_invariants, check_invariants

from dialer.agentsim import AgentProfile
from support.netns import NetLab, unavailable

from .lab import CAMPAIGN, ClusterLab

why = unavailable() or (None if shutil.which("sipp") else "sipp not installed")
pytestmark = [pytest.mark.skipif(why is not None, reason=why or ""), pytest.mark.slow,
              pytest.mark.sipp, pytest.mark.timeout(420)]

PROFILE = AgentProfile(wrapup_s=(0.5, 1.0), break_probability=0.0, settle_s=(0.2, 0.5),
                       auto_resume_s=(1.0, 2.0), reply_timeout_s=8.0)


async def _until(cond, seconds: float, what: str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if await cond():
            return time.monotonic() - t0
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


async def test_three_instances_one_campaign_and_one_dies(tmp_path: Path) -> None:
    lab = ClusterLab(NetLab(), tmp_path, leads={"answer_1_3": 160, "status486_1_0": 10})
    lab.lab.start()
    try:
        await lab.start(PROFILE)
        ids = sorted(lab.hosts)

        async def leases() -> dict[str, str]:
            rows = await lab.query("SELECT name, holder FROM job_leases "
                                   "WHERE name LIKE 'cluster/agent/%'")
            return {n.split("/")[-1]: h for n, h in rows}

        async def all_served() -> bool:
            return len(await leases()) == len(lab.agent_creds)

        await _until(all_served, 30, "every agent served by an instance")
        served = await leases()
        per = {d: sorted(a for a, h in served.items() if h == d) for d in ids}
        assert all(per[d] for d in ids), f"agents not spread over the instances: {per}"

        async def per_dialer() -> dict[str, int]:
            return {d: n for d, n in await lab.query(
                "SELECT dialer_id, count(*) FROM attempts GROUP BY dialer_id")}

        async def everyone_dials() -> bool:
            got = await per_dialer()
            return all(got.get(d, 0) >= 2 for d in ids)

        await _until(everyone_dials, 60, "every instance to place calls")
        await _one_console(lab, ids)

        # ---- the campaign-wide abandon ledger, seen from outside: answers of another
        # instance ("d9": 10 abandoned, 10 connected) reach every instance's governor within
        # a few heartbeats; each instance's dialer_abandon_rate is then the campaign's rate
        await lab.inject_answers("d9", connected=10, abandoned=10)

        async def campaign_rate() -> float:
            (live, ab), = await lab.query(
                "SELECT count(*) FILTER (WHERE result IN ('connected', 'abandoned')), "
                "count(*) FILTER (WHERE result = 'abandoned') FROM attempts")
            return ab / live

        rates: dict[str, float | None] = {}

        async def every_instance_sees_the_campaign() -> bool:
            want = await campaign_rate()
            for d in ids:
                rates[d] = await asyncio.to_thread(
                    lab.scrape, d, "dialer_abandon_rate", campaign=CAMPAIGN,
                    window="rolling_30d")
            return all(r is not None and abs(r - want) < 0.08 for r in rates.values())

        ledger_s = await _until(every_instance_sees_the_campaign, 15,
                                "every instance's abandon rate to be the campaign's")
        assert all(r is not None and r > 0.2 for r in rates.values()), rates

        # ---- kill -9 one instance (and its SIP nodes: its host dies)
        victim = "d3"
        victims_agents = per[victim]
        open_at_kill = {r[0] for r in await lab.query(
            "SELECT id FROM attempts WHERE dialer_id = :d AND stage <> 'ended'", d=victim)}
        held_by_victim = {r[0] for r in await lab.query(
            "SELECT id FROM leads WHERE claimed_by = :d", d=victim)}
        lab.lab.kill(lab.procs[victim])
        killed_at = datetime.now(UTC)
        t_kill = time.monotonic()
        await asyncio.to_thread(lab.procs[victim].wait, 10)

        async def cleaned_up() -> bool:
            rows = await lab.query("SELECT occurrence, holder FROM job_leases WHERE name = "
                                   ":n", n=f"cluster/instance/{victim}")
            still_open = await lab.query("SELECT count(*) FROM attempts WHERE dialer_id = :d "
                                         "AND stage <> 'ended'", d=victim)
            return bool(rows) and rows[0][0] == "dead" and still_open[0][0] == 0

        cleanup_s = await _until(cleaned_up, 30, f"a survivor to clean up after {victim}")
        assert not await lab.query("SELECT id FROM leads WHERE claimed_by = :d", d=victim), \
            f"leads still claimed by the dead {victim} after the clean-up"
        cleaner = (await lab.query("SELECT holder FROM job_leases WHERE name = :n",
                                   n=f"cluster/instance/{victim}"))[0][0]
        assert cleaner in ("d1", "d2")
        lost = {r[0] for r in await lab.query(
            "SELECT id FROM attempts WHERE dialer_id = :d AND result = 'lost'", d=victim)}
        assert open_at_kill <= lost | {r[0] for r in await lab.query(
            "SELECT id FROM attempts WHERE dialer_id = :d AND ended_at < :k", d=victim,
            k=killed_at)}

        async def victims_agents_work_again() -> bool:
            rows = await lab.query(
                "SELECT g.login FROM attempts a JOIN agents g ON g.id = a.agent_id "
                "WHERE a.dialer_id <> :d AND a.bridged_at > :k", d=victim, k=killed_at)
            return set(victims_agents) <= {r[0] for r in rows}

        calls_again_s = await _until(victims_agents_work_again, 60,
                                     f"agents {victims_agents} of {victim} to get calls again")
        first = {login: (at - killed_at).total_seconds() for login, at in await lab.query(
            "SELECT g.login, min(a.bridged_at) FROM attempts a JOIN agents g ON g.id = "
            "a.agent_id WHERE a.dialer_id <> :d AND a.bridged_at > :k GROUP BY g.login",
            d=victim, k=killed_at) if login in victims_agents}
        served_after = await leases()
        assert all(served_after[a] in ("d1", "d2") for a in victims_agents), served_after

        # the survivors carry on: both dial after the kill
        async def survivors_dial() -> bool:
            rows = await lab.query("SELECT DISTINCT dialer_id FROM attempts WHERE created_at "
                                   "> :k", k=killed_at)
            return {"d1", "d2"} <= {r[0] for r in rows}

        await _until(survivors_dial, 30, "both survivors to dial after the kill")

        # ---- a clean stop (SIGTERM) of d1 while its agents keep working: they move to d2
        d1_agents = sorted(a for a, h in (await leases()).items() if h == "d1")
        rc = await lab.stop_dialer("d1")
        assert rc == 0, f"d1 exited {rc}:\n{lab.log('d1')[-3000:]}"
        stopped_at = datetime.now(UTC)

        async def d1_agents_on_d2() -> bool:
            rows = await lab.query(
                "SELECT g.login FROM attempts a JOIN agents g ON g.id = a.agent_id "
                "WHERE a.dialer_id = 'd2' AND a.bridged_at > :t", t=stopped_at)
            return set(d1_agents) <= {r[0] for r in rows}

        moved_s = await _until(d1_agents_on_d2, 60, f"d1's agents {d1_agents} on d2")
        assert all(h == "d2" for h in (await leases()).values())
        await lab.close_agents()
        rc = await lab.stop_dialer("d2")
        assert rc == 0, f"d2 exited {rc}:\n{lab.log('d2')[-3000:]}"
        # the scheduled jobs ran under lease rows, one holder per job, all of them instances
        jobs = dict(await lab.query("SELECT name, holder FROM job_leases "
                                    "WHERE name NOT LIKE 'cluster/%'"))
        assert {"dialing_edges", "callback_reminders"} <= set(jobs), jobs
        assert set(jobs.values()) <= set(ids), jobs
        redialed = {r[0] for r in await lab.query(
            "SELECT DISTINCT lead_id FROM attempts WHERE dialer_id IN ('d1', 'd2') "
            "AND created_at > :k", k=killed_at)} & held_by_victim
        violations = await check_invariants(lab.db_url, campaign=CAMPAIGN,
                                            since=lab.started_at)
        assert_invariants(violations, "three instances, one killed")
        counts = await per_dialer()
        print(f"\ncluster: agents per instance {per}; attempts per instance {counts}; "
              f"job leases {jobs}; "
              f"abandon rate per instance after d9's answers {rates} ({ledger_s:.1f} s); "
              f"{victim} killed: cleaned up by {cleaner} after {cleanup_s:.1f} s "
              f"({len(lost)} lost; {len(redialed)} of the {len(held_by_victim)} leads it held "
              f"dialed by survivors), its agents {victims_agents} bridged by a survivor after "
              f"{calls_again_s:.1f} s (first bridge per agent, s after the kill: {first}); "
              f"total {time.monotonic() - t_kill:.0f} s after the kill; after d1's clean stop "
              f"its agents {d1_agents} were bridged by d2 within {moved_s:.1f} s")
    finally:
        await lab.close()


async def _one_console(lab: ClusterLab, ids: list[str]) -> None:
    """A pause on d1's console stops all three instances' dialing within a heartbeat; d1's
    wallboard counts every instance's agents; a resume there restarts all three; one audit
    row each (docs/cluster.md, "One console for the campaign")."""
    http, csrf = await lab.console("d1")
    try:
        r = await http.post(f"/api/console/campaigns/{CAMPAIGN}/pause", headers=csrf,
                            json={"reason": "lab"})
        assert r.status_code == 200, r.text
        await asyncio.sleep(2.5)  # the others' next heartbeat, and a dial already under way
        settled = datetime.now(UTC)
        await asyncio.sleep(4.0)
        during = await lab.query("SELECT dialer_id, count(*) FROM attempts "
                                 "WHERE created_at > :t GROUP BY dialer_id", t=settled)
        assert not during, f"attempts placed while the campaign was paused: {during}"
        for d in ids[1:]:
            other, _ = await lab.console(d)
            try:
                snap = (await other.get("/api/console/snapshot")).json()
            finally:
                await other.aclose()
            assert [c["state"] for c in snap["campaigns"]] == ["paused"], (d, snap)
        snap = (await http.get("/api/console/snapshot")).json()
        [board] = [c for c in snap["campaigns"] if c["name"] == CAMPAIGN]
        assert sorted(i["dialer_id"] for i in board["instances"]) == ids
        assert set(lab.agent_creds) <= {a["login"] for a in board["agents"]}
        assert {a["instance"] for a in board["agents"]} == set(ids)

        r = await http.post(f"/api/console/campaigns/{CAMPAIGN}/resume", headers=csrf,
                            json={"reason": "lab"})
        assert r.status_code == 200, r.text
        resumed = datetime.now(UTC)

        async def all_dial_again() -> bool:
            got = dict(await lab.query("SELECT dialer_id, count(*) FROM attempts "
                                       "WHERE created_at > :t GROUP BY dialer_id", t=resumed))
            return all(got.get(d, 0) >= 1 for d in ids)

        try:
            await _until(all_dial_again, 30, "every instance to dial again after the resume")
        except AssertionError:
            got = await lab.query("SELECT dialer_id, count(*) FROM attempts "
                                  "WHERE created_at > :t GROUP BY dialer_id", t=resumed)
            leads = await lab.query("SELECT status, count(*) FROM leads GROUP BY status")
            logs = {d: [ln for ln in lab.log(d).splitlines() if "campaign" in ln][-8:]
                    for d in ids}
            snap = (await http.get("/api/console/snapshot")).json()
            states = [(a["login"], a["instance"], a["state"], a["reason"])
                      for c in snap["campaigns"] for a in c["agents"]]
            raise AssertionError(f"after the resume: {got}; leads {leads}; logs {logs}; "
                                 f"agents {states}; {snap['campaigns'][0]['instances']}") from None
        rows = await lab.query("SELECT action FROM audit_log WHERE target = :t ORDER BY id",
                               t=f"campaign:{CAMPAIGN}")
        assert [r[0] for r in rows] == ["campaign.pause", "campaign.resume"]
    finally:
        await http.aclose()

