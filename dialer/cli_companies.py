"""`dialer companies`: client companies' calendars without SQL - list, show, set, import.

dialer/cli.py mounts `companies_app` as `dialer companies`. Hours, closures, special days and
holidays are written in the human form of scheduling/hours_spec.py (docs/scheduling.md,
"Company calendars"); every change is checked as the CompanyCalendar scheduling will build
(`validate()`: it must open) before it is stored, in the write's own transaction.

`companies import` reads a CSV file as `dialer leads import` does (dialer/lead_csv.py:
encodings, separators, physical line numbers) and reports row by row the same way: the same
report file (`dialer.importer.CsvReport`), outcomes, reasons and terminal tables
(`dialer.importer.issue_tables`); docs/import.md, "Company files".

Exit codes, as the other data commands: 0 done; 1 done but some rows were rejected (import);
2 nothing done (the message names what was wrong and the expected form).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from common.clock import utc_now
from dialer.cli import ConfigOpt, DbOpt
from dialer.cli_data import SHOWN_ISSUES, _fail, _guard_db, _run, _url, out
from dialer.lead_csv import (
    DELIMITERS,
    LeadImportError,
    Outcome,
    Reason,
    Records,
    RowIssue,
    RowTally,
    check_encoding,
    header_record,
    is_blank,
    record_fields,
)
from dialer.lead_rows import NAME_MAX, canonical_zone, norm_header
from scheduling.calendar import WEEKDAY_NAMES, CalendarError, CompanyCalendar, parse_intervals
from scheduling.hours_spec import (
    CalendarChange,
    checked_calendar,
    day_notes,
    format_holidays,
    format_hours,
    format_intervals,
    parse_closure,
    parse_closures,
    parse_days,
    parse_holidays,
    parse_hours,
    parse_special_day,
    parse_special_days,
    weekly_from_json,
)

if TYPE_CHECKING:
    from db.models import Company

companies_app = typer.Typer(
    help="Client companies' calendars: list, show, set hours/holidays/closures, import a CSV.",
    no_args_is_help=True)

#: the columns of a company file, and the other header names read as them
COMPANY_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("company", "company_name"),
    "timezone": ("time_zone", "tz", "zone"),
    "hours": ("weekly_hours", "opening_hours"),
    "holidays": ("holiday_country", "public_holidays"),
    "closures": ("closure",),
    "special_days": ("special_day", "special"),
}
#: days `companies show` lists
SHOWN_DAYS = 7
_ZONE_FORM = "expected an IANA time zone such as Europe/Riga"


def _zone(value: str, what: str) -> str:
    zone = canonical_zone(value)
    if zone is None:
        raise CalendarError(f'{what} "{value}": not a time zone; {_ZONE_FORM}')
    return zone


def _hours_text(company: Company) -> str:
    try:
        return format_hours(weekly_from_json(company.weekly_hours))
    except CalendarError as e:
        return f"unusable: {e}"


def _settings(company: Company, leads: int) -> Table:
    table = Table("setting", "value", title=f"company {company.name}")
    table.add_row("id", str(company.id))
    table.add_row("time zone", company.timezone)
    table.add_row("hours", _hours_text(company))
    table.add_row("holidays", format_holidays(company.holiday_country,
                                              company.holiday_subdivision))
    closures = []
    for c in company.closures or []:
        if not isinstance(c, dict):
            closures.append(f"unusable: {c!r}")
            continue
        start, end = c.get("start"), c.get("end", c.get("start"))
        text = f"{start}" if start == end else f"{start}..{end}"
        closures.append(text + (f" ({c['reason']})" if c.get("reason") else ""))
    table.add_row("closures", ", ".join(closures) or "none")
    special = []
    for d, iv in sorted((company.special_days or {}).items()):
        try:
            special.append(f"{d}={format_intervals(parse_intervals(iv, 'special day'))}")
        except CalendarError as e:
            special.append(f"{d}: unusable: {e}")
    table.add_row("special days", ", ".join(special) or "none")
    table.add_row("leads", str(leads))
    return table


def _days_table(cal: CompanyCalendar, first: date, days: int) -> Table:
    table = Table("date", "day", "open (local time)", "note",
                  title=f"the {days} days from {first.isoformat()} ({cal.timezone})")
    for k in range(days):
        d = first + timedelta(days=k)
        table.add_row(d.isoformat(), WEEKDAY_NAMES[d.weekday()],
                      format_intervals(cal.day_intervals(d)), "; ".join(day_notes(cal, d)))
    return table


# ----------------------------------------------------------------------------- list, show


@companies_app.command("list")
def companies_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """List companies: name, time zone, hours, public holidays, leads."""
    from db.companies import list_companies

    rows = _guard_db(lambda: _run(_url(config, db), list_companies))
    if not rows:
        out.print("no companies (import them with `dialer companies import FILE.csv`)")
        return
    table = Table("name", "time zone", "hours", "holidays", "leads")
    for c, n in rows:
        table.add_row(c.name, c.timezone, _hours_text(c),
                      format_holidays(c.holiday_country, c.holiday_subdivision), str(n))
    out.print(table)


@companies_app.command("show")
def companies_show(
    name: Annotated[str, typer.Argument(help="Company name (or id)")],
    from_date: Annotated[str | None, typer.Option(
        "--date", help="First day of the days listed, YYYY-MM-DD (default: today in the "
                       "company's zone)")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Show a company's calendar, and its open hours on the next 7 days with the reason of
    each closed day (day off, closure, public holiday by name, special day)."""
    from db.companies import company_by_key
    from scheduling.calendar import zone

    first: date | None = None
    if from_date is not None:
        try:
            first = date.fromisoformat(from_date)
        except ValueError:
            raise _fail(f'--date "{from_date}": not a date; expected YYYY-MM-DD') from None
    got = _guard_db(lambda: _run(_url(config, db), lambda s: company_by_key(s, name)))
    if got is None:
        raise _fail(f"no company named {name!r} (see `dialer companies list`)")
    company, leads = got
    out.print(_settings(company, leads))
    try:
        cal = CompanyCalendar.from_company(company)
    except CalendarError as e:
        raise _fail(f"company {company.name!r} has an unusable calendar: {e}; fix it with "
                    "`dialer companies set`") from None
    if first is None:
        first = utc_now().astimezone(zone(cal.timezone)).date()
    out.print(_days_table(cal, first, SHOWN_DAYS))


