"""Benchmark: many agent desktops on the dialer's web server (the agent WebSocket).

One `dialer run` equivalent (DialerApp with its web server, SQLite, the embedded broker) runs
in a child process; this process plays N browser sessions as WebSocket clients, exactly as the
desktop page does: sign in over HTTP (session cookie + CSRF token), open /ws/agent, `login`
with a tab session id, `ready`, and for every call: take the screen pop, wait for
`call_ended`, send a disposition (the dialer then makes the agent ready again).

SIP is the in-memory pool (sip.memory.MemoryPool: calls answer after 0.5 s and last a few
seconds), because this measures the web path, not SIP: one pjsua2 node holds two bridged
calls, so 200 agents on real SIP would need a hundred node processes on this 2-core machine
(bench/sip.py measures SIP).

Measured:
* bridge -> screen pop: from the attempt's `bridged_at` (the database row: the moment the
  SIP layer reported both legs bridged) to the client having the screen pop parsed (same
  host, same wall clock). The dialer sends the pop when it places the agent's leg, so a pop
  usually arrives *before* the bridge completes: negative values are real and counted as
  such. The message's own `ts` -> client time is shown too (the web path alone);
* server CPU per connected agent: the dialer process's CPU time over the measured window
  (after every agent signed in and went ready), in % of one core, divided by the agents.

    .venv/bin/python bench/console.py [--agents 200] [--seconds 60] [--talk-s 30]

Bounded: N agents, `--seconds` of calls, loopback only. Prints a table and ends with
`console: agents=<n> pop_p99_ms=<..> cpu_pct_per_agent=<..>` (target: pop p99 < 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CAMPAIGN = "console"
PASSWORD = "bench-password-1"  # the same for every simulated agent (one hash to make)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------------------- the dialer side
def write_config(tmp: Path, agents: int, port: int, password_hash: str) -> Path:
    lines = [f"""
[dialer]
id = "console"
drain_deadline_s = 2.0
data_dir = "{tmp / 'var'}"

[database]
url = "sqlite:///{tmp / 'console.db'}"

[mqtt]
embedded_port = 0

[metrics]
enabled = false

[web]
host = "127.0.0.1"
port = {port}

[sip]
nodes = 1
base_port = 0

[sip.trunks.pstn]
uri = "sip:127.0.0.1:5060"

[[campaigns]]
name = "{CAMPAIGN}"
caller_id = "+14155550100"
trunk = "pstn"
dial_mode = "progressive"
ring_timeout_s = 10.0
min_ring_s = 5.0
"""]
    for i in range(agents):
        lines.append(f'[[agents]]\nlogin = "agent{i:03d}"\n'
                     f'sip_uri = "sip:agent{i:03d}@memory.invalid"\n'
                     f'password_hash = "{password_hash}"\n')
    path = tmp / "dialer.toml"
    path.write_text("\n".join(lines))
    return path


async def serve(config: Path, talk_s: float) -> None:
    """The child process: the whole dialer over the in-memory SIP pool until SIGTERM."""
    from dialer.app import DialerApp
    from dialer.config import load_settings
    from dialer.ports import SipEventHandler
    from sip.memory import MemoryPool

    settings = load_settings(config)
    agents = len(settings.agents)

    def pool(on_event: SipEventHandler) -> MemoryPool:
        return MemoryPool(on_event=on_event, trunks={"pstn"}, capacity=2 * agents + 8)

    app = DialerApp(settings, pool_factory=pool,
                    target_for=lambda e164: f"sip:answer_0.5_{talk_s:g}@memory.invalid")
    app.install_signal_handlers()
    await app.run()


async def seed(db_url: str, leads: int) -> None:
    from support.leads import make_numbers, seed_campaign

    now = datetime.now(UTC)
    codes = {f"{i:03d}": 5 for i in range(100, 100 + (leads + 4) // 5)}
    await seed_campaign(db_url, CAMPAIGN, make_numbers(now, codes), now)


async def bridged_at(db_url: str, attempt_ids: list[int]) -> dict[int, float]:
    """attempt id -> its bridged_at as a POSIX time, from the dialer's database."""
    from sqlalchemy import select

    from db.models import Attempt
    from db.session import create_engine, session_factory

    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            rows = (await s.execute(select(Attempt.id, Attempt.bridged_at).where(
                Attempt.id.in_(attempt_ids), Attempt.bridged_at.is_not(None)))).all()
    finally:
        await engine.dispose()
    return {i: (b if b.tzinfo else b.replace(tzinfo=UTC)).timestamp() for i, b in rows}


# ---------------------------------------------------------------------------- the desktops
@dataclass
class DesktopStats:
    pops_ms: list[float] = field(default_factory=list)
    #: attempt id -> wall-clock time the client had its screen pop (measured window only)
    received: dict[int, float] = field(default_factory=dict)
    calls: int = 0
    errors: list[str] = field(default_factory=list)


