"""`dialer leads`, `dialer campaigns` and `dialer dnc`: the data an operator loads and checks.

dialer/cli.py mounts `leads_app`, `campaigns_app` and `dnc_app`. Output here is the
operator's own terminal, not a log: counts, line numbers and reasons are printed, phone
numbers and names are not (the CSV report file has the raw rows, for the person importing).

Exit codes: 0 done; 1 done but some rows were rejected (see the report); 2 nothing done
(bad option, unknown campaign, unreadable file, database without schema).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from common.clock import utc_now
from common.vocabulary import DialMode
from dialer.cli import ConfigOpt, DbOpt, ensure_sqlite_dir, settings_from

leads_app = typer.Typer(help="Leads: import CSV files into a campaign.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaigns: create, sync from the config, list, show.",
                            no_args_is_help=True)
dnc_app = typer.Typer(help="Do-not-call lists: add numbers, import registry files.",
                      no_args_is_help=True)

out = Console()
err = Console(stderr=True)

#: files at least this big get a progress bar
PROGRESS_MIN_BYTES = 1_000_000
#: rejected/skipped rows printed on the terminal (all of them are in the report file)
SHOWN_ISSUES = 20

T = TypeVar("T")


def _run(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the database, run `work(sessions)`, and always dispose of the engine."""
    from db.session import create_engine, session_factory

    async def main() -> T:
        engine = create_engine(url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _url(config: Path | None, db: str | None) -> str:
    url = settings_from(config, db).database.url
    ensure_sqlite_dir(url)
    return url


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _parse_map(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        col, sep, target = item.rpartition("=")
        if not sep or not col.strip() or not target.strip():
            raise typer.BadParameter(f"{item!r}: expected COLUMN=FIELD, e.g. Telefon=phone",
                                     param_hint="--map")
        mapping[col.strip()] = target.strip()
    return mapping


# ----------------------------------------------------------------------------- leads


@leads_app.command("import")
def leads_import(
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8; , or ; separated; header row)",
                                         exists=True, dir_okay=False, readable=True)],
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign to add the leads to")],
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="COLUMN=FIELD; FIELD is phone, name, company, timezone, priority, status,"
                      " next_contact_at, custom.KEY, or - to ignore the column. Repeatable.",
    )] = None,
    region: Annotated[str | None, typer.Option(
        "--region", help="Region for numbers without +country code (default: the campaign's)",
    )] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="CSV report of rejected/skipped rows (default: FILE.report.csv)",
    )] = None,
    delimiter: Annotated[str, typer.Option(
        "--delimiter", help="auto, ',', ';', tab or '|'")] = "auto",
    encoding: Annotated[str, typer.Option(
        "--encoding", help="File encoding, e.g. cp1252 (default utf-8; a BOM is fine)",
    )] = "utf-8",
    create_companies: Annotated[bool, typer.Option(
        "--create-companies", help="Create companies the file names but the database lacks "
                                   "(Mon-Fri 09:00-17:00 in the lead's zone); else reject rows",
    )] = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Import leads from FILE into a campaign; rejected and skipped rows go to a CSV report."""
    from dialer.importer import CsvReport, ImportOptions, LeadImportError, import_leads

    try:
        opts = ImportOptions(
            campaign=campaign, mapping=_parse_map(map_ or []),
            region=region.upper() if region else None, delimiter=delimiter, encoding=encoding,
            create_companies=create_companies)
    except LeadImportError as e:
        raise _fail(str(e)) from None
    url = _url(config, db)
    report_path = report or file.with_name(file.name + ".report.csv")
    size = file.stat().st_size
    progress = Progress(
        TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=size < PROGRESS_MIN_BYTES)

    try:
        sink = CsvReport(report_path)
    except OSError as e:
        raise _fail(f"cannot write the report {report_path}: {e.strerror}") from None

    async def work(sessions: Any) -> Any:
        with sink, progress:
            task = progress.add_task("import", total=size)
            return await import_leads(
                sessions, file, opts, now=utc_now(), on_issue=sink,
                on_progress=lambda done, _total: progress.update(task, completed=done))

    try:
        summary = _run(url, work)
    except LeadImportError as e:
        raise _fail(str(e)) from None
    _print_import(summary, report_path)
    raise typer.Exit(1 if summary.rejected else 0)


def _print_import(summary: Any, report_path: Path) -> None:
    from dialer.importer import issue_tables

    sep = "tab" if summary.delimiter == "\t" else summary.delimiter
    out.print(
        f"campaign {summary.campaign}: {summary.rows} rows read "
        f"(separator {sep!r}, {summary.encoding}, {summary.blank_lines} blank lines ignored)",
        highlight=False)
    out.print(f"  imported {summary.imported}, rejected {summary.rejected}, "
              f"skipped {summary.skipped}", highlight=False)
    if summary.companies_created:
        out.print(f"  companies created: {', '.join(summary.companies_created)}",
                  highlight=False)
    for table in issue_tables(summary, SHOWN_ISSUES):
        out.print(table)
    # soft wrap: a path or message broken over lines cannot be copied
    out.print(f"report: {report_path}", highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- campaigns


@campaigns_app.command("create")
def campaigns_create(
    name: Annotated[str, typer.Argument(help="Unique campaign name")],
    caller_id: Annotated[str, typer.Option("--caller-id", help="E.164 caller ID, +14155550100")],
    mode: Annotated[DialMode, typer.Option("--mode", help="Dial mode")] = DialMode.PREDICTIVE,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone of the campaign")] = "UTC",
    region: Annotated[str, typer.Option(
        "--region", help="Default region for lead numbers without +country code")] = "US",
    trunk: Annotated[str | None, typer.Option("--trunk", help="SIP trunk name")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Create a campaign (other settings take their defaults; see deploy/dialer.example.toml)."""
    from pydantic import ValidationError

    from dialer.config import CampaignConfig

    try:
        cfg = CampaignConfig(name=name, caller_id=caller_id, dial_mode=mode, timezone=timezone,
                             default_region=region.upper(), trunk=trunk)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in x['loc'])} = {x.get('input')!r}: "
            f"{str(x['msg']).removeprefix('Value error, ')}" for x in e.errors())
        raise _fail(problems) from None

    async def work(sessions: Any) -> bool:
        from db.repositories import campaign_by_name, upsert_campaign

        if await campaign_by_name(sessions, name) is not None:
            return False
        await upsert_campaign(sessions, cfg)
        return True

    if not _guard_db(lambda: _run(_url(config, db), work)):
        raise _fail(f"campaign {name!r} already exists")
    out.print(f"campaign {name} created ({mode.value})", highlight=False)


