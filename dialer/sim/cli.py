"""`dialer simulate`: what-if questions for ops staff, answered by the simulator.

    dialer simulate --agents 20 --answer-rate 0.3 --talk 180 --hours 8 --seeds 3

runs the same policies as the pacing benchmark (progressive, power, VICIdial-style,
Issabel-style, this project's predictive, and the clairvoyant bound) on one workload and
prints the benchmark's table for it. ``--agent-oracle`` adds the diagnostic row of the
predictive pacer told exactly when each agent will be free (docs/pacing.md).

    dialer simulate --days 30 --preset uk --agents 20 --hours 8

runs the campaign for 30 calendar days of weekday shifts under a compliance preset (the
engine's abandon ledger carried across days, leads with callee zones and DNC entries
checked by the calling rules, every dial checked by an independent oracle) and prints the
worst abandon rate over each rolling window the preset regulates, the worst hour, and the
calls outside the callee's hours or to DNC numbers (docs/compliance.md).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from dialer.sim.days import Month, format_month_table, run_months
from dialer.sim.report import benchmark_policies, format_table, plot, run_matrix
from dialer.sim.results import standard_policies
from dialer.sim.workload import Workload

app = typer.Typer(
    help="Simulate a campaign in virtual time with the real dialer core (what-if questions).",
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def simulate(
    agents: Annotated[int, typer.Option(min=1, help="agents logged in")] = 20,
    answer_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of dials answered (person or machine)")
    ] = 0.3,
    machine_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of answers that are machines")
    ] = 0.2,
    busy_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of dials busy")] = 0.08,
    talk: Annotated[float, typer.Option(min=1.0, help="mean talk time, seconds")] = 180.0,
    wrap: Annotated[float, typer.Option(min=0.0, help="mean wrap-up time, seconds")] = 15.0,
    ring_timeout: Annotated[float, typer.Option(min=15.0, help="ring timeout, seconds")] = 25.0,
    hours: Annotated[float, typer.Option(min=0.05, help="simulated shift length")] = 8.0,
    days: Annotated[
        int, typer.Option(min=1, max=366, help="calendar days of weekday shifts (> 1: the "
                                               "compliance run)")
    ] = 1,
    preset: Annotated[
        str, typer.Option(help="compliance preset of the multi-day run (us_federal, uk, ...)")
    ] = "us_federal",
    seeds: Annotated[int, typer.Option(min=1, help="replications (different lead tapes)")] = 3,
    cap: Annotated[float, typer.Option(min=0.001, max=0.5, help="abandon cap")] = 0.03,
    policies: Annotated[
        str, typer.Option(help="comma-separated subset of the policies to run (default: all)")
    ] = "",
    processes: Annotated[int, typer.Option(min=1, max=8, help="worker processes")] = 1,
    agent_oracle: Annotated[
        bool,
        typer.Option(
            "--agent-oracle",
            help="add the diagnostic row: the predictive pacer told when each agent frees up",
        ),
    ] = False,
    plot_to: Annotated[
        Path | None, typer.Option("--plot", help="also write occupancy-vs-abandon PNG here")
    ] = None,
) -> None:
    try:
        workload = Workload(
            agents=agents,
            answer_rate=answer_rate,
            machine_share=machine_share,
            busy_rate=busy_rate,
            mean_talk=talk,
            mean_wrap=max(wrap, 0.1),
            ring_timeout=ring_timeout,
            hours=hours,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if days > 1:
        _compliance_run(workload, days, preset, seeds, policies, processes)
        return
    chosen = benchmark_policies(hours, cap, agent_oracle=agent_oracle)
    if policies:
        wanted = {p.strip() for p in policies.split(",") if p.strip()}
        unknown = wanted - {p.name for p in chosen}
        if unknown:
            raise typer.BadParameter(
                f"unknown policies {sorted(unknown)}; choose from {[p.name for p in chosen]}",
                param_hint="--policies",
            )
        chosen = [p for p in chosen if p.name in wanted]
    # the simulated campaign's per-call log lines are not ops logs: keep them out of the way
    logging.getLogger("dialer.core").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    rows = run_matrix([workload], chosen, list(range(1, seeds + 1)), processes=processes)
    typer.echo(format_table(rows, cap))
    typer.echo(f"\n{seeds} seed(s) x {len(chosen)} policies in {time.perf_counter() - t0:.1f} s")
    if plot_to is not None:
        typer.echo(f"plot: {plot(rows, plot_to, cap)}")


def _compliance_run(workload: Workload, days: int, preset: str, seeds: int, policies: str,
                    processes: int) -> None:
    from scheduling.calendar import CalendarError
    from scheduling.compliance import compliance_preset

    try:
        compliance_preset(preset)
    except CalendarError as e:
        raise typer.BadParameter(str(e), param_hint="--preset") from None
    known = {p.name: p for p in standard_policies()}
    wanted = [p.strip() for p in policies.split(",") if p.strip()] or ["predictive"]
    unknown = set(wanted) - set(known)
    if unknown:
        raise typer.BadParameter(f"unknown policies {sorted(unknown)}; the multi-day run "
                                 f"takes {sorted(known)}", param_hint="--policies")
    logging.getLogger("dialer.core").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    rows = run_months([workload], [known[n] for n in wanted], list(range(1, seeds + 1)),
                      [Month(days=days, preset=preset)], processes=processes)
    typer.echo(format_month_table(rows))
    typer.echo(f"\n{len(rows)} run(s) of {days} days in {time.perf_counter() - t0:.1f} s")
