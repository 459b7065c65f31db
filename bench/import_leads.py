"""Benchmark: import 100,000 generated leads into SQLite and into a real PostgreSQL.

Run:  .venv/bin/python bench/import_leads.py [--rows 100000]

Generates one CSV file (`;`-separated, UTF-8 with BOM, quoted names, a few custom columns,
about 1% bad numbers and 1% duplicates so the validation and report paths are exercised),
imports it through the same `dialer.importer.import_leads` the CLI uses into a fresh SQLite
file and into a temporary PostgreSQL server (`db.pgserver.TempPostgres`, Debian's binaries on
a free loopback port), then imports it a second time to time the all-duplicates path.

Prints a table and ends with one line:
    import: sqlite_rows_per_s=<n> postgres_rows_per_s=<n> peak_rss_mb=<n>
Target (issue 2): 100,000 rows in under 30 s on each backend. Peak RSS is the whole process
(Python, SQLAlchemy, drivers) - the importer streams, so it does not grow with the file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.clock import utc_now
from db.migrate import upgrade
from db.models import Campaign
from db.pgserver import PostgresUnavailable, TempPostgres
from db.session import create_engine, session_factory
from dialer.importer import ImportOptions, ImportSummary, import_leads

ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "")
# US area codes in service (phonenumbers validates them); 555-01xx style lines are not used so
# the numbers are valid in the library's metadata.
AREAS = ("212", "312", "415", "303", "617", "713", "206", "404", "305", "602")


def generate(path: Path, rows: int, seed: int = 7) -> int:
    """Write the benchmark file; returns how many rows should import."""
    rng = random.Random(seed)
    good = 0
    used: list[str] = []
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write("name;phone;timezone;priority;status;city;segment\r\n")
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01:
                phone = f"555-{i:04d}"  # too short: rejected
            elif roll < 0.02 and used:
                phone = rng.choice(used)  # duplicate: skipped
            else:
                # the row counter in the last seven digits keeps the numbers unique
                phone = f"({rng.choice(AREAS)}) {200 + (i // 10000) % 800:03d}-{i % 10000:04d}"
                used.append(phone)
                good += 1
            name = f'"Lead {i}; Müller-Šķēle"'
            f.write(f"{name};{phone};{rng.choice(ZONES)};{rng.randint(0, 9)};"
                    f"{rng.choice(('potential', 'hot', 'served'))};City {i % 97};s{i % 5}\r\n")
    return good


@dataclass
class Run:
    backend: str
    label: str
    seconds: float
    cpu_seconds: float  # this process (all threads); PostgreSQL's server work is not in it
    summary: ImportSummary

    @property
    def rows_per_s(self) -> float:
        return self.summary.rows / self.seconds if self.seconds else 0.0


async def bench(url: str, backend: str, path: Path) -> list[Run]:
    engine = create_engine(url)
    runs: list[Run] = []
    try:
        sessions = session_factory(engine)
        async with sessions.begin() as s:
            s.add(Campaign(name="bench", caller_id="+14155550100", default_region="US"))
        for label in ("first import", "re-import (all duplicates)"):
            t0, c0 = time.perf_counter(), time.process_time()
            summary = await import_leads(sessions, path, ImportOptions(campaign="bench"),
                                         now=utc_now())
            runs.append(Run(backend, label, time.perf_counter() - t0,
                            time.process_time() - c0, summary))
    finally:
        await engine.dispose()
    return runs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        path = Path(tmp) / "leads.csv"
        expected = generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows} rows ({size_mb:.1f} MB), {expected} should import")
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(sqlite_url)
        runs += asyncio.run(bench(sqlite_url, "sqlite", path))
        try:
            with TempPostgres() as pg:
                upgrade(pg.url)
                runs += asyncio.run(bench(pg.url, "postgres", path))
        except PostgresUnavailable as e:
            print(f"PostgreSQL unavailable: {e}")
    print()
    print(f"{'backend':<9} {'run':<28} {'rows':>7} {'imported':>8} {'rejected':>8} "
          f"{'skipped':>7} {'seconds':>8} {'cpu s':>6} {'rows/s':>8}")
    for r in runs:
        s = r.summary
        print(f"{r.backend:<9} {r.label:<28} {s.rows:>7} {s.imported:>8} {s.rejected:>8} "
              f"{s.skipped:>7} {r.seconds:>8.2f} {r.cpu_seconds:>6.1f} {r.rows_per_s:>8.0f}")
    firsts = {r.backend: r for r in runs if r.label == "first import"}
    for r in firsts.values():
        if r.summary.imported != expected:
            print(f"WARNING: {r.backend} imported {r.summary.imported}, expected {expected}")
    sq = firsts.get("sqlite")
    pg_run = firsts.get("postgres")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(wall-clock figures stretch when the machine is shared)")
    print()
    print(f"import: sqlite_rows_per_s={sq.rows_per_s if sq else 0:.0f} "
          f"postgres_rows_per_s={pg_run.rows_per_s if pg_run else 0:.0f} "
          f"peak_rss_mb={peak_rss_mb():.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
