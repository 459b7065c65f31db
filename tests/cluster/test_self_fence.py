"""Self-fencing (docs/cluster.md): one of two `dialer run` instances (network namespaces, one
PostgreSQL and one Mosquitto) is stopped with SIGSTOP for twice the lease TTL, as a blocked
event loop or a suspended VM would be, and then continued.

Checks: the survivor judges it dead and closes its open attempts as `lost`; once continued
it fences itself (log), places no call from the moment it stalled until it rejoined as a new
run (attempt rows), leaves the `lost` attempts as the survivor closed them, and is a live
member again; every attempt ends in one final state and no lead has two overlapping attempts
(tests/faults/invariants)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
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

STALL_S = 8.0  # twice the lab's lease_ttl_s (4 s)


async def test_a_stalled_instance_fences_itself(tmp_path: Path) -> None:
    lab = ClusterLab(NetLab(), tmp_path, leads={"answer_1_3": 200}, agents=4, instances=2)
    lab.lab.start()
    try:
        await lab.start(PROFILE)
        ids = sorted(lab.hosts)
        victim, survivor = "d2", "d1"

        async def dials_since(d: str, t: datetime) -> bool:
            rows = await lab.query("SELECT count(*) FROM attempts WHERE dialer_id = :d AND "
                                   "created_at > :t", d=d, t=t)
            return rows[0][0] > 0

        for d in ids:
            await _until(lambda d=d: dials_since(d, lab.started_at), 60, f"{d} to place calls")

        # ---- stall the victim's process only (its SIP nodes go on) past the TTL
        os.kill(lab.procs[victim].pid, signal.SIGSTOP)
        stopped_at = datetime.now(UTC)
        try:
            await asyncio.sleep(STALL_S)

            async def cleaned_up() -> bool:
                rows = await lab.query("SELECT occurrence FROM job_leases WHERE name = :n",
                                       n=f"cluster/instance/{victim}")
                return bool(rows) and rows[0][0] == "dead"

            await _until(cleaned_up, 20, f"{survivor} to clean up after the stalled {victim}")
        finally:
            os.kill(lab.procs[victim].pid, signal.SIGCONT)
        lost = dict(await lab.query(
            "SELECT id, ended_at FROM attempts WHERE dialer_id = :d AND result = 'lost'",
            d=victim))

        async def rejoined() -> bool:
            return "rejoined at" in lab.log(victim)

        await _until(rejoined, 20, f"{victim} to fence itself and rejoin")
        log = lab.log(victim)
        assert f"instance {victim} fenced at" in log, log[-3000:]
        m = re.search(r"instance \S+ rejoined at (\S+) as a new run", log)
        assert m is not None, log[-3000:]
        rejoined_at = datetime.fromisoformat(m.group(1))
        during = await lab.query(
            "SELECT id, created_at FROM attempts WHERE dialer_id = :d AND created_at >= :a "
            "AND created_at < :b", d=victim, a=stopped_at, b=rejoined_at)
        assert not during, f"{victim} placed calls while fenced: {during}"
        row = await lab.query("SELECT occurrence, expires_at FROM job_leases WHERE name = :n",
                              n=f"cluster/instance/{victim}")
        assert row[0][0] == f"up:{rejoined_at.isoformat()}", row
        await asyncio.sleep(3)  # the resumed instance's late events come and go

        await lab.close_agents()
        for d in ids:
            rc = await lab.stop_dialer(d)
            assert rc == 0, f"{d} exited {rc}:\n{lab.log(d)[-3000:]}"
        # the survivor's `lost` closes stand: the resumed instance wrote nothing over them
        after = dict(await lab.query(
            "SELECT id, ended_at FROM attempts WHERE dialer_id = :d AND result = 'lost'",
            d=victim))
        assert {k: after.get(k) for k in lost} == lost, "a lost attempt was re-closed"
        assert_invariants(await check_invariants(lab.db_url, campaign=CAMPAIGN,
                                                 since=lab.started_at),
                          f"{victim} stalled {STALL_S:.0f} s and fenced itself")
        counts = dict(await lab.query("SELECT dialer_id, count(*) FROM attempts "
                                      "GROUP BY dialer_id"))
        print(f"\nstalled {STALL_S:.0f} s; {len(lost)} attempt(s) closed lost by {survivor}; "
              f"rejoined {(rejoined_at - stopped_at).total_seconds():.1f} s after the stop; "
              f"attempts per instance {counts}")
    finally:
        await lab.close()
