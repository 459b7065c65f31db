"""Pacing benchmark (issue 4): the project's predictive pacer against baselines and a bound.

Runs the standard workloads - agents 5 / 20 / 100 x answer rate 15 / 30 / 50 % x mean talk
90 / 180 / 300 s (wrap-up ~15 s, ring up to a 25 s timeout, 8 % busy, 2 % failures, 20 % of
answers are machines, 10-minute breaks every 2 h) - through the discrete-event simulator,
which drives the real CampaignEngine. Every policy reads the same lead tape per seed.

    python bench/pacing.py            # 8 simulated hours x 3 seeds (several minutes)
    python bench/pacing.py --quick    # 1 seed, 4/2/1 h for 5/20/100 agents (< 2 minutes)

Prints one table per workload, writes bench/out/pacing.png, and ends with one line:
    pacing: occ_vs_bound_20=... occ_vs_bound_100=... abandon_max=... vs_best_5=...
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.sim.report import (
    benchmark_policies,
    format_table,
    plot,
    run_matrix,
    summarize,
)
from dialer.sim.workload import Workload

AGENTS = (5, 20, 100)
ANSWER_RATES = (0.15, 0.30, 0.50)
TALK_SECONDS = (90.0, 180.0, 300.0)


#: --quick shift lengths: every workload still gets >= 20 agent-hours, so small teams are
#: not judged on a handful of calls while the 100-agent runs stay short
QUICK_HOURS = {5: 4.0, 20: 2.0, 100: 1.0}


def standard_workloads(hours: float | None) -> list[Workload]:
    """The 27 standard workloads; ``hours`` None means the --quick lengths per team size."""
    return [
        Workload(
            agents=a, answer_rate=r, mean_talk=t, hours=hours if hours else QUICK_HOURS[a]
        )
        for a, r, t in itertools.product(AGENTS, ANSWER_RATES, TALK_SECONDS)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="1 seed; 4 h (5 agents), 2 h (20), 1 h (100)"
    )
    ap.add_argument("--hours", type=float, default=None, help="simulated hours per run")
    ap.add_argument("--seeds", type=int, default=None, help="replications per workload")
    ap.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--agents", type=int, nargs="*", default=None, help="only these team sizes")
    ap.add_argument(
        "--agent-oracle",
        action="store_true",
        help="add the diagnostic agent-oracle row (predictive told when agents free up)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "pacing.png")
    args = ap.parse_args(argv)
    hours = args.hours or (None if args.quick else 8.0)
    seeds = list(range(1, 1 + (args.seeds or (1 if args.quick else 3))))
    workloads = standard_workloads(hours)
    if args.agents:
        workloads = [w for w in workloads if w.agents in args.agents]
    t0 = time.perf_counter()
    policies = functools.partial(benchmark_policies, agent_oracle=args.agent_oracle)
    rows = run_matrix(workloads, policies, seeds, processes=args.processes)
    wall = time.perf_counter() - t0
    dialers = len(policies(1.0))
    agent_hours = sum(w.agents * w.hours for w in workloads) * len(seeds) * dialers
    print(format_table(rows))
    png = plot(rows, args.out)
    print()
    print(
        f"simulated {agent_hours:,.0f} agent-hours in {wall:.1f} s wall "
        f"({agent_hours / wall * 60:,.0f} agent-hours per minute); plot: {png}"
    )
    print(summarize(rows).line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
