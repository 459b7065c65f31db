"""The scheduled jobs' reads and writes (scheduling/jobs.py decides when and what).

Leases: `try_lease` takes job `name`'s occurrence with one conditional UPDATE (or the first
INSERT), which is atomic on SQLite and PostgreSQL alike, so among several dialer processes
sharing the database only one runs each occurrence; `finish_lease` marks it done. Occurrence
keys are ISO-8601 UTC strings, so they order lexicographically like time.

The other functions are the jobs' single statements: which campaigns exist (with their
companies), opening/closing a campaign's dialing, storing an abandon-rate roll-up, and finding
and claiming callback reminders. Every write is conditional where two processes could race.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from common.vocabulary import CallbackScope
from db.models import AbandonRollup, Callback, Campaign, Company, JobLease
from db.repositories import Sessions, translated

__all__ = [
    "add_abandon_rollup",
    "campaigns",
    "campaigns_with_companies",
    "finish_lease",
    "mark_reminded",
    "reminder_candidates",
    "set_campaign_active",
    "try_lease",
]

#: a finished occurrence's lease never expires (it must not run again)
_DONE = datetime(9999, 12, 31, tzinfo=UTC)


# ------------------------------------------------------------------------------ leases


@translated
async def try_lease(
    sessions: Sessions, *, name: str, occurrence: str, holder: str, now: datetime, ttl: timedelta
) -> bool:
    """Take job `name`'s lease for `occurrence`; False when another runner has (or had) it."""
    expires = now + ttl
    async with sessions.begin() as s:
        res = await s.execute(
            update(JobLease)
            .where(
                JobLease.name == name,
                or_(
                    JobLease.occurrence < occurrence,
                    and_(JobLease.occurrence == occurrence, JobLease.expires_at < now),
                ),
            )
            .values(occurrence=occurrence, holder=holder, expires_at=expires)
        )
        if res.rowcount:  # type: ignore[attr-defined]
            return True
        exists = await s.execute(select(JobLease.name).where(JobLease.name == name))
        if exists.first() is not None:
            return False
    try:
        async with sessions.begin() as s:
            s.add(JobLease(name=name, occurrence=occurrence, holder=holder, expires_at=expires))
        return True
    except IntegrityError:
        return False  # another process inserted the first lease at the same moment


@translated
async def finish_lease(sessions: Sessions, *, name: str, occurrence: str, holder: str) -> None:
    """Mark our occurrence done so no process runs it again."""
    async with sessions.begin() as s:
        await s.execute(
            update(JobLease)
            .where(
                JobLease.name == name,
                JobLease.occurrence == occurrence,
                JobLease.holder == holder,
            )
            .values(expires_at=_DONE)
        )


# ------------------------------------------------------------------------------ campaigns


@translated
async def campaigns_with_companies(sessions: Sessions) -> list[tuple[Campaign, Company]]:
    """Every campaign bound to a company, with that company (its calendar's source)."""
    async with sessions() as s:
        rows = await s.execute(
            select(Campaign, Company).join(Company, Company.id == Campaign.company_id)
        )
        return [(campaign, company) for campaign, company in rows.all()]


@translated
async def campaigns(sessions: Sessions) -> list[Campaign]:
    """Every campaign, in id order."""
    async with sessions() as s:
        return list((await s.execute(select(Campaign).order_by(Campaign.id))).scalars())


@translated
async def set_campaign_active(sessions: Sessions, campaign_id: int, active: bool) -> bool:
    """Set Campaign.active; True only if this call changed it (False: already so, or another
    process changed it first), so exactly one process runs the open/close hook."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.active.is_(not active))
            .values(active=active)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


@translated
async def add_abandon_rollup(
    sessions: Sessions, *, campaign_id: int, window: str, computed_at: datetime, live: int,
    abandoned: int, rate: float,
) -> None:
    async with sessions.begin() as s:
        s.add(AbandonRollup(campaign_id=campaign_id, window=window, computed_at=computed_at,
                            live=live, abandoned=abandoned, rate=rate))


# ------------------------------------------------------------------------------ reminders


@translated
async def reminder_candidates(
    sessions: Sessions, *, due_before: datetime, due_after: datetime
) -> list[tuple[Callback, int]]:
    """Pending agent callbacks not yet reminded, due in (due_after, due_before], each with its
    campaign's callback grace in seconds."""
    async with sessions() as s:
        rows = await s.execute(
            select(Callback, Campaign.callback_grace_s)
            .join(Campaign, Campaign.id == Callback.campaign_id)
            .where(
                Callback.status == "pending",
                Callback.scope == CallbackScope.AGENT,
                Callback.reminded_at.is_(None),
                Callback.due_at <= due_before,
                Callback.due_at > due_after,
            )
        )
        return [(cb, grace_s) for cb, grace_s in rows.all()]


@translated
async def mark_reminded(sessions: Sessions, callback_id: int, now: datetime) -> bool:
    """Claim a callback's reminder: True only for the one process whose UPDATE set it."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(Callback)
            .where(Callback.id == callback_id, Callback.reminded_at.is_(None))
            .values(reminded_at=now)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]
