"""Manual dial verdicts with a real campaign config and the compliance presets: the number's
own regional window applies (a Florida number in a us_federal campaign), the lead's country
reads a national number."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import AgentState
from db import dnc
from db.session import session_factory
from db.store import SqlStore
from dialer.config import CampaignConfig
from dialer.core.manual import ManualReason, Refusal
from dialer.manual_dial import check, region_for, verdict

CAMPAIGN = CampaignConfig(name="c", caller_id="+14155550100", calling_window="us_federal")
# Wed 2026-03-04 01:30 UTC = Tue 20:30 EST: open under federal (to 21:00), closed in Florida
# (to 20:00).
EVENING = datetime(2026, 3, 4, 1, 30, tzinfo=UTC)


def _verdict(raw: str, **kw: object) -> str | Refusal:
    args: dict[str, object] = {
        "raw_number": raw, "state": AgentState.PAUSED, "has_lead": True,
        "lead_country": None, "lead_zone": None, "is_dnc": False, "now": EVENING}
    args.update(kw)
    return verdict(CAMPAIGN, **args)  # type: ignore[arg-type]


def test_region_prefers_the_leads_country() -> None:
    assert region_for(CAMPAIGN, "gb") == "GB"
    assert region_for(CAMPAIGN, None) == "US"


def test_new_york_number_open_at_half_past_eight() -> None:
    assert _verdict("212 555 0123") == "+12125550123"


def test_florida_number_gets_the_florida_window() -> None:
    got = _verdict("305 555 0123")
    assert isinstance(got, Refusal) and got.code is ManualReason.OUTSIDE_WINDOW
    assert got.params["window"] == "us_fl"
    assert got.params["opens_at"].startswith("2026-03-04T08:00")


def test_national_number_read_in_the_leads_country() -> None:
    # a UK national number, valid only when read as GB
    got = _verdict("020 7946 0958", lead_country="GB", lead_zone="Europe/London")
    assert isinstance(got, Refusal)  # 01:30 in London: outside the us_federal hours
    assert got.code is ManualReason.OUTSIDE_WINDOW
    bad = _verdict("020 7946 0958")
    assert isinstance(bad, Refusal) and bad.code is ManualReason.INVALID_NUMBER


def test_dnc_refused_before_the_window() -> None:
    got = _verdict("305 555 0123", is_dnc=True)
    assert isinstance(got, Refusal) and got.code is ManualReason.DNC


async def test_check_looks_up_the_dnc_list(db_engine: AsyncEngine) -> None:
    """On real SQLite and PostgreSQL: a listed number is refused, an unlisted one passes, a
    bad number is refused without a lookup."""
    sessions = session_factory(db_engine)
    await dnc.add(sessions, "+12125550123", now=EVENING, reason="asked")
    store = SqlStore(sessions)
    kw: dict[str, Any] = {"state": AgentState.PAUSED, "has_lead": True, "lead_country": None,
                          "lead_zone": None, "now": EVENING}
    got = await check(store, CAMPAIGN, raw_number="(212) 555-0123", **kw)
    assert isinstance(got, Refusal) and got.code is ManualReason.DNC
    assert await check(store, CAMPAIGN, raw_number="212 555 0199", **kw) == "+12125550199"
    bad = await check(store, CAMPAIGN, raw_number="12", **kw)
    assert isinstance(bad, Refusal) and bad.code is ManualReason.INVALID_NUMBER
