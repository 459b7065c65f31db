"""Scheduled jobs (APScheduler 3.x AsyncIOScheduler), one runner per occurrence across processes.

Jobs:
* ``dialing_edges`` - open / close each campaign's dialing at its company calendar's edges
  (sets Campaign.active and calls the runtime's hooks); re-arms itself at the next edge and
  also runs every few minutes to pick up calendar edits;
* ``daily_plans`` - at each campaign's local plan time on a working day, build the plan;
* ``daily_reports`` - at the local report time, write the end-of-day report;
* ``abandon_rollup`` - store each campaign's abandon rate over its regulatory window;
* ``expire_claims`` - clear hopper claims whose lease ran out;
* ``callback_reminders`` - remind owning agents before their callbacks are due.

Every job callable takes an injected ``now`` (tests drive them with a fake clock; the
scheduler passes ``clock()``), is idempotent, and runs under a lease row in ``job_leases``:
``try_lease`` takes an occurrence with one conditional UPDATE (or the first INSERT), which is
atomic on SQLite and PostgreSQL alike, so when several dialer processes share the database only
one of them runs each occurrence. Occurrence keys are ISO-8601 UTC strings, so they order
lexicographically like time: a process that fires late never re-runs an older occurrence.
A finished occurrence is marked done (expires_at far in the future); a runner that dies leaves
a lease that expires after its TTL, after which another process may redo the occurrence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.vocabulary import AbandonWindow, CallbackScope
from db import repositories as repo
from db.models import AbandonRollup, Callback, Campaign, Company, JobLease
from scheduling.calendar import CalendarError, CompanyCalendar
from scheduling.callbacks import (
    CallbackFacts,
    CallbackPolicy,
    CallbackReminder,
    due_reminders,
    local_to_utc,
)
from scheduling.days import local_date, local_day_bounds
from scheduling.facts import refresh_callability
from scheduling.plan import build_daily_plan, plan_exists
from scheduling.report import build_day_report, report_exists

log = logging.getLogger(__name__)

__all__ = [
    "JobHooks",
    "JobSettings",
    "SchedulingJobs",
    "build_scheduler",
    "finish_lease",
    "try_lease",
]

Sessions = async_sessionmaker[AsyncSession]
#: a finished occurrence's lease never expires (it must not run again)
_DONE = datetime(9999, 12, 31, tzinfo=UTC)


def utc_now() -> datetime:
    """The production clock (the only wall-clock read in scheduling/)."""
    return datetime.now(UTC)


def occurrence_key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------ leases


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


# ------------------------------------------------------------------------------ configuration


Hook = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobHooks:
    """What the runtime does when a job decides something it owns. None: nothing to call."""

    #: a campaign's calendar opened: start dialing it (Campaign.active is already set)
    open_dialing: Hook | None = None
    #: a campaign's calendar closed: stop placing new calls (calls in flight finish)
    close_dialing: Hook | None = None
    #: deliver a callback reminder to the owning agent (the MQTT agent protocol)
    callback_reminder: Callable[[CallbackReminder], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSettings:
    #: local time (campaign zone) at which the day's plan is built
    plan_time: time = time(6, 0)
    #: local time at which the end-of-day report is written
    report_time: time = time(21, 30)
    callback_reminder_before: timedelta = timedelta(minutes=10)
    abandon_rollup_every: timedelta = timedelta(minutes=5)
    expire_claims_every: timedelta = timedelta(minutes=1)
    reminders_every: timedelta = timedelta(minutes=1)
    #: how often daily jobs check whether a campaign's plan/report time has come
    daily_check_every: timedelta = timedelta(minutes=5)
    #: safety re-check of calendar edges (edits to calendars, missed edges)
    edges_recheck_every: timedelta = timedelta(minutes=5)
    lease_ttl: timedelta = timedelta(minutes=10)
    #: recompute every lead's next_call_at just before building the plan, so the plan reflects
    #: today's calendars, windows and retry rules even for leads nobody touched since
    refresh_before_plan: bool = True
    abandon_lockout: timedelta = timedelta(hours=72)

    @classmethod
    def from_section(cls, section: Any) -> JobSettings:
        """From dialer.config.SchedulingSection (plan_time "HH:MM" etc.)."""

        def hhmm(v: str) -> time:
            h, m = v.split(":")
            return time(int(h), int(m))

        return cls(
            plan_time=hhmm(section.plan_time),
            report_time=hhmm(section.report_time),
            callback_reminder_before=timedelta(seconds=section.callback_reminder_s),
            abandon_lockout=timedelta(seconds=section.abandon_lockout_s),
        )


@dataclass(slots=True)
class JobRun:
    """What one job occurrence did (for logs and tests)."""

    name: str
    occurrence: str
    ran: bool
    detail: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ the jobs


class SchedulingJobs:
    """The job bodies plus the lease guard. Each `*_job(now)` is callable directly in tests."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        holder: str,
        hooks: JobHooks | None = None,
        settings: JobSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not holder:
            raise ValueError("holder must name this process (e.g. its dialer_id)")
        self.sessions = sessions
        self.holder = holder
        self.hooks = hooks or JobHooks()
        self.settings = settings or JobSettings()
        self.clock = clock

    async def guarded(
        self, name: str, occurrence_at: datetime, body: Callable[[], Awaitable[dict[str, Any]]],
        now: datetime,
    ) -> JobRun:
        """Run `body` if this process wins the lease for (name, occurrence_at)."""
        occ = occurrence_key(occurrence_at)
        if not await try_lease(
            self.sessions, name=name, occurrence=occ, holder=self.holder, now=now,
            ttl=self.settings.lease_ttl,
        ):
            log.debug("job %s %s: another runner has it", name, occ)
            return JobRun(name, occ, False)
        try:
            detail = await body()
        except Exception:
            # One failing occurrence must not stop the scheduler or other campaigns' jobs.
            # The lease is left unfinished, so the occurrence is retried once it expires.
            log.exception("job %s %s failed; retried after the lease expires", name, occ)
            return JobRun(name, occ, True, {"error": True})
        await finish_lease(self.sessions, name=name, occurrence=occ, holder=self.holder)
        return JobRun(name, occ, True, detail)

    # -- calendars ----------------------------------------------------------------------------
    async def _campaign_calendars(self) -> list[tuple[Campaign, CompanyCalendar]]:
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(Campaign, Company).join(Company, Company.id == Campaign.company_id)
                )
            ).all()
        out = []
        for campaign, company in rows:
            try:
                cal = CompanyCalendar.from_company(company)
                cal.validate()
            except CalendarError as e:
                # a broken calendar must not stop the other campaigns' jobs
                log.error("campaign %s: company calendar %s unusable: %s", campaign.id,
                          company.id, e)
                continue
            out.append((campaign, cal))
        return out

    async def dialing_edges_job(self, now: datetime) -> JobRun:
        """Make each calendar-bound campaign's dialing match its calendar at `now`."""

        async def body() -> dict[str, Any]:
            opened: list[int] = []
            closed: list[int] = []
            for campaign, cal in await self._campaign_calendars():
                is_open = cal.is_open(now)
                if is_open == campaign.active:
                    continue
                async with self.sessions.begin() as s:
                    res = await s.execute(
                        update(Campaign)
                        .where(Campaign.id == campaign.id, Campaign.active.is_(not is_open))
                        .values(active=is_open)
                    )
                    changed = bool(res.rowcount)  # type: ignore[attr-defined]
                if not changed:
                    continue
                hook = self.hooks.open_dialing if is_open else self.hooks.close_dialing
                (opened if is_open else closed).append(campaign.id)
                log.info("campaign %s: calendar %s, dialing %s", campaign.id,
                         "opened" if is_open else "closed", "on" if is_open else "off")
                if hook is not None:
                    await hook(campaign.id)
            return {"opened": opened, "closed": closed}

        # occurrence per minute: edges are minute-aligned
        return await self.guarded("dialing_edges", now.replace(second=0, microsecond=0), body, now)

    async def next_edge(self, now: datetime) -> datetime | None:
        """The next instant after `now` at which any campaign's calendar opens or closes."""
        best: datetime | None = None
        for _, cal in await self._campaign_calendars():
            edge = cal.next_close(now) if cal.is_open(now) else cal.next_open(now)
            if edge is not None and edge > now and (best is None or edge < best):
                best = edge
        return best

    # -- plan / report ------------------------------------------------------------------------
    async def _campaigns(self) -> list[tuple[Campaign, CompanyCalendar | None]]:
        cals = {c.id: cal for c, cal in await self._campaign_calendars()}
        async with self.sessions() as s:
            campaigns = list((await s.execute(select(Campaign).order_by(Campaign.id))).scalars())
        return [(c, cals.get(c.id)) for c in campaigns]

    async def daily_plans_job(self, now: datetime) -> list[JobRun]:
        """Build today's plan for campaigns whose local plan time has passed on a working day."""
        runs = []
        for campaign, cal in await self._campaigns():
            day = local_date(now, campaign.timezone)
            start, _ = local_day_bounds(day, campaign.timezone)
            due = _at_local(day, self.settings.plan_time, campaign.timezone, start)
            if now < due:
                continue
            if cal is not None and not cal.open_intervals(day):
                continue  # not a working day for this campaign's company
            if await plan_exists(self.sessions, campaign_id=campaign.id, plan_date=day):
                continue

            async def body(cid: int = campaign.id, d: date = day) -> dict[str, Any]:
                if self.settings.refresh_before_plan:
                    await refresh_callability(self.sessions, campaign_id=cid, now=now,
                                              abandon_lockout=self.settings.abandon_lockout)
                plans = await build_daily_plan(self.sessions, campaign_id=cid, plan_date=d,
                                               now=now)
                return {"campaign_id": cid, "date": d.isoformat(),
                        "planned": sum(p.size for p in plans)}

            runs.append(await self.guarded(f"daily_plan:{campaign.id}", due, body, now))
        return runs

    async def daily_reports_job(self, now: datetime) -> list[JobRun]:
        """Write today's report for campaigns whose local report time has passed."""
        runs = []
        for campaign, _ in await self._campaigns():
            day = local_date(now, campaign.timezone)
            start, _ = local_day_bounds(day, campaign.timezone)
            due = _at_local(day, self.settings.report_time, campaign.timezone, start)
            if now < due:
                continue
            if await report_exists(self.sessions, campaign_id=campaign.id, report_date=day):
                continue

            async def body(cid: int = campaign.id, d: date = day) -> dict[str, Any]:
                rows = await build_day_report(self.sessions, campaign_id=cid, report_date=d,
                                              now=now)
                return {"campaign_id": cid, "date": d.isoformat(), "rows": len(rows)}

            runs.append(await self.guarded(f"daily_report:{campaign.id}", due, body, now))
        return runs

    # -- abandon rates, claims, reminders ---------------------------------------------------------
    async def abandon_rollup_job(self, now: datetime) -> JobRun:
        """Store each campaign's abandon rate over its regulatory window (docs/compliance.md)."""
        slot = _floor(now, self.settings.abandon_rollup_every)

        async def body() -> dict[str, Any]:
            async with self.sessions() as s:
                campaigns = list((await s.execute(select(Campaign))).scalars())
            rates: dict[int, float] = {}
            for c in campaigns:
                since = _window_start(c.abandon_window, c.timezone, now)
                fig = await repo.abandon_figures(self.sessions, c.id, since)
                rate = fig.abandoned / fig.live if fig.live else 0.0
                async with self.sessions.begin() as s:
                    s.add(AbandonRollup(campaign_id=c.id, window=c.abandon_window.value,
                                        computed_at=now, live=fig.live,
                                        abandoned=fig.abandoned, rate=rate))
                rates[c.id] = rate
            return {"rates": rates}

        return await self.guarded("abandon_rollup", slot, body, now)

    async def expire_claims_job(self, now: datetime) -> JobRun:
        slot = _floor(now, self.settings.expire_claims_every)

        async def body() -> dict[str, Any]:
            n = await repo.expire_claims(self.sessions, now=now)
            if n:
                log.info("expired %d stale hopper claims", n)
            return {"expired": n}

        return await self.guarded("expire_claims", slot, body, now)

    async def callback_reminders_job(self, now: datetime) -> JobRun:
        """Send due reminders once each: mark reminded_at first (conditionally), then send."""
        slot = _floor(now, self.settings.reminders_every)
        grace_max = timedelta(hours=24)  # per-campaign grace is applied below

        async def body() -> dict[str, Any]:
            before = self.settings.callback_reminder_before
            async with self.sessions() as s:
                rows = (
                    await s.execute(
                        select(Callback, Campaign.callback_grace_s)
                        .join(Campaign, Campaign.id == Callback.campaign_id)
                        .where(
                            Callback.status == "pending",
                            Callback.scope == CallbackScope.AGENT,
                            Callback.reminded_at.is_(None),
                            Callback.due_at <= now + before,
                            Callback.due_at > now - grace_max,
                        )
                    )
                ).all()
            sent: list[int] = []
            for cb, grace_s in rows:
                policy = CallbackPolicy(grace=timedelta(seconds=grace_s), reminder_before=before)
                for reminder in due_reminders([CallbackFacts.from_row(cb)], now, policy):
                    async with self.sessions.begin() as s:
                        res = await s.execute(
                            update(Callback)
                            .where(Callback.id == cb.id, Callback.reminded_at.is_(None))
                            .values(reminded_at=now)
                        )
                        mine = bool(res.rowcount)  # type: ignore[attr-defined]
                    if mine and self.hooks.callback_reminder is not None:
                        await self.hooks.callback_reminder(reminder)
                    if mine:
                        sent.append(cb.id)
            return {"sent": sent}

        return await self.guarded("callback_reminders", slot, body, now)


