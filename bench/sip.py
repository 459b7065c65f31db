"""Benchmark of the telephony engine against SIPp on loopback.

Two phases, both through the real NodePool of pjsua2 node processes:

1. **Bridged load**: ``--concurrency`` customer calls (SIPp callee streaming a tone) kept up at
   once, each bridged on answer to an auto-answering SIPp agent phone (RTP echo), until
   ``--calls`` calls were placed. Measures answer -> agent-bridged latency (node-measured, it
   includes the round trip through the pool and this driver), RSS per node and per
   concurrent call, and node CPU per concurrent bridged call while all are up.
2. **Setup rate**: as many short calls as the pool sustains (INVITE, 200, ACK, BYE against
   SIPp's built-in UAS, no agent leg), and SIPp-to-SIPp (built-in uac -> uas) in the same run
   as the ceiling of this machine.

Prints a table and ends with one line:
``sip: bridge_p50_ms=<x> bridge_p99_ms=<x> cps=<x> sipp_cps=<x> rss_mb_per_call=<x>
cpu_pct_per_call=<x> hold_ms_p99=<x> transfer_ms_p99=<x>``

3. **Hold**: ``--hold-concurrency`` bridged calls to SIPp test phones (sip/scenarios/phone.xml,
   which answer re-INVITEs), each held and resumed ``--holds`` times: command -> ``CallHeld``;
   then each one transferred to a second agent phone: ``TransferAgent`` -> ``AgentTransferred``.

Usage: ``.venv/bin/python bench/sip.py [--calls 500] [--concurrency 40] [--talk-s 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

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
from sip.sipp import SippProcess, run_uac  # noqa: E402


@dataclass
class Tally:
    placed: int = 0
    ended: int = 0
    lost: int = 0
    rejected: int = 0
    bridged: int = 0
    connected: int = 0
    latencies: list[float] = field(default_factory=list)
    #: node CallAnswered -> this driver sees it (ms)
    delivery: list[float] = field(default_factory=list)
    #: Bridge submitted -> node says bridged (ms): agent INVITE/200/ACK + media connect
    agent_leg: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _node_procs(pool: NodePool) -> list[psutil.Process]:
    out = []
    for n in pool.nodes:
        try:
            out.append(psutil.Process(n.pid))
        except psutil.NoSuchProcess:
            continue
    return out


async def _ramp(place: Callable[[], Awaitable[None]], n: int, over_s: float) -> None:
    for _ in range(n):
        await place()
        await asyncio.sleep(over_s / n)


async def bridged_phase(args: argparse.Namespace, log_dir: str) -> dict[str, float]:
    t = Tally()
    with (
        SippProcess.callee(max_lifetime_s=900) as callee,
        SippProcess.agent(max_lifetime_s=900) as agent,
    ):
        cfg = PoolConfig(nodes="auto", planned_concurrency=args.concurrency, node_log_dir=log_dir)
        async with NodePool(cfg) as pool:
            procs = _node_procs(pool)
            idle_rss = sum(p.memory_info().rss for p in procs) / len(procs) / 2**20
            # talk times spread 0.5x..1.5x so answers arrive spread out as in real traffic,
            # not in synchronised waves of `concurrency` calls
            rng = random.Random(7)
            placing: set[asyncio.Task[None]] = set()
            in_flight: set[str] = set()
            bridge_sent: dict[str, float] = {}
            seq = 0
            cpu_samples: list[float] = []
            rss_at_peak = 0.0
            sampling = False
            for p in procs:
                p.cpu_percent(None)
            t0 = time.monotonic()

            async def place() -> None:
                nonlocal seq
                cid = f"b{seq}"
                seq += 1
                in_flight.add(cid)
                t.placed += 1
                talk = args.talk_s * rng.uniform(0.5, 1.5)
                cmd = Originate(
                    call_id=cid,
                    target=callee.uri(f"answer_0_{talk:.1f}"),
                    caller_id="15550100000",
                    ring_timeout_s=15,
                )
                # submit may wait for the node's setup token: do not stall event handling
                task = asyncio.create_task(pool.submit(cmd), name=f"submit-{cid}")
                placing.add(task)
                task.add_done_callback(placing.discard)

            # ramp up over one second, as a pacer would, instead of one burst of 40 INVITEs
            ramp = asyncio.create_task(_ramp(place, args.concurrency, 1.0), name="ramp")
            while in_flight or not ramp.done():
                ev = await pool.next_event(60)
                if isinstance(ev, CallAnswered):
                    now = time.monotonic()
                    t.delivery.append((now - ev.mono) * 1000)
                    bridge_sent[ev.call_id] = now
                    await pool.submit(
                        Bridge(
                            call_id=ev.call_id,
                            agent_call_id=ev.call_id + "a",
                            agent_uri=agent.uri("agent"),
                        )
                    )
                elif isinstance(ev, CallBridged):
                    t.bridged += 1
                    t.latencies.append(ev.latency_ms)
                    t.agent_leg.append((ev.mono - bridge_sent.pop(ev.call_id)) * 1000)
                    live = t.bridged - t.ended
                    if live >= args.concurrency and not sampling:
                        # all calls up: start a CPU sampling window
                        sampling = True
                        for p in procs:
                            p.cpu_percent(None)
                        window_start = time.monotonic()
                    elif (
                        sampling
                        and live >= args.concurrency - 2
                        and time.monotonic() - window_start >= 1.0
                    ):
                        cpu_samples.append(sum(p.cpu_percent(None) for p in procs))
                        rss_at_peak = max(
                            rss_at_peak, sum(p.memory_info().rss for p in procs) / 2**20
                        )
                        window_start = time.monotonic()
                elif isinstance(ev, (CallEnded, CallLost)) or (
                    isinstance(ev, CommandRejected) and ev.command == "Originate"
                ):
                    if isinstance(ev, CallEnded):
                        t.ended += 1
                        t.connected += ev.result.value == "connected"
                    elif isinstance(ev, CallLost):
                        t.lost += 1
                    else:
                        t.rejected += 1
                    in_flight.discard(ev.call_id)
                    if t.placed < args.calls:
                        await place()
            elapsed = time.monotonic() - t0
            await asyncio.gather(ramp, *placing)
            if not cpu_samples:  # very short runs: one sample over the whole run
                cpu_samples.append(sum(p.cpu_percent(None) for p in procs))
            if rss_at_peak == 0:
                rss_at_peak = sum(p.memory_info().rss for p in procs) / 2**20
            nodes = len(procs)
    cpu = statistics.median(cpu_samples)
    return {
        "nodes": nodes,
        "placed": t.placed,
        "ended": t.ended,
        "lost": t.lost,
        "rejected": t.rejected,
        "connected": t.connected,
        "bridged": t.bridged,
        "elapsed_s": elapsed,
        "p50": _pct(t.latencies, 0.5),
        "p99": _pct(t.latencies, 0.99),
        "max": max(t.latencies) if t.latencies else float("nan"),
        "delivery_p50": _pct(t.delivery, 0.5),
        "delivery_p99": _pct(t.delivery, 0.99),
        "agent_p50": _pct(t.agent_leg, 0.5),
        "agent_p99": _pct(t.agent_leg, 0.99),
        "idle_rss_mb_per_node": idle_rss,
        "rss_mb_per_node": rss_at_peak / nodes,
        "rss_mb_per_call": rss_at_peak / args.concurrency,
        "cpu_pct_nodes": cpu,
        "cpu_pct_per_call": cpu / args.concurrency,
    }


async def setup_rate_phase(args: argparse.Namespace, log_dir: str) -> dict[str, float]:
    """Short calls (answered, then hung up by the dialer) as fast as the pool sustains."""
    t = Tally()
    with SippProcess("builtin:uas", max_lifetime_s=600) as uas:
        cfg = PoolConfig(nodes=args.cps_nodes, node_log_dir=log_dir)
        async with NodePool(cfg) as pool:
            window = pool.capacity  # one slot per call (no agent leg)
            in_flight: set[str] = set()
            seq = 0
            t0 = time.monotonic()

            async def place() -> None:
                nonlocal seq
                cid = f"s{seq}"
                seq += 1
                in_flight.add(cid)
                t.placed += 1
                await pool.submit(
                    Originate(
                        call_id=cid,
                        target=uas.uri("bench"),
                        caller_id="15550100000",
                        ring_timeout_s=15,
                        reserve_agent_slot=False,
                    )
                )

            for _ in range(window):
                await place()
            while in_flight:
                ev = await pool.next_event(60)
                if isinstance(ev, CallAnswered):
                    await pool.submit(Hangup(call_id=ev.call_id))
                elif isinstance(ev, CallEnded | CallLost) or (
                    isinstance(ev, CommandRejected) and ev.command == "Originate"
                ):
                    if isinstance(ev, CallEnded):
                        t.ended += 1
                        t.connected += ev.sip_code == 200
                    elif isinstance(ev, CallLost):
                        t.lost += 1
                    else:
                        t.rejected += 1
                    in_flight.discard(ev.call_id)
                    if t.placed < args.cps_calls:
                        await place()
            elapsed = time.monotonic() - t0
        # the ceiling: SIPp's uac against the same UAS, same call flow, same machine
        s0 = time.monotonic()
        r = run_uac(
            "127.0.0.1", uas.port, calls=args.cps_calls, rate=5000, concurrent=window, timeout_s=120
        )
        sipp_elapsed = time.monotonic() - s0
    return {
        "placed": t.placed,
        "ended": t.ended,
        "answered": t.connected,
        "lost": t.lost,
        "rejected": t.rejected,
        "cps": t.ended / elapsed,
        "sipp_cps": args.cps_calls / sipp_elapsed if r.returncode == 0 else float("nan"),
        "sipp_rc": r.returncode,
        "nodes": args.cps_nodes,
        "window": window,
    }


async def hold_phase(args: argparse.Namespace, log_dir: str) -> dict[str, float]:
    """Hold and resume (sip.api_controls) on bridged calls: SIPp test phones (re-INVITEs
    answered), ``--hold-concurrency`` calls at once, each held and resumed ``--holds`` times;
    the time from the command to the node's ``CallHeld`` (the re-INVITE's 200 + media
    rewired), as this driver sees it."""
    from sip.api_controls import (
        AgentTransferred,
        CallHeld,
        Hold,
        Resume,
        TransferAgent,
        TransferFailed,
    )
    from sip.rtp_peer import RtpHub

    hold_ms: list[float] = []
    resume_ms: list[float] = []
    transfer_ms: list[float] = []
    failed = 0
    with SippProcess("phone", max_lifetime_s=600) as phone, RtpHub() as hub:
        # twice the nodes: a transfer's new agent leg is a third call on the call's node
        cfg = PoolConfig(nodes="auto", planned_concurrency=2 * args.hold_concurrency,
                         node_log_dir=log_dir)
        async with NodePool(cfg) as pool:
            calls = [f"h{i}" for i in range(args.hold_concurrency)]
            peers = {c: (hub.peer(), hub.peer()) for c in calls}
            for c in calls:
                await pool.submit(Originate(call_id=c, target=phone.uri(f"c-{peers[c][0].port}"),
                                            caller_id="15550100000", ring_timeout_s=10))
            bridged: set[str] = set()
            while len(bridged) < len(calls):
                ev = await pool.next_event(30)
                if isinstance(ev, CallAnswered):
                    await pool.submit(Bridge(call_id=ev.call_id, agent_call_id=f"{ev.call_id}a",
                                             agent_uri=phone.uri(f"a-{peers[ev.call_id][1].port}")))
                elif isinstance(ev, CallBridged):
                    bridged.add(ev.call_id)
                elif isinstance(ev, CallEnded | CallLost | CommandRejected):
                    failed += 1
                    bridged.add(ev.call_id)
            for _ in range(args.holds):
                for cmd_of, out in ((Hold, hold_ms), (Resume, resume_ms)):
                    sent = {}
                    for c in calls:
                        sent[c] = time.monotonic()
                        await pool.submit(cmd_of(call_id=c))
                    waiting = set(calls)
                    while waiting:
                        ev = await pool.next_event(30)
                        if isinstance(ev, CallHeld) and ev.call_id in waiting:
                            out.append((time.monotonic() - sent[ev.call_id]) * 1000)
                            waiting.discard(ev.call_id)
                        elif isinstance(ev, CommandRejected) and ev.call_id in waiting:
                            failed += 1
                            waiting.discard(ev.call_id)
                    await asyncio.sleep(0.2)
            # blind transfers to a second agent phone each: command -> AgentTransferred
            sent = {}
            for c in calls:
                second = hub.peer()
                sent[c] = time.monotonic()
                await pool.submit(TransferAgent(call_id=c, agent_call_id=f"{c}b",
                                                agent_uri=phone.uri(f"b-{second.port}")))
            waiting = set(calls)
            while waiting:
                ev = await pool.next_event(30)
                if isinstance(ev, AgentTransferred) and ev.call_id in waiting:
                    transfer_ms.append((time.monotonic() - sent[ev.call_id]) * 1000)
                    waiting.discard(ev.call_id)
                elif isinstance(ev, TransferFailed | CommandRejected) and ev.call_id in waiting:
                    failed += 1
                    waiting.discard(ev.call_id)
            for c in calls:
                await pool.submit(Hangup(call_id=c))
            ended = 0
            while ended < len(calls):
                ev = await pool.next_event(30)
                ended += isinstance(ev, CallEnded | CallLost)
    return {
        "hold_p50": _pct(hold_ms, 0.5), "hold_p99": _pct(hold_ms, 0.99),
        "resume_p50": _pct(resume_ms, 0.5), "resume_p99": _pct(resume_ms, 0.99),
        "holds": len(hold_ms), "hold_failed": failed,
        "transfer_p50": _pct(transfer_ms, 0.5), "transfer_p99": _pct(transfer_ms, 0.99),
        "transfers": len(transfer_ms),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500, help="bridged calls in phase 1")
    ap.add_argument("--concurrency", type=int, default=40)
    ap.add_argument("--talk-s", type=float, default=2.0)
    ap.add_argument("--cps-calls", type=int, default=1000, help="short calls in phase 2")
    ap.add_argument("--cps-nodes", type=int, default=20)
    ap.add_argument("--hold-concurrency", type=int, default=10, help="calls held at once")
    ap.add_argument("--holds", type=int, default=5, help="hold/resume rounds per call")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as log_dir:
        b = asyncio.run(bridged_phase(args, log_dir))
        c = asyncio.run(setup_rate_phase(args, log_dir))
        h = asyncio.run(hold_phase(args, log_dir))
    rows = [
        ("bridged phase: nodes (4 slots each)", f"{b['nodes']:.0f}"),
        (
            "placed / ended / lost / rejected",
            f"{b['placed']:.0f} / {b['ended']:.0f} / {b['lost']:.0f} / {b['rejected']:.0f}",
        ),
        ("bridged / connected", f"{b['bridged']:.0f} / {b['connected']:.0f}"),
        ("wall time (s)", f"{b['elapsed_s']:.1f}"),
        (
            "answer->bridged p50 / p99 / max (ms)",
            f"{b['p50']:.1f} / {b['p99']:.1f} / {b['max']:.1f}",
        ),
        (
            "  answered event -> driver p50 / p99 (ms)",
            f"{b['delivery_p50']:.1f} / {b['delivery_p99']:.1f}",
        ),
        ("  Bridge sent -> bridged p50 / p99 (ms)", f"{b['agent_p50']:.1f} / {b['agent_p99']:.1f}"),
        (
            "RSS per node idle / loaded (MiB)",
            f"{b['idle_rss_mb_per_node']:.1f} / {b['rss_mb_per_node']:.1f}",
        ),
        ("RSS per concurrent call (MiB)", f"{b['rss_mb_per_call']:.2f}"),
        ("node CPU at full load (% of a core)", f"{b['cpu_pct_nodes']:.1f}"),
        ("CPU per concurrent bridged call (%)", f"{b['cpu_pct_per_call']:.2f}"),
        ("setup phase: nodes / in-flight window", f"{c['nodes']:.0f} / {c['window']:.0f}"),
        (
            "placed / ended / answered / lost / rejected",
            f"{c['placed']:.0f} / {c['ended']:.0f} / {c['answered']:.0f} / {c['lost']:.0f} / "
            f"{c['rejected']:.0f}",
        ),
        ("pool call setups/s", f"{c['cps']:.1f}"),
        ("SIPp uac->uas call setups/s (ceiling)", f"{c['sipp_cps']:.1f}"),
        ("hold phase: holds / refused or failed", f"{h['holds']:.0f} / {h['hold_failed']:.0f}"),
        ("Hold sent -> held p50 / p99 (ms)", f"{h['hold_p50']:.1f} / {h['hold_p99']:.1f}"),
        ("Resume sent -> resumed p50 / p99 (ms)",
         f"{h['resume_p50']:.1f} / {h['resume_p99']:.1f}"),
        ("transfers: TransferAgent sent -> new agent bridged p50 / p99 (ms)",
         f"{h['transfer_p50']:.1f} / {h['transfer_p99']:.1f} ({h['transfers']:.0f} calls)"),
    ]
    w = max(len(k) for k, _ in rows)
    print("telephony engine benchmark (SIPp on loopback)")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    ok = b["placed"] == b["ended"] + b["lost"] + b["rejected"] and c["placed"] == (
        c["ended"] + c["lost"] + c["rejected"]
    )
    print(f"  every call accounted for (placed = ended + lost + rejected): {ok}")
    print(
        f"sip: bridge_p50_ms={b['p50']:.2f} bridge_p99_ms={b['p99']:.2f} cps={c['cps']:.1f} "
        f"sipp_cps={c['sipp_cps']:.1f} rss_mb_per_call={b['rss_mb_per_call']:.2f} "
        f"cpu_pct_per_call={b['cpu_pct_per_call']:.2f} hold_ms_p99={h['hold_p99']:.2f} "
        f"transfer_ms_p99={h['transfer_p99']:.2f}"
    )
    return 0 if ok and not h["hold_failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
