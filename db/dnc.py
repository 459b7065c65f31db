"""Do-not-call repository: add numbers, bulk-import registry lists, check numbers.

docs/compliance.md: a national registry list (imported) and the company's own list; numbers are
compared in E.164, and a listed number is never dialed again from any campaign. So adding a
number here also stops every lead that has it (status `dnc`, `next_call_at` NULL), in every
campaign, in the same transaction as the entry itself, with its webhook events (a lead
stopped, a number added one at a time: db/webhook_events.py `report_dnc`).

Every function takes an `AsyncSession` factory (like db/repositories.py) and an explicit `now`
where it writes. Numbers must already be E.164 (`normalise_number` parses user input); a
malformed value is refused with `ValueError` rather than stored where it could never match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import phonenumbers
from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from common.vocabulary import LeadStatus
from db import webhook_events
from db.bulk import analyze, insert_ignoring_conflicts
from db.models import DncEntry, Lead
from db.repositories import RepositoryError, Sessions

#: the table and its unique key, for the conflict-ignoring bulk insert
_DNC_TABLE = cast(Table, DncEntry.__table__)
_DNC_KEY = ["phone_e164", "source"]

#: E.164: '+', a non-zero country digit, at most 15 digits in all
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
#: numbers per statement: well under SQLite's and asyncpg's bound-parameter limits
CHUNK = 1000
#: why a lead was stopped (Lead.never_reason), shared with db.repositories.add_dnc
NEVER_REASON = "do not call"


@dataclass(frozen=True, slots=True)
class DncAddResult:
    """What a write did: entries that were new, and leads that were stopped by it."""

    added: int
    leads_stopped: int


def normalise_number(raw: str, region: str = "US") -> str:
    """Parse a number as a person typed it into E.164, or raise ValueError saying why.

    DNC lists accept every *possible* number, not only ones `phonenumbers` knows to be
    assigned: registries list numbers from ranges newer than the library's metadata, and
    blocking a number too many is safe where missing one is not.
    """
    text = raw.strip()
    if not text:
        raise ValueError("empty phone number")
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as e:
        raise ValueError(f"not a phone number ({e._msg})") from None
    if not phonenumbers.is_possible_number(num):
        raise ValueError(f"not a possible phone number for region {region}")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _check_e164(number: str) -> str:
    if not isinstance(number, str) or not E164.match(number):
        raise ValueError(f"expected an E.164 number such as +14155550100, got {number!r}")
    return number


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def add(
    sessions: Sessions, number: str, *, now: datetime, source: str = "internal",
    reason: str | None = None, attempt_id: int | None = None,
) -> DncAddResult:
    """Add one E.164 number to the `source` list (idempotent) and stop its leads."""
    _check_e164(number)
    return await _write(sessions, [(number, reason)], now=now, source=source,
                        attempt_id=attempt_id, report_added=True)


async def bulk_add(
    sessions: Sessions, entries: Iterable[tuple[str, str | None]], *, now: datetime,
    source: str = "national",
) -> DncAddResult:
    """Add many (E.164 number, reason) pairs to the `source` list, in chunked statements.

    Numbers already on that list are left as they are (their first reason stays). Each chunk
    commits on its own, so a large registry file does not hold the write lock for minutes;
    re-running after a failure is safe because adding is idempotent.
    """
    added = stopped = 0
    batch: list[tuple[str, str | None]] = []
    for number, reason in entries:
        batch.append((_check_e164(number), reason))
        if len(batch) >= CHUNK:
            r = await _write(sessions, batch, now=now, source=source)
            added, stopped, batch = added + r.added, stopped + r.leads_stopped, []
    if batch:
        r = await _write(sessions, batch, now=now, source=source)
        added, stopped = added + r.added, stopped + r.leads_stopped
    if added >= CHUNK:
        # fresh planner statistics, so the importer's and the scheduler's `phone IN (...)`
        # look-ups use the index at once rather than after autovacuum's next visit
        await analyze(sessions, "dnc_entries", after="DNC import")
    return DncAddResult(added=added, leads_stopped=stopped)


async def _write(
    sessions: Sessions, entries: Sequence[tuple[str, str | None]], *, now: datetime,
    source: str, attempt_id: int | None = None, report_added: bool = False,
) -> DncAddResult:
    if not source or len(source) > 32:
        raise ValueError(f"DNC source must be 1-32 characters, got {source!r}")
    unique: dict[str, str | None] = {}
    for number, reason in entries:
        unique.setdefault(number, reason[:200] if reason else None)
    numbers = list(unique)
    try:
        async with sessions.begin() as s:
            present = set((await s.scalars(
                select(DncEntry.phone_e164).where(
                    DncEntry.source == source, DncEntry.phone_e164.in_(numbers))
            )).all())
            rows = [
                {"phone_e164": n, "source": source, "reason": unique[n],
                 "attempt_id": attempt_id, "added_at": now}
                for n in numbers if n not in present
            ]
            if rows:
                # A concurrent writer may add the same number between the SELECT and here:
                # ON CONFLICT DO NOTHING keeps the unique (phone, source) pair intact.
                await s.execute(insert_ignoring_conflicts(s, _DNC_TABLE, _DNC_KEY), rows)
            # the leads this stops, with their status before: the webhooks report each
            # change (db/webhook_events.py) in this transaction
            was = dict((await s.execute(
                select(Lead.id, Lead.status)
                .where(Lead.phone_e164.in_(numbers), Lead.status != LeadStatus.DNC))).all())
            ids = list((await s.scalars(
                update(Lead)
                .where(Lead.id.in_(list(was)), Lead.status != LeadStatus.DNC)
                .values(status=LeadStatus.DNC, next_call_at=None, never_reason=NEVER_REASON,
                        claimed_by=None, claimed_until=None, updated_at=now)
                .returning(Lead.id)
                .execution_options(synchronize_session=False)
            )).all()) if was else []
            stopped = len(ids)
            added = [r["phone_e164"] for r in rows] if report_added else []
            await webhook_events.report_dnc(s, added, {i: was[i] for i in ids}, source=source,
                                            reason=unique, attempt_id=attempt_id, at=now)
    except SQLAlchemyError as e:
        raise RepositoryError("dnc add", e) from e
    return DncAddResult(added=len(rows), leads_stopped=stopped)


async def is_listed(sessions: Sessions, number: str) -> bool:
    """Whether an E.164 number is on any DNC list."""
    return bool(await listed_among(sessions, [number]))


async def listed_among(sessions: Sessions, numbers: Iterable[str]) -> set[str]:
    """The subset of the given E.164 numbers that is on any DNC list (any source)."""
    wanted = sorted(set(numbers))
    found: set[str] = set()
    try:
        async with sessions() as s:
            for part in _chunks(wanted):
                found.update((await s.scalars(
                    select(DncEntry.phone_e164).where(DncEntry.phone_e164.in_(part)).distinct()
                )).all())
    except SQLAlchemyError as e:
        raise RepositoryError("dnc lookup", e) from e
    return found


async def listed_in_session(s: AsyncSession, numbers: Sequence[str]) -> set[str]:
    """`listed_among` inside a caller's session/transaction (the lead importer uses it)."""
    found: set[str] = set()
    for part in _chunks(list(numbers)):
        found.update((await s.scalars(
            select(DncEntry.phone_e164).where(DncEntry.phone_e164.in_(part)).distinct()
        )).all())
    return found


async def count(sessions: Sessions, source: str | None = None) -> int:
    """Entries on the lists (one source, or all)."""
    stmt = select(func.count()).select_from(DncEntry)
    if source is not None:
        stmt = stmt.where(DncEntry.source == source)
    async with sessions() as s:
        return int(await s.scalar(stmt) or 0)
