"""The "needs outcome" queue and what an agent was doing: the records that let nothing be lost
through a stop, a crash or an outage (docs/agent-protocol.md, "Nothing lost").

A connected call whose disposition never reached the database holds its lead: the lead's
`needs_outcome_attempt_id` names that attempt and the lead is not callable
(`never_reason = "needs_outcome"`) until someone records the call's outcome. Nobody is
called again on a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import aliased

from common.vocabulary import AgentState
from db.models import Agent, AgentStateLog, Attempt, Lead
from db.repositories import Sessions, translated

NEEDS_OUTCOME = "needs_outcome"  # Lead.never_reason while held (scheduling's NeverReason)


@dataclass(frozen=True, slots=True)
class OpenOutcome:
    """A connected attempt waiting for its outcome."""

    attempt_id: int
    lead_id: int
    campaign_id: int
    agent_id: int | None
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class LastAgentState:
    """An agent's latest logged state on a campaign (what to restore after a restart)."""

    agent_id: int
    state: AgentState
    reason: str | None
    at: datetime


@translated
async def hold_for_outcome(sessions: Sessions, attempt_ids: Sequence[int]) -> int:
    """Hold each attempt's lead until its outcome is recorded; returns how many were held.

    Only an attempt that reached an agent, has no disposition and is its lead's latest
    attempt holds the lead (an older one was superseded by a later call)."""
    if not attempt_ids:
        return 0
    later = aliased(Attempt)
    async with sessions.begin() as s:
        rows = (await s.execute(
            select(Attempt.id, Attempt.lead_id).where(
                Attempt.id.in_(attempt_ids), Attempt.bridged_at.is_not(None),
                Attempt.disposition.is_(None),
                ~exists().where(later.lead_id == Attempt.lead_id, later.id > Attempt.id),
            ))).all()
        for attempt_id, lead_id in rows:
            await s.execute(
                update(Lead).where(Lead.id == lead_id)
                .values(needs_outcome_attempt_id=attempt_id, next_call_at=None,
                        never_reason=NEEDS_OUTCOME, claimed_by=None, claimed_until=None))
        return len(rows)


@translated
async def unheld_connected_attempts(sessions: Sessions, *, dialer_id: str) -> list[int]:
    """Attempts of `dialer_id` that reached an agent and have no disposition, whose lead is not
    held for them yet: what a crash left behind (called once at start, before any call)."""
    async with sessions() as s:
        rows = await s.scalars(
            select(Attempt.id).join(Lead, Lead.id == Attempt.lead_id).where(
                Attempt.dialer_id == dialer_id, Attempt.bridged_at.is_not(None),
                Attempt.disposition.is_(None),
                (Lead.needs_outcome_attempt_id.is_(None))
                | (Lead.needs_outcome_attempt_id != Attempt.id),
            ).order_by(Attempt.id))
        return list(rows.all())


@translated
async def open_outcomes(
    sessions: Sessions, *, campaign_id: int | None = None, agent_id: int | None = None,
) -> list[OpenOutcome]:
    """Attempts waiting for an outcome, oldest first (an agent's own, or a campaign's)."""
    stmt = (
        select(Attempt.id, Attempt.lead_id, Attempt.campaign_id, Attempt.agent_id,
               Attempt.ended_at)
        .join(Lead, Lead.needs_outcome_attempt_id == Attempt.id)
        .order_by(Attempt.id)
    )
    if campaign_id is not None:
        stmt = stmt.where(Attempt.campaign_id == campaign_id)
    if agent_id is not None:
        stmt = stmt.where(Attempt.agent_id == agent_id)
    async with sessions() as s:
        return [OpenOutcome(*row) for row in (await s.execute(stmt)).all()]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """Who had an attempt, its disposition, and whether its lead waits for that outcome."""

    agent_id: int | None
    lead_id: int
    campaign_id: int
    disposition: str | None
    held: bool


@translated
async def attempt_outcome(sessions: Sessions, attempt_id: int) -> AttemptOutcome | None:
    """The attempt's outcome facts; None when the attempt does not exist."""
    async with sessions() as s:
        row = (await s.execute(
            select(Attempt.agent_id, Attempt.lead_id, Attempt.campaign_id, Attempt.disposition,
                   Lead.needs_outcome_attempt_id)
            .join(Lead, Lead.id == Attempt.lead_id).where(Attempt.id == attempt_id)
        )).one_or_none()
    if row is None:
        return None
    agent_id, lead_id, campaign_id, disposition, held = row
    return AttemptOutcome(agent_id, lead_id, campaign_id, disposition, held == attempt_id)


@translated
async def release_outcome(sessions: Sessions, attempt_id: int) -> None:
    """The held attempt's outcome is recorded: its lead is no longer held (the caller then
    recomputes the lead's callability)."""
    async with sessions.begin() as s:
        await s.execute(
            update(Lead).where(Lead.needs_outcome_attempt_id == attempt_id)
            .values(needs_outcome_attempt_id=None, never_reason=None))


@translated
async def last_agent_states(sessions: Sessions, campaign_id: int) -> list[LastAgentState]:
    """Each agent's latest logged state on the campaign (the agent state log)."""
    latest = (
        select(AgentStateLog.agent_id, func.max(AgentStateLog.id).label("last_id"))
        .where(AgentStateLog.campaign_id == campaign_id)
        .group_by(AgentStateLog.agent_id).subquery()
    )
    async with sessions() as s:
        rows = (await s.execute(
            select(AgentStateLog.agent_id, AgentStateLog.state, AgentStateLog.reason,
                   AgentStateLog.started_at)
            .join(latest, and_(latest.c.last_id == AgentStateLog.id))
            .join(Agent, Agent.id == AgentStateLog.agent_id)
        )).all()
    return [LastAgentState(*row) for row in rows]
