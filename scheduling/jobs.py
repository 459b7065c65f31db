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
scheduler passes ``clock.now()`` of the `common.clock.Clock` it was given), is idempotent, and
runs under a lease row in ``job_leases``: ``try_lease`` (db/jobs_store.py) takes an occurrence
with one conditional UPDATE (or the first INSERT), which is atomic on SQLite and PostgreSQL
alike, so when several dialer processes share the database only one of them runs each
occurrence. Occurrence keys are ISO-8601 UTC strings, so they order
lexicographically like time: a process that fires late never re-runs an older occurrence.
A finished occurrence is marked done (expires_at far in the future); a runner that dies leaves
a lease that expires after its TTL, after which another process may redo the occurrence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from common.clock import SYSTEM_CLOCK, Clock, utc_now
from common.vocabulary import AbandonWindow
from db import jobs_store
from db import repositories as repo
from db.jobs_store import finish_lease, try_lease
from db.models import Campaign
from db.planning import day_stored
from db.repositories import Sessions
from scheduling.calendar import CalendarError, CompanyCalendar
from scheduling.callbacks import (
    CallbackFacts,
    CallbackPolicy,
    CallbackReminder,
    due_reminders,
    local_to_utc,
)
from scheduling.compliance import compliance_preset, effective_abandon
from scheduling.days import local_date, local_day_bounds
from scheduling.facts import refresh_callability
from scheduling.plan import build_daily_plan
from scheduling.report import build_day_report

log = logging.getLogger(__name__)

__all__ = [
    "JobHooks",
    "JobSettings",
    "SchedulingJobs",
    "build_scheduler",
    "finish_lease",
    "try_lease",
]

#: what SchedulingJobs accepts as its clock: a `Clock`, or (as before common.clock existed)
#: a function returning the current aware UTC time
ClockLike = Clock | Callable[[], datetime]