# ----------------------------------------------------------------------------- set


@companies_app.command("set")
def companies_set(
    name: Annotated[str, typer.Argument(help="Company name (or id)")],
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="IANA time zone, e.g. Europe/Riga")] = None,
    hours: Annotated[str | None, typer.Option(
        "--hours", help='Weekly hours, e.g. "mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00"'
                        " (days not named are closed)")] = None,
    holidays: Annotated[str | None, typer.Option(
        "--holidays", help="Public holidays of a country[-subdivision]: LV, US-NY; or none")]
    = None,
    closure: Annotated[list[str] | None, typer.Option(
        "--closure", help="Add a closure: 2026-12-24..2026-12-31 or one date. Repeatable.")]
    = None,
    clear_closures: Annotated[bool, typer.Option(
        "--clear-closures", help="Remove every closure (before adding --closure ones)")] = False,
    special: Annotated[list[str] | None, typer.Option(
        "--special", help="A date's own hours: 2026-12-24=09:00-12:00 or 2026-12-24=closed."
                          " Repeatable.")] = None,
    clear_special_days: Annotated[bool, typer.Option(
        "--clear-special-days", help="Remove every special day (before adding --special ones)")]
    = False,
    days_off: Annotated[str | None, typer.Option(
        "--days-off", help="Close these weekdays (after --hours): sat,sun or fri-sun")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Change a company's calendar; the result must open (checked as scheduling reads it)."""
    from db.companies import update_company

    try:
        change = CalendarChange(
            timezone=_zone(timezone, "--timezone") if timezone is not None else None,
            hours=parse_hours(hours, "--hours") if hours is not None else None,
            days_off=parse_days(days_off, "--days-off") if days_off is not None else frozenset(),
            holidays=parse_holidays(holidays, "--holidays") if holidays is not None else None,
            clear_closures=clear_closures,
            add_closures=[parse_closure(c, "--closure") for c in closure or []],
            clear_special_days=clear_special_days,
            set_special_days=dict(parse_special_day(x, "--special") for x in special or []),
        )
    except CalendarError as e:
        raise _fail(str(e)) from None
    if change.is_empty():
        raise _fail("nothing to change: give --timezone, --hours, --days-off, --holidays, "
                    "--closure, --clear-closures, --special or --clear-special-days")
    now = utc_now()

    def validate(company: Company) -> None:
        CompanyCalendar.from_company(company).validate(now=now)

    async def work(sessions: Any) -> Company | None:
        return await update_company(sessions, name, edit=change.apply, validate=validate)

    try:
        company = _guard_db(lambda: _run(_url(config, db), work))
    except CalendarError as e:
        raise _fail(f"company {name!r} not changed: {e}") from None
    if company is None:
        raise _fail(f"no company named {name!r} (see `dialer companies list`)")
    out.print(f"company {company.name} updated: {company.timezone}, hours "
              f"{_hours_text(company)}, holidays "
              f"{format_holidays(company.holiday_country, company.holiday_subdivision)}",
              highlight=False)


# ----------------------------------------------------------------------------- import


@dataclass
class CompanyRow:
    """A company file's row that passed its own checks; its calendar is checked against the
    company's current one when it is written."""

    line: int
    text: str
    name: str
    change: CalendarChange


class _Refused(ValueError):
    """A row the database step refused (with the reason the report gives)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _company_edit(
    row: CompanyRow, now: datetime
) -> Callable[[Mapping[str, Any] | None], dict[str, Any]]:
    """The row's edit for db.companies.upsert_companies: the new column values, checked as
    the calendar scheduling will build; raises _Refused with the report's reason."""

    def edit(current: Mapping[str, Any] | None) -> dict[str, Any]:
        if current is None and row.change.timezone is None:
            raise _Refused(Reason.MISSING_FIELD,
                           f"timezone is empty (a new company needs one; {_ZONE_FORM})")
        try:
            values = row.change.apply(current)
            checked_calendar(values, name=row.name, now=now)
        except CalendarError as e:
            raise _Refused(Reason.BAD_CALENDAR, str(e)) from None
        return values

    return edit


def read_company_file(
    fh: IO[bytes], *, delimiter: str = "auto", encoding: str = "utf-8", tally: RowTally,
) -> tuple[list[CompanyRow], list[RowIssue], str]:
    """The valid rows, the issues (line order) and the separator of a company file.

    Raises LeadImportError if nothing can be read (bad option, unreadable file, a header
    without a name column or with a column that is not a company column).
    """
    if delimiter not in DELIMITERS:
        raise LeadImportError(f"delimiter {delimiter!r}: expected one of auto , ; tab |")
    records = Records(fh, check_encoding(encoding), delimiter)
    it = iter(records)
    header, tally.blank_lines = header_record(it)
    column: dict[str, int] = {}
    names = {n: f for f, aliases in COMPANY_COLUMNS.items() for n in (f, *aliases)}
    for i, h in enumerate(header.fields):
        f = names.get(norm_header(h))
        if f is None:
            raise LeadImportError(
                f"column {h.strip()!r} is not a company column; expected "
                f"{', '.join(COMPANY_COLUMNS)}")
        if f in column:
            raise LeadImportError(
                f"columns {header.fields[column[f]].strip()!r} and {h.strip()!r} are both "
                f"the {f} column; keep one")
        column[f] = i
    if "name" not in column:
        raise LeadImportError(f"no name column; columns are "
                              f"{', '.join(repr(h) for h in header.fields)}")
    rows: list[CompanyRow] = []
    issues: list[RowIssue] = []
    seen: dict[str, int] = {}
    for rec in it:
        if is_blank(rec):
            tally.blank_lines += 1
            continue
        tally.rows += 1
        fields = record_fields(records, rec, len(header.fields))
        if isinstance(fields, RowIssue):
            issues.append(fields)
            continue
        cells = {f: fields[i].strip() for f, i in column.items()}
        got = _company_row(rec.line, rec.text, cells)
        if isinstance(got, RowIssue):
            issues.append(got)
            continue
        first = seen.setdefault(got.name.casefold(), rec.line)
        if first != rec.line:
            issues.append(RowIssue(rec.line, Outcome.SKIPPED, Reason.DUPLICATE_IN_FILE,
                                   f"same company as line {first} (the first wins)", rec.text))
            continue
        rows.append(got)
    return rows, issues, records.delimiter


def _company_row(line: int, text: str, cells: dict[str, str]) -> CompanyRow | RowIssue:
    problems: list[tuple[Reason, str]] = []
    name = cells.get("name", "")
    if not name:
        problems.append((Reason.MISSING_FIELD, "name is empty"))
    elif len(name) > NAME_MAX:
        problems.append((Reason.BAD_VALUE, f"name is longer than {NAME_MAX} characters"))
    parsed: dict[str, Any] = {}
    steps: list[tuple[str, Reason, Any]] = [
        ("timezone", Reason.BAD_TIMEZONE, lambda v: _zone(v, "timezone")),
        ("hours", Reason.BAD_HOURS, parse_hours),
        ("holidays", Reason.BAD_HOLIDAYS, parse_holidays),
        ("closures", Reason.BAD_CLOSURES, parse_closures),
        ("special_days", Reason.BAD_SPECIAL_DAYS, parse_special_days),
    ]
    for col, reason, parse in steps:
        value = cells.get(col, "")
        if not value:
            continue  # an empty cell leaves the company's value as it is
        try:
            parsed[col] = parse(value)
        except CalendarError as e:
            problems.append((reason, str(e)[:300]))
    if problems:
        return RowIssue(line, Outcome.REJECTED, problems[0][0],
                        "; ".join(p[1] for p in problems), text)
    return CompanyRow(line=line, text=text, name=name, change=CalendarChange(
        timezone=parsed.get("timezone"), hours=parsed.get("hours"),
        holidays=parsed.get("holidays"), closures=parsed.get("closures"),
        special_days=parsed.get("special_days")))


@dataclass
class CompanyImportSummary(RowTally):
    delimiter: str = ","
    encoding: str = "utf-8"
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@companies_app.command("import")
def companies_import(
    file: Annotated[Path, typer.Argument(
        help="CSV file: name, timezone, hours, holidays, closures, special_days (header row;"
             " , or ; separated; UTF-8)", exists=True, dir_okay=False, readable=True)],
    report: Annotated[Path | None, typer.Option(
        "--report", help="CSV report of rejected/skipped rows (default: FILE.report.csv)",
    )] = None,
    delimiter: Annotated[str, typer.Option(
        "--delimiter", help="auto, ',', ';', tab or '|'")] = "auto",
    encoding: Annotated[str, typer.Option(
        "--encoding", help="File encoding, e.g. cp1252 (default utf-8; a BOM is fine)",
    )] = "utf-8",
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Create or update companies from FILE; rejected and skipped rows go to a CSV report.
    An empty cell keeps the company's value (a new company: Mon-Fri 09:00-17:00, no
    holidays); `none` empties holidays, closures or special days."""
    from db.companies import CompanyUpsert, upsert_companies
    from dialer.importer import CsvReport, issue_tables

    summary = CompanyImportSummary()
    try:
        with open(file, "rb") as fh:
            rows, issues, summary.delimiter = read_company_file(
                fh, delimiter=delimiter, encoding=encoding, tally=summary)
        summary.encoding = check_encoding(encoding)
    except LeadImportError as e:
        raise _fail(str(e)) from None
    except OSError as e:
        raise _fail(f"cannot read {file}: {e.strerror}") from None
    url = _url(config, db)
    report_path = report or file.with_name(file.name + ".report.csv")
    now = utc_now()
    items = [CompanyUpsert(name=r.name, edit=_company_edit(r, now), ref=r.line) for r in rows]
    by_line = {r.line: r for r in rows}
    results = _guard_db(lambda: _run(url, lambda s: upsert_companies(
        s, items, now=now, refuse=(_Refused,))))
    for res in results:
        if isinstance(res.error, _Refused):
            row = by_line[res.ref]
            issues.append(RowIssue(row.line, Outcome.REJECTED, res.error.reason,
                                   str(res.error), row.text))
        else:
            setattr(summary, res.action, getattr(summary, res.action) + 1)
    try:
        with CsvReport(report_path) as sink:
            for issue in sorted(issues, key=lambda i: i.line):
                summary.add_issue(issue)
                sink(issue)
    except OSError as e:
        raise _fail(f"cannot write the report {report_path}: {e.strerror}") from None
    sep = "tab" if summary.delimiter == "\t" else summary.delimiter
    out.print(f"companies: {summary.rows} rows read (separator {sep!r}, {summary.encoding}, "
              f"{summary.blank_lines} blank lines ignored)", highlight=False)
    out.print(f"  created {summary.created}, updated {summary.updated}, unchanged "
              f"{summary.unchanged}, rejected {summary.rejected}, skipped {summary.skipped}",
              highlight=False)
    for table in issue_tables(summary, SHOWN_ISSUES):
        out.print(table)
    # soft wrap: a path or message broken over lines cannot be copied
    out.print(f"report: {report_path}", highlight=False, soft_wrap=True)
    raise typer.Exit(1 if summary.rejected else 0)