def _floor(now: datetime, every: timedelta) -> datetime:
    step = int(every.total_seconds())
    ts = int(now.timestamp())
    return datetime.fromtimestamp(ts - ts % step, UTC)


def _at_local(day: date, at: time, zone_name: str, day_start: datetime) -> datetime:
    """Local time-of-day `at` on `day` in UTC (DST-exact), never before the day's start."""
    return max(day_start, local_to_utc(datetime.combine(day, at), zone_name))


def _window_start(window: AbandonWindow, zone_name: str, now: datetime) -> datetime:
    if window is AbandonWindow.ROLLING_24H:
        return now - timedelta(hours=24)
    if window is AbandonWindow.CALENDAR_DAY:
        return local_day_bounds(local_date(now, zone_name), zone_name)[0]
    return now - timedelta(days=30)


# ------------------------------------------------------------------------------ scheduler


def build_scheduler(
    jobs: SchedulingJobs, *, scheduler: AsyncIOScheduler | None = None
) -> AsyncIOScheduler:
    """Register every job on an AsyncIOScheduler (created if not given; not started).

    The runtime calls ``scheduler.start()`` inside its running event loop and
    ``scheduler.shutdown()`` at exit. Triggers run on the wall clock; each run reads
    ``jobs.clock()`` once and passes it to the job as ``now``. Edges, plans and reminders
    run once at start so a process that starts mid-day catches up at once.
    """
    sched = scheduler or AsyncIOScheduler(timezone=UTC)
    st = jobs.settings
    common: dict[str, Any] = {"coalesce": True, "max_instances": 1, "replace_existing": True,
                              "misfire_grace_time": 60}

    async def edges() -> None:
        now = jobs.clock()
        await jobs.dialing_edges_job(now)
        nxt = await jobs.next_edge(now)
        if nxt is not None:
            # fire just after the edge so the calendar reads the new state
            sched.add_job(edges, DateTrigger(run_date=nxt + timedelta(seconds=1)),
                          id="dialing_edges_next", **common)

    async def plans() -> None:
        await jobs.daily_plans_job(jobs.clock())

    async def reports() -> None:
        await jobs.daily_reports_job(jobs.clock())

    async def rollup() -> None:
        await jobs.abandon_rollup_job(jobs.clock())

    async def claims() -> None:
        await jobs.expire_claims_job(jobs.clock())

    async def reminders() -> None:
        await jobs.callback_reminders_job(jobs.clock())

    # APScheduler runs on the wall clock whatever business clock the jobs were given
    now = utc_now()
    sched.add_job(edges, IntervalTrigger(seconds=st.edges_recheck_every.total_seconds()),
                  id="dialing_edges", next_run_time=now, **common)
    sched.add_job(plans, IntervalTrigger(seconds=st.daily_check_every.total_seconds()),
                  id="daily_plans", next_run_time=now, **common)
    sched.add_job(reports, IntervalTrigger(seconds=st.daily_check_every.total_seconds()),
                  id="daily_reports", **common)
    sched.add_job(rollup, IntervalTrigger(seconds=st.abandon_rollup_every.total_seconds()),
                  id="abandon_rollup", **common)
    sched.add_job(claims, IntervalTrigger(seconds=st.expire_claims_every.total_seconds()),
                  id="expire_claims", **common)
    sched.add_job(reminders, IntervalTrigger(seconds=st.reminders_every.total_seconds()),
                  id="callback_reminders", next_run_time=now, **common)
    return sched