class _CallableClock:
    """A `now()` function seen as a `Clock` (durations come from the system's monotonic)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now()

    def monotonic(self) -> float:
        return SYSTEM_CLOCK.monotonic()


def as_clock(clock: ClockLike) -> Clock:
    """`clock` itself if it is a `Clock`, else the function wrapped as one."""
    return clock if isinstance(clock, Clock) else _CallableClock(clock)


def occurrence_key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        clock: ClockLike = SYSTEM_CLOCK,
    ) -> None:
        if not holder:
            raise ValueError("holder must name this process (e.g. its dialer_id)")
        self.sessions = sessions
        self.holder = holder
        self.hooks = hooks or JobHooks()
        self.settings = settings or JobSettings()
        self.clock: Clock = as_clock(clock)

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
        out = []
        for campaign, company in await jobs_store.campaigns_with_companies(self.sessions):
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
                if not await jobs_store.set_campaign_active(self.sessions, campaign.id, is_open):
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
        return [(c, cals.get(c.id)) for c in await jobs_store.campaigns(self.sessions)]

    async def _daily(
        self, now: datetime, *, what: Literal["plan", "report"], at: time,
        working_days_only: bool, body: Callable[[int, date], Awaitable[dict[str, Any]]],
    ) -> list[JobRun]:
        """Run `body(campaign_id, day)` for each campaign whose local time `at` has passed
        today and whose `what` for today is not stored yet (only on its company's working
        days if `working_days_only`), once per campaign and day across processes."""
        runs = []
        for campaign, cal in await self._campaigns():
            day = local_date(now, campaign.timezone)
            start, _ = local_day_bounds(day, campaign.timezone)
            due = _at_local(day, at, campaign.timezone, start)
            if now < due:
                continue
            if working_days_only and cal is not None and not cal.open_intervals(day):
                continue  # not a working day for this campaign's company
            if await day_stored(self.sessions, what, campaign_id=campaign.id, day=day):
                continue

            async def run(cid: int = campaign.id, d: date = day) -> dict[str, Any]:
                return await body(cid, d)

            runs.append(await self.guarded(f"daily_{what}:{campaign.id}", due, run, now))
        return runs

    async def daily_plans_job(self, now: datetime) -> list[JobRun]:
        """Build today's plan for campaigns whose local plan time has passed on a working day."""

        async def body(cid: int, d: date) -> dict[str, Any]:
            if self.settings.refresh_before_plan:
                await refresh_callability(self.sessions, campaign_id=cid, now=now,
                                          abandon_lockout=self.settings.abandon_lockout)
            plans = await build_daily_plan(self.sessions, campaign_id=cid, plan_date=d, now=now)
            return {"campaign_id": cid, "date": d.isoformat(),
                    "planned": sum(p.size for p in plans)}

        return await self._daily(now, what="plan", at=self.settings.plan_time,
                                 working_days_only=True, body=body)

    async def daily_reports_job(self, now: datetime) -> list[JobRun]:
        """Write today's report for campaigns whose local report time has passed."""

        async def body(cid: int, d: date) -> dict[str, Any]:
            rows = await build_day_report(self.sessions, campaign_id=cid, report_date=d, now=now)
            return {"campaign_id": cid, "date": d.isoformat(), "rows": len(rows)}

        return await self._daily(now, what="report", at=self.settings.report_time,
                                 working_days_only=False, body=body)

    # -- abandon rates, claims, reminders ---------------------------------------------------------
    async def abandon_rollup_job(self, now: datetime) -> JobRun:
        """Store each campaign's abandon rate over its regulatory window (docs/compliance.md)."""
        slot = _floor(now, self.settings.abandon_rollup_every)

        async def body() -> dict[str, Any]:
            rates: dict[int, float] = {}
            for c in await jobs_store.campaigns(self.sessions):
                # the window and the false-positive estimate the campaign runs with
                ab = effective_abandon(
                    compliance_preset(c.calling_window), cap=c.abandon_cap,
                    window=c.abandon_window, grace_s=c.abandon_grace_s,
                    amd_false_positive_rate=c.amd_false_positive_rate)
                since = _window_start(ab.window, c.timezone, now)
                fig = await repo.abandon_figures(self.sessions, c.id, since)
                rate = fig.rate_with_false_positives(ab.amd_false_positive_rate) \
                    if ab.count_amd_false_positives else fig.rate
                await jobs_store.add_abandon_rollup(
                    self.sessions, campaign_id=c.id, window=ab.window.value,
                    computed_at=now, live=fig.live, abandoned=fig.abandoned, rate=rate)
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
            rows = await jobs_store.reminder_candidates(
                self.sessions, due_before=now + before, due_after=now - grace_max)
            sent: list[int] = []
            for cb, grace_s in rows:
                policy = CallbackPolicy(grace=timedelta(seconds=grace_s), reminder_before=before)
                for reminder in due_reminders([CallbackFacts.from_row(cb)], now, policy):
                    mine = await jobs_store.mark_reminded(self.sessions, cb.id, now)
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
    ``jobs.clock.now()`` once and passes it to the job as ``now``. Edges, plans and reminders
    run once at start so a process that starts mid-day catches up at once.
    """
    sched = scheduler or AsyncIOScheduler(timezone=UTC)
    st = jobs.settings
    common: dict[str, Any] = {"coalesce": True, "max_instances": 1, "replace_existing": True,
                              "misfire_grace_time": 60}

    async def edges() -> None:
        now = jobs.clock.now()
        await jobs.dialing_edges_job(now)
        nxt = await jobs.next_edge(now)
        if nxt is not None:
            # fire just after the edge so the calendar reads the new state
            sched.add_job(edges, DateTrigger(run_date=nxt + timedelta(seconds=1)),
                          id="dialing_edges_next", **common)

    async def plans() -> None:
        await jobs.daily_plans_job(jobs.clock.now())

    async def reports() -> None:
        await jobs.daily_reports_job(jobs.clock.now())

    async def rollup() -> None:
        await jobs.abandon_rollup_job(jobs.clock.now())

    async def claims() -> None:
        await jobs.expire_claims_job(jobs.clock.now())

    async def reminders() -> None:
        await jobs.callback_reminders_job(jobs.clock.now())

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
