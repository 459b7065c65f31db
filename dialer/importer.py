"""Lead import: read a CSV file, validate every row, write good rows in chunks, report the rest.

What a file may look like: docs/import.md (the user's version), dialer/lead_csv.py (reading:
encodings, separators, physical line numbers) and dialer/lead_rows.py (the header, column
mapping with `FIELD_ALIASES`, every other column landing in `custom_fields`).

Where the code is: dialer/lead_csv.py reads the file into records (encodings, separators, line
numbers), dialer/lead_rows.py maps columns and validates rows (pure code), and this module
runs the import, writes through db/lead_import.py and writes the report; every public name of
the three is importable from here.

Each data row is then either imported, *rejected* (bad data: the report says which field and
why) or *skipped* (a duplicate within the file or in the campaign, or a do-not-call number).
Blank rows are not data rows; they are counted and otherwise ignored. Importing is idempotent:
a second run of the same file reports every row as a duplicate and adds nothing.

The file is streamed: parsing happens in a worker thread one chunk at a time, and each chunk
is written in its own transaction (multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING), so
memory stays flat and a running dialer is never locked out for the length of a big import.
"""
from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from common.vocabulary import DIALABLE_STATUSES
from db.bulk import analyze
from db.lead_import import db_error_hint, import_context, lead_import_batch
from db.models import Campaign, hopper_tier
from db.repositories import RepositoryError, Sessions
from dialer.lead_csv import (
    DELIMITERS,
    KEPT_ISSUES,
    LeadImportError,
    Outcome,
    Reason,
    Records,
    RowIssue,
    RowTally,
    check_encoding,
    is_blank,
    sniff_delimiter,
)
from dialer.lead_rows import (
    FIELD_ALIASES,
    LEAD_FIELDS,
    NAME_MAX,
    PRIORITY_MAX,
    PRIORITY_MIN,
    STATUS_ALIASES,
    Batch,
    ImportOptions,
    LeadParser,
    Row,
    build_mapping,
    canonical_zone,
    check_region,
    norm_header,
    parse_when,
)

if TYPE_CHECKING:
    from rich.table import Table

log = logging.getLogger(__name__)

# the public names of the import, wherever they are defined (callers import them from here)
__all__ = [
    "ANALYZE_AFTER",
    "DEFAULT_COMPANY_HOURS",
    "DELIMITERS",
    "FIELD_ALIASES",
    "KEPT_ISSUES",
    "LEAD_FIELDS",
    "NAME_MAX",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "REPORT_COLUMNS",
    "STATUS_ALIASES",
    "CsvReport",
    "DncFileSummary",
    "ImportOptions",
    "ImportSummary",
    "LeadImportError",
    "Outcome",
    "Reason",
    "RowIssue",
    "RowTally",
    "build_mapping",
    "canonical_zone",
    "check_encoding",
    "check_region",
    "db_error_hint",
    "import_leads",
    "issue_tables",
    "parse_when",
    "read_dnc_file",
    "sniff_delimiter",
]

#: Mon-Fri 09:00-17:00: the calendar given to a company created by an import
DEFAULT_COMPANY_HOURS: dict[str, list[list[str]]] = {
    d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
}
#: after importing this many rows, refresh PostgreSQL's planner statistics (ANALYZE)
ANALYZE_AFTER = 1000


@dataclass
class ImportSummary(RowTally):
    """A lead import's outcome: the shared row counts and issues (RowTally) and the lead
    import's own figures."""

    campaign: str
    delimiter: str = ","
    encoding: str = "utf-8"
    imported: int = 0
    companies_created: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- the import


