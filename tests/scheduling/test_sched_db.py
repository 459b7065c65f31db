"""Daily plan, end-of-day report and jobs on real SQLite and PostgreSQL (db_url fixture).

A hand-made day of attempts in Riga (UTC+2 in November) with two agents; jobs are driven with
an explicit `now` (no sleeping); two SchedulingJobs instances stand for two dialer processes
sharing one database.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta

from sched_seed import DAY, day_of_attempts, seed, utc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import SYSTEM_CLOCK, Clock, ManualClock
from common.vocabulary import AttemptResult
from db.models import (
    AbandonRollup,
    Attempt,
    Campaign,
    DailyReport,
    JobLease,
    Lead,
)
from db.session import create_engine, session_factory
from scheduling.callbacks import CallbackReminder
from scheduling.facts import refresh_callability
from scheduling.jobs import JobHooks, SchedulingJobs, build_scheduler, try_lease
from scheduling.plan import build_daily_plan, load_plan
from scheduling.report import build_day_report, load_day_report, write_csv


async def test_daily_plan_priority_order_and_split(db_engine: AsyncEngine) -> None:
    ids = await seed(db_engine)
    sessions = session_factory(db_engine)
    now = utc(2026, 11, 23, 4)  # 06:00 Riga
    summaries = await build_daily_plan(sessions, campaign_id=ids["campaign"], plan_date=DAY,
                                       now=now)
    sizes = {p.agent_id: p.size for p in summaries}
    assert sizes == {None: 5, ids["alice"]: 1, ids["bob"]: 1}
    plans = await load_plan(sessions, campaign_id=ids["campaign"], plan_date=DAY, shared=True)
    (_, items), = plans
    assert [(i.lead_id, i.reason) for i in items] == [
        (ids["cb_campaign"], "callback"),
        (ids["hot"], "hot"),
        (ids["complaint"], "complaint"),
        (ids["rest_hi"], "due"),  # higher priority first
        (ids["rest_lo"], "due"),
    ]
    (_, alice_items), = await load_plan(sessions, campaign_id=ids["campaign"], plan_date=DAY,
                                        agent_id=ids["alice"])
    assert [(i.lead_id, i.reason) for i in alice_items] == [(ids["cb_alice"], "callback")]
    # rebuilding replaces, never duplicates
    await build_daily_plan(sessions, campaign_id=ids["campaign"], plan_date=DAY, now=now)
    all_plans = await load_plan(sessions, campaign_id=ids["campaign"], plan_date=DAY)
    assert sum(len(items) for _, items in all_plans) == 7


async def test_end_of_day_report_from_a_hand_made_day(db_engine: AsyncEngine) -> None:
    ids = await seed(db_engine)
    sessions = session_factory(db_engine)
    await build_daily_plan(sessions, campaign_id=ids["campaign"], plan_date=DAY,
                           now=utc(2026, 11, 23, 4))
    await day_of_attempts(db_engine, ids)
    rows = await build_day_report(sessions, campaign_id=ids["campaign"], report_date=DAY,
                                  now=utc(2026, 11, 23, 19, 30))
    got = {r.agent: (r.planned, r.called, r.reached, r.meetings, r.contracts, r.callbacks,
                     r.talk_s) for r in rows}
    assert got == {
        "": (5, 4, 0, 0, 0, 0, 0.0),
        "alice": (1, 4, 3, 1, 1, 1, 655.5),
        "bob": (1, 1, 1, 0, 0, 0, 60.0),
    }
    # stored, replaced on rebuild, read back in the same shape
    await build_day_report(sessions, campaign_id=ids["campaign"], report_date=DAY,
                           now=utc(2026, 11, 23, 20))
    async with sessions() as s:
        n = len((await s.execute(select(DailyReport))).scalars().all())
    assert n == 3
    stored = await load_day_report(sessions, report_date=DAY)
    assert [(r.agent, r.called, r.talk_s) for r in stored] == [
        ("", 4, 0.0), ("alice", 4, 655.5), ("bob", 1, 60.0)
    ]
    buf = io.StringIO()
    assert write_csv(stored, buf) == 3
    parsed = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert parsed[1]["agent"] == "alice" and parsed[1]["meetings"] == "1"
    assert parsed[0]["agent_id"] == "" and parsed[0]["report_date"] == "2026-11-23"


async def test_lease_one_runner_per_occurrence(db_engine: AsyncEngine) -> None:
    sessions = session_factory(db_engine)
    now = utc(2026, 11, 23, 10)
    ttl = timedelta(minutes=5)

    async def take(holder: str, occ: str, at: datetime = now) -> bool:
        return await try_lease(sessions, name="job", occurrence=occ, holder=holder, now=at,
                               ttl=ttl)

    # many processes race for the very first occurrence: exactly one wins
    wins = await asyncio.gather(*(take(f"p{i}", "2026-11-23T10:00:00Z") for i in range(6)))
    assert sum(wins) == 1
    assert not await take("late", "2026-11-23T10:00:00Z")
    # a newer occurrence is taken; an older one is never re-run by a late process
    assert await take("p1", "2026-11-23T10:05:00Z")
    assert not await take("p2", "2026-11-23T10:00:00Z")
    # an unfinished lease (runner died) can be taken again after it expires
    assert not await take("p3", "2026-11-23T10:05:00Z", now + timedelta(minutes=4))
    assert await take("p3", "2026-11-23T10:05:00Z", now + timedelta(minutes=6))
    async with sessions() as s:
        lease = await s.get(JobLease, "job")
        assert lease is not None and lease.holder == "p3"


async def test_jobs_with_a_controllable_clock_two_processes(db_engine: AsyncEngine) -> None:
    ids = await seed(db_engine)
    sessions = session_factory(db_engine)
    opened: list[int] = []
    closed: list[int] = []
    reminders: list[CallbackReminder] = []

    async def on_open(cid: int) -> None:
        opened.append(cid)

    async def on_close(cid: int) -> None:
        closed.append(cid)

    async def on_reminder(r: CallbackReminder) -> None:
        reminders.append(r)

    hooks = JobHooks(open_dialing=on_open, close_dialing=on_close, callback_reminder=on_reminder)
    clock = ManualClock(utc(2026, 11, 23, 6, 59))
    a = SchedulingJobs(sessions, holder="proc-a", hooks=hooks, clock=clock)
    b = SchedulingJobs(sessions, holder="proc-b", hooks=hooks, clock=clock)
    cid = ids["campaign"]

    # 08:59 Riga: closed and inactive, nothing to do; the next edge is 09:00 local
    r = await a.dialing_edges_job(clock.now())
    assert r.ran and r.detail == {"opened": [], "closed": []}
    assert await a.next_edge(clock.now()) == utc(2026, 11, 23, 7)
    # at the edge both processes fire; one opens the campaign, the hook runs once
    t = utc(2026, 11, 23, 7, 0, 1)
    runs = await asyncio.gather(a.dialing_edges_job(t), b.dialing_edges_job(t))
    assert sorted(x.ran for x in runs) == [False, True]
    assert opened == [cid] and closed == []
    # lunch (12:00 local = 10:00 UTC) closes it
    await b.dialing_edges_job(utc(2026, 11, 23, 10, 0, 1))
    assert closed == [cid]
    async with sessions() as s:
        camp = await s.get(Campaign, cid)
        assert camp is not None and camp.active is False

    # plans: not before 06:00 local; then once, by one process
    assert await a.daily_plans_job(utc(2026, 11, 23, 3, 59)) == []
    runs_a, runs_b = await asyncio.gather(a.daily_plans_job(utc(2026, 11, 23, 4, 1)),
                                          b.daily_plans_job(utc(2026, 11, 23, 4, 1)))
    ran = [x for x in runs_a + runs_b if x.ran]
    # the job first recomputes next_call_at: the leads seeded as "tomorrow" and "never" are
    # in fact callable from 09:00 today, so 9 of the 11 (all but DNC and DONE) are planned
    assert len(ran) == 1 and ran[0].detail["planned"] == 9
    assert await a.daily_plans_job(utc(2026, 11, 23, 4, 6)) == []  # already built

    # reports at 21:30 local (19:30 UTC)
    assert await a.daily_reports_job(utc(2026, 11, 23, 19, 29)) == []
    (rep,) = await b.daily_reports_job(utc(2026, 11, 23, 19, 31))
    assert rep.ran and rep.detail["rows"] == 3  # shared, alice, bob (owners of planned leads)

    # callback reminder: alice's callback is due 12:00 UTC, reminded from 11:50, once
    assert (await a.callback_reminders_job(utc(2026, 11, 23, 11, 49))).detail == {"sent": []}
    await asyncio.gather(a.callback_reminders_job(utc(2026, 11, 23, 11, 50)),
                                  b.callback_reminders_job(utc(2026, 11, 23, 11, 50)))
    await a.callback_reminders_job(utc(2026, 11, 23, 11, 51))
    assert [(x.agent_id, x.lead_id) for x in reminders] == [(ids["alice"], ids["cb_alice"])]

    # abandon rollup and claim expiry
    await day_of_attempts(db_engine, ids)
    async with sessions.begin() as s:
        for att in (await s.execute(select(Attempt))).scalars():
            if att.result in (AttemptResult.CONNECTED, AttemptResult.ABANDONED):
                att.answered_at = att.created_at
        lead = await s.get(Lead, ids["rest_lo"])
        assert lead is not None
        lead.claimed_by, lead.claimed_until = "proc-x", utc(2026, 11, 23, 12)
    roll = await a.abandon_rollup_job(utc(2026, 11, 23, 23, 0))
    assert roll.ran and roll.detail["rates"][cid] == 1 / 7
    async with sessions() as s:
        (row,) = (await s.execute(select(AbandonRollup))).scalars().all()
        assert (row.live, row.abandoned) == (7, 1)
    exp = await b.expire_claims_job(utc(2026, 11, 23, 12, 1))
    assert exp.detail == {"expired": 1}


async def test_build_scheduler_runs_the_jobs_on_start(db_engine: AsyncEngine) -> None:
    ids = await seed(db_engine)
    sessions = session_factory(db_engine)
    opened = asyncio.Event()

    async def on_open(cid: int) -> None:
        assert cid == ids["campaign"]
        opened.set()

    # business clock: Monday 09:30 in Riga, the company is open and the campaign inactive.
    # It is years ahead of the wall clock so the re-armed edge trigger is still pending.
    jobs = SchedulingJobs(sessions, holder="p", hooks=JobHooks(open_dialing=on_open),
                          clock=ManualClock(utc(2030, 11, 25, 7, 30)))
    sched = build_scheduler(jobs)
    assert {j.id for j in sched.get_jobs()} == {
        "dialing_edges", "daily_plans", "daily_reports", "abandon_rollup",
        "expire_claims", "callback_reminders",
    }
    # run only the edge job here, so nothing is left running on the engine after shutdown
    for job in sched.get_jobs():
        if job.id != "dialing_edges":
            sched.remove_job(job.id)
    sched.start()
    try:
        # event-driven wait (bounded), not a timing assertion: the start-up run opens dialing
        await asyncio.wait_for(opened.wait(), timeout=30)
        # ...and re-arms itself for the next edge: lunch at 12:00 Riga (10:00 UTC)
        for _ in range(300):
            nxt = sched.get_job("dialing_edges_next")
            if nxt is not None:
                break
            await asyncio.sleep(0.01)
        assert nxt is not None
        assert nxt.trigger.run_date == utc(2030, 11, 25, 10, 0, 1)
    finally:
        sched.shutdown(wait=False)


async def test_refresh_callability_writes_next_call_at(db_engine: AsyncEngine) -> None:
    ids = await seed(db_engine)
    sessions = session_factory(db_engine)
    async with sessions.begin() as s:
        busy = await s.get(Lead, ids["rest_hi"])
        assert busy is not None
        busy.attempts, busy.last_result = 1, AttemptResult.BUSY
        busy.last_attempt_at = utc(2026, 11, 23, 10, 20)
    # 12:30 in Riga: the company is at lunch until 13:00 (11:00 UTC)
    now = utc(2026, 11, 23, 10, 30)
    stats = await refresh_callability(sessions, campaign_id=ids["campaign"], now=now)
    assert stats.leads == 11
    # never: DNC and DONE. The lunch break holds the other 8 (the row seeded with a stale
    # never_reason is recomputed from its facts); alice's callback waits for 12:00 UTC
    assert stats.never == 2 and stats.callable_now == 0
    assert stats.held_back == {"company_hours": 8, "callback": 1}
    async with sessions() as s:
        leads = {lead.id: lead for lead in (await s.execute(select(Lead))).scalars()}
    assert leads[ids["rest_lo"]].next_call_at == utc(2026, 11, 23, 11)
    assert leads[ids["rest_hi"]].next_call_at == utc(2026, 11, 23, 11)  # busy 15 min < lunch
    assert leads[ids["cb_alice"]].next_call_at == utc(2026, 11, 23, 12)  # the callback time
    assert leads[ids["cb_alice"]].hopper_tier == 0
    assert (leads[ids["dnc"]].next_call_at, leads[ids["dnc"]].never_reason) == (None, "dnc")
    assert leads[ids["done"]].never_reason == "status"
    # Saturday: next Monday 09:00 Riga
    await refresh_callability(sessions, campaign_id=ids["campaign"], now=utc(2026, 11, 28, 9),
                              lead_ids=[ids["rest_lo"]])
    async with sessions() as s:
        lead = await s.get(Lead, ids["rest_lo"])
        assert lead is not None and lead.next_call_at == utc(2026, 11, 30, 7)


async def test_plan_job_skips_days_off_and_a_failing_job_is_retried(
    db_engine: AsyncEngine,
) -> None:
    await seed(db_engine)
    sessions = session_factory(db_engine)
    jobs = SchedulingJobs(sessions, holder="p")
    # Saturday 2026-11-28 08:00 Riga: the company is closed all day, no plan
    assert await jobs.daily_plans_job(utc(2026, 11, 28, 6)) == []
    assert await jobs.daily_plans_job(utc(2026, 11, 30, 6)) != []  # Monday

    calls = []

    async def boom() -> dict:
        calls.append(1)
        raise RuntimeError("database went away")

    async def ok() -> dict:
        calls.append(2)
        return {}

    now = utc(2026, 11, 30, 8)
    run = await jobs.guarded("fragile", now, boom, now)
    assert run.ran and run.detail == {"error": True}
    # the failed occurrence stays leased until its TTL, then another runner redoes it
    other = SchedulingJobs(sessions, holder="q")
    assert not (await other.guarded("fragile", now, ok, now + timedelta(minutes=5))).ran
    assert (await other.guarded("fragile", now, ok, now + timedelta(minutes=11))).ran
    assert calls == [1, 2]


def test_jobs_clock_is_a_clock_or_a_now_function() -> None:
    """SchedulingJobs takes a `Clock`; a bare `now()` function (the older form) still works."""
    # no job runs here, so the engine never connects
    sessions = session_factory(create_engine("sqlite:///:memory:"))
    assert SchedulingJobs(sessions, holder="p").clock is SYSTEM_CLOCK
    manual = ManualClock(utc(2026, 11, 23, 6, 59))
    assert SchedulingJobs(sessions, holder="p", clock=manual).clock is manual
    wrapped = SchedulingJobs(sessions, holder="p", clock=lambda: utc(2026, 1, 1))
    assert isinstance(wrapped.clock, Clock) and wrapped.clock.now() == utc(2026, 1, 1)
