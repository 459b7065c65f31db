"""Property tests: whatever the file holds, the import never crashes and accounts for every row.

Run against real SQLite and PostgreSQL (the `db_url` fixture). Each example imports into its
own campaign of the same database, so examples are independent without a new server each.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db import dnc
from db.models import Campaign, Lead
from db.session import create_engine, session_factory
from dialer.importer import ImportOptions, ImportSummary, RowIssue, import_leads

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
_campaigns = itertools.count()

# Valid numbers, each written in several ways (duplicates must be found across spellings).
POOL = {
    "+14155550101": ["(415) 555-0101", "+1 415 555 0101", "415.555.0101", "4155550101"],
    "+12125550102": ["212-555-0102", "+12125550102"],
    "+442079460958": ["+44 20 7946 0958", "+442079460958"],
    "+37120000003": ["+371 2000 0003"],
    "+14155550104": ["415 555 0104"],
}
DNC_NUMBER = "+14155550104"
# Never valid numbers (too short, no digits, bad country code).
GARBAGE = ["12", "abc", "+0 123", "555", "++1", "1-800", "#", "", " "]
ZONES = {"": True, "Europe/Riga": True, "america/new_york": True, " Asia/Tokyo ": True,
         "UTC": True, "Mars/Base": False, "Europe": False}
PRIORITIES = {"": True, "0": True, "100": True, " 7 ": True, "101": False, "-1": False,
              "x": False, "1.5": False}
STATUSES = {"": True, "hot": True, "HOT": True, "cold": True, "done": True, "vip": False}

name_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00\r"),
        st.sampled_from([";", ",", '"', "\n", "\t", " "]),
    ),
    max_size=12,
)


@dataclass(frozen=True)
class Row:
    name: str
    phone: str
    phone_e164: str | None  # what it should parse to (None: must be rejected)
    zone: str
    priority: str
    status: str

    def fields(self) -> list[str]:
        return [self.name, self.phone, self.zone, self.priority, self.status]

    def valid(self) -> bool:
        n = self.name.strip()
        return (self.phone_e164 is not None and 0 < len(n) <= 200 and ZONES[self.zone]
                and PRIORITIES[self.priority] and STATUSES[self.status])


def _pick(values: dict[str, bool], valid: bool) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(v for v, ok in values.items() if ok or not valid))


@st.composite
def rows(draw: st.DrawFn) -> Row:
    """Valid rows six times in ten (so duplicates among them are common), else anything."""
    valid = draw(st.integers(0, 9)) < 6
    if valid or draw(st.booleans()):
        e164 = draw(st.sampled_from(sorted(POOL)))
        phone, parsed = draw(st.sampled_from(POOL[e164])), e164
    else:
        phone, parsed = draw(st.sampled_from(GARBAGE)), None
    names = st.sampled_from(["Anna", "Müller; Jürgen", 'Bob "B"', "Multi\nline", "a,b\tc"])
    name = draw(names if valid else st.one_of(names, name_text))
    return Row(name=name, phone=phone, phone_e164=parsed, zone=draw(_pick(ZONES, valid)),
               priority=draw(_pick(PRIORITIES, valid)), status=draw(_pick(STATUSES, valid)))


# Each item: a Row, "blank" (an empty line) or "badbytes" (a line that is not UTF-8).
items = st.lists(st.one_of(rows(), rows(), rows(), st.just("blank"), st.just("badbytes")),
                 min_size=1, max_size=30)


@dataclass
class Built:
    data: bytes
    data_lines: list[int]  # first physical line of every data row (non-blank record)
    rows_at: dict[int, Row]
    bad_lines: list[int]


def build(entries: list[Row | str], delimiter: str, newline: str, bom: bool) -> Built:
    out = io.BytesIO()
    if bom:
        out.write(b"\xef\xbb\xbf")
    out.write(delimiter.join(["name", "phone", "timezone", "priority", "status"]).encode()
              + newline.encode())
    line = 2
    built = Built(b"", [], {}, [])
    for e in entries:
        if e == "blank":
            out.write(newline.encode())
            line += 1
        elif e == "badbytes":
            out.write(b"Caf\xe9" + delimiter.encode() + b"+14155550101" + newline.encode())
            built.data_lines.append(line)
            built.bad_lines.append(line)
            line += 1
        else:
            assert isinstance(e, Row)
            buf = io.StringIO()
            csv.writer(buf, delimiter=delimiter, lineterminator=newline).writerow(e.fields())
            text = buf.getvalue()
            out.write(text.encode())
            if any(f.strip() for f in e.fields()):
                built.data_lines.append(line)
                built.rows_at[line] = e
            line += text.count("\n")
    built.data = out.getvalue()
    return built


def expected_imports(built: Built) -> dict[str, int]:
    """The oracle: the first valid row of each number imports, unless the number is DNC."""
    first: dict[str, int] = {}
    for line in sorted(built.rows_at):
        row = built.rows_at[line]
        if row.valid() and row.phone_e164 not in first:
            first[row.phone_e164] = line  # type: ignore[index]
    first.pop(DNC_NUMBER, None)
    return first


async def _import(url: str, data: bytes, tmp: str) -> tuple[ImportSummary, list[RowIssue], int]:
    from pathlib import Path

    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        name = f"prop{next(_campaigns)}"
        async with sessions.begin() as s:
            c = Campaign(name=name, caller_id="+14155550100")
            s.add(c)
            await s.flush()
            cid = c.id
        await dnc.add(sessions, DNC_NUMBER, now=NOW)
        path = Path(tmp) / f"{name}.csv"
        await asyncio.to_thread(path.write_bytes, data)
        issues: list[RowIssue] = []
        summary = await import_leads(sessions, path, ImportOptions(campaign=name, chunk_size=7),
                                     now=NOW, on_issue=issues.append)
        async with sessions() as s:
            stored = await s.scalar(
                select(func.count()).select_from(Lead).where(Lead.campaign_id == cid))
        return summary, issues, int(stored or 0)
    finally:
        await engine.dispose()


def _accounting(summary: ImportSummary, issues: list[RowIssue], stored: int) -> None:
    lines = [i.line for i in issues]
    assert lines == sorted(lines) and len(set(lines)) == len(lines)
    assert summary.rows == summary.imported + summary.rejected + summary.skipped
    assert len(issues) == summary.rejected + summary.skipped
    assert stored == summary.imported


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(entries=items, delimiter=st.sampled_from([";", ",", "\t"]),
       newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_every_row_is_imported_or_reported(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, entries: list[Row | str], delimiter: str,
    newline: str, bom: bool,
) -> None:
    built = build(entries, delimiter, newline, bom)
    tmp = str(tmp_path_factory.mktemp("prop"))
    summary, issues, stored = asyncio.run(_import(db_url, built.data, tmp))
    _accounting(summary, issues, stored)
    assert summary.rows == len(built.data_lines)
    reported = {i.line for i in issues}
    assert reported <= set(built.data_lines)
    imported_lines = set(built.data_lines) - reported
    want = expected_imports(built)
    assert imported_lines == set(want.values())
    reasons = {i.line: i.reason.value for i in issues}
    assert all(reasons[line] == "bad_encoding" for line in built.bad_lines)
    dnc_rows = [ln for ln, r in built.rows_at.items() if r.phone_e164 == DNC_NUMBER and r.valid()]
    if dnc_rows:
        assert reasons[min(dnc_rows)] == "dnc"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.binary(max_size=400), header=st.sampled_from([b"name;phone\n", b"phone,name\r\n"]))
def test_arbitrary_bytes_never_crash_the_import(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, body: bytes, header: bytes
) -> None:
    tmp = str(tmp_path_factory.mktemp("fuzz"))
    summary, issues, stored = asyncio.run(_import(db_url, header + body, tmp))
    _accounting(summary, issues, stored)
    physical = (header + body).count(b"\n") + 1
    assert all(2 <= i.line <= physical for i in issues)
