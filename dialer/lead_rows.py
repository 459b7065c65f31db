"""Lead rows as pure code: column mapping, field validation, and the chunked row parser.

How a file's columns become lead fields, and what makes a row valid (docs/import.md has the
user's version): columns map to lead fields by name (with common aliases, see
`FIELD_ALIASES`) or by an explicit mapping `{"Column": "field"}`; every other column lands in
`custom_fields`. Each data row then passes (a `Row`, waiting for the database's duplicate and
do-not-call checks in dialer/importer.py) or is a `RowIssue` saying which field and why.

`LeadParser` is the synchronous half of an import: it runs in a worker thread, file ->
validated rows and issues, one chunk at a time. Nothing here touches the database.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import IO
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberFormat
from phonenumbers import timezone as pn_timezone

from common.vocabulary import LeadStatus
from dialer.lead_csv import (
    DELIMITERS,
    LeadImportError,
    Outcome,
    Reason,
    Record,
    Records,
    RowIssue,
    check_encoding,
    header_record,
    is_blank,
    record_fields,
)

__all__ = [
    "FIELD_ALIASES",
    "LEAD_FIELDS",
    "NAME_MAX",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "STATUS_ALIASES",
    "Batch",
    "ImportOptions",
    "LeadParser",
    "LeadValues",
    "Row",
    "RowRules",
    "ValueRows",
    "build_mapping",
    "canonical_zone",
    "check_region",
    "norm_header",
    "parse_when",
]

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
#: longest name or company name a lead may have
NAME_MAX = 200


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


# ----------------------------------------------------------------------------- column mapping


def norm_header(h: str) -> str:
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
        n = norm_header(names[i])
        if n in LEAD_FIELDS and n not in fields:
            fields[n] = i
            targets[i] = n
    for f, aliases in FIELD_ALIASES.items():
        if f in fields:
            continue
        hits = [i for i in free if i not in targets and norm_header(names[i]) in aliases]
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
class Row:
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
    #: the CRM's key of the lead (API upserts); None for file imports
    external_id: str | None = None


@dataclass
class Batch:
    rows: list[Row]
    issues: list[RowIssue]
    done: bool


class RowRules:
    """What makes a lead row valid, whatever it came in (a CSV record, a JSON object of the
    CRM API): `check` takes the row's field values as text and returns a `Row` or the
    `RowIssue` that says which field and why. Remembers the numbers (and external ids) seen,
    so a second row with one is skipped as a duplicate, and the companies the run creates."""

    #: what a row's number is called in issues: a file's "line", the API's "row" (index)
    unit = "line"

    def __init__(self, opts: ImportOptions, *, region: str, campaign_zone: str,
                 companies: Mapping[str, int]) -> None:
        self.region = region
        self.campaign_zone = campaign_zone
        self.create_companies = opts.create_companies
        self.companies = dict(companies)  # name -> id (grows as the import creates companies)
        self._folded: dict[str, list[str]] = {}
        for n in self.companies:
            self._folded.setdefault(n.casefold(), []).append(n)
        self.new_companies: dict[str, tuple[str, str | None]] = {}  # name -> (zone, country)
        self.blank_lines = 0
        self.rows = 0
        self._seen: dict[str, int] = {}  # E.164 -> line of the first valid row with it
        self._seen_ids: dict[str, int] = {}  # external id -> line of the first row with it

    def _issue(self, line: int, text: str, reason: Reason, detail: str,
               outcome: Outcome = Outcome.REJECTED) -> RowIssue:
        return RowIssue(line=line, outcome=outcome, reason=reason, detail=detail, record=text)

    def check(self, line: int, text: str, get: Callable[[str], str], custom: dict[str, str],
              external_id: str | None = None) -> Row | RowIssue:
        """One row: `get(field)` is the stripped text of a LEAD_FIELDS field ("" if none),
        `custom` the row's custom fields; `line` and `text` are what its issue reports."""
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
            return self._issue(line, text, problems[0][0], "; ".join(p[1] for p in problems))
        if external_id is not None:
            first_id = self._seen_ids.get(external_id)
            if first_id is not None:
                return self._issue(line, text, Reason.DUPLICATE_IN_FILE,
                                   f"same external_id as row {first_id}", Outcome.SKIPPED)
        first = self._seen.get(phone)
        if first is not None:
            return self._issue(line, text, Reason.DUPLICATE_IN_FILE,
                               f"same number as {self.unit} {first}", Outcome.SKIPPED)
        self._seen[phone] = line
        if external_id is not None:
            self._seen_ids[external_id] = line
        row = Row(
            line=line, text=text, phone=phone, name=name, company=company,
            timezone=tz, priority=priority, status=status, next_contact_at=next_contact,
            custom=custom, external_id=external_id,
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




class LeadParser(RowRules):
    """The synchronous half of a file import: file -> validated rows and issues, chunk by
    chunk (the rules are RowRules'; this maps CSV records to field values)."""

    def __init__(
        self, fh: IO[bytes], opts: ImportOptions, *, region: str, campaign_zone: str,
        companies: Mapping[str, int],
    ) -> None:
        super().__init__(opts, region=region, campaign_zone=campaign_zone, companies=companies)
        self.records = Records(fh, opts.encoding, opts.delimiter)
        self._it = iter(self.records)
        self.header_line = 0
        self.fields: dict[str, int] = {}
        self.custom: dict[str, int] = {}
        self.width = 0
        header, self.blank_lines = header_record(self._it)
        self.header_line = header.line
        self.width = len(header.fields)
        self.fields, self.custom = build_mapping(header.fields, opts.mapping)

    @property
    def bytes_read(self) -> int:
        return self.records.lines.bytes_read

    def next_batch(self, n: int) -> Batch:
        rows: list[Row] = []
        issues: list[RowIssue] = []
        for rec in self._it:
            if is_blank(rec):
                self.blank_lines += 1
                continue
            self.rows += 1
            got = self._validate(rec)
            if isinstance(got, RowIssue):
                issues.append(got)
            else:
                rows.append(got)
            if len(rows) + len(issues) >= n:
                return Batch(rows, issues, done=False)
        return Batch(rows, issues, done=True)

    def _validate(self, rec: Record) -> Row | RowIssue:
        fields = record_fields(self.records, rec, self.width)
        if isinstance(fields, RowIssue):
            return fields

        def get(f: str) -> str:
            idx = self.fields.get(f)
            return fields[idx].strip() if idx is not None else ""

        custom = {k: fields[i].strip() for k, i in self.custom.items() if fields[i].strip()}
        return self.check(rec.line, rec.text, get, custom)


class ValueRows(RowRules):
    """Lead rows given as field values (the CRM API's JSON objects), numbered from 0: the
    same rules and batches as a file's rows, so both go through one import."""

    unit = "row"

    def __init__(self, items: Sequence[LeadValues], opts: ImportOptions, *, region: str,
                 campaign_zone: str, companies: Mapping[str, int]) -> None:
        super().__init__(opts, region=region, campaign_zone=campaign_zone, companies=companies)
        self._items = items
        self._next = 0

    @property
    def bytes_read(self) -> int:
        return self._next

    def next_batch(self, n: int) -> Batch:
        rows: list[Row] = []
        issues: list[RowIssue] = []
        while self._next < len(self._items) and len(rows) + len(issues) < n:
            index = self._next
            item = self._items[index]
            self._next += 1
            self.rows += 1
            got = self.check(index, "", lambda f, v=item.values: v.get(f, "").strip(),
                             dict(item.custom), item.external_id)
            (issues if isinstance(got, RowIssue) else rows).append(got)  # type: ignore[arg-type]
        return Batch(rows, issues, done=self._next >= len(self._items))


@dataclass(frozen=True, slots=True)
class LeadValues:
    """One lead as field values: LEAD_FIELDS -> text, custom fields, the CRM's key."""

    values: Mapping[str, str]
    custom: Mapping[str, str] = field(default_factory=dict)
    external_id: str | None = None


@lru_cache(maxsize=256)
def _holiday_country(region: str | None) -> str | None:
    """The region if the `holidays` package knows its public holidays, else None."""
    if not region:
        return None
    import holidays

    return region if region in holidays.list_supported_countries() else None
