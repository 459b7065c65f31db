"""`dialer companies` end to end on a migrated SQLite database (and db/companies.py on
PostgreSQL too): list, show, set, import with its row-by-row report, and a lunch set with
`companies set` that scheduling's callability rules then respect.
"""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from sqlalchemy import select

from db.companies import (
    CompanyUpsert,
    company_by_key,
    list_companies,
    update_company,
    upsert_companies,
)
from db.models import Campaign, Company, Lead
from db.session import create_engine, session_factory
from dialer.cli_companies import companies_app
from dialer.cli_data import campaigns_app, leads_app
from dialer.importer import REPORT_COLUMNS
from scheduling.calendar import CalendarError, CompanyCalendar
from scheduling.facts import refresh_callability
from scheduling.hours_spec import CalendarChange, parse_hours
from support.cli import run_cli

RIGA = ZoneInfo("Europe/Riga")


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(companies_app, name="companies")
    app.add_typer(leads_app, name="leads")
    app.add_typer(campaigns_app, name="campaigns")
    return app


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> tuple[str, str]:
    """--db and a fresh SQLite database made by the project's migrations."""
    path = tmp_path / "dialer.db"
    shutil.copy(sqlite_template, path)
    return "--db", f"sqlite:///{path}"


def _cli(*args: str) -> tuple[int, str]:
    return run_cli(_app(), *args)


