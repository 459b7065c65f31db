"""`dialer simulate`: the what-if command prints the benchmark's table for one workload."""

from __future__ import annotations

from typer.testing import CliRunner

from dialer.sim.cli import app  # mounted as `dialer simulate` by dialer.cli.main

runner = CliRunner()


def test_simulate_prints_the_table_with_the_agent_oracle_row() -> None:
    res = runner.invoke(
        app,
        [
            "--agents", "3", "--answer-rate", "0.5", "--talk", "60", "--hours",
            "0.25", "--seeds", "1", "--policies", "progressive,predictive,agent-oracle",
            "--agent-oracle",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = {line.split()[0] for line in res.output.splitlines() if line.strip()}
    assert {"bound", "progressive", "predictive", "agent-oracle"} <= rows
    assert "power2" not in rows
    assert "1 seed(s) x 3 policies" in res.output


def test_simulate_names_the_choices_for_an_unknown_policy() -> None:
    res = runner.invoke(app, ["--hours", "0.1", "--policies", "predictive,magic"])
    assert res.exit_code != 0
    assert "magic" in res.output and "progressive" in res.output
    # the oracle is only offered when asked for
    res = runner.invoke(app, ["--hours", "0.1", "--policies", "agent-oracle"])
    assert res.exit_code != 0 and "agent-oracle" in res.output
