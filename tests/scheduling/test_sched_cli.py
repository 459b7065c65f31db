"""`dialer plan show` and `dialer report day` against a migrated SQLite file."""

from __future__ import annotations

import asyncio
import csv
from datetime import datetime
from pathlib import Path

import pytest
import typer
from sched_seed import DAY, day_of_attempts, seed, utc
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


async def _add_attempt(url: str, ids: dict[str, int], at: datetime, agent: str) -> None:
    from common.vocabulary import AttemptResult, DialMode
    from db.models import Attempt
    from db.session import session_factory

    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as s:
            s.add(Attempt(campaign_id=ids["campaign"], lead_id=ids["hot"],
                          phone_e164="+37120000000", dial_mode=DialMode.PREDICTIVE,
                          created_at=at, ended_at=at, result=AttemptResult.CONNECTED,
                          agent_id=ids[agent], disposition="contract", talk_s=5.0))
    finally:
        await engine.dispose()


async def _seeded(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        ids = await seed(engine)
        await day_of_attempts(engine, ids)
        return ids
    finally:
        await engine.dispose()


async def _store_report(url: str, ids: dict[str, int], now: datetime) -> None:
    from db.session import session_factory
    from scheduling.report import build_day_report

    engine = create_engine(url)
    try:
        await build_day_report(session_factory(engine), campaign_id=ids["campaign"],
                               report_date=DAY, now=now)
    finally:
        await engine.dispose()


async def _stored_rows(url: str) -> int:
    from db.session import session_factory
    from scheduling.report import load_day_report

    engine = create_engine(url)
    try:
        return len(await load_day_report(session_factory(engine), report_date=DAY))
    finally:
        await engine.dispose()


async def _stored_called(url: str, login: str) -> int:
    from db.session import session_factory
    from scheduling.report import load_day_report

    engine = create_engine(url)
    try:
        rows = await load_day_report(session_factory(engine), report_date=DAY)
        return next(r.called for r in rows if r.agent == login)
    finally:
        await engine.dispose()


def _report_csv(tmp_path: Path, url: str) -> dict[str, dict[str, str]]:
    out = tmp_path / "day.csv"
    res = CliRunner().invoke(_app(), ["report", "day", "--date", DAY.isoformat(), "--csv",
                                      str(out), "--db", url], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    with out.open(newline="") as f:
        return {r["agent"]: r for r in csv.DictReader(f)}


def test_report_day_rebuilds_a_stored_report_older_than_the_days_last_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 21:30 job stores the report; bob calls at 23:00 local: `report day` must count it
    (issue #12: it printed the stale stored copy unless --rebuild)."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    ids = asyncio.run(_seeded(url))
    asyncio.run(_store_report(url, ids, now=utc(2026, 11, 23, 19, 30)))  # 21:30 Riga
    asyncio.run(_add_attempt(url, ids, utc(2026, 11, 23, 21, 0), "bob"))  # 23:00 Riga
    monkeypatch.setattr("dialer.cli_schedule.utc_now", lambda: utc(2026, 11, 24, 9))
    assert _report_csv(tmp_path, url)["bob"]["called"] == "2"  # the stored copy said 1
    # the rebuilt report was stored and, being current, is now used as it is
    assert _report_csv(tmp_path, url)["bob"]["contracts"] == "1"


def test_report_day_uses_a_current_stored_report_of_a_finished_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    ids = asyncio.run(_seeded(url))
    asyncio.run(_store_report(url, ids, now=utc(2026, 11, 23, 22, 30)))  # after the last call
    monkeypatch.setattr("dialer.cli_schedule.utc_now", lambda: utc(2026, 11, 24, 9))
    called = []

    async def spy(*a: object, **kw: object) -> object:
        called.append(kw)
        raise AssertionError("a current stored report must not be rebuilt")

    monkeypatch.setattr("scheduling.report.build_day_report", spy)
    assert _report_csv(tmp_path, url)["alice"]["called"] == "4"
    assert not called


def test_report_day_of_a_day_not_over_is_computed_fresh_and_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report of today is provisional: computed from the attempts so far, never stored
    (a stored one would make the end-of-day job skip the day: scheduling/jobs.py)."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    ids = asyncio.run(_seeded(url))
    monkeypatch.setattr("dialer.cli_schedule.utc_now", lambda: utc(2026, 11, 23, 11, 30))
    rows = _report_csv(tmp_path, url)
    assert rows["alice"]["called"] == "4" and rows["bob"]["called"] == "1"
    assert asyncio.run(_stored_rows(url)) == 0
    # an earlier stored copy (someone ran --rebuild at 11:00 local) is not trusted either
    asyncio.run(_store_report(url, ids, now=utc(2026, 11, 23, 9)))
    asyncio.run(_add_attempt(url, ids, utc(2026, 11, 23, 9, 15), "bob"))
    assert _report_csv(tmp_path, url)["bob"]["called"] == "2"
    res = CliRunner().invoke(_app(), ["report", "day", "--date", DAY.isoformat(), "--rebuild",
                                      "--db", url], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    # --rebuild of a day not over stores nothing either: the early copy is still there
    assert asyncio.run(_stored_called(url, "bob")) == 1
