"""Three instances (network namespaces) while a shared server restarts (docs/cluster.md):

* PostgreSQL, down longer than the cluster's lease TTL: every heartbeat goes stale at once;
* the broker: every instance and every desktop reconnects, and each agent logs in again.

Either way no instance is judged dead, no agent moves to another instance, all three dial
again afterwards, and the invariants of tests/faults hold."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faults.invariants import assert_invariants, check_invariants

from support.netns import NetLab, unavailable

from .lab import CAMPAIGN, ClusterLab
from .test_three_instances import PROFILE, _until

why = unavailable() or (None if shutil.which("sipp") else "sipp not installed")
pytestmark = [pytest.mark.skipif(why is not None, reason=why or ""), pytest.mark.slow,
              pytest.mark.sipp, pytest.mark.timeout(420)]

DOWN_S = 7.0  # > lease_ttl_s (4 s) of the lab's instances


@pytest.mark.parametrize("server", ["postgres", "broker"])
async def test_a_shared_server_restart_kills_nobody(tmp_path: Path, server: str) -> None:
    # plenty of leads: dials that fail while the database is down use theirs up (the runtime
    # records them skipped, and their leads wait for the next whole-campaign refresh)
    lab = ClusterLab(NetLab(), tmp_path, leads={"answer_1_3": 300})
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

        async def everyone_dials_since(t: datetime) -> bool:
            rows = await lab.query("SELECT DISTINCT dialer_id FROM attempts WHERE created_at "
                                   "> :t", t=t)
            return set(ids) <= {r[0] for r in rows}

        await _until(lambda: everyone_dials_since(lab.started_at), 60,
                     "every instance to place calls")
        before = await leases()
        t0 = time.monotonic()
        if server == "postgres":
            await lab.restart_postgres(DOWN_S)
        else:
            await lab.restart_broker(3.0)
        back_at = datetime.now(UTC)
        print(f"\n{server} down and back in {time.monotonic() - t0:.1f} s")
        await _until(lambda: everyone_dials_since(back_at), 90,
                     "every instance to dial again after the restart")
        await asyncio.sleep(6)  # more than a TTL of healthy heartbeats
        members = await lab.query("SELECT name, occurrence FROM job_leases "
                                  "WHERE name LIKE 'cluster/instance/%'")
        assert len(members) == 3 and all(o.startswith("up:") for _n, o in members), members
        assert await leases() == before, "an agent moved although no instance died"
        for d in ids:
            assert "is dead" not in lab.log(d), f"{d} judged an instance dead"
            assert "took over agent" not in lab.log(d)
        await lab.close_agents()
        for d in ids:
            rc = await lab.stop_dialer(d)
            assert rc == 0, f"{d} exited {rc}:\n{lab.log(d)[-3000:]}"
        assert_invariants(await check_invariants(lab.db_url, campaign=CAMPAIGN,
                                                 since=lab.started_at),
                          f"three instances, {server} restarted")
        counts = dict(await lab.query("SELECT dialer_id, count(*) FROM attempts "
                                      "GROUP BY dialer_id"))
        print(f"attempts per instance {counts}; agents {before}")
    finally:
        await lab.close()
