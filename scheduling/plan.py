"""The daily plan: per campaign and agent, the contacts due that day in priority order.

docs/domain.md: "Morning: the day's plan. The list of customers due today (callbacks agreed
earlier, next-contact dates that fell due), put in priority order: hot leads and customers
with complaints or problems first." The plan is stored (daily_plans / daily_plan_items) and
its size is the "planned" figure of the end-of-day report.

What is due on local day D of the campaign's zone:
* a pending callback due before the end of D -> reason "callback"; an agent-owned one goes
  to its agent's plan, a campaign callback to the shared plan;
* a dialable lead whose cached `next_call_at` (the hopper's copy of `next_callable_at`) falls
  before the end of D -> reason "hot" (status HOT), "complaint" (open complaint) or "due".
  A lead owned by an agent (`owner_agent_id`) goes to that agent's plan, others to the shared
  plan (agent NULL), which the campaign's agents work through the hopper.
Order: callbacks (by due time), hot, complaints, then the rest (priority high first, then
earliest due). Rebuilding a day replaces it (idempotent).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from common.vocabulary import CallbackScope, LeadStatus
from db.planning import PlanTransaction, load_plan, plan_transaction, planned_counts
from db.repositories import Sessions
from scheduling.days import local_day_bounds

log = logging.getLogger(__name__)

# load_plan and planned_counts are read straight from the store (db/planning.py)
__all__ = ["PlanEntry", "PlanSummary", "build_daily_plan", "load_plan", "order_plan",
           "planned_counts"]

#: reason codes stored on DailyPlanItem.reason, in priority order
REASON_ORDER: dict[str, int] = {"callback": 0, "hot": 1, "complaint": 2, "due": 3}


@dataclass(frozen=True, slots=True)
class PlanEntry:
    lead_id: int
    agent_id: int | None
    reason: str
    due_at: datetime | None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class PlanSummary:
    campaign_id: int
    agent_id: int | None
    plan_date: date
    size: int


def order_plan(entries: list[PlanEntry]) -> list[PlanEntry]:
    """Priority order (pure): callbacks by due time, hot, complaints, rest by priority/due."""
    far = float("inf")

    def key(e: PlanEntry) -> tuple:
        due = e.due_at.timestamp() if e.due_at is not None else far
        if e.reason == "callback":
            return (0, due, e.lead_id)
        return (REASON_ORDER[e.reason], -e.priority, due, e.lead_id)

    return sorted(entries, key=key)


async def _due_entries(
    tx: PlanTransaction, campaign_id: int, day_end: datetime
) -> list[PlanEntry]:
    cb_rows = await tx.due_callbacks(campaign_id, day_end)
    entries: list[PlanEntry] = []
    with_callback: set[int] = set()
    for cb, lead in cb_rows:
        if lead.id in with_callback:
            continue  # one plan line per lead: its earliest callback
        with_callback.add(lead.id)
        agent = cb.owner_agent_id if cb.scope is CallbackScope.AGENT else None
        entries.append(PlanEntry(lead.id, agent, "callback", cb.due_at, lead.priority))

    lead_rows = await tx.due_leads(campaign_id, day_end)
    for lead in lead_rows:
        if lead.id in with_callback:
            continue
        if lead.status is LeadStatus.HOT:
            reason = "hot"
        elif lead.has_open_complaint:
            reason = "complaint"
        else:
            reason = "due"
        entries.append(
            PlanEntry(lead.id, lead.owner_agent_id, reason, lead.next_call_at, lead.priority)
        )
    return entries


async def build_daily_plan(
    sessions: Sessions, *, campaign_id: int, plan_date: date, now: datetime
) -> list[PlanSummary]:
    """Build (or rebuild) campaign `campaign_id`'s plan for local day `plan_date`.

    Returns one summary per stored plan: one per agent with entries, plus the shared plan
    (agent None), which is always stored so "the plan for this day was built" is visible even
    when nothing is due.
    """
    async with plan_transaction(sessions) as tx:
        campaign = await tx.campaign(campaign_id)
        if campaign is None:
            raise LookupError(f"campaign {campaign_id} does not exist")
        _, day_end = local_day_bounds(plan_date, campaign.timezone)
        entries = await _due_entries(tx, campaign_id, day_end)
        by_agent: dict[int | None, list[PlanEntry]] = defaultdict(list)
        by_agent[None] = []
        for e in entries:
            by_agent[e.agent_id].append(e)
        order = sorted(by_agent.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0))
        plans = [(agent_id, order_plan(items)) for agent_id, items in order]
        await tx.replace_plans(campaign_id=campaign_id, plan_date=plan_date, plans=plans, now=now)
        summaries = [
            PlanSummary(campaign_id, agent_id, plan_date, len(items)) for agent_id, items in plans
        ]
    log.info(
        "campaign %s: daily plan for %s built, %d entries in %d plans",
        campaign_id, plan_date, sum(p.size for p in summaries), len(summaries),
    )
    return summaries
