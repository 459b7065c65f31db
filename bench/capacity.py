"""Capacity ramp of the telephony engine: concurrent bridged calls until latency or calls fail.

Drives the real NodePool of pjsua2 node processes directly (not the dialer runtime): the
question is how many bridged calls the media/signalling layer holds per core and per GB, and
the runtime's pacing would only add its own ceiling on top. Each step starts a fresh pool
sized for the step (``planned_concurrency``), places that many calls to the SIPp callee
network with a talk time longer than the step, bridges each one on answer to an
auto-answering SIPp agent phone (RTP echo), holds them all up for ``--hold-s`` seconds while
measuring, then hangs them up.

Per step: calls held, nodes, PSS per call (sum of ``Pss`` in /proc/<pid>/smaps_rollup over
every node process, so shared pages count once, not RSS), node CPU per call (utime+stime of
the node processes over the hold window), answer->bridged p50/p99. The ramp stops when p99
passes ``--p99-limit-ms`` (50), a call fails, or the step/time caps are hit.

Ends with one line:
``capacity: concurrent_calls=<max held under the p99 limit> pss_mb_per_call=<x>
cpu_pct_per_call=<x>``

Usage: ``.venv/bin/python bench/capacity.py [--start 20] [--step 20] [--max-calls 240]
[--hold-s 10] [--max-minutes 10] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# first, always: bench/sip.py would otherwise shadow the sip package when the
# project is already on PYTHONPATH (after bench/, which Python puts first)
sys.path.insert(0, str(ROOT))

from sip.api import (  # noqa: E402
    Bridge,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallLost,
    CommandRejected,
    Hangup,
    Originate,
)
from sip.config import PoolConfig  # noqa: E402
from sip.pool import NodePool  # noqa: E402
from sip.sipp import SippProcess  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    target: int
    held: int
    nodes: int
    failed: int
    pss_mb_per_call: float
    cpu_pct_per_call: float
    p50: float
    p99: float


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def pss_kb(pid: int) -> int:
    """Proportional set size of one process (kB), from /proc/<pid>/smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


