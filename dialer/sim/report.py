"""Run policy x workload x seed matrices and report them (shared by bench/ and the CLI)."""

from __future__ import annotations

import multiprocessing
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.vocabulary import DialMode
from dialer.core.pacer import LineLimits
from dialer.sim.baselines import (
    AdaptMode,
    BoundResult,
    IssabelPacer,
    VicidialAdaptivePacer,
    clairvoyant_bound,
)
from dialer.sim.simulator import PolicySpec, RunResult, run_one
from dialer.sim.workload import Workload

BOUND = "bound"
PREDICTIVE = "predictive"
#: diagnostic, not a dialer: the predictive pacer told exactly when each agent frees up
AGENT_ORACLE = "agent-oracle"
#: baselines that "vs best" compares against (the bound is not a dialer)
BASELINES = ("progressive", "power2", "vicidial", "issabel")
#: baselines may dial as hard as their own rules say: the engine's own cap is lifted
_BASELINE_LIMITS = LineLimits(max_lines_per_agent=10.0, power_lines_per_agent=2.0)


@dataclass(frozen=True, slots=True)
class _VicidialFactory:
    shift_seconds: float
    drop_target: float

    def __call__(self) -> VicidialAdaptivePacer:
        return VicidialAdaptivePacer(
            mode=AdaptMode.TAPERED, shift_seconds=self.shift_seconds, drop_target=self.drop_target
        )


def benchmark_policies(
    hours: float, cap: float = 0.03, *, agent_oracle: bool = False
) -> list[PolicySpec]:
    """The dialers the benchmark compares (picklable, for worker processes).

    ``agent_oracle`` adds the diagnostic `AGENT_ORACLE` row: what perfect forecasts of
    talk and wrap-up ends would add to the predictive pacer (never a baseline).
    """
    oracle = (
        [PolicySpec(name=AGENT_ORACLE, mode=DialMode.PREDICTIVE, agent_oracle=True)]
        if agent_oracle
        else []
    )
    return [
        PolicySpec(name="progressive", mode=DialMode.PROGRESSIVE),
        PolicySpec(name="power2", mode=DialMode.POWER, limits=_BASELINE_LIMITS),
        PolicySpec(
            name="vicidial",
            mode=DialMode.PREDICTIVE,
            pacer_factory=_VicidialFactory(hours * 3600.0, cap),
            limits=_BASELINE_LIMITS,
        ),
        PolicySpec(
            name="issabel",
            mode=DialMode.PREDICTIVE,
            pacer_factory=IssabelPacer,
            limits=_BASELINE_LIMITS,
        ),
        PolicySpec(name=PREDICTIVE, mode=DialMode.PREDICTIVE),
        *oracle,
    ]


@dataclass(frozen=True, slots=True)
class Row:
    """One policy on one workload, aggregated over seeds."""

    policy: str
    workload: Workload
    seeds: int
    occupancy: float
    occ_min: float
    occ_max: float
    talk_min_per_agent_hour: float
    abandon_rate: float  # mean over seeds of the run-level rate
    abandon_max: float  # worst seed
    worst_hour: float
    mean_wait: float
    calls_per_agent_hour: float
    dials_per_agent_hour: float
    zero_counters: int  # sum of the must-be-zero counters over seeds


def _job(
    args: tuple[Workload, PolicySpec | None, int],
) -> RunResult | tuple[Workload, int, BoundResult]:
    workload, policy, seed = args
    if policy is None:
        return workload, seed, clairvoyant_bound(workload, seed)
    return run_one(workload, policy, seed)


