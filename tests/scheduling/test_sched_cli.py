"""`dialer plan show` and `dialer report day` against a migrated SQLite file."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import typer
from sched_seed import day_of_attempts, seed
from typer.testing import CliRunner

from db.migrate import upgrade
from db.session import create_engine
from dialer.cli_schedule import plan_app, report_app


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(plan_app, name="plan")
    app.add_typer(report_app, name="report")
    return app


async def _prepare(url: str) -> None:
    engine = create_engine(url)
    try:
        ids = await seed(engine)
        await day_of_attempts(engine, ids)
    finally:
        await engine.dispose()


def test_plan_show_and_report_day(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    asyncio.run(_prepare(url))
    runner = CliRunner()
    app = _app()
    env = {"COLUMNS": "200"}

    res = runner.invoke(app, ["plan", "show", "--campaign", "riga", "--date", "2026-11-23",
                              "--db", url], env=env)
    assert res.exit_code == 1 and "--build" in res.output  # nothing stored yet

    res = runner.invoke(app, ["plan", "show", "--campaign", "riga", "--date", "2026-11-23",
                              "--build", "--db", url], env=env)
    assert res.exit_code == 0, res.output
    assert "shared (5 planned)" in res.output and "alice (1 planned)" in res.output
    assert "+3712000****" in res.output and "+37120000001" not in res.output
    lines = [ln for ln in res.output.splitlines() if "callback" in ln]
    assert lines, res.output

    res = runner.invoke(app, ["plan", "show", "--campaign", "nope", "--db", url], env=env)
    assert res.exit_code == 1 and "no campaign named 'nope'" in res.output

    out = tmp_path / "day.csv"
    res = runner.invoke(app, ["report", "day", "--date", "2026-11-23", "--csv", str(out),
                              "--db", url], env=env)
    assert res.exit_code == 0, res.output
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    by_agent = {r["agent"]: r for r in rows}
    assert by_agent["alice"]["planned"] == "1" and by_agent["alice"]["called"] == "4"
    assert by_agent["alice"]["contracts"] == "1" and by_agent[""]["planned"] == "5"

    res = runner.invoke(app, ["report", "day", "--date", "23/11/2026", "--db", url], env=env)
    assert res.exit_code == 2 and "YYYY-MM-DD" in res.output
