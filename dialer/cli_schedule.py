"""`dialer plan show` and `dialer report day`: the day's plan and the end-of-day report.

dialer/cli.py mounts `plan_app` as `dialer plan` and `report_app` as `dialer report`. (They
show scheduling's data but sit in dialer/ because they read the dialer's settings, and
scheduling/ must not import dialer/: docs/architecture.md.)
These are the operator's terminal views (not logs): the plan shows lead names so a
telemarketer can work from it, but phone numbers are masked unless `--full` is given.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from common.clock import utc_now
from dialer.cli import ConfigOpt, DbOpt, settings_from

plan_app = typer.Typer(help="The daily plan: contacts due per campaign and agent.",
                       no_args_is_help=True)
report_app = typer.Typer(help="The end-of-day report per agent and campaign.",
                         no_args_is_help=True)

#: tables are never squeezed below this (a pipe or CI log reports 80 columns)
_MIN_WIDTH = 110
out = Console(width=max(shutil.get_terminal_size((80, 24)).columns, _MIN_WIDTH))
err = Console(stderr=True)

DateOpt = Annotated[
    str | None,
    typer.Option("--date", help="Day as YYYY-MM-DD (default: today in the campaign's zone)"),
]


def _parse_date(value: str | None, zone_name: str | None) -> date:
    if value is None:
        from scheduling.days import local_date

        return local_date(utc_now(), zone_name or "UTC")
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]--date:[/red] expected YYYY-MM-DD, got {value!r}")
        raise typer.Exit(2) from None


def _mask(phone: str) -> str:
    return phone[:-4] + "****" if len(phone) > 6 else "****"


@plan_app.command("show")
def plan_show(
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign name")],
    day: DateOpt = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's login")] = None,
    build: Annotated[bool, typer.Option("--build", help="(Re)build the plan first")] = False,
    full: Annotated[bool, typer.Option("--full", help="Show whole phone numbers")] = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Print a campaign's daily plan in priority order (callbacks, hot, complaints, rest)."""
    settings = settings_from(config, db)
    code = asyncio.run(_plan_show(settings.database.url, campaign, day, agent, build, full))
    raise typer.Exit(code)


async def _plan_show(
    url: str, campaign_name: str, day_s: str | None, agent_login: str | None, build: bool,
    full: bool,
) -> int:
    from db import lookups
    from db.repositories import campaign_by_name
    from db.session import create_engine, session_factory
    from scheduling.plan import build_daily_plan, load_plan

    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        camp = await campaign_by_name(sessions, campaign_name)
        if camp is None:
            err.print(f"[red]no campaign named {campaign_name!r}[/red]")
            return 1
        agent_id = None
        if agent_login is not None:
            agent_id = await lookups.agent_id_by_login(sessions, agent_login)
            if agent_id is None:
                err.print(f"[red]no agent with login {agent_login!r}[/red]")
                return 1
        logins = await lookups.agent_logins(sessions)
        day = _parse_date(day_s, camp.timezone)
        if build:
            await build_daily_plan(sessions, campaign_id=camp.id, plan_date=day, now=utc_now())
        plans = await load_plan(sessions, campaign_id=camp.id, plan_date=day, agent_id=agent_id)
        if not plans:
            err.print(f"no plan stored for {campaign_name!r} on {day}; use --build to build it")
            return 1
        leads = await lookups.leads_by_id(sessions, [i.lead_id for _, items in plans
                                                     for i in items])
        from scheduling.calendar import zone

        zi = zone(camp.timezone)
        for plan, items in plans:
            who = logins.get(plan.agent_id, "?") if plan.agent_id is not None else "shared"
            table = Table(title=f"{campaign_name} {day} - {who} ({plan.size} planned)")
            for col in ("#", "reason", "lead", "name", "phone", "due (local)", "status"):
                table.add_column(col)
            for item in items:
                lead = leads.get(item.lead_id)
                due = item.due_at.astimezone(zi).strftime("%H:%M") if item.due_at else "-"
                table.add_row(
                    str(item.position + 1), item.reason, str(item.lead_id),
                    lead.name if lead else "?",
                    (lead.phone_e164 if full else _mask(lead.phone_e164)) if lead else "?",
                    due, lead.status.value if lead else "?",
                )
            out.print(table)
        return 0
    finally:
        await engine.dispose()


@report_app.command("day")
def report_day(
    day: DateOpt = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the rows here")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign")] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Recompute and store a finished day's report "
                                             "even if the stored one is current")
    ] = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Print the end-of-day report: a finished day's stored copy if it is current (else it is
    rebuilt first); a day not over yet is computed fresh and not stored."""
    settings = settings_from(config, db)
    code = asyncio.run(_report_day(settings.database.url, day, csv_path, campaign, rebuild))
    raise typer.Exit(code)


async def _report_day(
    url: str, day_s: str | None, csv_path: Path | None, campaign_name: str | None, rebuild: bool
) -> int:
    return await render_day_report(url, day_s, csv_path=csv_path, campaign_name=campaign_name,
                                   rebuild=rebuild)


async def render_day_report(
    url: str, day_s: str | date | None, *, csv_path: Path | None = None,
    campaign_name: str | None = None, rebuild: bool = False,
) -> int:
    """Print the end-of-day report; the demo uses it too.

    A finished day's stored report is printed when it is newer than the day's last attempt
    activity, else it is rebuilt (and stored) first; a day not over yet is computed fresh and
    not stored; `rebuild` recomputes and stores a finished day's report in any case
    (scheduling.report.current_day_report).
    """
    from db.lookups import campaigns_by_name
    from db.session import create_engine, session_factory
    from scheduling.report import current_day_report, write_csv

    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        campaigns = await campaigns_by_name(sessions, campaign_name)
        if not campaigns:
            err.print(
                f"[red]no campaign named {campaign_name!r}[/red]" if campaign_name
                else "no campaigns in the database"
            )
            return 1
        day = day_s if isinstance(day_s, date) else _parse_date(
            day_s, campaigns[0].timezone if campaign_name else "UTC")
        now = utc_now()
        rows = []
        for camp in campaigns:
            rows.extend(await current_day_report(
                sessions, campaign_id=camp.id, timezone=camp.timezone, report_date=day, now=now,
                rebuild=rebuild))
        table = Table(title=f"End-of-day report {day}", box=box.SIMPLE)
        cols = ("campaign", "agent", "planned", "called", "reached", "meetings", "contracts",
                "callbacks", "talk_min")
        for c in cols:
            table.add_column(c, justify="left" if c in ("campaign", "agent") else "right",
                             no_wrap=True)
        for r in rows:
            table.add_row(r.campaign, r.agent or "(shared)", str(r.planned),
                          str(r.called), str(r.reached), str(r.meetings), str(r.contracts),
                          str(r.callbacks), f"{r.talk_s / 60:.1f}")
        out.print(table)
        if csv_path is not None:
            n = write_csv(rows, csv_path)
            err.print(f"wrote {n} rows to {csv_path}")
        return 0
    finally:
        await engine.dispose()
