"""Reading a lead or DNC file into CSV records: encodings, separators, physical line numbers.

The reading rules (docs/import.md has the user's version):

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

Also here, because every later step speaks them: `LeadImportError` (nothing can be imported)
and `RowIssue` (one row that was not), with its `Outcome` and `Reason`, and `RowTally` (the
counts and kept issues of a run). They are shared by every row-by-row import: the lead import
(dialer/importer.py drives it) and the company import (dialer/cli_companies.py), which also
share `header_record` and `record_fields` (a record's fields, or the issue that rejects it).
Pure code, no I/O but the file handle it is given.
"""

from __future__ import annotations

import codecs
import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

__all__ = [
    "DELIMITERS",
    "LeadImportError",
    "Lines",
    "Outcome",
    "Reason",
    "Record",
    "Records",
    "RowIssue",
    "RowTally",
    "check_encoding",
    "header_record",
    "is_blank",
    "record_fields",
    "sniff_delimiter",
]

#: issues kept in memory on a RowTally (all of them go to the run's report sink)
KEPT_ISSUES = 1000

#: separator option -> character ("auto": sniffed from the header line)
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
    # the company import's (docs/import.md, "Company files")
    BAD_HOURS = "bad_hours"
    BAD_HOLIDAYS = "bad_holidays"
    BAD_CLOSURES = "bad_closures"
    BAD_SPECIAL_DAYS = "bad_special_days"
    BAD_CALENDAR = "bad_calendar"  # each field is fine, but the calendar never opens


@dataclass(frozen=True, slots=True)
class RowIssue:
    """One data row that was not imported. `record` is the row's raw text (for the report)."""

    line: int
    outcome: Outcome
    reason: Reason
    detail: str
    record: str


@dataclass(kw_only=True)
class RowTally:
    """The counts of a row-by-row import and its first KEPT_ISSUES issues, in line order."""

    #: data rows (non-blank records after the header)
    rows: int = 0
    rejected: int = 0
    skipped: int = 0
    blank_lines: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    issues: list[RowIssue] = field(default_factory=list)

    def add_issue(self, issue: RowIssue) -> None:
        if issue.outcome is Outcome.REJECTED:
            self.rejected += 1
        else:
            self.skipped += 1
        self.by_reason[issue.reason.value] += 1
        if len(self.issues) < KEPT_ISSUES:
            self.issues.append(issue)


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



# ----------------------------------------------------------------------------- reading records


@dataclass(frozen=True, slots=True)
class Record:
    line: int  # first physical line
    fields: list[str]
    text: str  # the raw lines of the record (line ends stripped at the end)
    encoding_error: str | None
    #: the CSV reader gave up on this record (e.g. an unclosed quote over the size limit)
    parse_error: str | None = None


class Lines:
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

    def __iter__(self) -> Lines:
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


class Records:
    """CSV records with physical line numbers and per-record decode errors."""

    def __init__(self, fh: IO[bytes], encoding: str, delimiter: str) -> None:
        self.lines = Lines(fh, encoding)
        first = self.lines.peek_first_nonblank()
        self.delimiter = DELIMITERS[delimiter] or sniff_delimiter(first or "")
        self._reader = csv.reader(self.lines, delimiter=self.delimiter, quotechar='"',
                                  doublequote=True, strict=False)

    def __iter__(self) -> Iterator[Record]:
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
            yield Record(line=start, fields=fields, text=text, encoding_error=bad,
                          parse_error=parse_error)

    def realign(self, rec: Record, width: int) -> list[str] | None:
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


def is_blank(rec: Record) -> bool:
    """A record with no data at all (an empty line, or only separators)."""
    return (rec.encoding_error is None and rec.parse_error is None
            and not any(f.strip() for f in rec.fields))


def header_record(records: Iterator[Record]) -> tuple[Record, int]:
    """The header (the first non-blank record) and the number of blank lines before it."""
    blank = 0
    for rec in records:
        if rec.encoding_error or rec.parse_error:
            raise LeadImportError(f"header: {rec.encoding_error or rec.parse_error}")
        if is_blank(rec):
            blank += 1
            continue
        return rec, blank
    raise LeadImportError("the file is empty (no header line)")


def record_fields(records: Records, rec: Record, width: int) -> list[str] | RowIssue:
    """A data record's `width` fields, or the issue rejecting it (`bad_encoding`, `bad_row`:
    unreadable, a NUL byte, a wrong number of fields with every separator)."""

    def issue(reason: Reason, detail: str) -> RowIssue:
        return RowIssue(line=rec.line, outcome=Outcome.REJECTED, reason=reason, detail=detail,
                        record=rec.text)

    if rec.encoding_error:
        return issue(Reason.BAD_ENCODING, rec.encoding_error)
    if rec.parse_error:
        return issue(Reason.BAD_ROW, rec.parse_error)
    if "\x00" in rec.text:
        return issue(Reason.BAD_ROW, "contains a NUL byte (is this a binary file?)")
    fields = records.realign(rec, width)
    if fields is None:
        sep = "tab" if records.delimiter == "\t" else repr(records.delimiter)
        return issue(Reason.BAD_ROW, f"expected {width} fields, found {len(rec.fields)} "
                                     f"(separator {sep})")
    return fields
