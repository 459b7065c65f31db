"""Lead import against real SQLite and PostgreSQL: the exact report of a messy file, re-import,
mapping, companies, encodings, statuses and dates, regions, chunk boundaries."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import LeadStatus
from db import dnc
from db.models import Campaign, Company, Lead
from db.session import session_factory
from dialer.importer import (
    REPORT_COLUMNS,
    CsvReport,
    ImportOptions,
    ImportSummary,
    LeadImportError,
    RowIssue,
    import_leads,
)

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)

# A file as people really send them. Physical lines are numbered on the right; the header is
# line 1. Line 4 uses ',' where the rest use ';'; lines 7-8 are one record (a quoted name with
# a line break); line 9 is cp1252, not UTF-8; line 21 ends in LF only; line 22 has no newline.
MESSY = b"".join([
    b"\xef\xbb\xbfname;phone;company;timezone;priority;status;next_contact_at;city\r\n",  # 1
    b'"Smith; Anna";(415) 555-0101;Acme;America/New_York;5;hot;;Riga\r\n',  # 2
    b"\r\n",  # 3 blank
    b"Bob Jones,+1 415 555 0102,,,,,,Boston\r\n",  # 4 other separator
    b"Carl;12345;;;;;;\r\n",  # 5 bad number
    b"Dora;(415) 555-0101;;;;;;\r\n",  # 6 duplicate of line 2
    b'"Eve\r\nSecond line";415-555-0103;;Mars/Olympus;;;;\r\n',  # 7-8 bad zone
    b"M\xfcller;415 555 0104;;;;;;\r\n",  # 9 not UTF-8
    b";4155550105;;;;;;\r\n",  # 10 no name, no company
    b"Finn;;;;;;;\r\n",  # 11 no phone
    b"Gus;4155550106;Nope Inc;;;;;\r\n",  # 12 unknown company
    b"Hal;4155550107;;;high;;;\r\n",  # 13 bad priority
    b"Ivy;4155550108;;;;vip;;\r\n",  # 14 bad status
    b"Jo;4155550109;;;;;31.02.2026;\r\n",  # 15 impossible date
    b"Kim;4155550110;;\r\n",  # 16 too few fields
    b";;;;;;;\r\n",  # 17 only separators: blank
    b"Lee;+14155550111;;;;;;\r\n",  # 18 on the DNC list
    b"Max;+14155550199;;;;;;\r\n",  # 19 already in the campaign
    b"Ned;+44 20 7946 0958;;Europe/London;;served;2026-12-01 10:00;London\r\n",  # 20
    b'"Oda ""The Boss""";+14155550112;;;;;;\n',  # 21
    b"Pia;4155550101;;;;;;",  # 22 duplicate of line 2, last line without newline
])

R, S = "rejected", "skipped"
EXPECTED_ISSUES = [
    (5, R, "bad_phone", "not a valid phone number for region US", "Carl;12345;;;;;;"),
    (6, S, "duplicate_in_file", "same number as line 2", "Dora;(415) 555-0101;;;;;;"),
    (7, R, "bad_timezone", "unknown time zone 'Mars/Olympus'",
     '"Eve\r\nSecond line";415-555-0103;;Mars/Olympus;;;;'),
    (9, R, "bad_encoding",
     "line 9 is not valid utf-8 (byte 0xFC at position 2); save the file as UTF-8 or give its "
     "encoding", "M\ufffdller;415 555 0104;;;;;;"),
    (10, R, "missing_field", "name is empty (a lead needs a name or a company)",
     ";4155550105;;;;;;"),
    (11, R, "missing_field", "phone is empty", "Finn;;;;;;;"),
    (12, R, "bad_company", "unknown company 'Nope Inc'; create it first or import with "
     "--create-companies", "Gus;4155550106;Nope Inc;;;;;"),
    (13, R, "bad_priority", "priority must be a whole number 0-100, got 'high'",
     "Hal;4155550107;;;high;;;"),
    (14, R, "bad_status", "unknown status 'vip'; expected one of potential, hot, served, done, "
     "exhausted, dnc, invalid", "Ivy;4155550108;;;;vip;;"),
    (15, R, "bad_next_contact",
     "expected a date/time like 2026-12-01 14:30 or 01.12.2026, got '31.02.2026'",
     "Jo;4155550109;;;;;31.02.2026;"),
    (16, R, "bad_row", "expected 8 fields, found 4 (separator ';')", "Kim;4155550110;;"),
    (18, S, "dnc", "number is on a do-not-call list", "Lee;+14155550111;;;;;;"),
    (19, S, "duplicate_in_db", "number already in campaign 'spring'", "Max;+14155550199;;;;;;"),
    (22, S, "duplicate_in_file", "same number as line 2", "Pia;4155550101;;;;;;"),
]


