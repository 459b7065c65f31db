"""Router: which ready agent gets an answered customer (pure)."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from dialer.core.agents import AgentRecord


class TieBreak(enum.StrEnum):
    """How to choose between agents who have been ready for exactly as long."""

    FEWEST_CALLS = "fewest_calls"  # spread work evenly
    LEAST_TALK_TIME = "least_talk_time"
    AGENT_ID = "agent_id"  # stable and predictable (tests, small teams)


def choose_agent(ready: Iterable[AgentRecord], tie_break: TieBreak) -> AgentRecord | None:
    """The ready agent who has waited longest; ties broken by ``tie_break``, then agent id.

    Returns None when nobody is ready. Only agents in the READY state may be passed; the
    engine keeps that set, and reserving the chosen agent removes it, so one agent can never
    be handed two calls.
    """
    best: AgentRecord | None = None
    best_key: tuple[float, float, str] | None = None
    for rec in ready:
        if tie_break is TieBreak.FEWEST_CALLS:
            second = float(rec.calls_handled)
        elif tie_break is TieBreak.LEAST_TALK_TIME:
            second = rec.talk_seconds_total
        else:
            second = 0.0
        key = (rec.ready_since, second, rec.agent_id)
        if best_key is None or key < best_key:
            best, best_key = rec, key
    return best
