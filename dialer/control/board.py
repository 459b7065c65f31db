"""The wallboard of one running campaign: what the console's snapshot shows (docs/console.md).

Built from the very sources `CampaignRuntime._publish_gauges` sets the Prometheus gauges from
(the engine's board, counters and abandon ledger, `stages_in_flight()`, `callable_leads`),
and the gauges are published from the same reading first: with no `await` between the two,
`/metrics` and the snapshot say the same thing at the moment the snapshot is taken.
Today's report so far is scheduling/report.py's, the end-of-day report's own figures.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from common.vocabulary import AbandonWindow, AgentState
from db.repositories import Sessions
from dialer.control import Control
from dialer.metrics import IN_FLIGHT_STAGES
from dialer.runtime import CampaignRuntime
from scheduling.days import local_date
from scheduling.report import ReportRow, compute_day_report

__all__ = ["REPORT_FIGURES", "campaign_board", "day_report", "report_totals"]

REPORT_FIGURES = ("planned", "called", "reached", "meetings", "contracts", "callbacks",
                  "talk_s")


def _iso(t: float) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat() if t > 0 else None


def campaign_board(rt: CampaignRuntime, control: Control | None,
                   now: datetime) -> dict[str, Any]:
    """The live figures of `rt` at `now` (see the module docstring)."""
    rt._publish_gauges()  # one reading for /metrics and the snapshot
    engine = rt.engine
    board = engine.board
    c = engine.counters()
    t = now.timestamp()
    by_state = Counter(rec.state for rec in board)
    working = board.working
    agents = []
    for rec in sorted(board, key=lambda r: r.agent_id):
        row = rt.agents.get(rec.agent_id)
        call = rt.calls.get(rec.call_id) if rec.call_id else None
        busy = rec.state in (AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP)
        agents.append({
            "login": rec.agent_id,
            "display_name": row.display_name if row is not None else "",
            "state": rec.state.value, "reason": rec.reason,
            "since": _iso(rec.since), "seconds_in_state": round(max(0.0, t - rec.since), 1)
            if rec.since > 0 else None,
            "pending": rec.pending.value if rec.pending is not None else None,
            "attempt_id": call.attempt_id if call is not None and busy else None,
            "calls_handled": rec.calls_handled,
            "groups": list(row.groups or []) if row is not None else [],
        })
    in_flight = dict.fromkeys(IN_FLIGHT_STAGES, 0)
    in_flight.update(rt.stages_in_flight())
    campaign = rt.campaign
    abandon = {}
    for window in AbandonWindow:
        counts = engine.ledger.counts(now, window)
        abandon[window.value] = {
            "rate": counts.rate, "live": counts.live, "abandoned": counts.abandoned,
            "cap": campaign.abandon_cap, "over_cap": counts.rate > campaign.abandon_cap,
            "campaign_window": window is campaign.abandon_window}
    hold = control.holds.get(rt.name) if control is not None else None
    return {
        "name": rt.name,
        "state": control.state_of(rt.name) if control is not None
        else ("dialing" if rt.dialing else "idle"),
        "hold": None if hold is None else {
            "kind": hold.kind.value, "by": hold.actor, "at": hold.at.isoformat(),
            "reason": hold.reason},
        "dial_mode": campaign.dial_mode.value, "max_dial_level": campaign.max_dial_level,
        "timezone": campaign.timezone,
        "agents_by_state": {s.value: by_state.get(s, 0) for s in AgentState},
        "agents": agents,
        "working_agents": working,
        "in_flight": in_flight,
        "live_calls": rt.live_calls,
        # as the dialer_dial_level gauge: live calls per working agent
        "dial_level": rt.live_calls / working if working else 0.0,
        # as dialer_answer_rate: live answers and machines per dial of this run
        "answer_rate": (c.live_answers + c.machines) / c.dials if c.dials else 0.0,
        "dials": c.dials, "live_answers": c.live_answers, "machines": c.machines,
        "abandoned_run": c.abandoned,
        "abandon_cap": campaign.abandon_cap, "abandon_window": campaign.abandon_window.value,
        "abandon": abandon,
        "hopper_depth": c.hopper_size,
        "callable_leads": rt.callable_leads,
    }


def report_totals(rows: list[ReportRow]) -> dict[str, float]:
    out: dict[str, float] = dict.fromkeys(REPORT_FIGURES, 0)
    for r in rows:
        for f in REPORT_FIGURES:
            out[f] += getattr(r, f)
    return out


async def day_report(sessions: Sessions, rt: CampaignRuntime, now: datetime) -> dict[str, Any]:
    """Today's report of the campaign so far (its local day): totals and a row per agent."""
    today = local_date(now, rt.campaign.timezone)
    rows = await compute_day_report(sessions, campaign_id=rt.campaign.id, report_date=today)
    return {
        "date": today.isoformat(),
        "totals": report_totals(rows),
        "agents": [{"agent": r.agent or None, **{f: getattr(r, f) for f in REPORT_FIGURES}}
                   for r in rows],
    }
