"""Occupancy against abandons on one workload: how far can pacing go? (issue 4)

`bench/pacing.py` compares dialers at their default settings. This script asks a sharper
question about one workload (by default the hardest 5-agent one: 50 % answers, 300 s talk):
what occupancy does each abandon rate buy? It runs, over many seeds of the same workload,

- progressive and power2 (references),
- the predictive pacer as shipped (abandon governor on),
- the predictive pacer at fixed marginal risks (governor and its guard off, so a run may
  break the cap: these points trace the pacer's occupancy/abandon frontier),
- the same with the **agent oracle** (`PolicySpec.agent_oracle`): the pacer is told
  exactly when every busy agent will be free. What it adds is all that better talk and
  wrap-up forecasts could ever win; what is left to the bound is the callees' randomness.

    python bench/pacing_frontier.py                     # a5 / 50 % / 300 s, 12 seeds x 8 h
    python bench/pacing_frontier.py --agents 20 --answer-rate 0.15 --talk 90 --seeds 6

Prints a table, writes bench/out/pacing_frontier.png, and ends with one line:
    frontier: workload=... seeds=... progressive=... predictive=+X@A% agent_oracle=+Y@B%
    risk_for_3pts=R@C%(worst D%)
(points over progressive at the mean abandon rate; the last item is the smallest fixed risk
whose mean margin reaches 3 points, with its mean and worst-seed abandon rate).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.vocabulary import DialMode
from dialer.core.config import EngineConfig
from dialer.core.governor import GovernorSettings
from dialer.core.pacer import LineLimits
from dialer.sim.report import save_plot
from dialer.sim.simulator import PolicySpec, run_one
from dialer.sim.workload import Workload

CAP = 0.03


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    mode: DialMode
    oracle: bool = False
    #: fixed marginal risk (governor and guard off); None = the shipped governor
    risk: float | None = None
    power_lines: float | None = None


def _run(args: tuple[Workload, Variant, int]) -> tuple[str, int, float, float]:
    w, v, seed = args
    limits = (
        LineLimits(max_lines_per_agent=10.0, power_lines_per_agent=v.power_lines)
        if v.power_lines
        else LineLimits()
    )
    config = None
    if v.risk is not None:
        # the guard's credit is made unlimited so it never steps in: a fixed level
        gov = GovernorSettings(
            initial_risk=v.risk, min_risk=v.risk, max_risk=v.risk, credit_abandons=1e9
        )
        config = EngineConfig(campaign_id="sim", governor=gov)
    policy = PolicySpec(name=v.name, mode=v.mode, limits=limits, agent_oracle=v.oracle)
    r = run_one(w, policy, seed, config=config)
    return v.name, seed, r.occupancy, r.abandon_rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--answer-rate", type=float, default=0.5)
    ap.add_argument("--talk", type=float, default=300.0, help="mean talk seconds")
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument(
        "--risks", default="0.01,0.02,0.04,0.06,0.1", help="fixed marginal risks to sweep"
    )
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "pacing_frontier.png"
    )
    args = ap.parse_args(argv)
    w = Workload(
        agents=args.agents, answer_rate=args.answer_rate, mean_talk=args.talk, hours=args.hours
    )
    risks = [float(x) for x in args.risks.split(",") if x]
    variants = [
        Variant("progressive", DialMode.PROGRESSIVE),
        Variant("power2", DialMode.POWER, power_lines=2.0),
        Variant("predictive", DialMode.PREDICTIVE),
        Variant("agent-oracle", DialMode.PREDICTIVE, oracle=True),
    ]
    for r in risks:
        variants.append(Variant(f"risk={r:g}", DialMode.PREDICTIVE, risk=r))
        variants.append(Variant(f"oracle risk={r:g}", DialMode.PREDICTIVE, oracle=True, risk=r))
    jobs = [(w, v, s) for v in variants for s in range(1, args.seeds + 1)]
    t0 = time.perf_counter()
    if args.processes > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            results = pool.map(_run, jobs, chunksize=1)
    else:
        results = [_run(j) for j in jobs]
    wall = time.perf_counter() - t0

    by: dict[str, list[tuple[float, float]]] = {}
    for name, _seed, occ, ab in results:
        by.setdefault(name, []).append((occ, ab))
    prog = statistics.fmean(o for o, _ in by["progressive"])
    stats: dict[str, tuple[float, float, float, float, int]] = {}
    print(f"workload {w.label()} x {args.seeds} seeds x {args.hours:g} h")
    print(
        f"{'dialer':<20} {'occ':>6} {'+-se':>6} {'pts':>6} {'aband':>6} {'worst':>6} "
        f"{'breach':>6}"
    )
    for v in variants:
        rs = by[v.name]
        occ = [o for o, _ in rs]
        ab = [a for _, a in rs]
        se = statistics.stdev(occ) / len(occ) ** 0.5 if len(occ) > 1 else 0.0
        mean = statistics.fmean(occ)
        st = (mean, se, statistics.fmean(ab), max(ab), sum(a > CAP for a in ab))
        stats[v.name] = st
        print(
            f"{v.name:<20} {mean:6.3f} {se:6.3f} {(mean - prog) * 100:+6.2f} "
            f"{st[2] * 100:5.2f}% {st[3] * 100:5.2f}% {st[4]:>3}/{len(ab)}"
        )
    png = _plot(stats, risks, prog, w, args.out)
    print(f"\n{len(jobs)} runs in {wall:.0f} s wall; plot: {png}")

    def pts(name: str) -> str:
        m, _, a, _, _ = stats[name]
        return f"{(m - prog) * 100:+.2f}@{a * 100:.2f}%"

    reach = next(
        (r for r in risks if (stats[f"risk={r:g}"][0] - prog) * 100 >= 3.0), None
    )
    reach_s = (
        f"{reach:g}@{stats[f'risk={reach:g}'][2] * 100:.2f}%"
        f"(worst {stats[f'risk={reach:g}'][3] * 100:.2f}%)"
        if reach is not None
        else "none"
    )
    print(
        f"frontier: workload={w.label()} seeds={args.seeds} progressive={prog:.3f} "
        f"predictive={pts('predictive')} agent_oracle={pts('agent-oracle')} "
        f"risk_for_3pts={reach_s}"
    )
    return 0


def _plot(
    stats: dict[str, tuple[float, float, float, float, int]],
    risks: list[float],
    prog: float,
    w: Workload,
    path: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for prefix, label, color in (
        ("risk=", "predictive, fixed risk", "tab:blue"),
        ("oracle risk=", "agent oracle, fixed risk", "tab:green"),
    ):
        xs = [stats[f"{prefix}{r:g}"][2] * 100 for r in risks]
        ys = [(stats[f"{prefix}{r:g}"][0] - prog) * 100 for r in risks]
        ax.plot(xs, ys, "o-", color=color, label=label)
        for r, x, y in zip(risks, xs, ys, strict=True):
            ax.annotate(f"{r:g}", (x, y), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color=color)
    # power2 is in the table; its abandon rate (tens of %) would squash the plot
    for name, marker, color in (
        ("predictive", "*", "tab:blue"),
        ("agent-oracle", "*", "tab:green"),
    ):
        m, _, a, _, _ = stats[name]
        ax.scatter([a * 100], [(m - prog) * 100], marker=marker, s=160, color=color,
                   edgecolor="black", zorder=5, label=f"{name} (as shipped)")
    ax.axvline(CAP * 100, color="grey", ls="--", lw=1, label="cap 3 %")
    ax.axhline(3.0, color="grey", ls=":", lw=1, label="+3 points over progressive")
    ax.set_xlabel("abandon rate over the run, mean of seeds (%)")
    ax.set_ylabel("occupancy points over progressive")
    ax.set_title(f"{w.label()}: what each abandon rate buys")
    return save_plot(fig, ax, path)


if __name__ == "__main__":
    raise SystemExit(main())
