"""Scheduled jobs run once per occurrence across three dialer instances (issue 16).

Three `SchedulingJobs` with distinct holders (what three `dialer run` instances build, one
per `[dialer] id`) fire every job over one working day in Riga on one database, each with
its clock a few seconds off the others', concurrently: every (job, occurrence) is run by
exactly one of them, the calendar hooks, the plan, the report and each callback reminder
happen once, and there is one abandon roll-up per slot.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import AbandonRollup, DailyReport
from db.session import session_factory
from scheduling.callbacks import CallbackReminder
from scheduling.jobs import JobHooks, JobRun, SchedulingJobs

_spec = importlib.util.spec_from_file_location(
    "sched_seed_for_cluster", Path(__file__).parents[1] / "scheduling" / "sched_seed.py")
assert _spec is not None and _spec.loader is not None
sched_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sched_seed)

JITTER_S = (0, 7, 23)  # the three instances' schedulers fire a little apart


async def test_three_instances_run_each_occurrence_once(db_engine: AsyncEngine) -> None:
    ids = await sched_seed.seed(db_engine)
    sessions = session_factory(db_engine)
    opened: list[int] = []
    closed: list[int] = []
    reminded: list[CallbackReminder] = []

    async def on_open(cid: int) -> None:
        opened.append(cid)

    async def on_close(cid: int) -> None:
        closed.append(cid)

    async def on_reminder(r: CallbackReminder) -> None:
        reminded.append(r)

    hooks = JobHooks(open_dialing=on_open, close_dialing=on_close, callback_reminder=on_reminder)
    instances = [SchedulingJobs(sessions, holder=f"d{i + 1}", hooks=hooks) for i in range(3)]
    runs: list[JobRun] = []
    start = sched_seed.utc(2026, 11, 23, 3, 0)  # 05:00 Riga, before the plan time
    t = start
    while t <= sched_seed.utc(2026, 11, 23, 20, 0):  # after the 21:30 local report
        for job in ("dialing_edges_job", "callback_reminders_job", "abandon_rollup_job",
                    "daily_plans_job", "daily_reports_job"):
            got = await asyncio.gather(*(
                getattr(inst, job)(t + timedelta(seconds=j))
                for inst, j in zip(instances, JITTER_S, strict=True)))
            for g in got:
                runs.extend(g if isinstance(g, list) else [g])
        t += timedelta(minutes=10)

    per_occurrence = Counter((r.name, r.occurrence) for r in runs if r.ran)
    every_occurrence = {(r.name, r.occurrence) for r in runs}
    assert set(per_occurrence) == every_occurrence, "an occurrence nobody ran"
    assert set(per_occurrence.values()) == {1}, [k for k, v in per_occurrence.items() if v > 1]
    runners = Counter(r.name.split(":")[0] for r in runs if r.ran)
    assert runners["daily_plan"] == 1 and runners["daily_report"] == 1, runners
    assert {r.name for r in runs if r.ran} >= {"dialing_edges", "callback_reminders",
                                               "abandon_rollup"}
    # 09:00 open, 12:00 lunch, 13:00 open, 18:00 close (Riga): each hook once per edge
    cid = ids["campaign"]
    assert opened == [cid, cid] and closed == [cid, cid]
    assert [(r.agent_id, r.lead_id) for r in reminded] == [(ids["alice"], ids["cb_alice"])]
    async with sessions() as s:
        rollups = (await s.execute(select(AbandonRollup.computed_at))).scalars().all()
        reports = await s.scalar(select(func.count()).select_from(DailyReport))
    assert len(rollups) == runners["abandon_rollup"] == len(set(rollups))
    assert reports and reports >= 1
