"""Async repositories the live dialer uses: campaigns, agents, hopper claims, attempts.

Every function takes an `AsyncSession` factory and an explicit `now` (no wall clock here), so
the same code runs under tests with a controlled clock.

Errors: every public function here (and every `db.store.SqlStore` method) raises
`RepositoryError`, naming the operation, for any SQLAlchemy or driver error (`SQLAlchemyError`,
which wraps the DBAPI's errors); callers catch one type at this boundary. Other exceptions
(a bug, a cancelled task) pass through unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.vocabulary import (
    DIALABLE_STATUSES,
    LIVE_RESULTS,
    AgentState,
    AttemptResult,
    AttemptStage,
    LeadStatus,
)
from db.models import Agent, AgentStateLog, Attempt, Campaign, Lead, hopper_tier

Sessions = async_sessionmaker[AsyncSession]


@asynccontextmanager
async def transaction(sessions: Sessions, operation: str) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back on error; a SQLAlchemy
    or driver error comes out as RepositoryError naming `operation`."""
    try:
        async with sessions.begin() as s:
            yield s
    except SQLAlchemyError as e:
        raise RepositoryError(operation, e) from e

_P = ParamSpec("_P")
_R = TypeVar("_R")


class RepositoryError(Exception):
    """A database operation failed; `operation` says which. `transient` is True when the
    database was unreachable or busy (connection refused or dropped, SQLite locked, pool
    timeout): the same write may succeed when retried; False for errors retrying won't fix."""

    def __init__(self, operation: str, cause: BaseException) -> None:
        super().__init__(f"{operation} failed: {cause.__class__.__name__}: {cause}")
        self.operation = operation
        self.transient = bool(
            isinstance(cause, OperationalError | InterfaceError | PoolTimeoutError | OSError)
            or getattr(cause, "connection_invalidated", False))


