"""DNC repository and DNC list files on real SQLite and PostgreSQL (docs/compliance.md: a listed
number is never dialed again from any campaign; numbers compare in E.164)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import LeadStatus
from db import dnc
from db.models import Campaign, Lead
from db.session import session_factory
from dialer.importer import DncFileSummary, LeadImportError, read_dnc_file

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


async def _campaign(engine: AsyncEngine, name: str = "spring") -> int:
    async with session_factory(engine).begin() as s:
        c = Campaign(name=name, caller_id="+14155550100")
        s.add(c)
        await s.flush()
        return c.id


async def _leads(engine: AsyncEngine) -> list[Lead]:
    async with session_factory(engine)() as s:
        return list((await s.scalars(select(Lead))).all())


async def test_dnc_repository(db_engine: AsyncEngine) -> None:
    cid = await _campaign(db_engine)
    other = await _campaign(db_engine, name="autumn")
    sessions = session_factory(db_engine)
    async with sessions.begin() as s:
        for c in (cid, other):
            s.add(Lead(campaign_id=c, phone_e164="+14155550200", next_call_at=NOW))
        s.add(Lead(campaign_id=cid, phone_e164="+14155550201", next_call_at=NOW))
    r = await dnc.add(sessions, "+14155550200", now=NOW, reason="asked")
    assert (r.added, r.leads_stopped) == (1, 2)  # every campaign's lead with the number
    assert (await dnc.add(sessions, "+14155550200", now=NOW)).added == 0  # idempotent
    assert await dnc.is_listed(sessions, "+14155550200")
    assert not await dnc.is_listed(sessions, "+14155550201")
    for lead in await _leads(db_engine):
        if lead.phone_e164 == "+14155550200":
            assert (lead.status, lead.next_call_at, lead.never_reason) == (
                LeadStatus.DNC, None, "do not call")
    # bulk: 2,500 numbers in chunks, repeats within the input and with another source
    numbers = [f"+1212555{i:04d}" for i in range(2500)]
    r = await dnc.bulk_add(sessions, [(n, None) for n in numbers + numbers[:10]], now=NOW,
                           source="national")
    assert r.added == 2500
    r = await dnc.bulk_add(sessions, [("+14155550200", "registry"), ("+14155550201", None)],
                           now=NOW, source="national")
    assert (r.added, r.leads_stopped) == (2, 1)
    assert await dnc.count(sessions) == 2503
    assert await dnc.count(sessions, "national") == 2502
    probe = ["+12125550000", "+12125552499", "+12125559999", "+14155550201"]
    assert await dnc.listed_among(sessions, probe * 400) == {
        "+12125550000", "+12125552499", "+14155550201"}
    with pytest.raises(ValueError, match=r"E\.164"):
        await dnc.add(sessions, "415 555 0100", now=NOW)
    assert dnc.normalise_number("(415) 555-0100") == "+14155550100"
    with pytest.raises(ValueError, match="not a possible phone number"):
        dnc.normalise_number("123")


def _read(data: bytes, **kw: str) -> tuple[list[tuple[str, str | None]], DncFileSummary]:
    summary = DncFileSummary()
    entries = list(read_dnc_file(io.BytesIO(data), region=kw.pop("region", "US"),
                                 summary=summary, **kw))
    return entries, summary


def test_dnc_file_formats() -> None:
    # bare numbers, no header; national and international forms; a blank line
    entries, summary = _read(b"(415) 555-0300\n\n+44 20 7946 0958\n415 555 03\n")
    assert entries == [("+14155550300", None), ("+442079460958", None)]
    assert (summary.rows, summary.valid, summary.blank_lines) == (3, 2, 1)
    assert [(i.line, i.reason.value) for i in summary.issues] == [(4, "bad_phone")]
    # a header names the columns; the reason column is kept; BOM and ';' are fine
    entries, summary = _read(
        b"\xef\xbb\xbfReason;Telephone\r\nasked twice;+14155550301\r\n;4155550302\r\n"
        b"none;\r\n")
    assert entries == [("+14155550301", "asked twice"), ("+14155550302", None)]
    assert [(i.line, i.reason.value) for i in summary.issues] == [(4, "missing_field")]
    # registry ranges newer than phonenumbers' metadata are kept: possible is enough
    entries, _ = _read(b"+1 415 555 0100\n", region="GB")
    assert entries == [("+14155550100", None)]
    entries, summary = _read(b"phone\nM\xfcller\n+14155550303\n")
    assert entries == [("+14155550303", None)]
    assert [(i.line, i.reason.value) for i in summary.issues] == [(2, "bad_encoding")]
    with pytest.raises(LeadImportError, match="region 'ZZ'"):
        _read(b"+14155550100\n", region="ZZ")


async def test_dnc_file_into_the_database(db_engine: AsyncEngine) -> None:
    """A registry file stops leads already loaded, and the next lead import skips them."""
    cid = await _campaign(db_engine)
    sessions = session_factory(db_engine)
    async with sessions.begin() as s:
        s.add(Lead(campaign_id=cid, phone_e164="+14155550310", next_call_at=NOW))
        s.add(Lead(campaign_id=cid, phone_e164="+14155550311", next_call_at=NOW))
    summary = DncFileSummary()
    entries = read_dnc_file(io.BytesIO(b"4155550310\n4155550312\nnope\n4155550310\n"),
                            region="US", summary=summary)
    result = await dnc.bulk_add(sessions, entries, now=NOW, source="national")
    assert (result.added, result.leads_stopped, summary.valid) == (2, 1, 3)
    by_phone = {lead.phone_e164: lead.status for lead in await _leads(db_engine)}
    assert by_phone == {"+14155550310": LeadStatus.DNC, "+14155550311": LeadStatus.POTENTIAL}
    assert await dnc.listed_among(sessions, ["+14155550312", "+14155550311"]) == {
        "+14155550312"}
