"""Compliance benchmark: 30 days of a campaign under each compliance preset, in the simulator.

Each run is 30 calendar days of weekday shifts (8 h, breaks) of the standard workload (answer
rate 30 %, 20 % of answers machines, talk 180 s) driving the real CampaignEngine, with the
preset's abandon rules (the UK: rolling 24 h with the AMD false-positive estimate; the US:
30 days), leads spread over the preset's zones (the US run includes Florida numbers, which
get Florida's hours and 3-in-24-h cap by the geocoder) and 2 % of numbers on the DNC list,
checked by the calling rules before they reach the engine. An independent oracle checks
every dial (docs/compliance.md, "What the tests check").

    python bench/compliance.py            # 5, 20 and 100 agents x us_federal, uk (long)
    python bench/compliance.py --quick    # 5 agents x us_federal, uk (about 2 minutes)

Prints one line per run and ends with
    compliance: days=30 worst_window=<..> worst_hour=<..> calls_outside_window=<..> dnc_calls=<..>
where worst_window is the largest abandon share over every rolling window each preset
regulates, in any run (target: <= the cap, 3 %), worst_hour the largest over any full hour
of a shift (target: <= 2 x cap), and the two counts the oracle's (target: 0).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.sim.days import Month, format_month_table, run_months
from dialer.sim.results import standard_policies
from dialer.sim.workload import Workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 agents only")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--presets", default="us_federal,uk", help="comma-separated presets")
    args = ap.parse_args()
    logging.getLogger("dialer.core").setLevel(logging.WARNING)
    agents = (5,) if args.quick else (5, 20, 100)
    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    predictive = [p for p in standard_policies() if p.name == "predictive"]
    t0 = time.perf_counter()
    rows = run_months([Workload(agents=n) for n in agents], predictive,
                      list(range(1, args.seeds + 1)),
                      [Month(days=args.days, preset=p) for p in presets],
                      processes=args.processes)
    rows.sort(key=lambda r: (r.preset, r.workload.agents, r.seed))
    print(format_month_table(rows))
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s")
    print(f"compliance: days={args.days} "
          f"worst_window={max(r.worst_window for r in rows):.4f} "
          f"worst_hour={max(r.worst_hour for r in rows):.4f} "
          f"calls_outside_window={sum(r.calls_outside_window for r in rows)} "
          f"dnc_calls={sum(r.dnc_calls for r in rows)}")


if __name__ == "__main__":
    main()