def translated(
    fn: Callable[_P, Coroutine[Any, Any, _R]], operation: str | None = None
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Turn SQLAlchemy/driver errors of an async store operation into `RepositoryError`, so
    callers above the store see one error type whatever the backend (see the module doc)."""
    name = operation or fn.__name__

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kwargs)
        except (SQLAlchemyError, OSError) as e:
            # OSError: a driver may raise a refused connection unwrapped (asyncpg does)
            raise RepositoryError(name, e) from e

    return wrapper


# ---------------------------------------------------------------- campaigns and agents


_CAMPAIGN_FIELDS = (
    "caller_id", "dial_mode", "trunk", "timezone", "ring_timeout_s", "min_ring_s",
    "lines_per_agent", "max_dial_level", "abandon_cap", "abandon_window", "abandon_grace_s",
    "abandon_clock_start", "amd_enabled", "amd_max_ms", "amd_method", "amd_greeting_budget_ms",
    "amd_decide_by_ms", "amd_company_numbers", "amd_false_positive_rate",
    "machine_policy", "message_wav", "optout_key",
    "record_calls", "calling_window", "default_region", "callback_grace_s", "max_wrapup_s",
    "max_call_s",
    "script",
)


async def _once_more_on_conflict(op: Callable[[], Coroutine[Any, Any, _R]]) -> _R:
    """Run a select-then-insert upsert; if another process inserted the same unique key in
    between (several dialers starting together on a fresh database), run it once more: the
    second run finds the row and updates it."""
    try:
        return await op()
    except IntegrityError:
        return await op()


@translated
async def upsert_campaign(sessions: Sessions, cfg: Any) -> Campaign:
    """Create or update a campaign from a `dialer.config.CampaignConfig`."""
    values = {f: getattr(cfg, f) for f in _CAMPAIGN_FIELDS}

    async def once() -> Campaign:
        async with sessions.begin() as s:
            row = await s.scalar(select(Campaign).where(Campaign.name == cfg.name))
            if row is None:
                row = Campaign(name=cfg.name, **values)
                s.add(row)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            retry = dict(row.retry_rules or {})
            retry["max_attempts"] = cfg.max_attempts
            row.retry_rules = retry
            await s.flush()
            return row

    return await _once_more_on_conflict(once)


@translated
async def upsert_agent(sessions: Sessions, login: str, sip_uri: str, display_name: str,
                       groups: list[str] | None = None) -> Agent:
    """The agent's row, made or updated; ``groups`` None keeps the row's groups."""
    async def once() -> Agent:
        async with sessions.begin() as s:
            row = await s.scalar(select(Agent).where(Agent.login == login))
            if row is None:
                row = Agent(login=login, sip_uri=sip_uri, display_name=display_name,
                            groups=list(groups or []))
                s.add(row)
            else:
                row.sip_uri, row.display_name, row.active = sip_uri, display_name, True
                if groups is not None:
                    row.groups = list(groups)
            await s.flush()
            return row

    return await _once_more_on_conflict(once)


@translated
async def seed_agent_campaign(sessions: Sessions, login: str, campaign: str) -> str | None:
    """The campaign config agent `login` works on. The config file's `campaign` is written to
    agents.campaign_id the first time and whenever the file names another campaign than at
    its last start (agents.config_campaign remembers which); otherwise the row's campaign
    stands, so a supervisor's move outlives restarts. None when the agent row is missing."""
    async with sessions.begin() as s:
        agent = await s.scalar(select(Agent).where(Agent.login == login).with_for_update())
        if agent is None:
            return None
        current = None if agent.campaign_id is None else await s.scalar(
            select(Campaign.name).where(Campaign.id == agent.campaign_id))
        if current is not None and agent.config_campaign == campaign:
            return current
        target = await s.scalar(select(Campaign.id).where(Campaign.name == campaign))
        if target is None:
            return current
        agent.campaign_id, agent.config_campaign = target, campaign
        return campaign


@translated
async def campaign_by_name(sessions: Sessions, name: str) -> Campaign | None:
    async with sessions() as s:
        return await s.scalar(select(Campaign).where(Campaign.name == name))


# ---------------------------------------------------------------- hopper claims


@translated
async def claim_leads(
    sessions: Sessions,
    *,
    campaign_id: int,
    now: datetime,
    limit: int,
    holder: str,
    ttl: timedelta,
    exclude_ids: Iterable[int] = (),
) -> list[Lead]:
    """Atomically claim up to `limit` due leads of a campaign, best first.

    One statement: UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING. On
    PostgreSQL concurrent claimers skip each other's rows; SQLite has one writer at a time, so
    the statement is atomic there too. A claim whose `claimed_until` has passed is free again.
    """
    if limit <= 0:
        return []
    pick = (
        select(Lead.id)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.status.in_(DIALABLE_STATUSES),
            Lead.next_call_at <= now,
            (Lead.claimed_until.is_(None)) | (Lead.claimed_until < now),
        )
        .order_by(Lead.hopper_tier, Lead.priority.desc(), Lead.next_call_at, Lead.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    excluded = list(exclude_ids)
    if excluded:
        pick = pick.where(Lead.id.not_in(excluded))
    stmt = (
        update(Lead)
        .where(Lead.id.in_(pick.scalar_subquery()))
        .values(claimed_by=holder, claimed_until=now + ttl)
        .returning(Lead)
        .execution_options(synchronize_session=False)
    )
    async with sessions.begin() as s:
        rows = list((await s.scalars(stmt)).all())
    rows.sort(key=lambda r: (r.hopper_tier, -r.priority, r.next_call_at or now, r.id))
    return rows


@translated
async def claim_lead(
    sessions: Sessions, *, lead_id: int, campaign_id: int, now: datetime, holder: str,
    ttl: timedelta, phone_e164: str | None = None,
) -> Lead | None:
    """Claim one lead of a campaign for an agent's manual call, whatever its next call time
    (the agent chose to call it now), unless a hopper or another instance holds it; with
    `phone_e164`, the lead's number becomes that one in the same statement. The row, or
    None when it is claimed elsewhere or not of this campaign."""
    values: dict[str, object] = {"claimed_by": holder, "claimed_until": now + ttl}
    if phone_e164 is not None:
        values["phone_e164"] = phone_e164
    stmt = (update(Lead)
            .where(Lead.id == lead_id, Lead.campaign_id == campaign_id,
                   (Lead.claimed_until.is_(None)) | (Lead.claimed_until < now))
            .values(**values).returning(Lead)
            .execution_options(synchronize_session=False))
    async with sessions.begin() as s:
        return (await s.scalars(stmt)).one_or_none()


@translated
async def renew_claims(
    sessions: Sessions, *, holder: str, lead_ids: Sequence[int], now: datetime, ttl: timedelta
) -> int:
    if not lead_ids:
        return 0
    async with sessions.begin() as s:
        res = await s.execute(
            update(Lead)
            .where(Lead.id.in_(lead_ids), Lead.claimed_by == holder)
            .values(claimed_until=now + ttl)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


@translated
async def release_claims(sessions: Sessions, *, holder: str, lead_ids: Sequence[int]) -> int:
    if not lead_ids:
        return 0
    async with sessions.begin() as s:
        res = await s.execute(
            update(Lead)
            .where(Lead.id.in_(lead_ids), Lead.claimed_by == holder)
            .values(claimed_by=None, claimed_until=None)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


@translated
async def expire_claims(sessions: Sessions, *, now: datetime) -> int:
    """Clear claims whose lease ran out (their holder died or stalled)."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(Lead)
            .where(Lead.claimed_until.is_not(None), Lead.claimed_until < now)
            .values(claimed_by=None, claimed_until=None)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- attempts


@translated
async def create_attempt(sessions: Sessions, *, now: datetime, **fields: Any) -> int:
    """Write the attempt row; the caller sends the INVITE only after this returns."""
    async with sessions.begin() as s:
        row = Attempt(created_at=now, stage=AttemptStage.CREATED, **fields)
        s.add(row)
        await s.flush()
        return row.id


@translated
async def update_attempt(sessions: Sessions, attempt_id: int, **fields: Any) -> None:
    async with sessions.begin() as s:
        await s.execute(update(Attempt).where(Attempt.id == attempt_id).values(**fields))


@translated
async def finish_attempt(
    sessions: Sessions, attempt_id: int, *, result: AttemptResult, ended_at: datetime,
    **fields: Any,
) -> bool:
    """Close an attempt with its one final result. Returns False if it was already closed."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id, Attempt.stage != AttemptStage.ENDED)
            .values(stage=AttemptStage.ENDED, result=result, ended_at=ended_at,
                    abandoned=result is AttemptResult.ABANDONED, **fields)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


@translated
async def close_orphaned_attempts(sessions: Sessions, *, dialer_id: str, now: datetime) -> int:
    """At start: attempts a previous run of this dialer left open end as LOST (honest: unknown)."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(Attempt)
            .where(Attempt.dialer_id == dialer_id, Attempt.stage != AttemptStage.ENDED)
            .values(stage=AttemptStage.ENDED, result=AttemptResult.LOST, ended_at=now,
                    sip_reason="dialer restarted while the call was in progress")
        )
        await s.execute(
            update(Lead).where(Lead.claimed_by == dialer_id)
            .values(claimed_by=None, claimed_until=None)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


@translated
async def attempt_counts(sessions: Sessions, campaign_id: int) -> dict[str, int]:
    """Final results of a campaign's attempts (open ones under 'open')."""
    async with sessions() as s:
        rows = await s.execute(
            select(Attempt.result, func.count()).where(Attempt.campaign_id == campaign_id)
            .group_by(Attempt.result)
        )
        return {(r.value if r else "open"): int(n) for r, n in rows.all()}


@dataclass(frozen=True, slots=True)
class AbandonFigures:
    live: int
    abandoned: int
    #: answers AMD classed as machines (outside both sides, except as the UK's estimate)
    machines: int = 0

    @property
    def rate(self) -> float:
        return self.abandoned / self.live if self.live else 0.0

    def rate_with_false_positives(self, fp_rate: float) -> float:
        """The UK's rate: `fp_rate` x machine answers added to both sides (people AMD
        wrongly classed as machines were dropped: abandoned live calls)."""
        est = fp_rate * self.machines
        live = self.live + est
        return (self.abandoned + est) / live if live else 0.0


@translated
async def abandon_figures(
    sessions: Sessions, campaign_id: int, since: datetime
) -> AbandonFigures:
    """Numerator and denominator per docs/compliance.md, recomputed from attempt rows."""
    async with sessions() as s:
        rows = await s.execute(
            select(Attempt.result, func.count())
            .where(Attempt.campaign_id == campaign_id, Attempt.answered_at >= since,
                   Attempt.result.in_([*LIVE_RESULTS, AttemptResult.MACHINE]))
            .group_by(Attempt.result)
        )
        counts = {r: int(n) for r, n in rows.all()}
    abandoned = counts.get(AttemptResult.ABANDONED, 0)
    return AbandonFigures(live=abandoned + counts.get(AttemptResult.CONNECTED, 0),
                          abandoned=abandoned, machines=counts.get(AttemptResult.MACHINE, 0))


# ---------------------------------------------------------------- leads and agents


@translated
async def update_lead(
    sessions: Sessions, lead_id: int, *, now: datetime, callback_pending: bool = False,
    **fields: Any,
) -> None:
    """Apply an outcome to a lead, release its claim and recompute its hopper tier.

    The lead's `next_call_at` is cleared in the same transaction: the old value was "due now",
    and a concurrent hopper refill would otherwise claim (and dial) the person again in the
    moment between this outcome and the caller's callability refresh, which sets the new
    time. Fail closed: if that refresh never comes, the lead waits for the next whole-campaign
    refresh rather than being called twice."""
    async with sessions.begin() as s:
        lead = await s.get(Lead, lead_id)
        if lead is None:
            return
        was_dnc = lead.status is LeadStatus.DNC
        for k, v in fields.items():
            setattr(lead, k, v)
        if was_dnc:  # DNC is sticky: an outcome that arrives later never undoes it
            lead.status = LeadStatus.DNC
        lead.claimed_by = None
        lead.claimed_until = None
        lead.next_call_at = None
        lead.updated_at = now
        lead.hopper_tier = hopper_tier(
            callback_due=callback_pending, status=lead.status,
            open_complaint=lead.has_open_complaint,
        )


@translated
async def log_agent_state(
    sessions: Sessions, *, agent_id: int, campaign_id: int | None, state: AgentState,
    reason: str | None, at: datetime,
) -> None:
    """The agent is in `state` from `at`: the row it was in then ends at `at` (with its
    duration) and a new row starts (none for LOGGED_OUT). Usually the open row. A change
    written late - each campaign writes its own rows, and an agent visiting another
    campaign for a transfer (dialer/campaign_visits.py) changes state in both - is put in
    its place in time: it splits the row that spans `at` and ends where that row ended."""
    rows = AgentStateLog.agent_id == agent_id
    async with sessions.begin() as s:
        prev = await s.scalar(
            select(AgentStateLog).where(rows, AgentStateLog.started_at <= at)
            .order_by(AgentStateLog.started_at.desc(), AgentStateLog.id.desc()).limit(1))
        ends: datetime | None = None  # the usual case: `prev` is the open row
        if prev is None or prev.ended_at is not None:
            # a late write, or the first row after a log-out: it ends where the next starts
            ends = await s.scalar(
                select(AgentStateLog.started_at).where(rows, AgentStateLog.started_at > at)
                .order_by(AgentStateLog.started_at).limit(1))
        if prev is not None and (prev.ended_at is None or prev.ended_at > at):
            ends = prev.ended_at if prev.ended_at is not None else ends
            prev.ended_at = at
            prev.duration_s = max(0.0, (at - prev.started_at).total_seconds())
        if state is not AgentState.LOGGED_OUT:
            s.add(AgentStateLog(
                agent_id=agent_id, campaign_id=campaign_id, state=state, reason=reason,
                started_at=at, ended_at=ends,
                duration_s=None if ends is None else max(0.0, (ends - at).total_seconds())))


@translated
async def set_agent_groups(sessions: Sessions, login: str, groups: list[str]) -> bool:
    """Replace the agent's groups; False when there is no such agent."""
    async with sessions.begin() as s:
        row = await s.scalar(select(Agent).where(Agent.login == login))
        if row is None:
            return False
        row.groups = list(groups)
        return True


@translated
async def agent_groups(sessions: Sessions, login: str) -> list[str] | None:
    """The agent's named groups; None when there is no such agent."""
    async with sessions() as s:
        row = await s.scalar(select(Agent.groups).where(Agent.login == login))
        return None if row is None else [str(g) for g in row]
