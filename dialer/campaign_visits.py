"""Transfers to an agent of another campaign this dialer runs (docs/call-controls.md,
"Transfer to another campaign's agent").

A call lives in its campaign's runtime (its engine reserves the agents, its attempt row and
lead are that campaign's), so an agent of another campaign who takes a transfer *visits* the
call's campaign for that one call:

* the agent must be ready at home (nothing pending, no preview offer): its campaign's engine
  lets it go without a state change (`agent_hand_off`), its row moves to the call's runtime
  and the app's login -> campaign map points there, so the agent's commands (hangup,
  disposition, pause) reach the call's campaign;
* the call's engine takes it on reserved for the transfer (`transfer_start(visitor=True)`):
  never ready there, not counted by its pacer, so no call of that campaign is placed or
  routed for it;
* once free (disposition given, wrap-up timed out, the transfer failed or the call ended
  first) the call's engine drops it (`VisitorLeft`) and it goes back home in the state it
  asked for: ready (routed at once), paused with its reason, or logged out.

Nothing of a visit is stored: `agents.campaign_id` never changes, so a restart puts the agent
back on its own campaign. Within a cluster only the member's own campaigns are visited (a
transfer to an agent another member serves stays within the call's campaign:
dialer/cluster_lend.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from common.vocabulary import AgentState
from dialer.core.actions import VisitorLeft
from dialer.core.errors import CoreError

if TYPE_CHECKING:
    from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)


class Visits:
    """The dialer's campaigns as each other's transfer targets (one per app)."""

    def __init__(self, runtimes: Mapping[str, CampaignRuntime],
                 agent_campaign: MutableMapping[str, str]) -> None:
        self.runtimes = runtimes
        self.agent_campaign = agent_campaign
        #: login -> home campaign of the agents visiting another campaign now
        self.away: dict[str, str] = {}

    def home_of(self, rt: CampaignRuntime, login: str) -> CampaignRuntime | None:
        """The other campaign `login` works on (None: `rt`'s own agent, or unknown)."""
        return next((o for o in self.runtimes.values() if o is not rt and login in o.agents),
                    None)

    def ready_elsewhere(self, rt: CampaignRuntime) -> list[str]:
        """The other campaigns' ready agents that could come (nothing pending), longest
        ready first."""
        recs = [r for o in self.runtimes.values() if o is not rt
                for r in o.engine.board.ready.values() if r.pending is None]
        return [r.agent_id for r in sorted(recs, key=lambda r: (r.ready_since, r.agent_id))]

    def groups_elsewhere(self, rt: CampaignRuntime) -> dict[str, tuple[str, ...]]:
        """Every agent of the other campaigns with its named groups."""
        return {login: tuple(a.groups or ()) for o in self.runtimes.values() if o is not rt
                for login, a in o.agents.items()}

    def borrow(self, rt: CampaignRuntime, login: str) -> bool:
        """Take `login`, ready on another campaign's board, off it for a transfer of a call
        of `rt` (the caller then starts the transfer with `visitor=True`, or gives the
        agent back). False when it is not another campaign's agent or not free there."""
        home = self.home_of(rt, login)
        if home is None:
            return False
        try:
            home._input(home.engine.agent_hand_off, login)
        except CoreError:
            return False
        rt.agents[login] = home.agents.pop(login)
        self.agent_campaign[login] = rt.name
        self.away[login] = home.name
        log.info("agent %s of campaign %s visits campaign %s for a transfer", login, home.name,
                 rt.name)
        return True

    def give_back(self, rt: CampaignRuntime, login: str) -> None:
        """The transfer could not start after all: the agent goes home ready."""
        self.left(rt, VisitorLeft(login, AgentState.READY, "transfer_not_started"))

    def left(self, rt: CampaignRuntime, a: VisitorLeft) -> None:
        """`rt`'s engine let a visitor go (`VisitorLeft`): back on its own campaign's board."""
        home = self.runtimes.get(self.away.pop(a.agent_id, ""))
        row = rt.agents.pop(a.agent_id, None)
        if home is None or row is None:  # cannot happen: only borrowed agents visit
            log.error("campaign %s: visiting agent %s has no campaign to go back to", rt.name,
                      a.agent_id)
            return
        home.agents[a.agent_id] = row
        self.agent_campaign[a.agent_id] = home.name
        home._engine(home.engine.agent_arrive, a.agent_id, a.state, a.reason)
        log.info("agent %s is back on campaign %s (%s)", a.agent_id, home.name, a.state.value)
