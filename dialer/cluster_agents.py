"""An agent taken over from a dead dialer instance (docs/cluster.md): restored on this
instance's campaign runtime to where the agent state log says it was, as a restart restores
every agent (dialer.dispositions.restore_agents), and told so on its desktop."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from common.vocabulary import AgentState
from dialer.dispositions import OUTCOME_PAUSE, RESTORED_STATE, send_state

if TYPE_CHECKING:
    from dialer.core.actions import Dial, LeadUpdate
    from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)


async def restore_agent(rt: CampaignRuntime, login: str) -> AgentState:
    """Put agent `login` (already in `rt.agents`) on the board as it was; returns where it
    went (LOGGED_OUT: it was logged out, or is on the board already: nothing done)."""
    agent = rt.agents[login]
    if login in rt.engine.board:
        return AgentState.LOGGED_OUT
    last = next((x for x in await rt.store.last_agent_states(rt.campaign.id)
                 if x.agent_id == agent.id), None)
    if last is None:
        return AgentState.LOGGED_OUT
    target = RESTORED_STATE.get(last.state, AgentState.LOGGED_OUT)
    reason = last.reason
    if last.state in (AgentState.TALKING, AgentState.WRAP_UP) and await rt.store.open_outcomes(
            campaign_id=rt.campaign.id, agent_id=agent.id):
        target, reason = AgentState.PAUSED, OUTCOME_PAUSE
    if target is AgentState.LOGGED_OUT:
        return target
    if target is AgentState.READY:
        rt._engine(rt.engine.agent_login, login, ready=True)
    else:
        rt._engine(rt.engine.agent_login, login)
        if reason and reason != "login":
            rt._engine(rt.engine.agent_pause, login, reason)
    await send_state(rt, login)
    return target


class Fence(Protocol):
    """The cluster's self-fence as a campaign runtime sees it (dialer/cluster.py `Fencing`)."""

    def refuse(self, rt: CampaignRuntime, dial: Dial) -> bool:
        """True (and the call is ended unplaced) while this instance may not dial."""
        ...

    def swallow(self, rt: CampaignRuntime, update: LeadUpdate) -> bool:
        """True for the lead update of a call a survivor took over: nothing is written."""
        ...


class Peers(Protocol):
    """The other cluster members' agents as a campaign runtime's transfers see them
    (dialer/cluster_lend.py `Lending`)."""

    def ready_elsewhere(self, rt: CampaignRuntime) -> Sequence[RemoteAgentLike]:
        """The campaign's ready agents other members serve, longest ready first."""
        ...

    def groups_elsewhere(self, rt: CampaignRuntime) -> dict[str, tuple[str, ...]]:
        """The named groups of the campaign's agents this member does not serve."""
        ...

    async def borrow(self, rt: CampaignRuntime, login: str) -> bool:
        """Bring a ready agent served elsewhere onto `rt`'s board; True once it is here."""
        ...


class RemoteAgentLike(Protocol):
    @property
    def login(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...
