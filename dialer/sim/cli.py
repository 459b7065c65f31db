"""`dialer simulate`: what-if questions for ops staff, answered by the simulator.

    dialer simulate --agents 20 --answer-rate 0.3 --talk 180 --hours 8 --seeds 3

runs the same policies as the pacing benchmark (progressive, power, VICIdial-style,
Issabel-style, this project's predictive, and the clairvoyant bound) on one workload and
prints the benchmark's table for it. ``--agent-oracle`` adds the diagnostic row of the
predictive pacer told exactly when each agent will be free (docs/pacing.md).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from dialer.sim.report import benchmark_policies, format_table, plot, run_matrix
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
