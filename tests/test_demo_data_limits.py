"""The demo's generated leads: as many per company as the CLI (and bench/soak.py) allow, at
any time of the week and any seed; one more is refused by the CLI naming the option."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from dialer.cli import app
from dialer.demo import MAX_LEADS_PER_COMPANY
from dialer.demo.data import generate


def test_the_most_leads_per_company_the_cli_allows_can_be_generated() -> None:
    start = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    for seed, hours in ((1, 0), (7, 30), (3, 75), (5, 130)):
        _, leads = generate(start + timedelta(hours=hours), seed=seed,
                            leads_per_company=MAX_LEADS_PER_COMPANY)
        numbers = [lead.phone_e164 for lead in leads]
        assert len(numbers) == len(set(numbers))


def test_the_cli_refuses_more_leads_per_company_naming_the_option() -> None:
    r = CliRunner().invoke(app, ["demo", f"--leads-per-company={MAX_LEADS_PER_COMPANY + 1}"])
    assert r.exit_code == 2
    assert "--leads-per-company" in r.output
