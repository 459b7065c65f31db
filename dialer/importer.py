"""Lead import: read a CSV file, validate every row, write good rows in chunks, report the rest.

What a file may look like (docs/import.md has the user's version):

* **Encoding.** UTF-8, with or without a byte-order mark, by default. A line that is not valid
  in the chosen encoding is *rejected* (reason `bad_encoding`, with the offending byte) rather
  than guessed at: a cp1252 guess turns a cp1251 (Cyrillic) file into silently wrong names.
  A whole file in another 8-bit encoding is read with `encoding="cp1252"` (or any ASCII-
  compatible codec). UTF-16 files are refused up front with a message saying to save as UTF-8.
* **Separators.** `,`, `;` or tab, sniffed from the header line (or given). A row whose field
  count is wrong with the file's separator but right with another one is read with that one,
  so a file glued together from a `;` export and a `,` export still imports.
* **Line numbers** are physical lines of the file, 1-based, the header being line 1 when it is
  the first line. Blank lines count; a record whose quoted field spans several lines is
  reported at its first line. Lines end with LF or CRLF.
* **Header.** The first non-blank record names the columns. Columns map to lead fields by name
  (with common aliases, see `FIELD_ALIASES`) or by an explicit mapping `{"Column": "field"}`;
  every other column lands in `custom_fields`.

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
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberFormat
from phonenumbers import timezone as pn_timezone
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.vocabulary import DIALABLE_STATUSES, LeadStatus
from db.dnc import listed_in_session
from db.models import Campaign, Company, Lead, hopper_tier

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]

#: the lead fields a column can be mapped to (anything else goes to custom_fields)
LEAD_FIELDS: tuple[str, ...] = (
    "phone", "name", "company", "timezone", "priority", "status", "next_contact_at",
)
#: header names (lower case, spaces/dashes as underscores) recognised without a mapping
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("phone_number", "phonenumber", "number", "telephone", "tel", "mobile", "msisdn",
              "e164", "phone_e164"),
    "name": ("full_name", "fullname", "contact", "contact_name", "person"),
    "company": ("company_name", "organisation", "organization", "firm", "client"),
    "timezone": ("time_zone", "tz", "zone"),
    "priority": ("prio",),
    "status": ("lead_status",),
    "next_contact_at": ("next_contact", "next_call", "callback_at", "next_contact_date"),
}
#: what a lead's `priority` may be (higher is called first)
PRIORITY_MIN, PRIORITY_MAX = 0, 100
#: status words accepted besides the LeadStatus values themselves (docs/domain.md's names)
STATUS_ALIASES: dict[str, LeadStatus] = {
    "cold": LeadStatus.POTENTIAL,
    "hot potential": LeadStatus.HOT,
    "hot_potential": LeadStatus.HOT,
    "customer": LeadStatus.SERVED,
    "accompanied": LeadStatus.SERVED,
}
#: Mon-Fri 09:00-17:00: the calendar given to a company created by an import
DEFAULT_COMPANY_HOURS: dict[str, list[list[str]]] = {
    d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
}
NAME_MAX = 200
#: after importing this many rows, refresh PostgreSQL's planner statistics (ANALYZE)
ANALYZE_AFTER = 1000
#: issues kept in memory on the summary (all of them go to the `on_issue` sink / report file)
KEPT_ISSUES = 1000
DELIMITERS = {"auto": "", ",": ",", ";": ";", "tab": "\t", "\t": "\t", "|": "|"}

_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class LeadImportError(Exception):
    """The import cannot run at all (no such campaign, unusable header, bad option...)."""


class Outcome(StrEnum):
    REJECTED = "rejected"  # bad data; fix the row and import again
    SKIPPED = "skipped"  # nothing wrong with the row, but it must not be added


class Reason(StrEnum):
    BAD_ENCODING = "bad_encoding"
    BAD_ROW = "bad_row"  # wrong number of fields, NUL bytes
    MISSING_FIELD = "missing_field"
    BAD_PHONE = "bad_phone"
    BAD_VALUE = "bad_value"  # too long
    BAD_COMPANY = "bad_company"
    BAD_TIMEZONE = "bad_timezone"
    BAD_PRIORITY = "bad_priority"
    BAD_STATUS = "bad_status"
    BAD_NEXT_CONTACT = "bad_next_contact"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    DUPLICATE_IN_DB = "duplicate_in_db"
    DNC = "dnc"


@dataclass(frozen=True, slots=True)
class RowIssue:
    """One data row that was not imported. `record` is the row's raw text (for the report)."""

    line: int
    outcome: Outcome
    reason: Reason
    detail: str
    record: str


