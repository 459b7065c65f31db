"""Benchmark: outcome webhook delivery lag (docs/webhooks.md), end to end on loopback.

    .venv/bin/python bench/webhooks_lag.py [--rate 50] [--seconds 20] [--leads 200]
                                            [--backend sqlite|postgres]

A producer writes `--rate` events per second for `--seconds` (each one its own transaction,
as the runtime's record writer does: a lead's status change, round robin over `--leads`
leads) into a fresh migrated database; the real `dialer.webhooks.WebhookWorker` (default
settings: 0.2 s poll, 16 POSTs in flight) delivers them to a real HTTP receiver on
127.0.0.1. Lag is the worker's own measure: from the outbox row's commit to the receiver's
2xx. Bounded in count and time; loopback only.

Prints a table and ends with one line:
    webhooks: deliveries=<n> lag_p50_ms=<n> lag_p99_ms=<n>
Target: p99 < 1 s. bench/api.py imports `measure()` (p99 in ms) or `measure_webhook_lag()`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.vocabulary import LeadStatus
from db import webhook_events
from db import webhooks as wh
from db.migrate import upgrade
from db.models import Campaign, Lead
from db.pgserver import TempPostgres
from db.session import create_engine, session_factory
from dialer.webhooks import WebhookWorker
from tests.webhooks.receiver import Receiver

MAX_SECONDS = 120.0
MAX_RATE = 500.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def measure_webhook_lag(*, rate: float = 50.0, seconds: float = 20.0, leads: int = 200,
                              url: str | None = None) -> dict[str, Any]:
    """Deliver `rate` events/s for `seconds` to a loopback receiver; the lag figures.

    `url`: a database URL (sqlite:///... or postgresql://...), default a fresh SQLite file.
    Returns {"deliveries", "rate_per_s", "lag_p50_ms", "lag_p90_ms", "lag_p99_ms",
    "lag_max_ms", "backend", "seconds"}."""
    rate = min(max(rate, 1.0), MAX_RATE)
    seconds = min(max(seconds, 1.0), MAX_SECONDS)
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        try:
            async with sessions.begin() as s:
                c = Campaign(name="bench", caller_id="+14155550100")
                s.add(c)
                await s.flush()
                rows = [Lead(campaign_id=c.id, phone_e164=f"+1415{i:07d}",
                             external_id=f"crm-{i}") for i in range(leads)]
                s.add_all(rows)
                await s.flush()
                lead_ids = [r.id for r in rows]
            async with Receiver() as receiver:
                await wh.create_subscription(sessions, receiver.url, ["lead.status_changed"],
                                             created_by="bench", now=datetime.now(UTC))
                total = int(rate * seconds)
                async with WebhookWorker(sessions, holder="bench") as worker:
                    t0 = time.monotonic()
                    for i in range(total):
                        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                        async with sessions.begin() as s:
                            await webhook_events.emit_status_change(
                                s, lead_ids[i % len(lead_ids)], LeadStatus.POTENTIAL,
                                LeadStatus.HOT, datetime.now(UTC))
                    produced_s = time.monotonic() - t0
                    for _ in range(600):  # the last ones: at most 30 s more
                        if worker.delivered >= total:
                            break
                        await asyncio.sleep(0.05)
                    lags = [x * 1000.0 for x in worker.lags_s]
                    delivered = worker.delivered
        finally:
            await engine.dispose()
    backend = "postgres" if url.startswith("postgres") else "sqlite"
    return {"backend": backend, "seconds": round(produced_s, 1),
            "deliveries": delivered, "expected": total,
            "rate_per_s": round(delivered / produced_s, 1) if produced_s else 0.0,
            "lag_p50_ms": round(_pct(lags, 0.50), 1), "lag_p90_ms": round(_pct(lags, 0.90), 1),
            "lag_p99_ms": round(_pct(lags, 0.99), 1),
            "lag_max_ms": round(max(lags), 1) if lags else float("nan"),
            "lag_mean_ms": round(statistics.fmean(lags), 1) if lags else float("nan")}


def measure() -> float:
    """p99 lag in ms at 50 deliveries/s for 10 s on SQLite (what bench/api.py prints)."""
    return float(asyncio.run(measure_webhook_lag(rate=50.0, seconds=10.0))["lag_p99_ms"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=50.0, help="events per second (max 500)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long (max 120)")
    ap.add_argument("--leads", type=int, default=200)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    pg: TempPostgres | None = None
    url = None
    if args.backend == "postgres":
        pg = TempPostgres(database="bench_webhooks").start()
        url = pg.url
    try:
        r = asyncio.run(measure_webhook_lag(rate=args.rate, seconds=args.seconds,
                                            leads=args.leads, url=url))
    finally:
        if pg is not None:
            pg.stop()
    print(f"{'backend':<10}{'deliveries':>12}{'rate/s':>9}{'p50 ms':>9}{'p90 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}")
    print(f"{r['backend']:<10}{r['deliveries']:>12}{r['rate_per_s']:>9}{r['lag_p50_ms']:>9}"
          f"{r['lag_p90_ms']:>9}{r['lag_p99_ms']:>9}{r['lag_max_ms']:>9}")
    ok = r["deliveries"] == r["expected"] and r["lag_p99_ms"] < 1000.0
    print(f"webhooks: deliveries={r['deliveries']} lag_p50_ms={r['lag_p50_ms']} "
          f"lag_p99_ms={r['lag_p99_ms']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
