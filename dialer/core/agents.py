"""Agent state machine and the board of agents of one campaign.

One `_set_state` per agent logs old -> new, accumulates time in the old state and emits an
`AgentStateChanged` only on a real change; illegal transitions raise naming the state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from common.vocabulary import AgentState
from dialer.core.actions import AgentStateChanged
from dialer.core.errors import IllegalTransitionError, InvalidInputError, UnknownAgentError

log = logging.getLogger(__name__)

S = AgentState

#: allowed transitions (old -> set of new). Pending pause/logout requests are applied when
#: the agent would otherwise become READY, so an agent is never pulled out of a live call.
_ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    S.LOGGED_OUT: frozenset({S.READY, S.PAUSED}),
    S.READY: frozenset({S.RESERVED, S.PAUSED, S.LOGGED_OUT}),
    S.RESERVED: frozenset({S.TALKING, S.READY, S.PAUSED, S.LOGGED_OUT}),
    S.TALKING: frozenset({S.WRAP_UP}),
    S.WRAP_UP: frozenset({S.READY, S.PAUSED, S.LOGGED_OUT}),
    # RESERVED: only for the agent's own manual call (dialer/core/manual_call.py)
    S.PAUSED: frozenset({S.READY, S.RESERVED, S.LOGGED_OUT}),
}


@dataclass(slots=True)
class AgentRecord:
    """Mutable per-agent state kept by the engine (times are campaign-clock seconds)."""

    agent_id: str
    state: AgentState = S.LOGGED_OUT
    since: float = 0.0
    reason: str | None = None
    #: when the agent last became READY (longest-waiting routing)
    ready_since: float = 0.0
    #: call the agent is reserved for / talking on / wrapping up
    call_id: str | None = None
    #: when the current talk started (for conditional remaining-time estimates)
    talk_started: float = 0.0
    wrap_started: float = 0.0
    calls_handled: int = 0
    talk_seconds_total: float = 0.0
    #: seconds spent in each state (closed intervals only; see AgentBoard.time_in_state)
    state_seconds: dict[AgentState, float] = field(default_factory=dict)
    #: pause/logout asked for while busy: applied when the agent would become READY
    pending: AgentState | None = None
    pending_reason: str | None = None
    #: an agent of another campaign here for one transferred call (dialer/core/transfer.py):
    #: never READY here, not counted by the pacer, gone home once free (`VisitorLeft`)
    visiting: bool = False


class AgentBoard:
    """All agents of one campaign, with their state machines and counters."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}
        #: agents currently READY (not reserved), for routing and pacing
        self.ready: dict[str, AgentRecord] = {}
        self.counts: dict[AgentState, int] = dict.fromkeys(AgentState, 0)
        #: agents of another campaign here for one transferred call (`visit`)
        self.visitors = 0

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._agents.values())

    def get(self, agent_id: str) -> AgentRecord:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgentError(agent_id) from None

    def ensure(self, agent_id: str, t: float) -> AgentRecord:
        rec = self._agents.get(agent_id)
        if rec is None:
            if not agent_id:
                raise InvalidInputError("agent_id must not be empty")
            rec = AgentRecord(agent_id=agent_id, since=t)
            self._agents[agent_id] = rec
            self.counts[S.LOGGED_OUT] += 1
        return rec

    def forget(self, agent_id: str) -> bool:
        """Drop a logged-out agent's record (it moved to another campaign); False when the
        agent is unknown or still logged in."""
        rec = self._agents.get(agent_id)
        if rec is None or rec.state is not S.LOGGED_OUT:
            return False
        del self._agents[agent_id]
        self.counts[S.LOGGED_OUT] -= 1
        return True

    def hand_off(self, agent_id: str) -> None:
        """Drop a READY agent's record without a transition of its own: another dialer
        instance takes the agent over, ready (dialer/cluster_lend.py). Its state log goes on
        there; a LOGGED_OUT here would tell its desktop and the log it logged out."""
        rec = self.get(agent_id)
        if rec.state is not S.READY:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, "handed off")
        del self._agents[agent_id]
        self.ready.pop(agent_id, None)
        self.counts[S.READY] -= 1

    def visit(self, agent_id: str, t: float, at: datetime) -> AgentRecord:
        """An agent of another campaign joins for one transferred call, READY without an
        event (the caller reserves it in the same input); it must be new here."""
        rec = self.ensure(agent_id, t)
        if rec.state is not S.LOGGED_OUT:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, "visit")
        rec.visiting = True
        self.visitors += 1
        self.set_state(rec, S.READY, t, at, "visiting")
        return rec

    def leave(self, agent_id: str) -> AgentRecord:
        """Drop a visiting agent's record in whatever state, without a transition: it goes
        back to its own campaign's board (`VisitorLeft`)."""
        rec = self.get(agent_id)
        del self._agents[agent_id]
        self.ready.pop(agent_id, None)
        self.counts[rec.state] -= 1
        self.visitors -= rec.visiting
        return rec

    @property
    def logged_in(self) -> int:
        return len(self._agents) - self.counts[S.LOGGED_OUT]

    @property
    def working(self) -> int:
        """Logged in, not paused and not visiting: the agents the pacer dials for."""
        return self.logged_in - self.counts[S.PAUSED] - self.visitors

    def set_state(
        self,
        rec: AgentRecord,
        new: AgentState,
        t: float,
        at: datetime,
        reason: str | None = None,
    ) -> AgentStateChanged | None:
        old = rec.state
        if new is old:
            if new is S.PAUSED and reason != rec.reason:
                rec.reason = reason  # a new pause reason is recorded, not a transition
            return None
        if new not in _ALLOWED[old]:
            raise IllegalTransitionError(f"agent {rec.agent_id}", old.value, new.value)
        rec.state_seconds[old] = rec.state_seconds.get(old, 0.0) + max(0.0, t - rec.since)
        self.counts[old] -= 1
        self.counts[new] += 1
        if old is S.READY:
            self.ready.pop(rec.agent_id, None)
        if new is S.READY:
            rec.ready_since = t
            self.ready[rec.agent_id] = rec
        rec.state = new
        rec.since = t
        rec.reason = reason
        log.debug("agent %s: %s -> %s (%s)", rec.agent_id, old.value, new.value, reason)
        return AgentStateChanged(agent_id=rec.agent_id, old=old, new=new, reason=reason, at=at)

    def time_in_state(self, rec: AgentRecord, t: float) -> dict[AgentState, float]:
        """Seconds in each state including the open interval up to ``t``."""
        out = dict(rec.state_seconds)
        out[rec.state] = out.get(rec.state, 0.0) + max(0.0, t - rec.since)
        return out
