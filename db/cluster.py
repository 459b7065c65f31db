"""Reads and writes of several dialer instances sharing one database (docs/cluster.md).

Leases live in the `job_leases` table (one row per name, as the scheduled jobs' leases do),
under names of their own so no job ever touches them:

* `cluster/instance/<dialer id>`: an instance's heartbeat; `expires_at` is renewed every
  heartbeat, `occurrence` is `up:<start time>` while it lives. A survivor that finds it
  expired marks it `dead` (one conditional UPDATE: exactly one survivor wins) and then
  cleans up after it;
  The row also carries the member's `console_url` (migration 0019): where the other members'
  consoles forward an agent control or a listen-in for what this member serves;
* `cluster/agent/<login>`: which instance serves an agent; taken with one conditional UPDATE
  (free, expired or already ours) or the first INSERT, so two instances never both win.

`answered_by_others` counts the other instances' answers of a campaign per abandon window:
the external contribution to every instance's abandon ledger.

Errors: SQLAlchemy errors leave here as `RepositoryError` (db/repositories.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from common.vocabulary import AttemptResult, AttemptStage
from db.models import Agent, Attempt, AuditEntry, JobLease
from db.repositories import Sessions, translated

INSTANCE = "cluster/instance/"
AGENT = "cluster/agent/"
DEAD = "dead"
CLEANING = "cleaning"

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Member:
    dialer_id: str
    expires_at: datetime
    #: `up:<start>` while it lives, `dead` once a survivor cleaned up after it
    occurrence: str
    holder: str
    #: its supervisor console's base URL (None: it runs no web server, or an older version)
    console_url: str | None = None

    def alive(self, now: datetime) -> bool:
        return self.expires_at >= now and self.occurrence.startswith("up:")


@dataclass(frozen=True, slots=True)
class AgentLease:
    login: str
    holder: str
    expires_at: datetime


async def _upsert(sessions: Sessions, name: str, occurrence: str, holder: str,
                  expires: datetime, *, only_if: object | None = None,
                  **extra: Any) -> bool:
    """UPDATE the lease row `name` (if `only_if` holds), else INSERT it; False when the row
    exists and `only_if` does not hold, or another process inserted it first. `extra`: more
    columns to set (an instance's `console_url`)."""
    async with sessions.begin() as s:
        stmt = update(JobLease).where(JobLease.name == name)
        if only_if is not None:
            stmt = stmt.where(only_if)  # type: ignore[arg-type]
        res = await s.execute(stmt.values(occurrence=occurrence, holder=holder,
                                          expires_at=expires, **extra))
        if res.rowcount:  # type: ignore[attr-defined]
            return True
        if (await s.execute(select(JobLease.name).where(JobLease.name == name))).first():
            return False
    try:
        async with sessions.begin() as s:
            s.add(JobLease(name=name, occurrence=occurrence, holder=holder, expires_at=expires,
                           **extra))
        return True
    except IntegrityError:
        return False


# ------------------------------------------------------------------------------ instances


@translated
async def heartbeat(sessions: Sessions, *, dialer_id: str, started: datetime, now: datetime,
                    ttl: timedelta, console_url: str | None = None) -> None:
    """Renew this instance's heartbeat lease (creates it at the first beat)."""
    await _upsert(sessions, INSTANCE + dialer_id, f"up:{started.isoformat()}", dialer_id,
                  now + ttl, console_url=console_url)


@translated
async def renew_if_mine(sessions: Sessions, *, dialer_id: str, started: datetime,
                        now: datetime, ttl: timedelta, console_url: str | None = None) -> bool:
    """Renew this instance's heartbeat only while its row is still `up:<started>`: False when a
    survivor judged it dead meanwhile (`cleaning`, `dead`): it stalled past the TTL and must
    fence itself. One conditional UPDATE, so it never undoes a survivor's claim. A console
    URL is written with it (a row another process rewrote is advertised again within a
    heartbeat); None leaves the column as it is: a renewal that started before the web server
    did must not blank the URL `advertise_console` has just written."""
    extra = {} if console_url is None else {"console_url": console_url}
    async with sessions.begin() as s:
        res = await s.execute(
            update(JobLease)
            .where(JobLease.name == INSTANCE + dialer_id, JobLease.holder == dialer_id,
                   JobLease.occurrence == f"up:{started.isoformat()}")
            .values(expires_at=now + ttl, **extra))
        return bool(res.rowcount)  # type: ignore[attr-defined]


@translated
async def rejoin(sessions: Sessions, *, dialer_id: str, started: datetime, now: datetime,
                 ttl: timedelta, console_url: str | None = None) -> bool:
    """A fenced instance registers again as `up:<started>` (a new run), but only once the
    survivor's clean-up after it is over (`dead`, or a `cleaning` lease that expired): its
    new attempts are never closed by that clean-up."""
    return await _upsert(
        sessions, INSTANCE + dialer_id, f"up:{started.isoformat()}", dialer_id, now + ttl,
        only_if=or_(JobLease.occurrence != CLEANING, JobLease.expires_at < now),
        console_url=console_url)


@translated
async def advance_open_attempt(sessions: Sessions, attempt_id: int, **fields: Any) -> None:
    """A call's stage update, applied only while its attempt is open: a survivor may have
    closed it as `lost` while this instance stalled, and a late `ringing` must not reopen it
    (a reopened row would then take this instance's final result over the survivor's)."""
    async with sessions.begin() as s:
        await s.execute(update(Attempt).where(Attempt.id == attempt_id,
                                              Attempt.stage != AttemptStage.ENDED)
                        .values(**fields))


@translated
async def leave(sessions: Sessions, *, dialer_id: str) -> None:
    """A clean stop: the heartbeat row goes (nothing is left for a survivor to clean up)."""
    async with sessions.begin() as s:
        await s.execute(delete(JobLease).where(JobLease.name == INSTANCE + dialer_id))


@translated
async def members(sessions: Sessions) -> list[Member]:
    """Every instance that ever beat (alive or not), by id."""
    async with sessions() as s:
        rows = (await s.execute(
            select(JobLease).where(JobLease.name.startswith(INSTANCE, autoescape=True))
            .order_by(JobLease.name))).scalars().all()
    return [Member(r.name[len(INSTANCE):], r.expires_at, r.occurrence, r.holder, r.console_url)
            for r in rows]


@translated
async def advertise_console(sessions: Sessions, *, dialer_id: str, url: str | None) -> None:
    """Set this instance's console URL on its heartbeat row now (its web server started after
    the first beat; the next renewal would write it too, a heartbeat later)."""
    async with sessions.begin() as s:
        await s.execute(update(JobLease).where(JobLease.name == INSTANCE + dialer_id,
                                               JobLease.holder == dialer_id)
                        .values(console_url=url))


@translated
async def attempt_dialer(sessions: Sessions, attempt_id: int) -> str | None:
    """The instance that placed attempt `attempt_id` (its call lives on that instance's SIP
    nodes), or None for no such attempt."""
    async with sessions() as s:
        got = await s.scalar(select(Attempt.dialer_id).where(Attempt.id == attempt_id))
    return None if got is None else str(got)


@translated
async def claim_dead(sessions: Sessions, *, dead_id: str, by: str, now: datetime,
                     ttl: timedelta) -> bool:
    """Take the clean-up after an expired instance: True for the one survivor whose UPDATE
    marked it `cleaning` (a lease of `ttl`: a survivor that dies cleaning leaves it to
    another). False when it is alive again, being cleaned up, or already dead."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(JobLease)
            .where(JobLease.name == INSTANCE + dead_id, JobLease.expires_at < now,
                   JobLease.occurrence != DEAD)
            .values(occurrence=CLEANING, holder=by, expires_at=now + ttl))
        return bool(res.rowcount)  # type: ignore[attr-defined]


@translated
async def mark_dead(sessions: Sessions, *, dead_id: str, by: str) -> bool:
    """The clean-up is done: the instance is `dead` (unless it came back meanwhile)."""
    async with sessions.begin() as s:
        res = await s.execute(
            update(JobLease)
            .where(JobLease.name == INSTANCE + dead_id, JobLease.occurrence == CLEANING,
                   JobLease.holder == by)
            .values(occurrence=DEAD))
        return bool(res.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ agents


@translated
async def take_agent(sessions: Sessions, *, login: str, dialer_id: str, now: datetime,
                     ttl: timedelta) -> bool:
    """Serve agent `login` from `dialer_id`: True when the lease was free, expired or
    already this instance's; False while another instance holds it."""
    return await _upsert(
        sessions, AGENT + login, "agent", dialer_id, now + ttl,
        only_if=or_(JobLease.holder == dialer_id, JobLease.expires_at < now))


@translated
async def hand_agent(sessions: Sessions, *, login: str, from_id: str, to_id: str,
                     now: datetime, ttl: timedelta) -> bool:
    """Instance `from_id` hands agent `login` to `to_id` (a transfer there:
    dialer/cluster_lend.py): True when `from_id` held the lease and `to_id` holds it now."""
    async with sessions.begin() as s:
        res = await s.execute(update(JobLease)
                              .where(JobLease.name == AGENT + login,
                                     JobLease.holder == from_id)
                              .values(holder=to_id, expires_at=now + ttl))
    return bool(res.rowcount)  # type: ignore[attr-defined]


@translated
async def renew_agents(sessions: Sessions, *, dialer_id: str, logins: Sequence[str],
                       now: datetime, ttl: timedelta) -> list[str]:
    """Renew the leases this instance still holds; returns the logins it lost (another
    instance took them after they expired)."""
    if not logins:
        return []
    names = [AGENT + x for x in logins]
    async with sessions.begin() as s:
        await s.execute(update(JobLease)
                        .where(JobLease.name.in_(names), JobLease.holder == dialer_id)
                        .values(expires_at=now + ttl))
        held = set((await s.execute(select(JobLease.name).where(
            JobLease.name.in_(names), JobLease.holder == dialer_id))).scalars())
    return [x for x in logins if AGENT + x not in held]


@translated
async def release_agents(sessions: Sessions, *, dialer_id: str, logins: Iterable[str]) -> None:
    names = [AGENT + x for x in logins]
    if not names:
        return
    async with sessions.begin() as s:
        await s.execute(delete(JobLease).where(JobLease.name.in_(names),
                                               JobLease.holder == dialer_id))


@translated
async def agent_lease(sessions: Sessions, login: str) -> AgentLease | None:
    """Which instance serves agent `login` (None: no instance ever took it)."""
    async with sessions() as s:
        r = await s.scalar(select(JobLease).where(JobLease.name == AGENT + login))
    return None if r is None else AgentLease(login, r.holder, r.expires_at)


@translated
async def agent_leases(sessions: Sessions) -> dict[str, AgentLease]:
    async with sessions() as s:
        rows = (await s.execute(
            select(JobLease).where(JobLease.name.startswith(AGENT, autoescape=True)))
        ).scalars().all()
    return {r.name[len(AGENT):]: AgentLease(r.name[len(AGENT):], r.holder, r.expires_at)
            for r in rows}


@translated
async def agent_row(sessions: Sessions, login: str) -> Agent | None:
    """Agent `login`'s row (an agent moved to a campaign this instance runs)."""
    async with sessions() as s:
        return await s.scalar(select(Agent).where(Agent.login == login))


@translated
async def moves_after(sessions: Sessions, *, after_id: int,
                      since: datetime) -> list[tuple[int, str, str]]:
    """(audit id, login, campaign) of the agent moves (`agent.move` audit rows) with an id
    above `after_id` made at `since` or later, oldest first: the moves another instance
    made, for every member to follow (dialer/cluster.py `follow_moves`)."""
    async with sessions() as s:
        rows = (await s.execute(
            select(AuditEntry.id, AuditEntry.target, AuditEntry.detail)
            .where(AuditEntry.action == "agent.move", AuditEntry.id > after_id,
                   AuditEntry.at >= since)
            .order_by(AuditEntry.id))).all()
    return [(i, target.split(":", 1)[1], str((detail or {}).get("to")))
            for i, target, detail in rows if target.startswith("agent:")]


# ------------------------------------------------------------------------------ abandons


def answered_by_others_query(*, campaign_id: int, dialer_id: str, ended_after: datetime,
                             starts: Sequence[datetime]) -> Select[Any]:
    """The statement of `answered_by_others` (one filtered count per window start). The
    index `ix_attempts_campaign_answered` (campaign_id, answered_at) serves it: every
    heartbeat of every instance runs it (tests/cluster/test_cluster_units.py checks the plan
    on PostgreSQL)."""
    cols = [func.count().filter(Attempt.answered_at >= st) for st in starts]
    return (select(Attempt.result, *cols)
            .where(Attempt.campaign_id == campaign_id, Attempt.dialer_id != dialer_id,
                   Attempt.ended_at > ended_after,
                   Attempt.answered_at >= min(starts),
                   Attempt.result.in_([AttemptResult.CONNECTED, AttemptResult.ABANDONED,
                                       AttemptResult.MACHINE]))
            .group_by(Attempt.result))


@translated
async def answered_by_others(
    sessions: Sessions, *, campaign_id: int, dialer_id: str, ended_after: datetime,
    starts: Mapping[K, datetime],
) -> dict[K, tuple[int, int, int]]:
    """(live, abandoned, machines) answered since each window start by the campaign's
    *other* instances, counting only attempts that ended after `ended_after` (the ones
    before it are in the ledger's seed already: the runtime seeds every instance's
    answers at its start). One query, one filtered count per window."""
    if not starts:
        return {}
    keys = list(starts)
    async with sessions() as s:
        rows = (await s.execute(answered_by_others_query(
            campaign_id=campaign_id, dialer_id=dialer_id, ended_after=ended_after,
            starts=[starts[k] for k in keys]))).all()
    out = {k: [0, 0, 0] for k in keys}
    for result, *counts in rows:
        for k, n in zip(keys, counts, strict=True):
            if result is AttemptResult.MACHINE:
                out[k][2] += int(n)
            else:
                out[k][0] += int(n)
                if result is AttemptResult.ABANDONED:
                    out[k][1] += int(n)
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}
