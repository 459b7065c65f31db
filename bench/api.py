"""Benchmark: bulk upsert of leads over the CRM API, on SQLite and on a real PostgreSQL.

Run:  .venv/bin/python bench/api.py [--rows 50000] [--batch 5000] [--webhooks]

Starts the web server (`dialer.web.server.WebServer`: a real uvicorn on 127.0.0.1, port 0)
over a fresh SQLite file and over a temporary PostgreSQL server (`db.pgserver.TempPostgres`),
creates a token, and POSTs `--rows` generated leads to `/api/v1/leads/bulk` in batches of
`--batch` with httpx: first as new leads (created), then the same batches again (all
`unchanged`: the idempotent path, which reads every lead back), then with every tenth lead
changed (updated). Rows per second count the whole request: JSON encoding, HTTP, parsing,
the importer's row rules and the database writes.

Prints a table and ends with one line:
    api: upsert_rows_per_s_sqlite=<n> upsert_rows_per_s_postgres=<n> webhook_lag_p99_ms=<n>
Target: >= 5,000 rows/s (first pass) on each backend. `webhook_lag_p99_ms` comes from
bench/webhooks_lag.py when that file is there and `--webhooks` is given, else `n/a`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from common.clock import SystemClock
from db.api_tokens import create_token
from db.audit import Actor
from db.migrate import upgrade
from db.models import Campaign
from db.pgserver import PostgresUnavailable, TempPostgres
from db.session import create_engine, session_factory
from dialer.bus.runner import AgentCommandRunner
from dialer.config import WebSection
from dialer.web.agent_ws import AgentSocketHub
from dialer.web.api_v1.auth import SCOPES
from dialer.web.auth import SignInLimiter
from dialer.web.deps import WebDeps
from dialer.web.server import WebServer

AREAS = ("212", "312", "415", "303", "617", "713", "206", "404", "305", "602")


@dataclass
class Run:
    backend: str
    label: str
    rows: int
    seconds: float
    counts: dict[str, int]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def leads(n: int, *, changed_every: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        name = f"Person {i}"
        if changed_every and i % changed_every == 0:
            name += " (moved)"
        out.append({"external_id": f"crm-{i}",
                    "phone": f"+1{AREAS[i % len(AREAS)]}{200 + (i // 10000) % 800:03d}"
                             f"{i % 10000:04d}",
                    "name": name, "priority": i % 10, "timezone": "America/New_York",
                    "custom_fields": {"segment": "smb" if i % 3 else "enterprise",
                                      "crm_owner": f"rep{i % 17}"}})
    return out


async def bench(backend: str, url: str, rows: int, batch: int) -> list[Run]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    clock = SystemClock()
    async with sessions.begin() as s:
        s.add(Campaign(name="bench", caller_id="+14155550100", timezone="America/New_York"))
    token, _ = await create_token(sessions, name="bench", scopes=frozenset(SCOPES),
                                  expires_at=None, actor=Actor.cli("bench"), now=clock.now())
    d = WebDeps(sessions=sessions, web=WebSection(port=0, api_rate_per_s=1000, api_burst=1000),
                clock=clock, hub=AgentSocketHub(AgentCommandRunner(), None),
                limiter=SignInLimiter(clock.monotonic))
    runs: list[Run] = []
    try:
        async with WebServer(d) as web, httpx.AsyncClient(
                base_url=web.url, timeout=300,
                headers={"Authorization": f"Bearer {token}"}) as client:
            for label, data in (("create (new leads)", leads(rows)),
                                ("re-send (all unchanged)", leads(rows)),
                                ("update (1 in 10 changed)", leads(rows, changed_every=10))):
                counts: dict[str, int] = {}
                t0 = time.perf_counter()
                for k in range(0, rows, batch):
                    r = await client.post("/api/v1/leads/bulk", json={
                        "campaign": "bench", "leads": data[k:k + batch]})
                    r.raise_for_status()
                    for key in ("created", "updated", "unchanged", "rejected", "skipped"):
                        counts[key] = counts.get(key, 0) + r.json()[key]
                runs.append(Run(backend, label, rows, time.perf_counter() - t0, counts))
    finally:
        await engine.dispose()
    return runs


def webhook_lag(enabled: bool) -> str:
    """The webhooks' p99 delivery lag from bench/webhooks_lag.py (`measure() -> float` ms),
    when asked for and present."""
    path = Path(__file__).with_name("webhooks_lag.py")
    if not enabled or not path.exists():
        return "n/a"
    spec = importlib.util.spec_from_file_location("webhooks_lag", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    measure = getattr(module, "measure", None)
    if measure is None:
        return "n/a"
    value = measure()
    if asyncio.iscoroutine(value):
        value = asyncio.run(value)
    return f"{float(value):.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--webhooks", action="store_true",
                    help="also measure webhook delivery lag (bench/webhooks_lag.py)")
    args = ap.parse_args()
    if not 1 <= args.batch <= 10_000:
        ap.error("--batch: 1..10000 (the API's limit per request)")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        upgrade(f"sqlite:///{tmp}/bench.db")
        runs += asyncio.run(bench("sqlite", f"sqlite:///{tmp}/bench.db", args.rows,
                                  args.batch))
        try:
            with TempPostgres() as pg:
                upgrade(pg.url)
                runs += asyncio.run(bench("postgres", pg.url, args.rows, args.batch))
        except PostgresUnavailable as e:
            print(f"PostgreSQL unavailable: {e}")
    print()
    print(f"{'backend':<9} {'run':<26} {'rows':>7} {'created':>8} {'updated':>8} "
          f"{'unchanged':>9} {'seconds':>8} {'rows/s':>8}")
    for r in runs:
        c = r.counts
        print(f"{r.backend:<9} {r.label:<26} {r.rows:>7} {c.get('created', 0):>8} "
              f"{c.get('updated', 0):>8} {c.get('unchanged', 0):>9} {r.seconds:>8.2f} "
              f"{r.rows_per_s:>8.0f}")
    print(f"batches of {args.batch} rows; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    first = {r.backend: r.rows_per_s for r in runs if r.label.startswith("create")}
    lag = webhook_lag(args.webhooks)
    print()
    print(f"api: upsert_rows_per_s_sqlite={first.get('sqlite', 0):.0f} "
          f"upsert_rows_per_s_postgres={first.get('postgres', 0):.0f} "
          f"webhook_lag_p99_ms={lag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
