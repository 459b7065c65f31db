"""Smoke test of bench/capacity.py: one tiny step against real SIPp and nodes, summary shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_capacity_prints_its_summary_line() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/capacity.py"), "--start", "2", "--step", "2",
         "--max-calls", "2", "--hold-s", "1", "--max-minutes", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    last = out.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"capacity: concurrent_calls=(\d+) pss_mb_per_call=([\d.]+) cpu_pct_per_call=([\d.]+)",
        last,
    )
    assert m, out.stdout + out.stderr
    assert int(m.group(1)) == 2
    assert float(m.group(2)) > 0