@dataclass
class ImportSummary:
    campaign: str
    delimiter: str = ","
    encoding: str = "utf-8"
    #: data rows (non-blank records after the header)
    rows: int = 0
    imported: int = 0
    rejected: int = 0
    skipped: int = 0
    blank_lines: int = 0
    companies_created: list[str] = field(default_factory=list)
    by_reason: Counter[str] = field(default_factory=Counter)
    #: the first KEPT_ISSUES issues, in line order
    issues: list[RowIssue] = field(default_factory=list)

    def add_issue(self, issue: RowIssue) -> None:
        if issue.outcome is Outcome.REJECTED:
            self.rejected += 1
        else:
            self.skipped += 1
        self.by_reason[issue.reason.value] += 1
        if len(self.issues) < KEPT_ISSUES:
            self.issues.append(issue)


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """How to read a file. `mapping` maps file columns to LEAD_FIELDS, `custom.KEY` or `-`."""

    campaign: str
    mapping: Mapping[str, str] = field(default_factory=dict)
    #: region for numbers written without +country code; None = the campaign's default_region
    region: str | None = None
    delimiter: str = "auto"
    encoding: str = "utf-8"
    #: create companies the file names but the database lacks (else such rows are rejected)
    create_companies: bool = False
    chunk_size: int = 1000

    def __post_init__(self) -> None:
        if self.delimiter not in DELIMITERS:
            raise LeadImportError(
                f"delimiter {self.delimiter!r}: expected one of auto , ; tab |")
        check_encoding(self.encoding)
        if self.region is not None:
            check_region(self.region)
        if not 1 <= self.chunk_size <= 10_000:
            raise LeadImportError(f"chunk_size {self.chunk_size}: expected 1..10000")
        for col, target in self.mapping.items():
            _parse_target(col, target)


def check_encoding(encoding: str) -> str:
    """Refuse codecs the line reader cannot split (UTF-16/32) or that do not exist."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise LeadImportError(f"encoding {encoding!r}: unknown codec") from None
    if "\n".encode(info.name) != b"\n" or ",;".encode(info.name) != b",;":
        raise LeadImportError(
            f"encoding {encoding!r}: only ASCII-compatible encodings (utf-8, cp1252, "
            "iso-8859-1, cp1251, ...) can be read; save the file as UTF-8")
    return info.name


def check_region(region: str) -> str:
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise LeadImportError(
            f"region {region!r}: expected a two-letter region such as US, GB, LV")
    return region


def _parse_target(column: str, target: str) -> str | None:
    """Validate one mapping target; returns the field, 'custom:KEY', or None (ignore)."""
    t = target.strip()
    if t in ("-", "ignore"):
        return None
    if t.startswith(("custom.", "custom:")) and len(t) > len("custom."):
        return "custom:" + t[len("custom."):]
    if t in LEAD_FIELDS:
        return t
    raise LeadImportError(
        f"mapping {column}={target}: unknown field {target!r}; expected one of "
        f"{', '.join(LEAD_FIELDS)}, custom.KEY or - (ignore the column)")


# ----------------------------------------------------------------------------- reading records


@dataclass(frozen=True, slots=True)
class _Record:
    line: int  # first physical line
    fields: list[str]
    text: str  # the raw lines of the record (line ends stripped at the end)
    encoding_error: str | None
    #: the CSV reader gave up on this record (e.g. an unclosed quote over the size limit)
    parse_error: str | None = None


class _Lines:
    """Decoded physical lines of a binary file, with their numbers and decode failures.

    Lines are split on LF in bytes, so a decode failure is confined to its own line. Lines can
    be peeked (for sniffing) and are then replayed to the CSV reader.
    """

    def __init__(self, fh: IO[bytes], encoding: str) -> None:
        self._fh = fh
        self._encoding = encoding
        self._read = 0  # physical lines read from the file
        self._replay: list[str] = []
        self.yielded = 0  # lines handed to the CSV reader
        self.bytes_read = 0
        self.bad: dict[int, str] = {}
        self.pending: list[str] = []  # lines of the record the CSV reader is on

    def _read_line(self) -> str | None:
        raw = self._fh.readline()
        if not raw:
            return None
        self._read += 1
        self.bytes_read += len(raw)
        if self._read == 1:
            if raw.startswith(_UTF16_BOMS):
                raise LeadImportError(
                    "the file is UTF-16 (Excel 'Unicode text'); save it as CSV UTF-8")
            if raw.startswith(_BOM):
                raw = raw[len(_BOM):]
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as e:
            self.bad[self._read] = (
                f"line {self._read} is not valid {self._encoding} (byte 0x{raw[e.start]:02X} at "
                f"position {e.start + 1}); save the file as UTF-8 or give its encoding"
            )
            return raw.decode(self._encoding, errors="replace")

    def peek_first_nonblank(self) -> str | None:
        while True:
            line = self._read_line()
            if line is None:
                return None
            self._replay.append(line)
            if line.strip():
                return line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._replay:
            line = self._replay.pop(0)
        else:
            got = self._read_line()
            if got is None:
                raise StopIteration
            line = got
        self.yielded += 1
        self.pending.append(line)
        return line


def sniff_delimiter(line: str) -> str:
    """The separator of a header line: the most frequent of , ; tab outside quotes."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] else ","


