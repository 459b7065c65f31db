"""Benchmark: the agent protocol through a real broker (embedded amqtt and Mosquitto).

Measures, for each broker:
* command round trip: an agent sends a command and waits for its ack (agent -> broker ->
  AgentBus: parse + validate + handler -> ack -> broker -> agent), with A agents each sending
  R commands back to back;
* fan-out: the dialer sends E state events spread over the agents; time until all arrived.

    .venv/bin/python bench/agent_bus.py [--agents 20] [--requests 100] [--events 2000]
                                         [--broker embedded|mosquitto|both]

Bounded in count (defaults: 2,000 round trips and 2,000 events per broker) and loopback only.
Prints a table and ends with one summary line `agent_bus: ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.vocabulary import AgentState
from dialer.bus import (
    AgentBus,
    AgentClient,
    AgentCommand,
    EmbeddedBroker,
    ProtocolError,
    ReadyCmd,
    StateEvt,
)
from tests.bus.conftest import STRICT_ACL, MosquittoServer

DIALER = ("dialer", "dialer-pw")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_one(url: str, dialer_url: str, passwords: dict[str, str], requests: int,
                  events: int) -> dict[str, float]:
    async def handler(login: str, cmd: AgentCommand) -> ProtocolError | None:
        return None

    bus = AgentBus(dialer_url)
    bus.set_handler(handler)
    rtts: list[float] = []
    async with bus:
        clients = [AgentClient(login, pw, url, reply_timeout_s=30) for login, pw in
                   passwords.items()]
        for c in clients:
            await c.__aenter__()
        try:
            async def agent_loop(c: AgentClient) -> None:
                for _ in range(requests):
                    t0 = time.perf_counter()
                    await c.request(ReadyCmd(login=c.login))
                    rtts.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            await asyncio.gather(*(agent_loop(c) for c in clients))
            rt_wall = time.perf_counter() - t0

            t0 = time.perf_counter()
            for i in range(events):
                c = clients[i % len(clients)]
                await bus.send(c.login, StateEvt(state=AgentState.READY, reason=str(i)))
            per_agent = [len(range(i, events, len(clients))) for i in range(len(clients))]
            await asyncio.gather(*(
                _drain(c, n) for c, n in zip(clients, per_agent, strict=True)))
            fan_wall = time.perf_counter() - t0
        finally:
            for c in clients:
                await c.__aexit__(None, None, None)
    return {
        "round_trips": float(len(rtts)),
        "rtt_p50_ms": statistics.median(rtts) * 1000,
        "rtt_p99_ms": pct(rtts, 0.99) * 1000,
        "cmds_per_s": len(rtts) / rt_wall,
        "events_per_s": events / fan_wall,
        "dropped": float(bus.stats.dropped),
    }


async def _drain(c: AgentClient, n: int) -> None:
    for _ in range(n):
        await c.next_event(wait_s=60)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100, help="commands per agent")
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--broker", choices=["embedded", "mosquitto", "both"], default="both")
    args = ap.parse_args()
    if not (1 <= args.agents <= 200 and 1 <= args.requests <= 1000
            and 1 <= args.events <= 100_000):
        ap.error("keep it bounded: agents 1-200, requests 1-1000, events 1-100000")
    passwords = {f"agent{i:03d}": f"pw{i}" for i in range(args.agents)}
    results: dict[str, dict[str, float]] = {}
    if args.broker in ("embedded", "both"):
        async with EmbeddedBroker(passwords, dialer_password=DIALER[1]) as b:
            results["embedded"] = await run_one(b.url, b.dialer_url, passwords,
                                                args.requests, args.events)
    if args.broker in ("mosquitto", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            users = {**passwords, DIALER[0]: DIALER[1]}
            server = MosquittoServer(Path(tmp), STRICT_ACL, users).start()
            try:
                url = f"mqtt://127.0.0.1:{server.port}"
                results["mosquitto"] = await run_one(
                    url, f"mqtt://{DIALER[0]}:{DIALER[1]}@127.0.0.1:{server.port}",
                    passwords, args.requests, args.events)
            finally:
                server.stop()

    cols = ["round_trips", "rtt_p50_ms", "rtt_p99_ms", "cmds_per_s", "events_per_s", "dropped"]
    print(f"{'broker':<10} " + " ".join(f"{c:>13}" for c in cols))
    for name, r in results.items():
        print(f"{name:<10} " + " ".join(f"{r[c]:>13.2f}" for c in cols))
    summary = " ".join(
        f"{name}_rtt_p50_ms={r['rtt_p50_ms']:.2f} {name}_rtt_p99_ms={r['rtt_p99_ms']:.2f} "
        f"{name}_cmds_per_s={r['cmds_per_s']:.0f} {name}_events_per_s={r['events_per_s']:.0f}"
        for name, r in results.items())
    print(f"agent_bus: agents={args.agents} {summary}")


if __name__ == "__main__":
    asyncio.run(main())
