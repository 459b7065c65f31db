"""Soak test: a steady predictive campaign for ``--minutes``, sampling the dialer's resources.

Reuses ``dialer demo`` as is (a subprocess: the real DialerApp with its pjsua2 node pool,
embedded MQTT broker, simulated agents, SIPp callees and agent phones) on its own SQLite file
(or, with ``--postgres``, on a throw-away PostgreSQL server started on loopback, as in
production), and every ``--every`` seconds samples the dialer process: RSS, open fds, threads,
node processes (its children running ``sip.node``), the database's open handles (fds on the
SQLite file; TCP connections to PostgreSQL), and the queue gauges it exports on /metrics
(calls in flight, hopper depth, webhook deliveries pending).

Growth is measured from the first sample after ``--warmup-s`` to the last one. Lost attempts
are attempts without a final result in the database once the demo has drained and exited.

Ends with one line:
``soak: minutes=<x> rss_growth_mb=<x> fd_growth=<x> lost_attempts=<x>``

Usage: ``.venv/bin/python bench/soak.py [--minutes 30] [--agents 10] [--every 15] [--postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
# first, always: bench/sip.py would otherwise shadow the sip package when the
# project is already on PYTHONPATH (after bench/, which Python puts first)
sys.path.insert(0, str(ROOT))

from db.pgserver import TempPostgres  # noqa: E402
from dialer.demo import MAX_LEADS_PER_COMPANY  # noqa: E402

_QUEUE_GAUGES = ("dialer_calls_in_flight", "dialer_hopper_depth", "dialer_webhook_pending")


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    threads: int
    nodes: int
    db_handles: int
    queues: dict[str, float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """Sum of each queue gauge over its label sets; empty when /metrics is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = dict.fromkeys(_QUEUE_GAUGES, 0.0)
    for line in text.splitlines():
        for g in _QUEUE_GAUGES:
            if line.startswith(g) and (line[len(g)] in " {"):
                out[g] += float(line.rsplit(" ", 1)[1])
    return out


@dataclass(frozen=True)
class Database:
    """Where the demo keeps its records: a SQLite file, or a PostgreSQL server's port."""

    url: str
    sqlite_path: str | None = None
    pg_port: int | None = None

    def handles(self, proc: psutil.Process) -> int:
        """The dialer's open handles on it: fds on the file, or TCP connections to the server."""
        if self.sqlite_path is not None:
            return sum(f.path.startswith(self.sqlite_path) for f in proc.open_files())
        return sum(
            1
            for c in proc.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == self.pg_port
        )


def sample(proc: psutil.Process, db: Database, port: int, t0: float) -> Sample | None:
    try:
        with proc.oneshot():
            rss = proc.memory_info().rss / 2**20
            fds = proc.num_fds()
            threads = proc.num_threads()
            handles = db.handles(proc)
        kids = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    nodes = 0
    for k in kids:
        try:
            nodes += "sip.node" in " ".join(k.cmdline())
        except psutil.NoSuchProcess:
            continue
    return Sample(time.monotonic() - t0, rss, fds, threads, nodes, handles, scrape(port))