class _Records:
    """CSV records with physical line numbers and per-record decode errors."""

    def __init__(self, fh: IO[bytes], encoding: str, delimiter: str) -> None:
        self.lines = _Lines(fh, encoding)
        first = self.lines.peek_first_nonblank()
        self.delimiter = DELIMITERS[delimiter] or sniff_delimiter(first or "")
        self._reader = csv.reader(self.lines, delimiter=self.delimiter, quotechar='"',
                                  doublequote=True, strict=False)

    def __iter__(self) -> Iterator[_Record]:
        prev = 0
        while True:
            parse_error = None
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as e:  # e.g. a runaway quoted field over the size limit
                fields, parse_error = [], f"unreadable CSV record: {e}"
            start, end = prev + 1, self.lines.yielded
            prev = end
            text = "".join(self.lines.pending).rstrip("\r\n")
            self.lines.pending.clear()
            bad = next((self.lines.bad[n] for n in range(start, end + 1) if n in self.lines.bad),
                       None)
            yield _Record(line=start, fields=fields, text=text, encoding_error=bad,
                          parse_error=parse_error)

    def realign(self, rec: _Record, width: int) -> list[str] | None:
        """The record's fields if they fit `width` columns, trying other separators too."""
        fields = _fit(rec.fields, width)
        if fields is not None:
            return fields
        for alt in (",", ";", "\t"):
            if alt == self.delimiter:
                continue
            rows = list(csv.reader(rec.text.splitlines(keepends=True), delimiter=alt,
                                   quotechar='"', doublequote=True, strict=False))
            if len(rows) == 1:
                fields = _fit(rows[0], width)
                if fields is not None:
                    return fields
        return None


def _fit(fields: list[str], width: int) -> list[str] | None:
    if len(fields) == width:
        return fields
    if len(fields) > width and not any(f.strip() for f in fields[width:]):
        return fields[:width]  # trailing empty columns, as spreadsheets write them
    return None


def _is_blank(rec: _Record) -> bool:
    """A record with no data at all (an empty line, or only separators)."""
    return (rec.encoding_error is None and rec.parse_error is None
            and not any(f.strip() for f in rec.fields))


# ----------------------------------------------------------------------------- column mapping


def _norm_header(h: str) -> str:
    return re.sub(r"[\s\-]+", "_", h.strip().lower())


