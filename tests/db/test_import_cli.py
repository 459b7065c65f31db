"""`dialer campaigns`, `dialer leads import` and `dialer dnc` end to end on SQLite and PostgreSQL.

What the operator sees: counts and reasons, exit codes, the report file - and never a phone
number or a name on the terminal.
"""

from __future__ import annotations

import csv
from pathlib import Path

import typer
from test_import import EXPECTED_ISSUES, MESSY

from dialer.cli_data import campaigns_app, dnc_app, leads_app
from support.cli import run_cli


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(leads_app, name="leads")
    app.add_typer(campaigns_app, name="campaigns")
    app.add_typer(dnc_app, name="dnc")
    return app


def _cli(*args: str) -> tuple[int, str]:
    return run_cli(_app(), *args)


def test_campaign_lead_and_dnc_commands(db_url: str, tmp_path: Path) -> None:
    db = ("--db", db_url)
    code, out = _cli("campaigns", "create", "spring", "--caller-id", "+14155550100",
                     "--mode", "power", "--timezone", "America/New_York", *db)
    assert code == 0, out
    assert "campaign spring created (power)" in out
    code, out = _cli("campaigns", "create", "spring", "--caller-id", "+14155550100", *db)
    assert (code, "campaign 'spring' already exists" in out) == (2, True)
    code, out = _cli("campaigns", "create", "bad", "--caller-id", "555", "--timezone",
                     "Mars/Base", *db)
    assert code == 2
    assert "caller_id = '555': expected a diallable E.164 number" in out
    assert "timezone = 'Mars/Base': expected an IANA time zone" in out

    code, out = _cli("dnc", "add", "(415) 555-0111", "--reason", "asked", *db)
    assert (code, out.strip()) == (0, "number added to the internal list; 0 lead(s) stopped")
    code, out = _cli("dnc", "add", "+14155550111", *db)
    assert "already on the internal list" in out
    code, out = _cli("dnc", "add", "12", *db)
    assert code == 2 and "NUMBER: not a possible phone number for region US" in out

    path = tmp_path / "leads.csv"
    path.write_bytes(MESSY.replace(b"Acme", b""))  # no companies in this database
    code, out = _cli("leads", "import", str(path), "--campaign", "spring", *db)
    assert code == 1, out  # some rows were rejected
    assert "campaign spring: 18 rows read (separator ';', utf-8, 2 blank lines ignored)" in out
    assert "imported 5, rejected 10, skipped 3" in out
    report = tmp_path / "leads.csv.report.csv"
    assert f"report: {report}" in out
    with open(report, encoding="utf-8-sig", newline="") as f:
        lines = [int(r[0]) for r in list(csv.reader(f))[1:]]
    assert lines == [t[0] for t in EXPECTED_ISSUES if t[0] != 19]  # 19 is new here
    for secret in ("4155550101", "555-0101", "Smith", "Anna", "Carl", "Müller", "Oda"):
        assert secret not in out, secret

    code, out = _cli("leads", "import", str(path), "--campaign", "spring", "--report",
                     str(tmp_path / "again.csv"), *db)
    assert "imported 0, rejected 10, skipped 8" in out
    code, out = _cli("leads", "import", str(path), "--campaign", "spring", "--map", "x=phone",
                     *db)
    assert code == 2 and "mapping x=phone: the file has no column 'x'" in out
    code, out = _cli("leads", "import", str(path), "--campaign", "spring", "--map", "phone",
                     *db)
    assert code == 2 and "expected COLUMN=FIELD" in out
    code, out = _cli("leads", "import", str(path), "--campaign", "winter", *db)
    assert code == 2 and "no campaign named 'winter'" in out

    # a registry file: one number already on the internal list, one imported lead stopped
    registry = tmp_path / "registry.txt"
    registry.write_text("+14155550111\n(415) 555-0102\nnot a number\n")
    code, out = _cli("dnc", "import", str(registry), *db)
    assert code == 1
    assert ("3 numbers read: 2 added to the national list, 0 already on it or repeated, "
            "1 rejected; 1 lead(s) stopped") in out

    code, out = _cli("campaigns", "list", *db)
    assert code == 0
    row = next(line for line in out.splitlines() if "spring" in line)
    assert row.split() == ["│", "spring", "│", "power", "│", "yes", "│", "+14155550100", "│",
                           "America/New_York", "│", "5", "│", "4", "│"]
    code, out = _cli("campaigns", "show", "spring", *db)
    assert code == 0
    assert "dial_mode" in out and "power" in out
    counts = {p[1]: p[3] for p in (line.split() for line in out.splitlines())
              if len(p) == 5 and p[1] in ("potential", "hot", "served", "dnc", "total")}
    assert counts == {"potential": "2", "hot": "1", "served": "1", "dnc": "1", "total": "5"}
    code, out = _cli("campaigns", "show", "winter", *db)
    assert code == 2 and "no campaign named 'winter'" in out


def test_commands_on_a_database_without_schema(tmp_path: Path) -> None:
    db = ("--db", f"sqlite:///{tmp_path / 'empty.db'}")
    code, out = _cli("campaigns", "list", *db)
    assert code == 2 and "run `dialer db upgrade` first" in out
    path = tmp_path / "l.csv"
    path.write_text("name,phone\nA,+14155550100\n")
    code, out = _cli("leads", "import", str(path), "--campaign", "x", *db)
    assert code == 2 and "run `dialer db upgrade` first" in out