@campaigns_app.command("sync")
def campaigns_sync(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Create or update the config file's campaigns and agents in the database, as
    `dialer run` does at start (so leads can be imported before the first run)."""
    settings = settings_from(config, db)
    if not settings.campaigns:
        raise _fail("the config has no [[campaigns]] table to sync")
    url = settings.database.url
    ensure_sqlite_dir(url)

    async def work(sessions: Any) -> list[tuple[str, bool]]:
        from db.repositories import campaign_by_name, upsert_agent, upsert_campaign

        done = []
        for c in settings.campaigns:
            existed = await campaign_by_name(sessions, c.name) is not None
            await upsert_campaign(sessions, c)
            done.append((c.name, existed))
        for a in settings.agents:
            await upsert_agent(sessions, a.login, a.sip_uri, a.display_name, a.groups)
        return done

    for name, existed in _guard_db(lambda: _run(url, work)):
        out.print(f"campaign {name} {'updated' if existed else 'created'}", highlight=False)
    out.print(f"{len(settings.agents)} agent(s) synced", highlight=False)


def _guard_db(call: Callable[[], T]) -> T:
    """Turn database failures into one clear line (and exit code 2)."""
    from db.repositories import RepositoryError
    from dialer.importer import db_error_hint

    try:
        return call()
    except RepositoryError as e:  # the store's one error type (db/repositories.py)
        raise _fail(db_error_hint(e)) from None
    except OSError as e:
        raise _fail(f"database: {e}") from None


async def _lead_counts(sessions: Any, campaign_id: int | None = None) -> dict[Any, Any]:
    from db.lookups import lead_counts

    return await lead_counts(sessions, campaign_id)


@campaigns_app.command("list")
def campaigns_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """List campaigns with their mode and lead counts."""
    from db.lookups import campaigns_by_name
    from db.models import Campaign

    async def work(sessions: Any) -> tuple[list[Campaign], dict[Any, Any]]:
        return await campaigns_by_name(sessions), await _lead_counts(sessions)

    rows, counts = _guard_db(lambda: _run(_url(config, db), work))
    table = Table("name", "mode", "active", "caller id", "time zone", "leads", "dialable")
    from common.vocabulary import DIALABLE_STATUSES

    for c in rows:
        per = counts.get(c.id, {})
        dialable = sum(n for st, n in per.items() if st in {s.value for s in DIALABLE_STATUSES})
        table.add_row(c.name, c.dial_mode.value, "yes" if c.active else "no", c.caller_id,
                      c.timezone, str(sum(per.values())), str(dialable))
    out.print(table if rows else "no campaigns (create one with `dialer campaigns create`)")


@campaigns_app.command("show")
def campaigns_show(
    name: Annotated[str, typer.Argument(help="Campaign name")],
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Show a campaign's settings and its leads by status."""
    from db.repositories import campaign_by_name

    async def work(sessions: Any) -> Any:
        c = await campaign_by_name(sessions, name)
        if c is None:
            return None
        return c, (await _lead_counts(sessions, c.id)).get(c.id, {})

    got = _guard_db(lambda: _run(_url(config, db), work))
    if got is None:
        raise _fail(f"no campaign named {name!r}")
    c, per = got
    table = Table("setting", "value", title=f"campaign {c.name}")
    for key in ("description", "active", "dial_mode", "caller_id", "trunk", "timezone",
                "default_region", "calling_window", "ring_timeout_s", "min_ring_s",
                "lines_per_agent", "max_dial_level", "max_lines", "abandon_cap",
                "abandon_window", "abandon_grace_s", "abandon_clock_start", "amd_enabled",
                "amd_method", "amd_max_ms", "amd_greeting_budget_ms", "amd_decide_by_ms",
                "amd_company_numbers", "amd_false_positive_rate", "machine_policy",
                "record_calls", "callback_grace_s", "retry_rules"):
        value = getattr(c, key)
        table.add_row(key, str(getattr(value, "value", value)))
    out.print(table)
    leads = Table("status", "leads", title="leads")
    for status, n in sorted(per.items()):
        leads.add_row(status, str(n))
    leads.add_row("total", str(sum(per.values())))
    out.print(leads)


# ----------------------------------------------------------------------------- DNC


@dnc_app.command("add")
def dnc_add(
    number: Annotated[str, typer.Argument(help="Phone number (E.164, or national with --region)")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the entry)")] = (
        None),
    source: Annotated[str, typer.Option("--source", help="List name")] = "internal",
    region: Annotated[str, typer.Option(
        "--region", help="Region for a number without +country code")] = "US",
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Add a number to a do-not-call list; its leads in every campaign stop at once."""
    from db import dnc

    try:
        e164 = dnc.normalise_number(number, region.upper())
    except ValueError as e:
        raise _fail(f"NUMBER: {e}") from None

    async def work(sessions: Any) -> Any:
        return await dnc.add(sessions, e164, now=utc_now(), source=source, reason=reason)

    try:
        result = _guard_db(lambda: _run(_url(config, db), work))
    except ValueError as e:
        raise _fail(str(e)) from None
    state = "added to" if result.added else "already on"
    out.print(f"number {state} the {source} list; {result.leads_stopped} lead(s) stopped",
              highlight=False)


@dnc_app.command("import")
def dnc_import(
    file: Annotated[Path, typer.Argument(help="One number per line, optional reason column",
                                         exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option("--source", help="List name")] = "national",
    region: Annotated[str, typer.Option(
        "--region", help="Region for numbers without +country code")] = "US",
    encoding: Annotated[str, typer.Option("--encoding", help="File encoding")] = "utf-8",
    delimiter: Annotated[str, typer.Option("--delimiter", help="auto, ',', ';', tab")] = "auto",
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Import a do-not-call list file (e.g. the national registry) into list SOURCE."""
    from db import dnc
    from dialer.importer import DncFileSummary, LeadImportError, read_dnc_file

    summary = DncFileSummary()

    async def work(sessions: Any) -> Any:
        with open(file, "rb") as fh:  # noqa: ASYNC230 - a CLI process, nothing else on the loop
            entries = read_dnc_file(fh, region=region.upper(), encoding=encoding,
                                    delimiter=delimiter, summary=summary)
            return await dnc.bulk_add(sessions, entries, now=utc_now(), source=source)

    try:
        result = _guard_db(lambda: _run(_url(config, db), work))
    except (LeadImportError, ValueError) as e:
        raise _fail(str(e)) from None
    out.print(
        f"{summary.rows} numbers read: {result.added} added to the {source} list, "
        f"{summary.valid - result.added} already on it or repeated, "
        f"{len(summary.issues)} rejected; {result.leads_stopped} lead(s) stopped", highlight=False)
    if summary.issues:
        table = Table("line", "reason", "detail", title="rejected lines")
        for issue in summary.issues[:SHOWN_ISSUES]:
            table.add_row(str(issue.line), issue.reason.value, issue.detail)
        out.print(table)
    raise typer.Exit(1 if summary.issues else 0)
