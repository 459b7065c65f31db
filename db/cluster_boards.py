"""The live wallboards of a cluster's instances (table `instance_boards`, migration 0016).

Each instance writes, on its heartbeat, the wallboard of every campaign it runs (one row per
instance and campaign, replaced each time); a console on any instance reads the other
instances' rows and merges them with its own live board (dialer/control/cluster_board.py).
Rows of a dead or stopped instance are dropped by the survivor's clean-up or the clean stop;
readers also ignore rows older than they trust (an instance that stalled).

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from db.models import InstanceBoard
from db.repositories import Sessions, translated

__all__ = ["PublishedBoard", "drop_boards", "publish_boards", "published_boards"]


@dataclass(frozen=True, slots=True)
class PublishedBoard:
    dialer_id: str
    campaign: str
    at: datetime
    board: dict[str, Any]


@translated
async def publish_boards(sessions: Sessions, *, dialer_id: str,
                         boards: Mapping[str, dict[str, Any]], now: datetime) -> None:
    """Replace this instance's row of each campaign in `boards` (insert the first time)."""
    for campaign, board in boards.items():
        async with sessions.begin() as s:
            res = await s.execute(update(InstanceBoard).where(
                InstanceBoard.dialer_id == dialer_id, InstanceBoard.campaign == campaign)
                .values(at=now, board=board))
            if res.rowcount:  # type: ignore[attr-defined]
                continue
        try:
            async with sessions.begin() as s:
                s.add(InstanceBoard(dialer_id=dialer_id, campaign=campaign, at=now,
                                    board=board))
        except IntegrityError:
            pass  # written by this instance's previous beat racing this one: next beat wins


@translated
async def published_boards(sessions: Sessions, *, campaigns: Collection[str],
                           dialer_ids: Collection[str], newer_than: datetime,
                           ) -> list[PublishedBoard]:
    """The rows of `campaigns` written by `dialer_ids` after `newer_than`."""
    if not campaigns or not dialer_ids:
        return []
    async with sessions() as s:
        rows = (await s.scalars(select(InstanceBoard).where(
            InstanceBoard.campaign.in_(list(campaigns)),
            InstanceBoard.dialer_id.in_(list(dialer_ids)),
            InstanceBoard.at > newer_than).order_by(InstanceBoard.dialer_id))).all()
    return [PublishedBoard(r.dialer_id, r.campaign, r.at, dict(r.board)) for r in rows]


@translated
async def published_campaigns(sessions: Sessions, *, dialer_ids: Collection[str],
                              newer_than: datetime) -> list[str]:
    """The campaigns `dialer_ids` wrote a board of after `newer_than` (they run them)."""
    if not dialer_ids:
        return []
    async with sessions() as s:
        rows = (await s.scalars(select(InstanceBoard.campaign).where(
            InstanceBoard.dialer_id.in_(list(dialer_ids)),
            InstanceBoard.at > newer_than).distinct())).all()
    return sorted(str(r) for r in rows)


@translated
async def drop_boards(sessions: Sessions, *, dialer_id: str) -> None:
    """An instance's rows go when it stops cleanly or a survivor cleans up after it."""
    async with sessions.begin() as s:
        await s.execute(delete(InstanceBoard).where(InstanceBoard.dialer_id == dialer_id))