async def _campaign(engine: AsyncEngine, name: str = "spring", **kw: Any) -> int:
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        c = Campaign(name=name, caller_id="+14155550100", **kw)
        s.add(c)
        await s.flush()
        return c.id


async def _run(engine: AsyncEngine, path: Path, **kw: Any) -> tuple[ImportSummary, list[RowIssue]]:
    issues: list[RowIssue] = []
    opts = ImportOptions(campaign=kw.pop("campaign", "spring"), **kw)
    summary = await import_leads(session_factory(engine), path, opts, now=NOW,
                                 on_issue=issues.append)
    return summary, issues


def _as_tuples(issues: list[RowIssue]) -> list[tuple[Any, ...]]:
    return [(i.line, i.outcome.value, i.reason.value, i.detail, i.record) for i in issues]


async def _leads(engine: AsyncEngine, campaign_id: int | None = None) -> dict[str, Lead]:
    async with session_factory(engine)() as s:
        stmt = select(Lead)
        if campaign_id is not None:
            stmt = stmt.where(Lead.campaign_id == campaign_id)
        return {lead.phone_e164: lead for lead in (await s.scalars(stmt)).all()}


async def test_messy_file_gives_the_exact_report(db_engine: AsyncEngine, tmp_path: Path) -> None:
    cid = await _campaign(db_engine)
    sessions = session_factory(db_engine)
    async with sessions.begin() as s:
        s.add(Company(name="Acme", timezone="America/New_York"))
        s.add(Lead(campaign_id=cid, phone_e164="+14155550199", name="old", next_call_at=NOW))
    await dnc.add(sessions, "+14155550111", now=NOW, reason="asked")
    path = tmp_path / "messy.csv"
    path.write_bytes(MESSY)
    report_path = tmp_path / "report.csv"
    with CsvReport(report_path) as report:
        issues: list[RowIssue] = []

        def sink(issue: RowIssue) -> None:
            issues.append(issue)
            report(issue)

        summary = await import_leads(sessions, path, ImportOptions(campaign="spring"), now=NOW,
                                     on_issue=sink)

    assert _as_tuples(issues) == EXPECTED_ISSUES
    assert (summary.rows, summary.imported, summary.rejected, summary.skipped) == (18, 4, 10, 4)
    assert summary.blank_lines == 2
    assert summary.delimiter == ";"
    assert summary.by_reason["missing_field"] == 2
    # The report file says the same, readable by any CSV reader (and Excel: UTF-8 with BOM).
    assert report_path.read_bytes().startswith(b"\xef\xbb\xbf")
    text = report_path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(text.splitlines(keepends=True)))
    assert tuple(rows[0]) == REPORT_COLUMNS
    assert [tuple(r) for r in rows[1:]] == [
        (str(line), o, r, d, rec) for line, o, r, d, rec in EXPECTED_ISSUES]

    leads = await _leads(db_engine, cid)
    assert sorted(leads) == ["+14155550101", "+14155550102", "+14155550112", "+14155550199",
                             "+442079460958"]
    anna = leads["+14155550101"]
    assert (anna.name, anna.timezone, anna.priority, anna.status) == (
        "Smith; Anna", "America/New_York", 5, LeadStatus.HOT)
    assert anna.custom_fields == {"city": "Riga"}
    assert anna.company_id is not None
    assert anna.hopper_tier == 1  # hot leads come before the rest
    assert anna.next_call_at == NOW
    bob = leads["+14155550102"]
    assert (bob.name, bob.custom_fields, bob.timezone, bob.hopper_tier) == (
        "Bob Jones", {"city": "Boston"}, None, 2)
    assert leads["+14155550112"].name == 'Oda "The Boss"'
    ned = leads["+442079460958"]
    agreed = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 10:00 London time in winter
    assert ned.status is LeadStatus.SERVED
    assert ned.next_contact_at == agreed
    assert ned.next_call_at == agreed  # never called before the agreed next contact
    assert ned.custom_fields == {"city": "London"}

    # Re-importing the same file adds nothing: every good row is now a duplicate.
    again, issues2 = await _run(db_engine, path)
    assert again.imported == 0
    assert (again.rows, again.rejected, again.skipped) == (18, 10, 8)
    dup_lines = [i.line for i in issues2 if i.reason.value == "duplicate_in_db"]
    assert dup_lines == [2, 4, 19, 20, 21]
    assert len(await _leads(db_engine, cid)) == 5