def build_mapping(
    headers: Sequence[str], explicit: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, int]]:
    """(field -> column index, custom key -> column index) for a header row."""
    names = [h.strip() or f"column_{i + 1}" for i, h in enumerate(headers)]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise LeadImportError(
                f"column name {n!r} appears twice in the header (columns {seen[n] + 1} and "
                f"{i + 1}); rename one")
        seen[n] = i
    targets: dict[int, str | None] = {}
    for col, target in explicit.items():
        idx = seen.get(col)
        if idx is None:
            folded = [i for i, n in enumerate(names) if n.casefold() == col.strip().casefold()]
            if len(folded) != 1:
                raise LeadImportError(
                    f"mapping {col}={target}: the file has no column {col!r}; its columns are "
                    f"{', '.join(repr(n) for n in names)}")
            idx = folded[0]
        targets[idx] = _parse_target(col, target)
    fields: dict[str, int] = {}
    for idx, t in targets.items():
        if t is not None and not t.startswith("custom:"):
            if t in fields:
                raise LeadImportError(
                    f"columns {names[fields[t]]!r} and {names[idx]!r} are both mapped to {t}")
            fields[t] = idx
    # Unmapped columns: exact field names first, then aliases (ambiguity is an error).
    free = [i for i in range(len(names)) if i not in targets]
    for i in free:
        n = _norm_header(names[i])
        if n in LEAD_FIELDS and n not in fields:
            fields[n] = i
            targets[i] = n
    for f, aliases in FIELD_ALIASES.items():
        if f in fields:
            continue
        hits = [i for i in free if i not in targets and _norm_header(names[i]) in aliases]
        if len(hits) > 1:
            cols = " and ".join(repr(names[i]) for i in hits)
            raise LeadImportError(
                f"columns {cols} could both be the {f}; choose one with --map COLUMN={f}")
        if hits:
            fields[f] = hits[0]
            targets[hits[0]] = f
    custom: dict[str, int] = {}
    for i, n in enumerate(names):
        if i not in targets:
            custom[n] = i
        elif (t := targets[i]) is not None and t.startswith("custom:"):
            custom[t[len("custom:"):]] = i
    if "phone" not in fields:
        raise LeadImportError(
            f"no column holds the phone number; columns are {', '.join(repr(n) for n in names)}"
            "; name one 'phone' or use --map COLUMN=phone")
    if "name" not in fields and "company" not in fields:
        raise LeadImportError(
            "no column holds the lead's name or company; name one 'name' (or 'company') or use "
            "--map COLUMN=name")
    return fields, custom


# ----------------------------------------------------------------------------- row validation


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    keys = zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"}
    return {k.casefold(): k for k in keys}


def canonical_zone(value: str) -> str | None:
    """The IANA key for a zone name (case-insensitive), or None if there is no such zone."""
    return _zones().get(value.strip().casefold())


