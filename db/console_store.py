"""The supervisor console's writes (dialer/control): a campaign's dial settings and an agent's
campaign, each with its audit row in the same transaction (db/audit.py), so a change and its
record land together or not at all; and the last hold action of each campaign, read back from
the audit log at start (docs/console.md, "What survives a restart").

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from common.vocabulary import DialMode
from db import audit
from db.audit import Actor, AuditRecord
from db.models import Agent, AuditEntry, Campaign
from db.repositories import Sessions, transaction, translated

__all__ = ["DialSettings", "dial_settings", "last_actions", "set_agent_campaign",
           "set_dial_settings"]


@dataclass(frozen=True, slots=True)
class DialSettings:
    """A campaign's dial settings as stored after a change (and before it)."""

    dial_mode: DialMode
    max_dial_level: float


async def set_dial_settings(
    sessions: Sessions, name: str, *, mode: DialMode | None, max_dial_level: float | None,
    actor: Actor, action: str, detail: Mapping[str, Any], now: datetime,
) -> tuple[DialSettings, DialSettings] | None:
    """Change a campaign's dial mode and/or maximum dial level, with its audit row; returns
    (before, after), or None if there is no campaign `name`."""
    async with transaction(sessions, "change a campaign's dial settings") as s:
        row = await s.scalar(select(Campaign).where(Campaign.name == name).with_for_update())
        if row is None:
            return None
        before = DialSettings(row.dial_mode, row.max_dial_level)
        if mode is not None:
            row.dial_mode = mode
        if max_dial_level is not None:
            row.max_dial_level = max_dial_level
        after = DialSettings(row.dial_mode, row.max_dial_level)
        audit.add_entry(s, actor, action, f"campaign:{name}",
                        {**detail, "before": _plain(before), "after": _plain(after)}, now=now)
    return before, after


@translated
async def dial_settings(sessions: Sessions, names: Collection[str]) -> dict[str, DialSettings]:
    """The stored dial settings of the campaigns `names` (another instance may have changed
    them: dialer/control `sync`)."""
    if not names:
        return {}
    async with sessions() as s:
        rows = (await s.execute(select(Campaign.name, Campaign.dial_mode, Campaign.max_dial_level)
                                .where(Campaign.name.in_(list(names))))).all()
    return {name: DialSettings(mode, level) for name, mode, level in rows}


def _plain(d: DialSettings) -> dict[str, Any]:
    return {"dial_mode": d.dial_mode.value, "max_dial_level": d.max_dial_level}


async def set_agent_campaign(
    sessions: Sessions, login: str, campaign: str, *, actor: Actor, action: str,
    detail: Mapping[str, Any], now: datetime,
) -> bool:
    """Point agent `login` at `campaign` (agents.campaign_id) with its audit row; False if
    the agent or the campaign does not exist (nothing written)."""
    async with transaction(sessions, "move an agent to another campaign") as s:
        agent = await s.scalar(select(Agent).where(Agent.login == login).with_for_update())
        target = await s.scalar(select(Campaign).where(Campaign.name == campaign))
        if agent is None or target is None:
            return False
        agent.campaign_id = target.id
        audit.add_entry(s, actor, action, f"agent:{login}", dict(detail), now=now)
    return True


@translated
async def last_actions(sessions: Sessions, targets: Collection[str],
                       actions: Collection[str]) -> dict[str, AuditRecord]:
    """For each target, its newest audit row whose action is one of `actions` (targets with
    none are left out)."""
    if not targets or not actions:
        return {}
    newest = (select(AuditEntry.target, AuditEntry.id)
              .where(AuditEntry.target.in_(list(targets)), AuditEntry.action.in_(list(actions)))
              .order_by(AuditEntry.id.desc()))
    out: dict[str, AuditRecord] = {}
    async with sessions() as s:
        ids: dict[str, int] = {}
        for target, id_ in (await s.execute(newest)).all():
            ids.setdefault(target, id_)
        if not ids:
            return out
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.id.in_(ids.values())))).all()
    for r in rows:
        out[r.target] = AuditRecord(id=r.id, at=r.at, actor=Actor(r.actor_kind, r.actor),  # type: ignore[arg-type]
                                    action=r.action, target=r.target, detail=dict(r.detail or {}))
    return out
