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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from common.vocabulary import DIALABLE_STATUSES
from db.audit import Actor
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
    LeadValues,
    Row,
    RowRules,
    ValueRows,
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
    "LeadValues",
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
    "import_rows",
    "import_values",
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
    #: API upserts (rows with an external_id): leads changed, and leads already as sent
    updated: int = 0
    unchanged: int = 0
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
    campaign, companies, region = await _context(sessions, opts, now)
    fh, size = await asyncio.to_thread(_open, path)
    try:
        parser = await asyncio.to_thread(
            LeadParser, fh, opts, region=region, campaign_zone=campaign.timezone or "UTC",
            companies=companies)
        summary = ImportSummary(
            campaign=campaign.name, delimiter=parser.records.delimiter,
            encoding=codecs.lookup(opts.encoding).name)
        progress = None if on_progress is None else (
            lambda: on_progress(parser.bytes_read, size))
        return await import_rows(sessions, campaign, parser, opts, summary, now=now,
                                 on_issue=on_issue, on_progress=progress)
    finally:
        fh.close()


async def import_values(
    sessions: Sessions,
    items: Sequence[LeadValues],
    opts: ImportOptions,
    *,
    now: datetime,
    on_issue: Callable[[RowIssue], None] | None = None,
    on_row: Callable[[Row, str, int], None] | None = None,
    analyze_after: int | None = ANALYZE_AFTER,
    audit_as: Actor | None = None,
) -> ImportSummary:
    """Import leads given as field values (the CRM API's bulk upsert) through the same rules
    and writes as a file: rows are numbered from 0 (`RowIssue.line` is the row's index).
    A row with an `external_id` is upserted by it: created, updated, or left unchanged when
    it says what the lead already says; `on_row(row, "created"|"updated"|"unchanged",
    lead_id)` hears every row that went in; `audit_as` writes each chunk's audit row in
    the chunk's transaction."""
    campaign, companies, region = await _context(sessions, opts, now)
    rows = ValueRows(items, opts, region=region, campaign_zone=campaign.timezone or "UTC",
                     companies=companies)
    summary = ImportSummary(campaign=campaign.name)
    return await import_rows(sessions, campaign, rows, opts, summary, now=now,
                             on_issue=on_issue, on_row=on_row, analyze_after=analyze_after,
                             audit_as=audit_as)


async def _context(sessions: Sessions, opts: ImportOptions,
                   now: datetime) -> tuple[Campaign, dict[str, int], str]:
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
    return campaign, companies, region


async def import_rows(
    sessions: Sessions,
    campaign: Campaign,
    source: LeadParser | ValueRows,
    opts: ImportOptions,
    summary: ImportSummary,
    *,
    now: datetime,
    on_issue: Callable[[RowIssue], None] | None = None,
    on_progress: Callable[[], None] | None = None,
    on_row: Callable[[Row, str, int], None] | None = None,
    analyze_after: int | None = ANALYZE_AFTER,
    audit_as: Actor | None = None,
) -> ImportSummary:
    """The one import: validated batches of `source` (a file's rows or the API's values) are
    written chunk by chunk; every row ends imported or reported to `on_issue`. After
    `analyze_after` rows written (None: never), PostgreSQL's statistics are refreshed."""
    ahead: asyncio.Future[Batch] | None = None
    try:
        # Pipeline: the worker thread parses chunk k+1 while chunk k is written, so phone
        # parsing overlaps the database's own work (the SQLite C library and PostgreSQL both
        # run without holding the GIL).
        ahead = asyncio.ensure_future(asyncio.to_thread(source.next_batch, opts.chunk_size))
        done = False
        while not done:
            batch = await ahead
            done = batch.done
            if not done:
                ahead = asyncio.ensure_future(
                    asyncio.to_thread(source.next_batch, opts.chunk_size))
            issues = list(batch.issues)
            if batch.rows:
                try:
                    issues += await _write_batch(sessions, campaign, source, batch.rows, now,
                                                 summary, on_row, audit_as)
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
                on_progress()
    finally:
        if ahead is not None and not ahead.done():
            # The worker thread cannot be cancelled: let it finish its chunk before the file
            # it reads is closed (its result is dropped; the error being raised matters).
            with contextlib.suppress(Exception):
                await asyncio.shield(ahead)
    summary.rows = source.rows
    summary.blank_lines = source.blank_lines
    if analyze_after is not None and summary.imported + summary.updated >= analyze_after:
        # fresh PostgreSQL planner statistics, or the hopper's hot query would be planned for
        # the table as it was before the import until autovacuum's next visit
        await analyze(sessions, "leads", after="import")
    log.info("import into campaign %s: %d rows, %d imported, %d updated, %d unchanged, "
             "%d rejected, %d skipped", summary.campaign, summary.rows, summary.imported,
             summary.updated, summary.unchanged, summary.rejected, summary.skipped)
    return summary


def _open(path: Path) -> tuple[IO[bytes], int]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by import_leads
        return fh, os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise LeadImportError(f"cannot read {path}: {e.strerror}") from None