_DMY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def parse_when(value: str, zone: str) -> datetime:
    """ISO 8601 date or date-time, or DD.MM.YYYY [HH:MM]; naive values are in `zone`."""
    v = value.strip()
    m = _DMY.match(v)
    try:
        if m:
            d, mo, y, hh, mm, ss = m.groups()
            dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            dt = datetime.combine(datetime.fromisoformat(v).date(), time(0, 0))
        else:
            dt = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(
            f"expected a date/time like 2026-12-01 14:30 or 01.12.2026, got {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(zone))
    return dt.astimezone(UTC)


@dataclass(slots=True)
class _Row:
    """A row that passed validation, waiting for its DB checks (duplicates, DNC)."""

    line: int
    text: str
    phone: str
    name: str
    company: str | None  # canonical company name
    timezone: str | None
    priority: int
    status: LeadStatus
    next_contact_at: datetime | None
    custom: dict[str, str]
    new_company_zone: str | None = None
    new_company_country: str | None = None


@dataclass
class _Batch:
    rows: list[_Row]
    issues: list[RowIssue]
    done: bool


class _LeadParser:
    """The synchronous half of an import: file -> validated rows and issues, chunk by chunk."""

    def __init__(
        self, fh: IO[bytes], opts: ImportOptions, *, region: str, campaign_zone: str,
        companies: Mapping[str, int],
    ) -> None:
        self.region = region
        self.campaign_zone = campaign_zone
        self.create_companies = opts.create_companies
        self.companies = dict(companies)  # name -> id (grows as the import creates companies)
        self._folded: dict[str, list[str]] = {}
        for n in self.companies:
            self._folded.setdefault(n.casefold(), []).append(n)
        self.new_companies: dict[str, tuple[str, str | None]] = {}  # name -> (zone, country)
        self.records = _Records(fh, opts.encoding, opts.delimiter)
        self._it = iter(self.records)
        self.blank_lines = 0
        self.rows = 0
        self._seen: dict[str, int] = {}  # E.164 -> line of the first valid row with it
        self.header_line = 0
        self.fields: dict[str, int] = {}
        self.custom: dict[str, int] = {}
        self.width = 0
        for rec in self._it:
            if rec.encoding_error or rec.parse_error:
                raise LeadImportError(f"header: {rec.encoding_error or rec.parse_error}")
            if _is_blank(rec):
                self.blank_lines += 1
                continue
            self.header_line = rec.line
            self.width = len(rec.fields)
            self.fields, self.custom = build_mapping(rec.fields, opts.mapping)
            break
        else:
            raise LeadImportError("the file is empty (no header line)")

    @property
    def bytes_read(self) -> int:
        return self.records.lines.bytes_read

    def next_batch(self, n: int) -> _Batch:
        rows: list[_Row] = []
        issues: list[RowIssue] = []
        for rec in self._it:
            if _is_blank(rec):
                self.blank_lines += 1
                continue
            self.rows += 1
            got = self._validate(rec)
            if isinstance(got, RowIssue):
                issues.append(got)
            else:
                rows.append(got)
            if len(rows) + len(issues) >= n:
                return _Batch(rows, issues, done=False)
        return _Batch(rows, issues, done=True)

    def _issue(self, rec: _Record, reason: Reason, detail: str,
               outcome: Outcome = Outcome.REJECTED) -> RowIssue:
        return RowIssue(line=rec.line, outcome=outcome, reason=reason, detail=detail,
                        record=rec.text)

    def _validate(self, rec: _Record) -> _Row | RowIssue:
        if rec.encoding_error:
            return self._issue(rec, Reason.BAD_ENCODING, rec.encoding_error)
        if rec.parse_error:
            return self._issue(rec, Reason.BAD_ROW, rec.parse_error)
        if "\x00" in rec.text:
            return self._issue(rec, Reason.BAD_ROW, "contains a NUL byte (is this a binary file?)")
        fields = self.records.realign(rec, self.width)
        if fields is None:
            return self._issue(
                rec, Reason.BAD_ROW,
                f"expected {self.width} fields, found {len(rec.fields)} (separator "
                f"{'tab' if self.records.delimiter == chr(9) else self.records.delimiter!r})")

        def get(f: str) -> str:
            idx = self.fields.get(f)
            return fields[idx].strip() if idx is not None else ""

        problems: list[tuple[Reason, str]] = []
        phone_raw = get("phone")
        phone = ""
        number: phonenumbers.PhoneNumber | None = None
        if not phone_raw:
            problems.append((Reason.MISSING_FIELD, "phone is empty"))
        else:
            try:
                number = phonenumbers.parse(phone_raw, self.region)
            except phonenumbers.NumberParseException as e:
                problems.append((Reason.BAD_PHONE, f"not a phone number ({e._msg})"))
            else:
                # Fast path: most numbers belong to the default region, and checking one
                # region is ~10x cheaper than is_valid_number's walk over every region that
                # shares the country code (25 for +1).
                if not (phonenumbers.is_valid_number_for_region(number, self.region)
                        or phonenumbers.is_valid_number(number)):
                    where = "" if phone_raw.startswith("+") else f" for region {self.region}"
                    problems.append((Reason.BAD_PHONE, f"not a valid phone number{where}"))
                    number = None
                else:
                    phone = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        name, company_raw = get("name"), get("company")
        if not name and not company_raw:
            problems.append((Reason.MISSING_FIELD, "name is empty (a lead needs a name or a "
                                                    "company)"))
        elif len(name) > NAME_MAX:
            problems.append((Reason.BAD_VALUE, f"name is longer than {NAME_MAX} characters"))
        company: str | None = None
        if company_raw:
            company = self._company(company_raw, problems)
        tz_raw = get("timezone")
        tz: str | None = None
        if tz_raw:
            tz = canonical_zone(tz_raw)
            if tz is None:
                problems.append((Reason.BAD_TIMEZONE, f"unknown time zone {tz_raw[:64]!r}"))
        prio_raw = get("priority")
        priority = 0
        if prio_raw:
            if re.fullmatch(r"[+-]?\d{1,6}", prio_raw) and (
                    PRIORITY_MIN <= int(prio_raw) <= PRIORITY_MAX):
                priority = int(prio_raw)
            else:
                problems.append((Reason.BAD_PRIORITY,
                                 f"priority must be a whole number {PRIORITY_MIN}-{PRIORITY_MAX},"
                                 f" got {prio_raw[:20]!r}"))
        status_raw = get("status")
        status = LeadStatus.POTENTIAL
        if status_raw:
            key = status_raw.casefold()
            try:
                status = STATUS_ALIASES.get(key) or LeadStatus(key)
            except ValueError:
                allowed = ", ".join(s.value for s in LeadStatus)
                problems.append((Reason.BAD_STATUS,
                                 f"unknown status {status_raw[:30]!r}; expected one of {allowed}"))
        nca_raw = get("next_contact_at")
        next_contact: datetime | None = None
        if nca_raw:
            try:
                next_contact = parse_when(nca_raw, tz or self.campaign_zone)
            except (ValueError, OverflowError) as e:
                problems.append((Reason.BAD_NEXT_CONTACT, str(e)[:200]))
        if problems:
            return self._issue(rec, problems[0][0], "; ".join(p[1] for p in problems))
        first = self._seen.get(phone)
        if first is not None:
            return self._issue(rec, Reason.DUPLICATE_IN_FILE, f"same number as line {first}",
                               Outcome.SKIPPED)
        self._seen[phone] = rec.line
        row = _Row(
            line=rec.line, text=rec.text, phone=phone, name=name, company=company,
            timezone=tz, priority=priority, status=status, next_contact_at=next_contact,
            custom={k: fields[i].strip() for k, i in self.custom.items() if fields[i].strip()},
        )
        if company is not None and company not in self.companies:
            zone, country = self.new_companies.get(company) or self._zone_country(tz, number)
            self.new_companies.setdefault(company, (zone, country))
            row.new_company_zone, row.new_company_country = zone, country
        return row

    def _company(self, raw: str, problems: list[tuple[Reason, str]]) -> str | None:
        if len(raw) > NAME_MAX:
            problems.append((Reason.BAD_COMPANY,
                             f"company name is longer than {NAME_MAX} characters"))
            return None
        if raw in self.companies or raw in self.new_companies:
            return raw
        folded = self._folded.get(raw.casefold(), [])
        if len(folded) == 1:
            return folded[0]
        if self.create_companies:
            for n in self.new_companies:
                if n.casefold() == raw.casefold():
                    return n
            return raw
        problems.append((Reason.BAD_COMPANY,
                         f"unknown company {raw!r}; create it first or import with "
                         "--create-companies"))
        return None

    def _zone_country(
        self, tz: str | None, number: phonenumbers.PhoneNumber | None
    ) -> tuple[str, str | None]:
        country = phonenumbers.region_code_for_number(number) if number else None
        zone = tz
        if zone is None and number is not None:
            zones = [z for z in pn_timezone.time_zones_for_number(number) if canonical_zone(z)]
            if len(zones) == 1:
                zone = zones[0]
        return zone or self.campaign_zone, _holiday_country(country)

    def company_created(self, name: str, company_id: int) -> None:
        # Called on the event loop while the worker thread may be parsing the next chunk: the
        # name is added to `companies` and never removed from `new_companies`, so the parser
        # always finds it in one of the two (single dict operations are atomic under the GIL).
        self.companies[name] = company_id
        self._folded.setdefault(name.casefold(), []).append(name)


@lru_cache(maxsize=256)
def _holiday_country(region: str | None) -> str | None:
    """The region if the `holidays` package knows its public holidays, else None."""
    if not region:
        return None
    import holidays

    return region if region in holidays.list_supported_countries() else None


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
        async with sessions() as s:
            campaign = await s.scalar(select(Campaign).where(Campaign.name == opts.campaign))
            companies = {n: i for i, n in (await s.execute(select(Company.id, Company.name)))}
    except SQLAlchemyError as e:
        raise LeadImportError(db_error_hint(e)) from e
    except OSError as e:  # the driver could not connect (asyncpg raises these unwrapped)
        raise LeadImportError(f"cannot reach the database: {e}") from e
    if campaign is None:
        raise LeadImportError(
            f"no campaign named {opts.campaign!r}; create it with `dialer campaigns create`")
    region = opts.region or campaign.default_region or "US"
    check_region(region)
    fh, size = await asyncio.to_thread(_open, path)
    ahead: asyncio.Future[_Batch] | None = None
    try:
        parser = await asyncio.to_thread(
            _LeadParser, fh, opts, region=region, campaign_zone=campaign.timezone or "UTC",
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
                except SQLAlchemyError as e:
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
        await _analyze(sessions, "leads")
    log.info("import into campaign %s: %d rows, %d imported, %d rejected, %d skipped",
             summary.campaign, summary.rows, summary.imported, summary.rejected, summary.skipped)
    return summary


async def _analyze(sessions: Sessions, table: str) -> None:
    """Refresh PostgreSQL's planner statistics after a bulk load.

    Autovacuum gets there within a minute or so; until then the hopper's hot query would be
    planned for the table as it was before the import. SQLite plans from its indexes and
    needs nothing here. A failure only costs speed, so it is logged, not raised.
    """
    try:
        async with sessions() as s:
            if s.get_bind().dialect.name != "postgresql":
                return
            await s.execute(text(f"ANALYZE {table}"))
            await s.commit()
    except SQLAlchemyError as e:
        log.warning("ANALYZE %s after import failed: %s", table, e)


def _open(path: Path) -> tuple[IO[bytes], int]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by import_leads
        return fh, os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise LeadImportError(f"cannot read {path}: {e.strerror}") from None


def _insert(s: AsyncSession, table: Any, conflict: list[str]) -> Any:
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=conflict)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=conflict)


