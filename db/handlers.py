"""Who held a connected call when: the `attempt_handlers` rows (agent transfers).

An attempt bridged to an agent gets a row (`answered`) from the bridge; a transfer closes the
open row at the moment the customer is switched over and opens one for the receiving agent
(`transfer_blind` / `transfer_warm`), or one with no agent for an outside number the call
was transferred to (`transfer_out`); the call's end closes the last one. Writes are
idempotent per (attempt, moment), so the record writer may retry them after an outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from db.models import AttemptHandler
from db.repositories import Sessions, translated

HOW = ("answered", "transfer_blind", "transfer_warm", "transfer_out")


@dataclass(frozen=True, slots=True)
class Handler:
    #: None: the outside number of an external transfer
    agent_id: int | None
    from_at: datetime
    to_at: datetime | None
    how: str


@translated
async def hand_over(sessions: Sessions, attempt_id: int, agent_id: int | None, at: datetime,
                    how: str) -> None:
    """``agent_id`` (None: an outside number) holds the call from ``at``: the open row (if
    any) is closed at ``at``."""
    if how not in HOW:
        raise ValueError(f"how must be one of {HOW}, got {how!r}")
    if (agent_id is None) != (how == "transfer_out"):
        raise ValueError("only a transfer_out row has no agent")
    async with sessions.begin() as s:
        who = AttemptHandler.agent_id.is_(None) if agent_id is None \
            else AttemptHandler.agent_id == agent_id
        same = await s.scalar(select(AttemptHandler.id).where(
            AttemptHandler.attempt_id == attempt_id, who, AttemptHandler.from_at == at))
        if same is not None:
            return  # a retried write
        await s.execute(update(AttemptHandler).where(
            AttemptHandler.attempt_id == attempt_id, AttemptHandler.to_at.is_(None),
        ).values(to_at=at))
        s.add(AttemptHandler(attempt_id=attempt_id, agent_id=agent_id, from_at=at, how=how))


@translated
async def close_handlers(sessions: Sessions, attempt_id: int, at: datetime) -> None:
    """The call ended: whoever held it holds it no more."""
    async with sessions.begin() as s:
        await s.execute(update(AttemptHandler).where(
            AttemptHandler.attempt_id == attempt_id, AttemptHandler.to_at.is_(None),
        ).values(to_at=at))


@translated
async def handlers_of(sessions: Sessions, attempt_id: int) -> list[Handler]:
    """The attempt's handlers, in order."""
    async with sessions() as s:
        rows = await s.scalars(select(AttemptHandler).where(
            AttemptHandler.attempt_id == attempt_id).order_by(AttemptHandler.from_at,
                                                              AttemptHandler.id))
        return [Handler(r.agent_id, r.from_at, r.to_at, r.how) for r in rows]