def run_matrix(
    workloads: Sequence[Workload],
    policies: Sequence[PolicySpec] | Callable[[float], Sequence[PolicySpec]],
    seeds: Sequence[int],
    *,
    processes: int = 1,
) -> list[Row]:
    """Run every policy (and the bound) on every workload and seed; aggregate per cell.

    ``policies`` may be a function of the workload's shift length (baselines such as
    VICIdial's taper depend on it).
    """
    jobs: list[tuple[Workload, PolicySpec | None, int]] = []
    per_w: dict[Workload, Sequence[PolicySpec]] = {}
    for w in workloads:
        per_w[w] = policies(w.hours) if callable(policies) else policies
        for s in seeds:
            jobs.append((w, None, s))
            for p in per_w[w]:
                jobs.append((w, p, s))
    # the heaviest jobs first keeps both workers busy to the end
    jobs.sort(key=lambda j: -(j[0].agents * j[0].hours / max(j[0].live_rate, 0.01)))
    if processes > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(processes) as pool:
            results = pool.map(_job, jobs, chunksize=1)
    else:
        results = [_job(j) for j in jobs]
    runs: dict[tuple[Workload, str], list[RunResult]] = defaultdict(list)
    bounds: dict[Workload, list[BoundResult]] = defaultdict(list)
    for r in results:
        if isinstance(r, RunResult):
            runs[(r.workload, r.policy)].append(r)
        else:
            bounds[r[0]].append(r[2])
    rows: list[Row] = []
    for w in workloads:
        b = bounds[w]
        occs = [x.occupancy for x in b]
        rows.append(
            Row(
                policy=BOUND,
                workload=w,
                seeds=len(b),
                occupancy=statistics.fmean(occs),
                occ_min=min(occs),
                occ_max=max(occs),
                talk_min_per_agent_hour=statistics.fmean(
                    x.talk_seconds / 60.0 / x.agent_hours for x in b
                ),
                abandon_rate=0.0,
                abandon_max=0.0,
                worst_hour=0.0,
                mean_wait=0.0,
                calls_per_agent_hour=statistics.fmean(x.connected / x.agent_hours for x in b),
                dials_per_agent_hour=statistics.fmean(x.dials / x.agent_hours for x in b),
                zero_counters=0,
            )
        )
        for p in per_w[w]:
            rs = runs[(w, p.name)]
            rows.append(_aggregate(p.name, w, rs))
    return rows


def _aggregate(name: str, w: Workload, rs: list[RunResult]) -> Row:
    occs = [r.occupancy for r in rs]
    return Row(
        policy=name,
        workload=w,
        seeds=len(rs),
        occupancy=statistics.fmean(occs),
        occ_min=min(occs),
        occ_max=max(occs),
        talk_min_per_agent_hour=statistics.fmean(r.talk_min_per_agent_hour for r in rs),
        abandon_rate=statistics.fmean(r.abandon_rate for r in rs),
        abandon_max=max(r.abandon_rate for r in rs),
        worst_hour=max(r.worst_hour_abandon for r in rs),
        mean_wait=statistics.fmean(r.mean_wait for r in rs),
        calls_per_agent_hour=statistics.fmean(r.calls_per_agent_hour for r in rs),
        dials_per_agent_hour=statistics.fmean(r.dials_per_agent_hour for r in rs),
        zero_counters=sum(
            r.early_cancels
            + r.abandons_without_message
            + r.late_messages
            + r.lockout_redials
            + r.double_finals
            + r.unfinished
            for r in rs
        ),
    )


