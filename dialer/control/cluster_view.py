"""The supervisor console across a cluster's instances (docs/cluster.md, "One console").

Every instance runs the campaign's share of agents and calls; a supervisor uses the console
of any one of them. Two things make that console see and steer the campaign whole:

* **Controls**: a pause, stop, resume, start or dial-settings change is applied at once by
  the instance that took it and stored where every instance reads it (the hold as its audit
  row, the settings in the campaign's row); each instance's heartbeat runs `Control.sync`,
  so the others follow within one heartbeat, and a restarted instance starts held.
* **Wallboard**: each heartbeat writes this instance's live board of each campaign to
  `instance_boards` (db/cluster_boards.py); the console's snapshot merges its own live
  board with the live instances' rows (`merge_boards`), saying which instances contributed
  and how old each part is.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from db.cluster_boards import (
    PublishedBoard,
    publish_boards,
    published_boards,
    published_campaigns,
)
from db.repositories import Sessions
from dialer.control import Control
from dialer.control.board import campaign_board

if TYPE_CHECKING:
    from dialer.cluster import Cluster

__all__ = ["ClusterView", "merge_boards"]

#: figures an instance's board holds for its own share: the campaign's are their sums
_SUMMED = ("live_calls", "working_agents", "dials", "live_answers", "machines",
           "abandoned_run", "hopper_depth")


def _share(dialer_id: str, age_s: float, board: dict[str, Any]) -> dict[str, Any]:
    return {"dialer_id": dialer_id, "age_s": round(age_s, 1),
            "agents": len(board.get("agents", [])),
            "working_agents": board.get("working_agents", 0),
            "live_calls": board.get("live_calls", 0), "dial_level": board.get("dial_level", 0.0),
            "hopper_depth": board.get("hopper_depth", 0), "state": board.get("state")}


def merge_boards(own: dict[str, Any], own_id: str, others: Sequence[PublishedBoard],
                 now: datetime) -> dict[str, Any]:
    """One campaign's board for the whole cluster: this instance's live board `own` plus the
    other live instances' published ones. Agents are listed once each (an agent that moved
    counts where its newest board has it) with the instance serving them; counts of agents,
    calls, dials and the hopper are summed, dial level and answer rate recomputed from the
    sums. The campaign-wide figures (abandon rates, callable leads, hold, dial settings) are
    this instance's: every instance already holds them for the whole campaign."""
    out = copy.deepcopy(own)
    seen = {a["login"] for a in out["agents"]}
    for a in out["agents"]:
        a["instance"] = own_id
    shares = [_share(own_id, 0.0, own)]
    for pub in sorted(others, key=lambda p: p.at, reverse=True):
        board = pub.board
        age = max(0.0, (now - pub.at).total_seconds())
        shares.append(_share(pub.dialer_id, age, board))
        for key in _SUMMED:
            out[key] = out.get(key, 0) + board.get(key, 0)
        for stage, n in board.get("in_flight", {}).items():
            out["in_flight"][stage] = out["in_flight"].get(stage, 0) + n
        for a in board.get("agents", []):
            if a["login"] in seen:
                continue
            seen.add(a["login"])
            a = dict(a, instance=pub.dialer_id)
            if a.get("seconds_in_state") is not None:  # as of now, not of its beat
                a["seconds_in_state"] = round(a["seconds_in_state"] + age, 1)
            out["agents"].append(a)
    out["agents"].sort(key=lambda a: a["login"])
    by_state = dict.fromkeys(out["agents_by_state"], 0)
    for a in out["agents"]:
        by_state[a["state"]] = by_state.get(a["state"], 0) + 1
    out["agents_by_state"] = by_state
    working = out["working_agents"]
    out["dial_level"] = out["live_calls"] / working if working else 0.0
    dials = out["dials"]
    out["answer_rate"] = (out["live_answers"] + out["machines"]) / dials if dials else 0.0
    out["instances"] = shares
    return out


class ClusterView:
    """What a cluster member's console adds: publishing its boards and syncing its controls
    on every heartbeat, and merging the others' boards into a snapshot."""

    def __init__(self, cluster: Cluster, control: Control, sessions: Sessions) -> None:
        self.cluster = cluster
        self.control = control
        self.sessions = sessions
        cluster.on_beat.append(self.control.sync)
        cluster.on_beat.append(self.publish)

    async def publish(self) -> None:
        now = self.cluster.clock.now()
        boards = {name: campaign_board(rt, self.control, now)
                  for name, rt in self.control.runtimes.items()}
        await publish_boards(self.sessions, dialer_id=self.cluster.id, boards=boards, now=now)

    async def campaigns_elsewhere(self) -> list[str]:
        """The campaigns the other live members run (their fresh boards)."""
        now = self.cluster.clock.now()
        others = [d for d in self.cluster.alive(now) if d != self.cluster.id]
        return await published_campaigns(self.sessions, dialer_ids=others,
                                         newer_than=now - self.cluster.ttl)

    async def runs_on(self, campaign: str) -> list[str]:
        """The other live members running `campaign` (their boards of it are fresh)."""
        now = self.cluster.clock.now()
        others = [d for d in self.cluster.alive(now) if d != self.cluster.id]
        rows = await published_boards(self.sessions, campaigns=[campaign], dialer_ids=others,
                                      newer_than=now - self.cluster.ttl)
        return sorted({r.dialer_id for r in rows})

    async def merged(self, boards: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """`boards` (this instance's, one per campaign) with the live instances' shares."""
        others = [d for d in self.cluster.alive(now) if d != self.cluster.id]
        rows = await published_boards(
            self.sessions, campaigns=[b["name"] for b in boards], dialer_ids=others,
            newer_than=now - self.cluster.ttl)
        return [merge_boards(b, self.cluster.id, [r for r in rows if r.campaign == b["name"]],
                             now) for b in boards]