async def _write_batch(
    sessions: Sessions, campaign: Campaign, parser: RowRules, rows: list[Row],
    now: datetime, summary: ImportSummary,
    on_row: Callable[[Row, str, int], None] | None = None,
    audit_as: Actor | None = None,
) -> list[RowIssue]:
    """Drop DNC numbers, create missing companies, insert the rest (and update the leads
    that rows with an `external_id` name); report what was skipped. With `audit_as`, the
    chunk's audit row (`leads.upsert`, its counts) is written in its transaction.

    Numbers already in the campaign are found by the INSERT itself (ON CONFLICT DO NOTHING
    RETURNING the rows it added), which always uses the unique index. A SELECT ... IN (...)
    pre-check would not: on PostgreSQL, a table growing during one import has stale planner
    statistics and every chunk's check becomes a sequential scan. The DNC check precedes
    everything, so a number that is both DNC and already present is reported as `dnc`.
    """
    issues: list[RowIssue] = []
    dup = f"number already in campaign {campaign.name!r}"
    updated: list[tuple[Row, int, str]] = []
    async with lead_import_batch(sessions) as tx:
        listed = await tx.dnc_listed([r.phone for r in rows])
        keep: list[Row] = []
        for r in rows:
            if r.phone in listed:
                issues.append(_skip(r, Reason.DNC, "number is on a do-not-call list"))
            else:
                keep.append(r)
        keyed = [r.external_id for r in keep if r.external_id is not None]
        known = await tx.by_external_id(campaign.id, keyed) if keyed else {}
        changes = [r for r in keep if r.external_id in known]
        keep = [r for r in keep if r.external_id not in known]
        moved = [r for r in changes if r.phone != known[r.external_id]["phone_e164"]]
        if moved:
            taken = await tx.in_campaign(campaign.id, [r.phone for r in moved])
            for r in [r for r in moved if r.phone in taken]:
                issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
            changes = [r for r in changes
                       if r.phone == known[r.external_id]["phone_e164"] or r.phone not in taken]
        founding = [r for r in keep if r.company is not None and r.company not in parser.companies]
        if founding:
            # Only a row that will really be added may create its company.
            present = await tx.in_campaign(campaign.id, [r.phone for r in founding])
            for r in [r for r in keep if r.phone in present]:
                issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
            keep = [r for r in keep if r.phone not in present]
        for r in [*keep, *changes]:
            if r.company is not None and r.company not in parser.companies:
                company_id = await tx.add_company(
                    name=r.company, timezone=r.new_company_zone or campaign.timezone or "UTC",
                    weekly_hours=DEFAULT_COMPANY_HOURS,
                    holiday_country=r.new_company_country, now=now)
                parser.company_created(r.company, company_id)
                summary.companies_created.append(r.company)
        edits: list[tuple[int, dict[str, Any]]] = []
        for r in changes:
            old = known[r.external_id]
            new = _changed_values(r, old, parser.companies, now)
            updated.append((r, old["id"], "updated" if new else "unchanged"))
            if new:
                edits.append((old["id"], new))
        if edits:
            await tx.update_leads(edits)
        inserted: dict[str, int] = {}
        if keep:
            values = [_lead_values(r, campaign.id, parser.companies, now) for r in keep]
            inserted = await tx.insert_leads(values, any_conflict=bool(keyed))
        if audit_as is not None:
            # in the chunk's own transaction: its rows and their audit row land together
            tx.audit(audit_as, "leads.upsert", f"campaign:{campaign.name}", {
                "rows": len(rows), "created": len(inserted), "updated": len(edits),
                "unchanged": len(changes) - len(edits),
                "skipped": len(rows) - len(inserted) - len(changes)}, now=now)
    for r, lead_id, result in updated:
        if result == "updated":
            summary.updated += 1
        else:
            summary.unchanged += 1
        if on_row is not None:
            on_row(r, result, lead_id)
    for r in keep:
        if r.phone in inserted:
            summary.imported += 1
            if on_row is not None:
                on_row(r, "created", inserted[r.phone])
        else:
            issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
    return issues


#: the lead columns an import sets, compared by an upsert to tell "unchanged" from "updated"
_UPSERT_COLUMNS = ("phone_e164", "name", "company_id", "timezone", "priority", "status",
                   "custom_fields", "next_contact_at")


def _changed_values(r: Row, old: Mapping[str, Any], companies: Mapping[str, int],
                    now: datetime) -> dict[str, Any]:
    """The columns an upsert row changes on its lead ({} when it changes nothing). A lead
    that becomes dialable is due now (or at its new next contact); one that stops being
    dialable is never called; a dialable one keeps the time scheduling gave it (a retry
    delay is not skipped by an update), unless a later next contact was agreed."""
    new = {"phone_e164": r.phone, "name": r.name,
           "company_id": companies[r.company] if r.company is not None else None,
           "timezone": r.timezone, "priority": r.priority, "status": r.status,
           "custom_fields": r.custom, "next_contact_at": r.next_contact_at}
    if all(old[k] == v for k, v in new.items()):
        return {}
    # every column, changed or not: one executemany UPDATE per shape of change
    out: dict[str, Any] = dict(new)
    was, dialable = old["status"] in DIALABLE_STATUSES, r.status in DIALABLE_STATUSES
    if dialable and not was:
        out["next_call_at"] = max(now, r.next_contact_at) if r.next_contact_at else now
        out["never_reason"] = None
    elif was and not dialable:
        out["next_call_at"] = None
        out["never_reason"] = f"status set to {r.status.value}"
    elif dialable and old["next_contact_at"] != r.next_contact_at and r.next_contact_at:
        out["next_call_at"] = max(r.next_contact_at, old["next_call_at"] or now)
    if old["status"] != r.status:
        out["hopper_tier"] = hopper_tier(callback_due=old["hopper_tier"] == 0,
                                         status=r.status,
                                         open_complaint=old["has_open_complaint"])
    out["updated_at"] = now
    return out


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
        "external_id": r.external_id,
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