def _row(out: str, first: str) -> list[str]:
    """The cells of the table row starting with `first`."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{out}")


# Physical lines on the right. ';'-separated with a BOM, as Excel writes it; quoted hours hold
# the separator; line 4 uses ',' like another export pasted in.
COMPANIES = "".join([
    "\ufeffname;timezone;hours;holidays;closures;special_days\r\n",  # 1
    'Acme;Europe/Riga;"mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00";LV;'
    "2026-12-28..2026-12-31;2026-12-27=10:00-14:00\r\n",  # 2
    "\r\n",  # 3 blank
    "Beta,america/new_york,,US-NY,,\r\n",  # 4 other separator, default hours
    "Bad;Mars/Base;mon-thu 8:3-12;XX;;\r\n",  # 5 three problems
    "NoZone;;;;;\r\n",  # 6 a new company needs a zone
    "acme;Europe/Riga;mon 09:00-10:00;;;\r\n",  # 7 same company as line 2
    "Shut;UTC;sat-sun closed;;;\r\n",  # 8 never open
    "Gamma;UTC;mon 09:00-12:00,11:00-13:00;;2026-12-31..2026-12-01;\r\n",  # 9 two bad cells
    "Short;UTC\r\n",  # 10 too few fields
    ";UTC;;;;\r\n",  # 11 no name
])

EXPECTED = [
    ["5", "rejected", "bad_timezone",
     'timezone "Mars/Base": not a time zone; expected an IANA time zone such as Europe/Riga; '
     'hours "mon-thu 8:3-12": "8:3" is not a time; expected HH:MM; holidays "XX": "XX" is not '
     "a country the holidays package knows; expected a country code such as LV, a "
     "country-subdivision such as US-NY, or none", "Bad;Mars/Base;mon-thu 8:3-12;XX;;"],
    ["6", "rejected", "missing_field",
     "timezone is empty (a new company needs one; expected an IANA time zone such as "
     "Europe/Riga)", "NoZone;;;;;"],
    ["7", "skipped", "duplicate_in_file", "same company as line 2 (the first wins)",
     "acme;Europe/Riga;mon 09:00-10:00;;;"],
    ["8", "rejected", "bad_calendar",
     "calendar 'Shut' has no open time: every weekday is closed or a day off and there are no "
     "special opening days", "Shut;UTC;sat-sun closed;;;"],
    ["9", "rejected", "bad_hours",
     'hours "mon 09:00-12:00,11:00-13:00": mon: intervals overlap: [(540, 720), (660, 780)]; '
     'closures "2026-12-31..2026-12-01": closure "2026-12-31..2026-12-01": ends before it '
     "starts; expected START..END",
     "Gamma;UTC;mon 09:00-12:00,11:00-13:00;;2026-12-31..2026-12-01;"],
    ["10", "rejected", "bad_row", "expected 6 fields, found 2 (separator ';')", "Short;UTC"],
    ["11", "rejected", "missing_field", "name is empty", ";UTC;;;;"],
]


def test_import_list_show(db: tuple[str, str], tmp_path: Path) -> None:
    path = tmp_path / "companies.csv"
    path.write_text(COMPANIES, encoding="utf-8")
    code, out = _cli("companies", "import", str(path), *db)
    assert code == 1, out  # some rows were rejected
    assert "companies: 9 rows read (separator ';', utf-8, 1 blank lines ignored)" in out
    assert "created 2, updated 0, unchanged 0, rejected 6, skipped 1" in out
    # the terminal's tables are the lead import's: per reason, then the first rows
    assert _row(out, "bad_row") == ["bad_row", "1"] and "first 7 of 7" in out
    report = tmp_path / "companies.csv.report.csv"
    assert f"report: {report}" in out
    with open(report, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == REPORT_COLUMNS
    assert rows[1:] == EXPECTED

    code, out = _cli("companies", "list", *db)
    assert code == 0, out
    assert _row(out, "Acme") == ["Acme", "Europe/Riga",
                                 "mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00", "LV", "0"]
    assert _row(out, "Beta") == ["Beta", "America/New_York", "mon-fri 09:00-17:00", "US-NY", "0"]

    code, out = _cli("companies", "show", "acme", "--date", "2026-12-24", *db)
    assert code == 0, out
    assert _row(out, "closures")[1] == "2026-12-28..2026-12-31"
    assert _row(out, "special days")[1] == "2026-12-27=10:00-14:00"
    assert "the 7 days from 2026-12-24 (Europe/Riga)" in out
    assert _row(out, "2026-12-24") == ["2026-12-24", "thu", "closed",
                                       "holiday: Christmas Eve"]
    assert _row(out, "2026-12-26") == ["2026-12-26", "sat", "closed",
                                       "day off; holiday: Second Day of Christmas"]
    assert _row(out, "2026-12-27") == ["2026-12-27", "sun", "10:00-14:00",
                                       "special day (instead of: day off)"]
    assert _row(out, "2026-12-29") == ["2026-12-29", "tue", "closed",
                                       "closure 2026-12-28..2026-12-31"]
    code, out = _cli("companies", "show", "1", *db)  # by id; from today in Riga
    today = datetime.now(RIGA).date().isoformat()
    assert code == 0 and f"the 7 days from {today} (Europe/Riga)" in out
    code, out = _cli("companies", "show", "Nope", *db)
    assert (code, "no company named 'Nope'" in out) == (2, True)
    code, out = _cli("companies", "show", "Acme", "--date", "24.12.2026", *db)
    assert code == 2 and '--date "24.12.2026": not a date; expected YYYY-MM-DD' in out

    # again, as a ','-separated file: nothing new; one row changes Beta
    again = tmp_path / "again.csv"
    again.write_text("name,hours,closures\nAcme,,\nBETA,mon-fri 10:00-16:00,2026-12-24\n")
    code, out = _cli("companies", "import", str(again), *db)
    assert code == 0, out
    assert "created 0, updated 1, unchanged 1, rejected 0, skipped 0" in out
    code, out = _cli("companies", "list", *db)
    assert _row(out, "Beta")[2] == "mon-fri 10:00-16:00"


def test_import_refuses_a_file_it_cannot_read(db: tuple[str, str], tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("name;zone;colour\nAcme;UTC;red\n")
    code, out = _cli("companies", "import", str(path), *db)
    assert code == 2
    assert ("column 'colour' is not a company column; expected name, timezone, hours, "
            "holidays, closures, special_days") in out
    path.write_text("timezone\nUTC\n")
    code, out = _cli("companies", "import", str(path), *db)
    assert code == 2 and "no name column" in out
    path.write_bytes("name\nAcme\n".encode("utf-16"))
    code, out = _cli("companies", "import", str(path), *db)
    assert code == 2 and "save it as CSV UTF-8" in out
    path.write_text("name,timezone\nAcme,UTC\n")
    code, out = _cli("companies", "import", str(path), "--db",
                     f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 2 and "run `dialer db upgrade` first" in out


def test_set(db: tuple[str, str], tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("name,timezone\nAcme,Europe/Riga\n")
    assert _cli("companies", "import", str(path), *db)[0] == 0

    code, out = _cli("companies", "set", "acme", "--hours", "mon-sun 08:00-18:00",
                     "--days-off", "sat,sun", "--holidays", "lv", "--closure", "2026-12-24",
                     "--closure", "2026-12-28..2026-12-31", "--special",
                     "2026-12-27=10:00-12:00", "--timezone", "europe/tallinn", *db)
    assert code == 0, out
    assert ("company Acme updated: Europe/Tallinn, hours mon-fri 08:00-18:00, holidays LV"
            in out)
    code, out = _cli("companies", "show", "Acme", *db)
    assert _row(out, "closures")[1] == "2026-12-24, 2026-12-28..2026-12-31"
    assert _row(out, "special days")[1] == "2026-12-27=10:00-12:00"
    code, out = _cli("companies", "set", "Acme", "--clear-closures", "--clear-special-days",
                     "--holidays", "none", *db)
    assert code == 0, out
    code, out = _cli("companies", "show", "Acme", *db)
    assert _row(out, "closures")[1] == "none" and _row(out, "special days")[1] == "none"
    assert _row(out, "holidays")[1] == "none"

    for args, message in [
        (["--hours", "mon-thu 8:3-12"], '--hours "mon-thu 8:3-12": "8:3" is not a time; '
                                        "expected HH:MM"),
        (["--hours", "mon 09:00-12:00,11:00-13:00"], "mon: intervals overlap"),
        (["--timezone", "Mars/Base"], '--timezone "Mars/Base": not a time zone; expected an '
                                      "IANA time zone such as Europe/Riga"),
        (["--holidays", "XX"], '--holidays "XX": "XX" is not a country'),
        (["--closure", "2026-12-31..2026-12-01"], "ends before it starts"),
        (["--special", "2026-12-24"], "expected YYYY-MM-DD=HH:MM-HH:MM"),
        (["--days-off", "weekend"], '--days-off "weekend": "weekend" is not a day'),
        ([], "nothing to change: give --timezone, --hours"),
        # the calendar as scheduling reads it must open: refused, nothing written
        (["--days-off", "mon-fri"], "company 'Acme' not changed: calendar 'Acme' has no "
                                    "open time"),
        (["--hours", "closed"], "has no open time"),
    ]:
        code, out = _cli("companies", "set", "Acme", *args, *db)
        assert code == 2, (args, out)
        assert message in " ".join(out.split()), (args, out)
    code, out = _cli("companies", "list", *db)
    assert _row(out, "Acme")[1:3] == ["Europe/Tallinn", "mon-fri 08:00-18:00"]
    code, out = _cli("companies", "set", "Nope", "--hours", "mon 09:00-10:00", *db)
    assert code == 2 and "no company named 'Nope'" in out


def test_lunch_set_with_companies_set_holds_calls_back(
    db: tuple[str, str], tmp_path: Path
) -> None:
    """A company created by the lead import (Mon-Fri 09:00-17:00) gets a lunch break with
    `companies set`; scheduling then refuses a time in the lunch and allows one outside."""
    assert _cli("campaigns", "create", "spring", "--caller-id", "+14155550100",
                "--timezone", "Europe/Riga", "--region", "LV", *db)[0] == 0
    leads = tmp_path / "leads.csv"
    leads.write_text("name,phone,company,timezone\nAnna,+37121234567,Acme,Europe/Riga\n")
    code, out = _cli("leads", "import", str(leads), "--campaign", "spring",
                     "--create-companies", *db)
    assert code == 0, out
    code, out = _cli("companies", "list", *db)
    assert _row(out, "Acme") == ["Acme", "Europe/Riga", "mon-fri 09:00-17:00", "LV", "1"]

    lunch = datetime(2026, 12, 8, 12, 30, tzinfo=RIGA)  # a Tuesday, no holiday
    morning = datetime(2026, 12, 8, 10, 0, tzinfo=RIGA)

    def next_call_at(now: datetime) -> datetime:
        async def go() -> datetime:
            engine = create_engine(db[1])
            try:
                sessions = session_factory(engine)
                async with sessions() as s:
                    campaign_id = await s.scalar(select(Campaign.id))
                assert campaign_id is not None
                await refresh_callability(sessions, campaign_id=campaign_id,
                                          now=now.astimezone(UTC))
                async with sessions() as s:
                    lead = await s.scalar(select(Lead))
                assert lead is not None and lead.next_call_at is not None
                at = lead.next_call_at
                return at if at.tzinfo else at.replace(tzinfo=UTC)
            finally:
                await engine.dispose()

        import asyncio

        return asyncio.run(go())

    assert next_call_at(lunch) == lunch  # open all day: callable at 12:30
    code, out = _cli("companies", "set", "Acme", "--hours", "mon-fri 09:00-12:00,13:00-17:00",
                     *db)
    assert code == 0, out
    assert next_call_at(lunch) == datetime(2026, 12, 8, 13, 0, tzinfo=RIGA)  # after lunch
    assert next_call_at(morning) == morning


# ----------------------------------------------------------------------------- db/companies.py


async def test_company_store(db_url: str) -> None:
    """db/companies.py on SQLite and PostgreSQL: upsert, look-ups, lead counts, edits."""
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    try:
        def edit_with(change: CalendarChange) -> Any:
            def edit(current: Any) -> Any:
                values = change.apply(current)
                CompanyCalendar.from_config(**values, name="x").validate(now=now)
                return values
            return edit

        riga = CalendarChange(timezone="Europe/Riga")
        results = await upsert_companies(sessions, [
            CompanyUpsert("Acme", edit_with(riga), ref=2),
            CompanyUpsert("Ärzte", edit_with(riga), ref=3),
            CompanyUpsert("Shut", edit_with(CalendarChange(timezone="UTC",
                                                           hours=parse_hours("closed"))), ref=4),
        ], now=now, refuse=(CalendarError,))
        assert [(r.ref, r.name, r.action) for r in results] == [
            (2, "Acme", "created"), (3, "Ärzte", "created"), (4, "Shut", "refused")]
        assert "has no open time" in str(results[2].error)
        results = await upsert_companies(sessions, [
            CompanyUpsert("ACME", edit_with(riga)),
            CompanyUpsert("ärzte", edit_with(CalendarChange(
                hours=parse_hours("mon 09:00-10:00")))),
        ], now=now)
        assert [(r.name, r.action) for r in results] == [("Acme", "unchanged"),
                                                          ("Ärzte", "updated")]

        async with sessions.begin() as s:
            acme = await s.scalar(select(Company).where(Company.name == "Acme"))
            assert acme is not None
            campaign = Campaign(name="spring", caller_id="+14155550100")
            s.add(campaign)
            await s.flush()
            for i in range(3):
                s.add(Lead(campaign_id=campaign.id, company_id=acme.id, name=f"L{i}",
                           phone_e164=f"+1415555010{i}", created_at=now, updated_at=now))
        assert [(c.name, n) for c, n in await list_companies(sessions)] == [
            ("Acme", 3), ("Ärzte", 0)]
        got = await company_by_key(sessions, "ÄRZTE")
        assert got is not None and got[0].name == "Ärzte" and got[1] == 0
        got = await company_by_key(sessions, str(acme.id))
        assert got is not None and (got[0].name, got[1]) == ("Acme", 3)
        assert await company_by_key(sessions, "Nope") is None
        assert await company_by_key(sessions, "999") is None

        def validate(company: Company) -> None:
            CompanyCalendar.from_company(company).validate(now=now)

        change = CalendarChange(hours=parse_hours("mon-fri 09:00-12:00,13:00-17:00"))
        updated = await update_company(sessions, "acme", edit=change.apply, validate=validate)
        assert updated is not None
        assert updated.weekly_hours["mon"] == [["09:00", "12:00"], ["13:00", "17:00"]]
        with pytest.raises(CalendarError, match="has no open time"):
            await update_company(sessions, "Acme", validate=validate,
                                 edit=CalendarChange(hours=parse_hours("closed")).apply)
        got = await company_by_key(sessions, "Acme")
        assert got is not None and got[0].weekly_hours == updated.weekly_hours  # rolled back
        assert await update_company(sessions, "Nope", edit=change.apply) is None
    finally:
        await engine.dispose()