def cpu_ticks(pid: int) -> int:
    """utime+stime of one process in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(rest[11]) + int(rest[12])


async def run_step(
    n: int, args: argparse.Namespace, callee: SippProcess, agent: SippProcess, log_dir: str
) -> Step:
    cfg = PoolConfig(nodes="auto", planned_concurrency=n, node_log_dir=log_dir)
    latencies: list[float] = []
    bridged: set[str] = set()
    failed = 0
    talk = args.hold_s + 60  # the callee never hangs up during the step: we do
    async with NodePool(cfg) as pool:
        pids = [nd.pid for nd in pool.nodes]
        placing: list[asyncio.Task[object]] = []

        async def place_all() -> None:
            for i in range(n):
                cmd = Originate(
                    call_id=f"c{n}-{i}",
                    target=callee.uri(f"answer_0_{talk:.0f}"),
                    caller_id="15550100000",
                    ring_timeout_s=15,
                )
                placing.append(asyncio.create_task(pool.submit(cmd)))
                # spread over ~2 s as a pacer would, not one burst of n INVITEs
                await asyncio.sleep(2.0 / n)

        # placed concurrently with event handling, else answers wait for the ramp to finish
        ramp_task = asyncio.create_task(place_all())
        deadline = time.monotonic() + 30 + n / 10
        while len(bridged) + failed < n and time.monotonic() < deadline:
            ev = await pool.next_event(max(0.1, deadline - time.monotonic()))
            if isinstance(ev, CallAnswered):
                await pool.submit(
                    Bridge(
                        call_id=ev.call_id,
                        agent_call_id=ev.call_id + "a",
                        agent_uri=agent.uri("agent"),
                    )
                )
            elif isinstance(ev, CallBridged):
                bridged.add(ev.call_id)
                latencies.append(ev.latency_ms)
            elif isinstance(ev, (CallEnded, CallLost)) or (
                isinstance(ev, CommandRejected) and ev.command in ("Originate", "Bridge")
            ):
                failed += 1
        await ramp_task
        await asyncio.gather(*placing, return_exceptions=True)
        failed += n - len(bridged) - failed if len(bridged) + failed < n else 0
        # hold window: all calls up, measure node CPU and PSS
        c0 = sum(cpu_ticks(p) for p in pids)
        t0 = time.monotonic()
        await asyncio.sleep(args.hold_s)
        cpu_s = (sum(cpu_ticks(p) for p in pids) - c0) / _TICK
        wall = time.monotonic() - t0
        pss_mb = sum(pss_kb(p) for p in pids) / 1024
        held = len(bridged)
        for cid in bridged:
            await pool.submit(Hangup(call_id=cid))
        # let the hangups drain before the pool shuts its nodes down
        ends = 0
        drain = time.monotonic() + 15
        while ends < held and time.monotonic() < drain:
            ev = await pool.next_event(1)
            if isinstance(ev, (CallEnded, CallLost)):
                ends += 1
    per = max(held, 1)
    return Step(
        target=n,
        held=held,
        nodes=len(pids),
        failed=failed,
        pss_mb_per_call=pss_mb / per,
        cpu_pct_per_call=100 * cpu_s / wall / per,
        p50=_pct(latencies, 0.5),
        p99=_pct(latencies, 0.99),
    )


async def ramp(args: argparse.Namespace) -> list[Step]:
    steps: list[Step] = []
    t_end = time.monotonic() + args.max_minutes * 60
    with (
        tempfile.TemporaryDirectory(prefix="bench-capacity-") as log_dir,
        SippProcess.callee(max_lifetime_s=args.max_minutes * 60 + 120) as callee,
        SippProcess.agent(max_lifetime_s=args.max_minutes * 60 + 120) as agent,
    ):
        n = args.start
        while n <= args.max_calls and time.monotonic() < t_end:
            s = await run_step(n, args, callee, agent, log_dir)
            steps.append(s)
            print(
                f"  {s.target:>6} {s.held:>6} {s.nodes:>5} {s.failed:>6} "
                f"{s.pss_mb_per_call:>9.2f} {s.cpu_pct_per_call:>9.2f} {s.p50:>8.1f} "
                f"{s.p99:>8.1f}",
                flush=True,
            )
            if s.failed or s.p99 > args.p99_limit_ms:
                break
            n += args.step
    return steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, default=20, help="concurrent calls of the first step")
    ap.add_argument("--step", type=int, default=20, help="calls added per step")
    ap.add_argument("--max-calls", type=int, default=240, help="last step at most this many")
    ap.add_argument("--hold-s", type=float, default=10.0, help="measuring window per step")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="total time cap")
    ap.add_argument("--p99-limit-ms", type=float, default=50.0)
    ap.add_argument("--quick", action="store_true", help="~2-3 minutes: 3 steps up to 60")
    args = ap.parse_args()
    if args.quick:
        args.start, args.step, args.max_calls, args.hold_s = 20, 20, 60, 5.0
        args.max_minutes = min(args.max_minutes, 3.0)
    for name in ("start", "step", "max_calls"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    print("capacity ramp (NodePool + SIPp on loopback)")
    print(
        f"  {'target':>6} {'held':>6} {'nodes':>5} {'failed':>6} {'PSS MB/c':>9} "
        f"{'CPU %/c':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    steps = asyncio.run(ramp(args))
    good = [s for s in steps if not s.failed and s.p99 <= args.p99_limit_ms]
    best = max(good, key=lambda s: s.held) if good else None
    if best is None:
        print("capacity: concurrent_calls=0 pss_mb_per_call=nan cpu_pct_per_call=nan")
        return 1
    print(
        f"capacity: concurrent_calls={best.held} pss_mb_per_call={best.pss_mb_per_call:.2f} "
        f"cpu_pct_per_call={best.cpu_pct_per_call:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