async def import_leads(
    sessions: Sessions,
    path: Path,
    opts: ImportOptions,
    *,
    now: datetime,
    on_issue: Callable[[RowIssue], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import a lead file into a campaign; every row ends imported or reported to `on_issue`.

    Raises LeadImportError when nothing can be imported (unknown campaign, unreadable file,
    header without a phone column, database failure - rows of earlier chunks stay imported,
    and a re-run skips them).
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    try:
        campaign, companies = await import_context(sessions, opts.campaign)
    except RepositoryError as e:
        raise LeadImportError(db_error_hint(e)) from e
    except OSError as e:  # the driver could not connect (asyncpg raises these unwrapped)
        raise LeadImportError(f"cannot reach the database: {e}") from e
    if campaign is None:
        raise LeadImportError(
            f"no campaign named {opts.campaign!r}; create it with `dialer campaigns create`")
    region = opts.region or campaign.default_region or "US"
    check_region(region)
    fh, size = await asyncio.to_thread(_open, path)
    ahead: asyncio.Future[Batch] | None = None
    try:
        parser = await asyncio.to_thread(
            LeadParser, fh, opts, region=region, campaign_zone=campaign.timezone or "UTC",
            companies=companies)
        summary = ImportSummary(
            campaign=campaign.name, delimiter=parser.records.delimiter,
            encoding=codecs.lookup(opts.encoding).name)
        # Pipeline: the worker thread parses chunk k+1 while chunk k is written, so phone
        # parsing overlaps the database's own work (the SQLite C library and PostgreSQL both
        # run without holding the GIL).
        ahead = asyncio.ensure_future(asyncio.to_thread(parser.next_batch, opts.chunk_size))
        done = False
        while not done:
            batch = await ahead
            done = batch.done
            if not done:
                ahead = asyncio.ensure_future(
                    asyncio.to_thread(parser.next_batch, opts.chunk_size))
            issues = list(batch.issues)
            if batch.rows:
                try:
                    issues += await _write_batch(sessions, campaign, parser, batch.rows, now,
                                                 summary)
                except RepositoryError as e:
                    raise LeadImportError(
                        f"database error while writing lines {batch.rows[0].line}-"
                        f"{batch.rows[-1].line}: {db_error_hint(e)}; earlier lines are imported"
                        " and a re-run skips them") from e
            for issue in sorted(issues, key=lambda i: i.line):
                summary.add_issue(issue)
                if on_issue is not None:
                    on_issue(issue)
            if on_progress is not None:
                on_progress(parser.bytes_read, size)
    finally:
        if ahead is not None and not ahead.done():
            # The worker thread cannot be cancelled: let it finish its chunk before the file
            # it reads is closed (its result is dropped; the error being raised matters).
            with contextlib.suppress(Exception):
                await asyncio.shield(ahead)
        fh.close()
    summary.rows = parser.rows
    summary.blank_lines = parser.blank_lines
    if summary.imported >= ANALYZE_AFTER:
        # fresh PostgreSQL planner statistics, or the hopper's hot query would be planned for
        # the table as it was before the import until autovacuum's next visit
        await analyze(sessions, "leads", after="import")
    log.info("import into campaign %s: %d rows, %d imported, %d rejected, %d skipped",
             summary.campaign, summary.rows, summary.imported, summary.rejected, summary.skipped)
    return summary


def _open(path: Path) -> tuple[IO[bytes], int]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by import_leads
        return fh, os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise LeadImportError(f"cannot read {path}: {e.strerror}") from None


async def _write_batch(
    sessions: Sessions, campaign: Campaign, parser: LeadParser, rows: list[Row],
    now: datetime, summary: ImportSummary,
) -> list[RowIssue]:
    """Drop DNC numbers, create missing companies, insert the rest; report what was skipped.

    Numbers already in the campaign are found by the INSERT itself (ON CONFLICT DO NOTHING
    RETURNING the rows it added), which always uses the unique index. A SELECT ... IN (...)
    pre-check would not: on PostgreSQL, a table growing during one import has stale planner
    statistics and every chunk's check becomes a sequential scan. The DNC check precedes
    everything, so a number that is both DNC and already present is reported as `dnc`.
    """
    issues: list[RowIssue] = []
    dup = f"number already in campaign {campaign.name!r}"
    async with lead_import_batch(sessions) as tx:
        listed = await tx.dnc_listed([r.phone for r in rows])
        keep: list[Row] = []
        for r in rows:
            if r.phone in listed:
                issues.append(_skip(r, Reason.DNC, "number is on a do-not-call list"))
            else:
                keep.append(r)
        founding = [r for r in keep if r.company is not None and r.company not in parser.companies]
        if founding:
            # Only a row that will really be added may create its company.
            present = await tx.in_campaign(campaign.id, [r.phone for r in founding])
            for r in [r for r in keep if r.phone in present]:
                issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
            keep = [r for r in keep if r.phone not in present]
            for r in keep:
                if r.company is not None and r.company not in parser.companies:
                    company_id = await tx.add_company(
                        name=r.company, timezone=r.new_company_zone or campaign.timezone or "UTC",
                        weekly_hours=DEFAULT_COMPANY_HOURS,
                        holiday_country=r.new_company_country, now=now)
                    parser.company_created(r.company, company_id)
                    summary.companies_created.append(r.company)
        if not keep:
            return issues
        values = [_lead_values(r, campaign.id, parser.companies, now) for r in keep]
        inserted = await tx.insert_leads(values)
    for r in keep:
        if r.phone in inserted:
            summary.imported += 1
        else:
            issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
    return issues


def _skip(r: Row, reason: Reason, detail: str) -> RowIssue:
    return RowIssue(line=r.line, outcome=Outcome.SKIPPED, reason=reason, detail=detail,
                    record=r.text)


def _lead_values(
    r: Row, campaign_id: int, companies: Mapping[str, int], now: datetime
) -> dict[str, Any]:
    dialable = r.status in DIALABLE_STATUSES
    # An agreed next contact in the future is the earliest the lead may be called; scheduling
    # refines next_call_at further (calendars, windows) when it next looks at the lead.
    next_call = max(now, r.next_contact_at) if r.next_contact_at else now
    return {
        "campaign_id": campaign_id,
        "company_id": companies[r.company] if r.company is not None else None,
        "phone_e164": r.phone,
        "name": r.name,
        "custom_fields": r.custom,
        "timezone": r.timezone,
        "status": r.status,
        "priority": r.priority,
        "hopper_tier": hopper_tier(callback_due=False, status=r.status, open_complaint=False),
        "has_open_complaint": False,
        "next_contact_at": r.next_contact_at,
        "next_call_at": next_call if dialable else None,
        "never_reason": None if dialable else f"imported with status {r.status.value}",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


# ----------------------------------------------------------------------------- the report file


REPORT_COLUMNS = ("line", "outcome", "reason", "detail", "record")


class CsvReport:
    """Writes every issue as it comes: line, outcome, reason, detail, the raw record.

    UTF-8 with a byte-order mark, so spreadsheet programs open it with the right encoding.
    The raw record holds the row's personal data: the file is for the person importing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
        self._w = csv.writer(self._fh)
        self._w.writerow(REPORT_COLUMNS)

    def __call__(self, issue: RowIssue) -> None:
        self._w.writerow((issue.line, issue.outcome.value, issue.reason.value, issue.detail,
                          issue.record))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def issue_tables(tally: RowTally, shown: int) -> list[Table]:
    """The terminal's view of a run's problem rows (rich Tables): rows per reason, then the
    first `shown` issues (line, outcome, reason, detail; never the raw record). Empty when
    every row went in."""
    from rich.table import Table

    if not tally.by_reason:
        return []
    reasons = Table("reason", "rows", title="not imported, by reason")
    for reason, n in sorted(tally.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        reasons.add_row(reason, str(n))
    first = Table("line", "outcome", "reason", "detail",
                  title=f"first {min(shown, len(tally.issues))} of "
                        f"{tally.rejected + tally.skipped}")
    for issue in tally.issues[:shown]:
        first.add_row(str(issue.line), issue.outcome.value, issue.reason.value, issue.detail)
    return [reasons, first]


# ----------------------------------------------------------------------------- DNC files


@dataclass
class DncFileSummary:
    rows: int = 0
    valid: int = 0
    added: int = 0
    leads_stopped: int = 0
    blank_lines: int = 0
    issues: list[RowIssue] = field(default_factory=list)


def read_dnc_file(
    fh: IO[bytes], *, region: str, encoding: str = "utf-8", delimiter: str = "auto",
    summary: DncFileSummary,
) -> Iterator[tuple[str, str | None]]:
    """(E.164, reason) pairs of a DNC list file; bad lines go to `summary.issues`.

    The format is one number per line, optionally followed by a reason column. A first line
    whose first field is not a number (it has letters) is a header: then the column named like
    a phone column (see FIELD_ALIASES) holds the numbers and a `reason` column the reasons.
    """
    from db.dnc import normalise_number

    check_region(region)
    records = Records(fh, check_encoding(encoding), delimiter)
    phone_col, reason_col = 0, 1
    header_done = False
    for rec in records:
        if is_blank(rec):
            summary.blank_lines += 1
            continue
        if not header_done:
            header_done = True
            first = rec.fields[0] if rec.fields else ""
            if rec.encoding_error is None and re.search(r"[A-Za-z]", first) and not (
                    first.strip().startswith("+")):
                names = [norm_header(f) for f in rec.fields]
                phone_names = ("phone", *FIELD_ALIASES["phone"])
                phone_col = next((i for i, n in enumerate(names) if n in phone_names), 0)
                reason_col = next((i for i, n in enumerate(names) if n == "reason"), -1)
                continue
        summary.rows += 1
        if rec.encoding_error or rec.parse_error:
            reason = Reason.BAD_ENCODING if rec.encoding_error else Reason.BAD_ROW
            summary.issues.append(RowIssue(rec.line, Outcome.REJECTED, reason,
                                           rec.encoding_error or rec.parse_error or "",
                                           rec.text))
            continue
        raw = rec.fields[phone_col] if phone_col < len(rec.fields) else ""
        try:
            number = normalise_number(raw, region)
        except ValueError as e:
            reason = Reason.MISSING_FIELD if not raw.strip() else Reason.BAD_PHONE
            summary.issues.append(RowIssue(rec.line, Outcome.REJECTED, reason, str(e), rec.text))
            continue
        summary.valid += 1
        why = rec.fields[reason_col].strip() if 0 <= reason_col < len(rec.fields) else ""
        yield number, (why or None)
