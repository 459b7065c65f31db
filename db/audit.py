"""The audit log (`audit_log`): who did what, when, through the console, the API or the
command line (docs/web.md, "Audit").

An audited change writes its row in its own transaction (`add_entry` on the open session),
so the change and its record land together or not at all; `record` is for actions with no
transaction of their own (a runtime control such as pausing a campaign). Rows name accounts
and tokens by login or name and never carry passwords, tokens or phone numbers.

    await audit.record(sessions, Actor.user("sue"), "campaign.pause", "campaign:sales",
                       {"reason": "script change"}, now=now)
    page = await audit.entries(sessions, limit=50)            # newest first
    older = await audit.entries(sessions, before_id=page[-1].id)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditEntry
from db.repositories import Sessions, translated

__all__ = ["Actor", "ActorKind", "AuditRecord", "add_entry", "entries", "record"]

ActorKind = Literal["user", "token", "cli", "rule"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a web account (by login), an API token (by name), the command line (the OS
    user), or the dialer itself (a rule, e.g. the abandon cap pausing a campaign)."""

    kind: ActorKind
    name: str

    @classmethod
    def user(cls, login: str) -> Actor:
        return cls("user", login)

    @classmethod
    def token(cls, name: str) -> Actor:
        return cls("token", name)

    @classmethod
    def cli(cls, name: str) -> Actor:
        return cls("cli", name)

    @classmethod
    def rule(cls, name: str) -> Actor:
        return cls("rule", name)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: Actor
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)


def add_entry(session: AsyncSession, actor: Actor, action: str, target: str = "",
              detail: dict[str, Any] | None = None, *, now: datetime) -> None:
    """Add the audit row to `session`'s open transaction (committed with the change)."""
    session.add(AuditEntry(at=now, actor_kind=actor.kind, actor=actor.name[:100],
                           action=action, target=target[:200], detail=dict(detail or {})))


@translated
async def record(sessions: Sessions, actor: Actor, action: str, target: str = "",
                 detail: dict[str, Any] | None = None, *, now: datetime) -> None:
    """Write one audit row in a transaction of its own."""
    async with sessions.begin() as session:
        add_entry(session, actor, action, target, detail, now=now)


@translated
async def entries(sessions: Sessions, *, limit: int = 100, before_id: int | None = None,
                  action_prefix: str | None = None, target: str | None = None,
                  since: datetime | None = None) -> list[AuditRecord]:
    """Audit rows, newest first; `before_id` pages back (pass the last id of a page)."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, 1000)))
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    if action_prefix:
        q = q.where(AuditEntry.action.startswith(action_prefix, autoescape=True))
    if target is not None:
        q = q.where(AuditEntry.target == target)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    async with sessions() as session:
        rows = (await session.scalars(q)).all()
    return [AuditRecord(id=r.id, at=r.at, actor=Actor(r.actor_kind, r.actor),  # type: ignore[arg-type]
                        action=r.action, target=r.target, detail=dict(r.detail or {}))
            for r in rows]
