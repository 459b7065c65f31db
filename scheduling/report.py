"""The end-of-day primary report (docs/domain.md): per campaign and agent, what the day produced.

Figures for local day D (campaign zone), all recomputed from stored rows:
* planned - the size of the agent's daily plan for D (the shared plan for agent None);
* called - attempts started on D handled by the agent (agent None: the dialer's attempts that
  never reached an agent: no answer, busy, machine, abandoned ...);
* reached - connected attempts whose disposition says a person was reached (a connected call
  without a disposition counts as reached);
* meetings / contracts - dispositions flagged meeting / contract in the campaign's catalog;
* callbacks - callbacks created from the agent's attempts of D;
* talk_s - total talk seconds.
The report is stored in daily_reports (rebuilding a day replaces it) and written as CSV.
`current_day_report` is what a reader should print: a finished day's stored report when it
is newer than the day's last attempt activity, else a rebuilt one; a day not over yet is
computed fresh and never stored (the end-of-day job writes it once: scheduling/jobs.py).
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from common.vocabulary import DEFAULT_DISPOSITIONS, AttemptResult
from db import reports as store
from db.models import Campaign
from db.planning import planned_counts
from db.reports import REPORT_COLUMNS, ReportTransaction, report_transaction
from db.repositories import Sessions
from scheduling.days import local_day_bounds

log = logging.getLogger(__name__)

__all__ = [
    "ReportRow",
    "build_day_report",
    "compute_day_report",
    "current_day_report",
    "load_day_report",
    "write_csv",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRow:
    report_date: date
    campaign_id: int
    campaign: str
    agent_id: int | None
    agent: str  # agent login ("" for the dialer's own row); never a lead's name or number
    planned: int = 0
    called: int = 0
    reached: int = 0
    meetings: int = 0
    contracts: int = 0
    callbacks: int = 0
    talk_s: float = 0.0


_FIGURES = ("called", "reached", "meetings", "contracts", "callbacks", "talk_s")


@dataclass(frozen=True, slots=True)
class _Flags:
    reached: bool
    meeting: bool
    contract: bool


def _catalog(campaign: Campaign) -> dict[str, _Flags]:
    """Disposition code -> report flags, from the campaign's catalog or the default one."""
    specs: Iterable[Any] = campaign.dispositions or [
        {"code": d.code, "reached": d.reached, "meeting": d.meeting, "contract": d.contract}
        for d in DEFAULT_DISPOSITIONS
    ]
    out: dict[str, _Flags] = {}
    for spec in specs:
        if not isinstance(spec, dict) or "code" not in spec:
            raise ValueError(
                f"campaign {campaign.name!r}: disposition entry without a code: {spec!r}"
            )
        out[str(spec["code"])] = _Flags(
            bool(spec.get("reached", True)),
            bool(spec.get("meeting", False)),
            bool(spec.get("contract", False)),
        )
    return out


async def _compute(
    tx: ReportTransaction, campaign: Campaign, day: date, planned: dict[int | None, int]
) -> list[ReportRow]:
    start, end = local_day_bounds(day, campaign.timezone)
    catalog = _catalog(campaign)
    attempts = await tx.attempts_between(campaign.id, start, end)
    acc: dict[int | None, dict[str, float]] = defaultdict(lambda: dict.fromkeys(_FIGURES, 0))
    agent_of: dict[int, int | None] = {}
    for att_id, agent_id, result, disposition, talk_s in attempts:
        agent_of[att_id] = agent_id
        a = acc[agent_id]
        a["called"] += 1
        flags = catalog.get(disposition) if disposition else None
        if disposition and flags is None:
            log.warning("campaign %s: attempt %s has unknown disposition %r", campaign.id,
                        att_id, disposition)
        if result is AttemptResult.CONNECTED and (flags is None or flags.reached):
            a["reached"] += 1
        if flags is not None and flags.meeting:
            a["meetings"] += 1
        if flags is not None and flags.contract:
            a["contracts"] += 1
        a["talk_s"] += float(talk_s or 0.0)
    if agent_of:
        for att_id, n in (await tx.callbacks_per_attempt(campaign.id, agent_of)).items():
            acc[agent_of[att_id]]["callbacks"] += n

    agent_ids = {a for a in set(acc) | set(planned) if a is not None}
    logins: dict[int, str] = {}
    if agent_ids:
        logins = await tx.agent_logins(agent_ids)
    rows = []
    everyone = set(acc) | set(planned) | {None}
    for agent_id in sorted(everyone, key=lambda a: (a is not None, a or 0)):
        a = acc.get(agent_id) or dict.fromkeys(_FIGURES, 0)
        rows.append(
            ReportRow(
                report_date=day,
                campaign_id=campaign.id,
                campaign=campaign.name,
                agent_id=agent_id,
                agent=logins.get(agent_id, "") if agent_id is not None else "",
                planned=planned.get(agent_id, 0),
                called=int(a["called"]),
                reached=int(a["reached"]),
                meetings=int(a["meetings"]),
                contracts=int(a["contracts"]),
                callbacks=int(a["callbacks"]),
                talk_s=round(float(a["talk_s"]), 3),
            )
        )
    return rows