def format_table(rows: Iterable[Row], cap: float = 0.03) -> str:
    """One block per workload: each policy with ratios to the bound and points vs predictive."""
    by_w: dict[Workload, list[Row]] = defaultdict(list)
    for r in rows:
        by_w[r.workload].append(r)
    lines: list[str] = []
    head = (
        f"{'policy':<12} {'occ':>6} {'spread':>11} {'/bound':>6} {'gap%':>5} {'talk/ah':>7} "
        f"{'aband':>6} {'max':>6} {'w.hour':>6} {'wait s':>6} {'calls/ah':>8} {'dials/ah':>8} "
        f"{'pred-pts':>8} {'zero':>4}"
    )
    for w, rs in by_w.items():
        bound = next(r for r in rs if r.policy == BOUND)
        prog = next((r for r in rs if r.policy == "progressive"), None)
        pred = next((r for r in rs if r.policy == PREDICTIVE), None)
        lines.append("")
        lines.append(
            f"== {w.label()}  ({w.hours:g} h, {rs[0].seeds} seed(s), machines "
            f"{w.machine_share:.0%} of answers, busy {w.busy_rate:.0%}, wrap {w.mean_wrap:g} s)"
        )
        lines.append(head)
        for r in rs:
            ratio = r.occupancy / bound.occupancy if bound.occupancy else 0.0
            gap = ""
            if prog is not None and bound.occupancy > prog.occupancy:
                gap = f"{(r.occupancy - prog.occupancy) / (bound.occupancy - prog.occupancy):5.0%}"
            pts = ""
            if pred is not None and r.policy not in (PREDICTIVE, BOUND):
                pts = f"{(pred.occupancy - r.occupancy) * 100:+8.1f}"
            flag = "!" if r.abandon_max > cap else " "
            lines.append(
                f"{r.policy:<12} {r.occupancy:6.3f} {r.occ_min:5.3f}-{r.occ_max:5.3f} "
                f"{ratio:6.3f} {gap:>5} {r.talk_min_per_agent_hour:7.1f} "
                f"{r.abandon_rate:6.2%} {r.abandon_max:5.2%}{flag}{r.worst_hour:6.2%} "
                f"{r.mean_wait:6.1f} {r.calls_per_agent_hour:8.1f} {r.dials_per_agent_hour:8.1f} "
                f"{pts:>8} {r.zero_counters:4d}"
            )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Summary:
    occ_vs_bound_20: float
    occ_vs_bound_100: float
    abandon_max: float
    vs_best_5: float

    def line(self) -> str:
        return (
            f"pacing: occ_vs_bound_20={self.occ_vs_bound_20:.3f} "
            f"occ_vs_bound_100={self.occ_vs_bound_100:.3f} "
            f"abandon_max={self.abandon_max:.4f} vs_best_5={self.vs_best_5:+.1f}"
        )


def summarize(rows: Sequence[Row], cap: float = 0.03) -> Summary:
    """The benchmark's one-line verdict (issue 4), for the predictive pacer."""
    nan = float("nan")

    def ratios(agents: int) -> list[float]:
        out = []
        for w in {r.workload for r in rows if r.workload.agents == agents}:
            b = next(r for r in rows if r.workload == w and r.policy == BOUND)
            p = next(r for r in rows if r.workload == w and r.policy == PREDICTIVE)
            out.append(p.occupancy / b.occupancy)
        return out

    r20, r100 = ratios(20), ratios(100)
    ab = max((r.abandon_max for r in rows if r.policy == PREDICTIVE), default=nan)
    pts: list[float] = []
    for w in {r.workload for r in rows if r.workload.agents == 5}:
        p = next(r for r in rows if r.workload == w and r.policy == PREDICTIVE)
        compliant = [
            r.occupancy
            for r in rows
            if r.workload == w and r.policy in BASELINES and r.abandon_max <= cap
        ]
        if compliant:
            pts.append((p.occupancy - max(compliant)) * 100.0)
    return Summary(
        occ_vs_bound_20=min(r20) if r20 else nan,
        occ_vs_bound_100=min(r100) if r100 else nan,
        abandon_max=ab,
        vs_best_5=min(pts) if pts else nan,
    )


def plot(rows: Sequence[Row], path: Path, cap: float = 0.03) -> Path:
    """Occupancy (as a share of the bound) against run-level abandon rate, per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {5: "o", 20: "s", 100: "^"}
    policies = [p for p in dict.fromkeys(r.policy for r in rows) if p != BOUND]
    colors = dict(zip(policies, plt.get_cmap("tab10").colors, strict=False))
    bounds = {r.workload: r.occupancy for r in rows if r.policy == BOUND}
    for r in rows:
        if r.policy == BOUND:
            continue
        ax.scatter(
            r.abandon_rate * 100,
            r.occupancy / bounds[r.workload],
            marker=markers.get(r.workload.agents, "x"),
            color=colors[r.policy],
            alpha=0.8,
            s=28,
        )
    for p in policies:
        ax.scatter([], [], color=colors[p], label=p)
    for a, m in markers.items():
        ax.scatter([], [], color="grey", marker=m, label=f"{a} agents")
    ax.axvline(cap * 100, color="red", linestyle="--", linewidth=1, label=f"cap {cap:.0%}")
    ax.set_xlabel("abandon rate over the run (%)")
    ax.set_ylabel("occupancy / clairvoyant bound")
    ax.set_title("Pacing: occupancy vs abandon rate (each point: one workload)")
    return save_plot(fig, ax, path)


def save_plot(fig: Any, ax: Any, path: Path) -> Path:
    """Legend, grid and PNG the same way for every benchmark plot."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
