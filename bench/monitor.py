"""Benchmark of supervisors' listen-in (monitor mode) on live bridged calls, SIPp on loopback.

Through the real NodePool of pjsua2 node processes; the customer, agent and supervisor phones
are one SIPp process running sip/scenarios/phone.xml whose media go to loopback RTP endpoints
of this driver (sip.rtp_peer), so "the supervisor hears the call" is measured at its phone.

1. **Unmonitored**: ``--calls`` customer calls placed at ``--rate``/s, each bridged to an agent
   phone on answer and kept up ``--talk-s``; answer -> bridged latency (node-measured).
2. **Monitored**: the same calls again, and each one, once bridged, gets a supervisor's phone
   in monitor mode (a third leg on the call's node). Join time = the Listen command sent ->
   the first RTP packet at the supervisor's phone; bridge latency of these calls (placed
   while earlier ones are monitored); then all ``--calls`` sessions are up at once for
   ``--talk-s`` and every supervisor phone must keep receiving RTP.

Each call with its monitor takes 3 of a node's 4 call slots (the PyPI wheel), so the pool runs
one node per call (``--calls`` node processes: keep it bounded on a small machine).

Prints a table and ends with one line:
``monitor: sessions=<n> join_p99_ms=<x> bridge_p99_ms_monitored=<x>``

Usage: ``.venv/bin/python bench/monitor.py [--calls 20] [--rate 5] [--talk-s 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
from sip.api_controls import Listen, ListenEnded, ListenStarted  # noqa: E402
from sip.config import PoolConfig  # noqa: E402
from sip.pool import NodePool  # noqa: E402
from sip.rtp_peer import RtpHub, RtpPeer  # noqa: E402
from sip.sipp import SippProcess  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


@dataclass
class Phase:
    bridge_ms: list[float] = field(default_factory=list)
    join_ms: list[float] = field(default_factory=list)
    node_join_ms: list[float] = field(default_factory=list)
    started: int = 0
    ended: int = 0
    listen_ended: int = 0
    failed: list[str] = field(default_factory=list)
    sup_rx_while_all_up: list[int] = field(default_factory=list)


async def run_phase(pool: NodePool, phone: SippProcess, hub: RtpHub, args: argparse.Namespace,
                    tag: str, monitored: bool) -> Phase:
    ph = Phase()
    peers: dict[str, tuple[RtpPeer, RtpPeer, RtpPeer]] = {}
    listen_sent: dict[str, float] = {}
    all_started = asyncio.Event()
    all_ended = asyncio.Event()

    async def pump() -> None:
        async for ev in pool.events():
            cid = getattr(ev, "call_id", "")
            if cid not in peers:
                continue
            _cust, agent, sup = peers[cid]
            if isinstance(ev, CallAnswered):
                await pool.submit(Bridge(call_id=cid, agent_call_id=f"{cid}-a",
                                         agent_uri=phone.uri(f"ag-{agent.port}")))
            elif isinstance(ev, CallBridged):
                ph.bridge_ms.append(ev.latency_ms)
                if monitored:
                    listen_sent[cid] = time.monotonic()
                    await pool.submit(Listen(call_id=cid, listen_call_id=f"{cid}-s",
                                             supervisor_uri=phone.uri(f"sup-{sup.port}")))
                elif len(ph.bridge_ms) == args.calls:
                    all_started.set()
            elif isinstance(ev, ListenStarted):
                ph.started += 1
                ph.node_join_ms.append(ev.join_ms)
                if ph.started == args.calls:
                    all_started.set()
            elif isinstance(ev, ListenEnded):
                ph.listen_ended += 1
            elif isinstance(ev, CommandRejected):
                ph.failed.append(f"{ev.command}: {ev.error}")
                if ev.command == "Originate":
                    ph.ended += 1
            elif isinstance(ev, CallEnded | CallLost):
                ph.ended += 1
                if isinstance(ev, CallLost):
                    ph.failed.append(f"lost: {ev.reason}")
            if ph.ended >= args.calls:
                all_ended.set()
                all_started.set()

    task = asyncio.create_task(pump())
    for i in range(args.calls):
        cid = f"{tag}{i}"
        peers[cid] = (hub.peer(), hub.peer(), hub.peer())
        await pool.submit(Originate(call_id=cid, target=phone.uri(f"c-{peers[cid][0].port}"),
                                    caller_id="15550100000", ring_timeout_s=10))
        await asyncio.sleep(1.0 / args.rate)
    try:
        await asyncio.wait_for(all_started.wait(), 60)
    except TimeoutError:
        ph.failed.append("not every call was bridged/monitored within 60 s")
    # join time at the supervisor's phone: first RTP packet after the Listen was sent
    for _ in range(250):
        if not any(p[2].first_rx_mono is None for c, p in peers.items() if c in listen_sent):
            break
        await asyncio.sleep(0.02)
    for cid, sent in listen_sent.items():
        first = peers[cid][2].first_rx_mono
        if first is not None:
            ph.join_ms.append((first - sent) * 1000)
    # everything up at once: every supervisor keeps hearing its call
    before = {c: p[2].rx_audio for c, p in peers.items()}
    await asyncio.sleep(args.talk_s)
    if monitored:
        ph.sup_rx_while_all_up = [p[2].rx_audio - before[c] for c, p in peers.items()]
    if args.debug:
        for c, p in peers.items():
            node = pool.node_of(c)
            print(c, [(x.port, x.rx_audio, x.tx, x.remote) for x in p], node and node.name)
    for cid in peers:
        await pool.submit(Hangup(call_id=cid))
    try:
        await asyncio.wait_for(all_ended.wait(), 30)
    except TimeoutError:
        ph.failed.append("calls did not all end within 30 s")
    await asyncio.sleep(1.0)  # the listen legs' BYEs
    task.cancel()
    hub.drop(*(x for p in peers.values() for x in p))
    return ph


async def bench(args: argparse.Namespace, log_dir: str) -> tuple[Phase, Phase, int]:
    with SippProcess("phone", max_lifetime_s=900) as phone, RtpHub() as hub:
        cfg = PoolConfig(nodes=args.calls, node_log_dir=log_dir, pjsip_log_level=args.pjsip_log)
        pool = NodePool(cfg)
        await pool.start()
        try:
            base = await run_phase(pool, phone, hub, args, "u", monitored=False)
            mon = await run_phase(pool, phone, hub, args, "m", monitored=True)
            return base, mon, len(pool.nodes)
        finally:
            await pool.close(drain_deadline_s=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20, help="concurrent monitored calls")
    ap.add_argument("--rate", type=float, default=5.0, help="calls placed per second")
    ap.add_argument("--talk-s", type=float, default=3.0)
    ap.add_argument("--debug", action="store_true", help="print each call's RTP counters")
    ap.add_argument("--log-dir", default="", help="keep the nodes' logs here")
    ap.add_argument("--pjsip-log", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        base, mon, nodes = asyncio.run(bench(args, args.log_dir or tmp))
    hearing = sum(1 for n in mon.sup_rx_while_all_up if n >= 25 * args.talk_s)
    rows = [
        ("nodes (one monitored call each)", f"{nodes}"),
        ("unmonitored: calls bridged", f"{len(base.bridge_ms)}"),
        ("  answer->bridged p50 / p99 (ms)",
         f"{_pct(base.bridge_ms, .5):.1f} / {_pct(base.bridge_ms, .99):.1f}"),
        ("monitored: calls bridged / sessions started",
         f"{len(mon.bridge_ms)} / {mon.started}"),
        ("  answer->bridged p50 / p99 (ms)",
         f"{_pct(mon.bridge_ms, .5):.1f} / {_pct(mon.bridge_ms, .99):.1f}"),
        ("  join: Listen sent -> first RTP at supervisor p50 / p99 (ms)",
         f"{_pct(mon.join_ms, .5):.1f} / {_pct(mon.join_ms, .99):.1f}"),
        ("  join at the node (Listen -> connected) p50 / p99 (ms)",
         f"{_pct(mon.node_join_ms, .5):.1f} / {_pct(mon.node_join_ms, .99):.1f}"),
        (f"  supervisors hearing RTP with all {args.calls} up", f"{hearing} / {args.calls}"),
        ("  RTP packets per supervisor meanwhile (min / max)",
         f"{min(mon.sup_rx_while_all_up, default=0)} / {max(mon.sup_rx_while_all_up, default=0)}"),
        ("  listen legs ended with their calls", f"{mon.listen_ended}"),
        ("failures", "; ".join((base.failed + mon.failed)[:5]) or "none"),
    ]
    w = max(len(k) for k, _ in rows)
    print("listen-in benchmark (SIPp phones, RTP counted at each phone)")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    print(f"monitor: sessions={mon.started} join_p99_ms={_pct(mon.join_ms, .99):.2f} "
          f"bridge_p99_ms_monitored={_pct(mon.bridge_ms, .99):.2f}")
    ok = mon.started == args.calls and hearing == args.calls and not (base.failed + mon.failed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