async def _attempt_rows(url: str) -> tuple[int, list[datetime]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as c:
            lost = (await c.execute(text("SELECT count(*) FROM attempts WHERE result IS NULL")))
            created = (await c.execute(text("SELECT created_at FROM attempts"))).scalars()
            return int(lost.scalar_one()), [_as_datetime(x) for x in created]
    finally:
        await engine.dispose()


def _as_datetime(x: object) -> datetime:
    return x if isinstance(x, datetime) else datetime.fromisoformat(str(x))


def attempts_outcome(url: str) -> tuple[int, list[int]]:
    """Attempts without a final result once the demo exited, and attempts created in each
    5 minutes of the run (a steady campaign keeps dialing to the end)."""
    lost, created = asyncio.run(_attempt_rows(url))
    if not created:
        return lost, []
    first = min(created)
    buckets: dict[int, int] = {}
    for t in created:
        i = int((t - first).total_seconds() // 300)
        buckets[i] = buckets.get(i, 0) + 1
    return lost, [buckets.get(i, 0) for i in range(max(buckets) + 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="campaign length (max 240)")
    ap.add_argument("--agents", type=int, default=10, help="simulated agents (1..40)")
    ap.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="growth measured after this")
    ap.add_argument("--postgres", action="store_true",
                    help="records in a throw-away PostgreSQL server (as in production)")
    args = ap.parse_args()
    if not 0 < args.minutes <= 240:
        ap.error("--minutes must be in (0, 240]")
    if not 1 <= args.agents <= 40:
        ap.error("--agents must be in 1..40")
    if args.every < 1:
        ap.error("--every must be >= 1")
    port = _free_port()
    samples: list[Sample] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-"))
        if args.postgres:
            pg = stack.enter_context(TempPostgres(database="soak"))
            db = Database(pg.url, pg_port=pg.port)
        else:
            db = Database(f"sqlite+aiosqlite:///{tmp}/soak.db", sqlite_path=f"{tmp}/soak.db")
        cmd = [
            str(ROOT / ".venv/bin/dialer"), "demo", "--no-live", f"--minutes={args.minutes}",
            f"--agents={args.agents}", f"--metrics-port={port}", "--web-port=0",
            f"--db={db.url}",
            # enough leads for the whole run: the demo's 30 per company last ~10 minutes
            # for 10 agents (and fewer companies are open at weekends)
            f"--leads-per-company="
            f"{min(MAX_LEADS_PER_COMPANY, max(30, math.ceil(args.agents * args.minutes / 2)))}",
        ]
        with open(f"{tmp}/demo.log", "w") as log:
            child = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            proc = psutil.Process(child.pid)
            t0 = time.monotonic()
            # the demo drains for up to 20 s after its campaign; a hard cap beyond that
            cap = args.minutes * 60 + 180
            print(f"soak: dialer demo, {args.agents} agents, {args.minutes} min, "
                  f"{'PostgreSQL' if args.postgres else 'SQLite'}, pid {child.pid}")
            print(f"  {'t s':>6} {'RSS MB':>8} {'fds':>5} {'thr':>4} {'nodes':>5} {'db':>3} "
                  f"{'in flight':>9} {'hopper':>6} {'webhk':>5}")
            try:
                while child.poll() is None and time.monotonic() - t0 < cap:
                    s = sample(proc, db, port, t0)
                    if s is not None and child.poll() is None:
                        samples.append(s)
                        q = s.queues
                        print(f"  {s.t_s:>6.0f} {s.rss_mb:>8.1f} {s.fds:>5} {s.threads:>4} "
                              f"{s.nodes:>5} {s.db_handles:>3} "
                              f"{q.get('dialer_calls_in_flight', float('nan')):>9.0f} "
                              f"{q.get('dialer_hopper_depth', float('nan')):>6.0f} "
                              f"{q.get('dialer_webhook_pending', float('nan')):>5.0f}",
                              flush=True)
                    deadline = time.monotonic() + args.every
                    while child.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.5)
            finally:
                if child.poll() is None:
                    child.terminate()
                    try:
                        child.wait(30)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
        rc = child.returncode
        lost, per_5 = attempts_outcome(db.url)
        if rc != 0:
            print(Path(f"{tmp}/demo.log").read_text()[-3000:])
    # only samples while the campaign dials count towards growth: not the drain, and not an
    # idle tail after the demo's leads ran out (no call in flight from then on)
    dialing_until = args.minutes * 60
    busy = [s.t_s for s in samples if s.queues.get("dialer_calls_in_flight", 0) > 0]
    if busy and busy[-1] < dialing_until - 5 * args.every:
        dialing_until = busy[-1]
        print(f"  the campaign stopped dialing at {dialing_until:.0f} s (no callable lead left): "
              "growth is measured up to there")
    steady = [s for s in samples if args.warmup_s <= s.t_s <= dialing_until]
    if len(steady) < 2:
        steady = samples[-2:] if len(samples) >= 2 else samples
    rss_g = steady[-1].rss_mb - steady[0].rss_mb if len(steady) >= 2 else float("nan")
    fd_g = steady[-1].fds - steady[0].fds if len(steady) >= 2 else 0
    print(f"  demo exit code: {rc}; attempts per 5 minutes: {per_5} (total {sum(per_5)})")
    # levelling off shows as a falling slope from one quarter of the steady run to the next
    if len(steady) >= 8:
        q = len(steady) // 4
        slopes = []
        for i in range(4):
            a, b = steady[i * q], steady[min((i + 1) * q, len(steady) - 1)]
            slopes.append((b.rss_mb - a.rss_mb) / max((b.t_s - a.t_s) / 60, 1e-9))
        print("  RSS growth per quarter of the steady run (MB/min): "
              + " ".join(f"{x:.3f}" for x in slopes))
    print(f"soak: minutes={args.minutes:g} rss_growth_mb={rss_g:.1f} fd_growth={fd_g} "
          f"lost_attempts={lost}")
    return 0 if rc == 0 and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