async def build_day_report(
    sessions: Sessions, *, campaign_id: int, report_date: date, now: datetime
) -> list[ReportRow]:
    """Compute and store (replacing) the report of `campaign_id` for local day `report_date`."""
    rows = await _day_report(sessions, campaign_id, report_date, store_at=now)
    log.info("campaign %s: report for %s written, %d rows", campaign_id, report_date, len(rows))
    return rows


async def compute_day_report(
    sessions: Sessions, *, campaign_id: int, report_date: date
) -> list[ReportRow]:
    """The report of `campaign_id` for local day `report_date`, computed but not stored."""
    rows = await _day_report(sessions, campaign_id, report_date, store_at=None)
    rows.sort(key=lambda r: (r.campaign, r.agent_id is not None, r.agent))
    return rows


async def _day_report(
    sessions: Sessions, campaign_id: int, report_date: date, *, store_at: datetime | None
) -> list[ReportRow]:
    planned = await planned_counts(sessions, campaign_id=campaign_id, plan_date=report_date)
    async with report_transaction(sessions) as tx:
        campaign = await tx.campaign(campaign_id)
        if campaign is None:
            raise LookupError(f"campaign {campaign_id} does not exist")
        rows = await _compute(tx, campaign, report_date, planned)
        if store_at is not None:
            await tx.replace_report(campaign_id=campaign_id, report_date=report_date,
                                    rows=rows, now=store_at)
    return rows


async def current_day_report(
    sessions: Sessions, *, campaign_id: int, timezone: str, report_date: date, now: datetime,
    rebuild: bool = False,
) -> list[ReportRow]:
    """The report to show for local day `report_date` of a campaign in zone `timezone`.

    * a day not over at `now`: computed fresh and not stored, even with `rebuild` (it is
      provisional, and a stored report would make the end-of-day job skip the day);
    * a finished day: the stored report if it was written after the day's last attempt
      activity (creation, end, wrap-up end), else (or with `rebuild`) rebuilt and stored.
    """
    start, end = local_day_bounds(report_date, timezone)
    if now < end:
        return await compute_day_report(sessions, campaign_id=campaign_id,
                                        report_date=report_date)
    if not rebuild:
        stored_at, last_activity = await store.report_freshness(
            sessions, campaign_id=campaign_id, report_date=report_date, start=start, end=end)
        if stored_at is not None and (last_activity is None or stored_at >= last_activity):
            return await load_day_report(sessions, report_date=report_date,
                                         campaign_id=campaign_id)
    await build_day_report(sessions, campaign_id=campaign_id, report_date=report_date, now=now)
    return await load_day_report(sessions, report_date=report_date, campaign_id=campaign_id)


async def load_day_report(
    sessions: Sessions, *, report_date: date, campaign_id: int | None = None
) -> list[ReportRow]:
    """Stored report rows of a day (all campaigns unless `campaign_id`), agents by login."""
    stored = await store.load_day_report(sessions, report_date=report_date,
                                         campaign_id=campaign_id)
    out = [
        ReportRow(**{k: getattr(r, k) for k in REPORT_COLUMNS}, campaign=cname,
                  agent=login or "")
        for r, cname, login in stored
    ]
    out.sort(key=lambda r: (r.campaign, r.agent_id is not None, r.agent))
    return out


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ReportRow))


def write_csv(rows: Iterable[ReportRow], out: Path | TextIO) -> int:
    """Write rows as CSV with a header; returns the number of data rows."""
    if isinstance(out, Path):
        with out.open("w", newline="", encoding="utf-8") as f:
            return write_csv(rows, f)
    w = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS))
    w.writeheader()
    n = 0
    for r in rows:
        d = asdict(r)
        d["report_date"] = r.report_date.isoformat()
        d["agent_id"] = "" if r.agent_id is None else r.agent_id
        w.writerow(d)
        n += 1
    return n