async def test_chunk_boundaries_do_not_change_the_outcome(
    db_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Duplicates, DNC checks and new companies work across chunks of any size."""
    await _campaign(db_engine)
    await dnc.add(session_factory(db_engine), "+14155550111", now=NOW)
    path = tmp_path / "messy.csv"
    path.write_bytes(MESSY.replace(b"Nope Inc", b"New Co"))
    async with session_factory(db_engine).begin() as s:
        s.add(Company(name="Acme", timezone="America/New_York"))
    summary, issues = await _run(db_engine, path, chunk_size=2, create_companies=True)
    # line 12 now imports (company created) and line 19's number is not in this campaign yet
    expected = [t for t in EXPECTED_ISSUES if t[0] not in (12, 19)]
    assert _as_tuples(issues) == expected
    assert summary.imported == 6
    assert summary.companies_created == ["New Co"]


async def test_new_companies_get_a_default_calendar_in_the_leads_zone(
    db_engine: AsyncEngine, tmp_path: Path
) -> None:
    cid = await _campaign(db_engine, timezone="Europe/Riga")
    path = tmp_path / "c.csv"
    path.write_text(
        "name,phone,company,timezone\n"
        "A,+37120000001,Riga Ltd,\n"  # zone from the number (phonenumbers' zone for +371 2...)
        "B,+14155550120,Bay Inc,America/Los_Angeles\n"  # zone given in the row
        "C,+14155550121,bay inc,\n"  # same company, other case: no second company
        "D,+3726000000,Tallinn OÜ,\n",
        encoding="utf-8")
    summary, issues = await _run(db_engine, path, create_companies=True)
    assert issues == []
    assert summary.companies_created == ["Riga Ltd", "Bay Inc", "Tallinn OÜ"]
    async with session_factory(db_engine)() as s:
        companies = {c.name: c for c in (await s.scalars(select(Company))).all()}
    assert set(companies) == {"Riga Ltd", "Bay Inc", "Tallinn OÜ"}
    bay = companies["Bay Inc"]
    assert bay.timezone == "America/Los_Angeles"
    assert bay.holiday_country == "US"
    assert bay.weekly_hours == {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu",
                                                                   "fri")}
    assert companies["Riga Ltd"].holiday_country == "LV"
    leads = await _leads(db_engine, cid)
    assert leads["+14155550121"].company_id == bay.id
    # Without the option the same rows are rejected, naming the company.
    other = await _campaign(db_engine, name="other")
    path.write_text("name,phone,company\nE,+14155550130,Unknown GmbH\nF,+14155550131,BAY INC\n",
                    encoding="utf-8")
    summary, issues = await _run(db_engine, path, campaign="other")
    assert [(i.line, i.reason.value) for i in issues] == [(2, "bad_company")]
    assert (await _leads(db_engine, other))["+14155550131"].company_id == bay.id


async def test_column_mapping(db_engine: AsyncEngine, tmp_path: Path) -> None:
    cid = await _campaign(db_engine)
    path = tmp_path / "m.csv"
    path.write_text(
        "Kunde;Telefon;Zone;Notiz;Intern;Mobile;tel\n"
        "Anna;+14155550140;America/Chicago;call after lunch;x;+14155550141;+14155550142\n",
        encoding="utf-8")
    summary, issues = await _run(
        db_engine, path,
        mapping={"Kunde": "name", "telefon": "phone", "Zone": "timezone",
                 "Notiz": "custom.note", "Intern": "-"})
    assert issues == [] and summary.imported == 1
    lead = (await _leads(db_engine, cid))["+14155550140"]
    assert (lead.name, lead.timezone) == ("Anna", "America/Chicago")
    # mapped custom key, ignored column, and alias columns not needed for phone stay custom
    assert lead.custom_fields == {"note": "call after lunch", "Mobile": "+14155550141",
                                  "tel": "+14155550142"}


@pytest.mark.parametrize(
    ("header", "mapping", "message"),
    [
        ("name,phone\n", {"Telefon": "phone"}, "the file has no column 'Telefon'"),
        ("name,phone\n", {"name": "email"}, "unknown field 'email'"),
        ("name,mobile,tel\n", {}, "columns 'mobile' and 'tel' could both be the phone"),
        ("name,city\n", {}, "no column holds the phone number"),
        ("phone,city\n", {}, "no column holds the lead's name or company"),
        ("name,phone,name\n", {}, "column name 'name' appears twice"),
        ("a,b\n", {"a": "phone", "b": "phone"}, "are both mapped to phone"),
        ("\n\n", {}, "the file is empty"),
    ],
)
async def test_header_problems_stop_the_import(
    db_engine: AsyncEngine, tmp_path: Path, header: str, mapping: dict[str, str], message: str
) -> None:
    await _campaign(db_engine)
    path = tmp_path / "h.csv"
    path.write_text(header + "x,+14155550150,y\n" if header.strip() else header)
    with pytest.raises(LeadImportError, match=message):
        await _run(db_engine, path, mapping=mapping)
    assert await _leads(db_engine) == {}


async def test_option_and_campaign_errors(db_engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("name,phone\nA,+14155550160\n")
    with pytest.raises(LeadImportError, match="no campaign named 'ghost'"):
        await _run(db_engine, path, campaign="ghost")
    await _campaign(db_engine)
    with pytest.raises(LeadImportError, match="cannot read"):
        await _run(db_engine, tmp_path / "missing.csv")
    with pytest.raises(LeadImportError, match="region 'XX'"):
        ImportOptions(campaign="spring", region="XX")
    with pytest.raises(LeadImportError, match="only ASCII-compatible"):
        ImportOptions(campaign="spring", encoding="utf-16")
    with pytest.raises(LeadImportError, match="unknown codec"):
        ImportOptions(campaign="spring", encoding="klingon")
    with pytest.raises(LeadImportError, match="delimiter"):
        ImportOptions(campaign="spring", delimiter=":")


async def test_encodings(db_engine: AsyncEngine, tmp_path: Path) -> None:
    cid = await _campaign(db_engine)
    path = tmp_path / "e.csv"
    # A whole cp1252 file: rejected line by line as UTF-8, imported with its real encoding.
    path.write_bytes("name;phone\nJürgen Öster;+14155550170\nZoë;+14155550171\n"
                     .encode("cp1252"))
    summary, issues = await _run(db_engine, path)
    assert [(i.line, i.reason.value) for i in issues] == [(2, "bad_encoding"),
                                                          (3, "bad_encoding")]
    summary, issues = await _run(db_engine, path, encoding="cp1252")
    assert issues == [] and summary.imported == 2
    leads = await _leads(db_engine, cid)
    assert leads["+14155550170"].name == "Jürgen Öster"
    # UTF-16 (Excel's "Unicode text") is refused with a way out.
    path.write_bytes("name\tphone\nA\t+14155550172\n".encode("utf-16"))
    with pytest.raises(LeadImportError, match="UTF-16"):
        await _run(db_engine, path)
    # Tab separated UTF-8 with BOM, CRLF line ends.
    path.write_bytes(b"\xef\xbb\xbfname\tphone\r\nT\xc3\xa4b\t+14155550173\r\n")
    summary, issues = await _run(db_engine, path)
    assert summary.delimiter == "\t" and summary.imported == 1
    assert (await _leads(db_engine, cid))["+14155550173"].name == "Täb"


async def test_statuses_priorities_and_dates(db_engine: AsyncEngine, tmp_path: Path) -> None:
    cid = await _campaign(db_engine, timezone="Europe/Riga")
    path = tmp_path / "s.csv"
    path.write_text(
        "name,phone,status,priority,next_contact_at,timezone\n"
        "A,+14155550180,Cold,0,,\n"
        "B,+14155550181,customer,100,2026-03-09T08:00:00+00:00,\n"  # past: due now
        "C,+14155550182,DONE,,,\n"
        "D,+14155550183,hot potential,7,15.03.2026 09:30,\n"  # naive: campaign zone
        "E,+14155550184,,,2026-03-20,America/New_York\n"  # date only: local midnight
        "F,+14155550185,,101,,\n"
        "G,+14155550186,,-1,,\n",
        encoding="utf-8")
    _, issues = await _run(db_engine, path)
    assert [(i.line, i.reason.value) for i in issues] == [(7, "bad_priority"),
                                                          (8, "bad_priority")]
    leads = await _leads(db_engine, cid)
    a, b, c, d, e = (leads[f"+1415555018{i}"] for i in range(5))
    assert (a.status, a.priority, a.next_call_at) == (LeadStatus.POTENTIAL, 0, NOW)
    assert (b.status, b.priority, b.next_call_at) == (LeadStatus.SERVED, 100, NOW)
    assert b.next_contact_at == NOW - timedelta(days=1, hours=7)
    # a lead imported as done is never called: no next_call_at, and the reason says why
    assert (c.status, c.next_call_at, c.never_reason) == (
        LeadStatus.DONE, None, "imported with status done")
    assert d.status is LeadStatus.HOT and d.hopper_tier == 1
    assert d.next_contact_at == datetime(2026, 3, 15, 7, 30, tzinfo=UTC)  # Riga is UTC+2
    assert e.next_contact_at == datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # New York is UTC-4


async def test_region_for_national_numbers(db_engine: AsyncEngine, tmp_path: Path) -> None:
    cid = await _campaign(db_engine, default_region="LV")
    path = tmp_path / "lv.csv"
    path.write_text("name,phone\nA,20000002\nB,6700 0000\nC,+1 415 555 0190\nD,415 555 0191\n")
    summary, issues = await _run(db_engine, path)
    assert [(i.line, i.detail) for i in issues] == [
        (5, "not a valid phone number for region LV")]
    assert sorted(await _leads(db_engine, cid)) == ["+14155550190", "+37120000002",
                                                   "+37167000000"]
    # --region overrides the campaign's default region
    path.write_text("name,phone\nD,415 555 0191\n")
    summary, issues = await _run(db_engine, path, region="US")
    assert summary.imported == 1