async def _write_batch(
    sessions: Sessions, campaign: Campaign, parser: _LeadParser, rows: list[_Row],
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
    leads = Lead.__table__
    dup = f"number already in campaign {campaign.name!r}"
    async with sessions.begin() as s:
        listed = await listed_in_session(s, [r.phone for r in rows])
        keep: list[_Row] = []
        for r in rows:
            if r.phone in listed:
                issues.append(_skip(r, Reason.DNC, "number is on a do-not-call list"))
            else:
                keep.append(r)
        founding = [r for r in keep if r.company is not None and r.company not in parser.companies]
        if founding:
            # Only a row that will really be added may create its company.
            present = set((await s.scalars(
                select(Lead.phone_e164).where(Lead.campaign_id == campaign.id,
                                              Lead.phone_e164.in_([r.phone for r in founding]))
            )).all())
            for r in [r for r in keep if r.phone in present]:
                issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
            keep = [r for r in keep if r.phone not in present]
            for r in keep:
                if r.company is not None and r.company not in parser.companies:
                    company = Company(
                        name=r.company, timezone=r.new_company_zone or campaign.timezone or "UTC",
                        weekly_hours=DEFAULT_COMPANY_HOURS,
                        holiday_country=r.new_company_country, created_at=now)
                    s.add(company)
                    await s.flush()
                    parser.company_created(r.company, company.id)
                    summary.companies_created.append(r.company)
        if not keep:
            return issues
        values = [_lead_values(r, campaign.id, parser.companies, now) for r in keep]
        stmt = _insert(s, leads, ["campaign_id", "phone_e164"]).returning(leads.c.phone_e164)
        inserted = set((await s.scalars(stmt, values)).all())
    for r in keep:
        if r.phone in inserted:
            summary.imported += 1
        else:
            issues.append(_skip(r, Reason.DUPLICATE_IN_DB, dup))
    return issues


def _skip(r: _Row, reason: Reason, detail: str) -> RowIssue:
    return RowIssue(line=r.line, outcome=Outcome.SKIPPED, reason=reason, detail=detail,
                    record=r.text)


def _lead_values(
    r: _Row, campaign_id: int, companies: Mapping[str, int], now: datetime
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


def db_error_hint(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e)
    if "no such table" in text or "does not exist" in text:
        return "the database has no dialer schema; run `dialer db upgrade` first"
    return f"{e.__class__.__name__}: {text.splitlines()[0] if text else ''}"


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
    records = _Records(fh, check_encoding(encoding), delimiter)
    phone_col, reason_col = 0, 1
    header_done = False
    for rec in records:
        if _is_blank(rec):
            summary.blank_lines += 1
            continue
        if not header_done:
            header_done = True
            first = rec.fields[0] if rec.fields else ""
            if rec.encoding_error is None and re.search(r"[A-Za-z]", first) and not (
                    first.strip().startswith("+")):
                names = [_norm_header(f) for f in rec.fields]
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