async def desktop(base: str, login: str, stats: DesktopStats, ready: asyncio.Event,
                  stop: asyncio.Event, measuring: asyncio.Event) -> None:
    """One browser session: sign in, open the socket, take calls until `stop`."""
    import httpx
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        r = await http.post("/api/session", json={"login": login, "password": PASSWORD})
        r.raise_for_status()
        csrf = r.json()["csrf"]
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    ws_url = base.replace("http://", "ws://") + f"/ws/agent?csrf={csrf}"
    session = uuid.uuid4().hex

    def cmd(kind: str, **fields: object) -> str:
        return json.dumps({"v": 1, "id": str(uuid.uuid4()), "ts": datetime.now(UTC).isoformat(),
                           "type": kind, "login": login, "session": session, **fields})

    async with connect(ws_url, origin=base, additional_headers={"Cookie": cookie},
                       max_size=2**20, open_timeout=60) as ws:  # type: ignore[arg-type]
        await ws.send(cmd("login"))
        await ws.send(cmd("ready"))
        ready.set()
        pops: dict[int, list[str]] = {}
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            got = time.time()
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "screen_pop":
                sent = datetime.fromisoformat(msg["ts"]).timestamp()
                if measuring.is_set():
                    stats.pops_ms.append((got - sent) * 1000)
                    stats.received[msg["attempt_id"]] = got
                pops[msg["attempt_id"]] = [d["code"] for d in msg["dispositions"]
                                           if not d.get("needs_callback")]
            elif kind == "call_ended":
                stats.calls += 1
                await asyncio.sleep(random.uniform(0.5, 1.5))  # the person types a note
                codes = pops.pop(msg["attempt_id"], None) or ["not_interested"]
                await ws.send(cmd("disposition", attempt_id=msg["attempt_id"],
                                  code=random.choice(codes), notes="bench"))
            elif kind == "error" and len(stats.errors) < 20:
                stats.errors.append(f"{login}: {msg.get('code')} {msg.get('message')}")
        await ws.send(cmd("logout"))


async def run(agents: int, seconds: float, talk_s: float) -> int:
    import psutil

    from dialer.passwords import hash_password

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        config = write_config(tmp, agents, port, hash_password(PASSWORD))
        # enough leads for every agent's calls in the window, with margin
        await seed(f"sqlite:///{tmp / 'console.db'}",
                   int(agents * seconds / (talk_s + 2.5) * 1.5) + agents)
        log = (tmp / "dialer.log").open("wb")
        child = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [sys.executable, __file__, "--serve", str(config), "--talk-s", str(talk_s)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"})
        base = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.monotonic() + 90
            while True:
                if child.poll() is not None:
                    raise RuntimeError("the dialer exited:\n"
                                       + (tmp / "dialer.log").read_text()[-3000:])
                try:
                    async with httpx.AsyncClient() as c:
                        if (await c.get(f"{base}/login", timeout=2)).status_code == 200:
                            break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the web server did not come up within 90 s")
                await asyncio.sleep(0.5)

            stats = [DesktopStats() for _ in range(agents)]
            readies = [asyncio.Event() for _ in range(agents)]
            stop, measuring = asyncio.Event(), asyncio.Event()
            started = time.monotonic()
            tasks = [asyncio.create_task(desktop(base, f"agent{i:03d}", stats[i], readies[i],
                                                 stop, measuring)) for i in range(agents)]
            for i in range(0, agents, 20):  # sign in in waves, as a shift starts
                await asyncio.wait_for(
                    asyncio.gather(*(e.wait() for e in readies[i:i + 20])), 120)
            signed_in_s = time.monotonic() - started
            await asyncio.sleep(talk_s + 2)  # the first calls are placed: steady state
            proc = psutil.Process(child.pid)
            cpu0, t0 = proc.cpu_times(), time.monotonic()
            measuring.set()
            await asyncio.sleep(seconds)
            cpu1, t1 = proc.cpu_times(), time.monotonic()
            measuring.clear()
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            failed = [t.exception() for t in tasks if t.exception() is not None]
        finally:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
            log.close()

        busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        cpu_pct = 100 * busy / (t1 - t0)
        sent_to_client = [p for s in stats for p in s.pops_ms]
        received = {a: t for s in stats for a, t in s.received.items()}
        bridged = await bridged_at(f"sqlite:///{tmp / 'console.db'}", list(received))
        pops = [(received[a] - b) * 1000 for a, b in bridged.items()]
        calls = sum(s.calls for s in stats)
        errors = [e for s in stats for e in s.errors]
        print(f"{'measure':34} {'value':>12}")
        rows = [
            ("agents (WebSocket sessions)", f"{agents}"),
            ("sign-in + ready of all (s)", f"{signed_in_s:.1f}"),
            ("measured window (s)", f"{t1 - t0:.1f}"),
            ("screen pops in window", f"{len(pops)}"),
            ("calls ended (whole run)", f"{calls}"),
            ("pop latency p50 (ms)", f"{pct(pops, 0.5):.1f}"),
            ("pop latency p99 (ms)", f"{pct(pops, 0.99):.1f}"),
            ("pop latency max (ms)", f"{max(pops) if pops else float('nan'):.1f}"),
            ("pop latency mean (ms)", f"{statistics.fmean(pops) if pops else float('nan'):.1f}"),
            ("pops on screen before the bridge", f"{sum(1 for x in pops if x < 0)}"),
            ("  of which message ts -> client p99", f"{pct(sent_to_client, 0.99):.1f}"),
            ("dialer CPU (% of one core)", f"{cpu_pct:.1f}"),
            ("dialer CPU per agent (%)", f"{cpu_pct / agents:.3f}"),
            ("desktop failures", f"{len(failed)}"),
            ("protocol errors seen", f"{len(errors)}"),
        ]
        for name, value in rows:
            print(f"{name:34} {value:>12}")
        for e in (errors + [repr(f) for f in failed])[:5]:
            print(f"  e.g. {e}")
        print(f"console: agents={agents} pop_p99_ms={pct(pops, 0.99):.1f} "
              f"cpu_pct_per_agent={cpu_pct / agents:.3f}")
        return 0 if pops and not failed else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--talk-s", type=float, default=30.0)
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        asyncio.run(serve(a.serve, a.talk_s))
        return 0
    return asyncio.run(run(a.agents, a.seconds, a.talk_s))


if __name__ == "__main__":
    sys.exit(main())
