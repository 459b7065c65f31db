"""Agent-to-agent transfers of a connected call: the engine's inputs (pure).

A talking agent hands its customer to another agent of the campaign: a named ready agent, or
"a group" (a set of logins, e.g. the closers), where the router picks the longest-idle ready
one (`choose_agent`, the same rule as for answered calls); or to an outside number
(``external``: a specialist's direct line, the number a switchboard gave). The driver reports
the SIP result; the engine moves the agents::

    transfer_start(call, from, to|group, consult) -> target RESERVED ("transfer")
                                                  -> TransferTo(call, from, to, consult)
    transfer_start(call, from, external=True)     -> nobody reserved
                                                  -> TransferTo(call, from, None, consult)
    [warm: transfer_consulting(call)]             -> target still RESERVED ("consult")
    transfer_done(call)    the customer is with the target: target TALKING (owns the call),
                           first agent WRAP_UP ("transferred") and at once READY (or its
                           pending pause/logout): no disposition is owed for its part
    transfer_failed(call)  (no answer, refused, cancelled): target READY again (or its
                           pending pause/logout), the call stays with the first agent

An external transfer's `transfer_done` leaves the call bridged to the outside party with no
agent (``CallRecord.handed_out``): the first agent goes to WRAP_UP ("transferred_out") and
owes the call's one disposition as after any call (nobody else in the dialer heard it); it
may give it while the two outside parties still talk. The call's end then finishes the
attempt (CONNECTED) and moves no agent.

Decisions (docs/call-controls.md): the receiving agent owns the call's disposition (the one
`disposition` of the attempt, in its wrap-up after the call); the first agent's notes travel
with the transfer command to the receiving agent's screen pop. The attempt keeps its one row
and ends in exactly one final state (`call_ended` as for any bridged call); abandon accounting
is unchanged (the call was connected when it was bridged). A call that ends while a transfer
is in progress frees the target (`_end_transfer`, called by `call_ended`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.vocabulary import AgentState, AttemptStage
from dialer.core.actions import Action, TransferTo
from dialer.core.agents import AgentRecord
from dialer.core.calls import CallRecord
from dialer.core.dialing import DialingStep
from dialer.core.errors import IllegalTransitionError, InvalidInputError
from dialer.core.held import delivers_held
from dialer.core.router import choose_agent

log = logging.getLogger("dialer.core.engine")

S = AgentState


@dataclass(slots=True)
class Transfer:
    """A transfer in progress on one call."""

    from_agent: str
    #: the receiving agent; None: an outside number (an external transfer)
    to_agent: str | None
    consult: bool
    #: the target answered a warm transfer: the agents are talking
    consulting: bool = False


class TransferStep(DialingStep):
    """The transfer inputs of `CampaignEngine` (see the module docstring)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._transfers: dict[str, Transfer] = {}  # call id -> the transfer in progress

    def transfer_of(self, call_id: str) -> Transfer | None:
        """The transfer in progress on ``call_id``, if any."""
        return self._transfers.get(call_id)

    def _pick_target(self, from_agent: str, to_agent: str | None,
                     group: Collection[str] | None, t: float, now: datetime,
                     visitor: bool = False) -> AgentRecord:
        if (to_agent is None) == (not group):
            raise InvalidInputError("a transfer names one agent or a non-empty group")
        if to_agent is not None:
            if to_agent == from_agent:
                raise InvalidInputError("an agent cannot transfer a call to itself")
            if visitor:
                return self.board.visit(to_agent, t, now)
            rec = self.board.get(to_agent)
            if rec.state is not S.READY or rec.pending is not None:
                raise IllegalTransitionError(f"agent {to_agent}", rec.state.value
                                             if rec.pending is None else "leaving", "transfer")
            return rec
        assert group is not None
        pool = [r for r in self.board.ready.values()
                if r.agent_id in group and r.agent_id != from_agent and r.pending is None]
        best = choose_agent(pool, self.config.tie_break)
        if best is None:
            raise IllegalTransitionError("group", "no ready agent", "transfer")
        return best

    @delivers_held
    def agent_arrive(self, now: datetime, agent_id: str, state: AgentState,
                     reason: str | None = None) -> list[Action]:
        """An agent of this campaign comes back from a transferred call in another one
        (`VisitorLeft` there): READY (and routed at once), or PAUSED as it asked meanwhile.
        LOGGED_OUT: nothing to do, its desktop was told by the other campaign."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        if state is not S.LOGGED_OUT:
            rec = self.board.ensure(agent_id, t)
            if rec.state is not S.LOGGED_OUT:
                raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, "arrive")
            if state is S.READY:
                self._make_available(rec, t, now, out, reason)
            else:
                self._set(rec, S.PAUSED, t, now, out, reason or "transfer")
        self._after(t, now, out)
        return out

    @delivers_held
    def agent_hand_off(self, now: datetime, agent_id: str) -> list[Action]:
        """A ready agent leaves this board for another dialer instance, which takes it on
        ready (a transfer there: dialer/cluster_lend.py). Refused (IllegalTransitionError)
        unless it is READY with nothing pending and no preview offer. Like a transfer to a
        ready agent here, it is taken even when calls already placed were counting on it
        (a person chose the colleague; the pacer places fewer calls from now on)."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.get(agent_id)
        if rec.state is not S.READY or rec.pending is not None or agent_id in self._offers:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, "handed off")
        self.board.hand_off(agent_id)
        self._after(t, now, out)
        return out

    @delivers_held
    def transfer_start(self, now: datetime, call_id: str, from_agent: str, *,
                       to_agent: str | None = None, group: Collection[str] | None = None,
                       consult: bool = False, external: bool = False,
                       visitor: bool = False) -> list[Action]:
        """``from_agent`` hands its bridged call to ``to_agent`` or the group's longest-idle
        ready agent: that agent is reserved and the driver gets `TransferTo`. ``external``:
        to an outside number the driver dials (no agent is reserved). ``visitor``:
        ``to_agent`` works on another campaign, whose board it has just left (the driver
        took it off there, ready): it joins this board for this call only, and once free
        again leaves it (`VisitorLeft`)."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self.calls.get(call_id)
        if call.stage is not AttemptStage.BRIDGED or call.agent_id != from_agent:
            raise IllegalTransitionError(f"call {call_id}", call.stage.value, "transfer")
        if call_id in self._transfers:
            raise IllegalTransitionError(f"call {call_id}", "transferring", "transfer")
        target: str | None = None
        if external:
            if to_agent is not None or group:
                raise InvalidInputError("an external transfer names no agent or group")
        else:
            rec = self._pick_target(from_agent, to_agent, group, t, now, visitor)
            self._set(rec, S.RESERVED, t, now, out, "transfer")
            rec.call_id = call_id
            target = rec.agent_id
        self._transfers[call_id] = Transfer(from_agent, target, consult)
        log.info("call %s: %s transfer from %s to %s", call_id,
                 "warm" if consult else "blind", from_agent, target or "an outside number")
        out.append(TransferTo(call_id, from_agent, target, consult))
        self._after(t, now, out)
        return out

    def _pending(self, call_id: str, what: str) -> Transfer:
        tr = self._transfers.get(call_id)
        if tr is None:
            stage = self.calls.get(call_id).stage.value
            raise IllegalTransitionError(f"call {call_id}", f"{stage}, no transfer", what)
        return tr

    @delivers_held
    def transfer_consulting(self, now: datetime, call_id: str) -> list[Action]:
        """A warm transfer's target answered: the two agents talk, the customer is on hold."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        tr = self._pending(call_id, "consult")
        if not tr.consult:
            raise IllegalTransitionError(f"call {call_id}", "blind transfer", "consult")
        tr.consulting = True
        if tr.to_agent is not None:
            self.board.get(tr.to_agent).reason = "consult"
        self._after(t, now, out)
        return out

    @delivers_held
    def transfer_done(self, now: datetime, call_id: str) -> list[Action]:
        """The customer is connected to the target: it owns the call from here on."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        tr = self._pending(call_id, "transfer_done")
        call = self.calls.get(call_id)
        del self._transfers[call_id]
        first = self.board.get(tr.from_agent)
        first.talk_seconds_total += t - first.talk_started
        first.calls_handled += 1
        if tr.to_agent is None:
            # to an outside number: the first agent wraps the call up as after any call
            call.agent_id = None
            call.handed_out = True
            first.wrap_started = t
            self._wrap_leads[first.agent_id] = (call_id, call.lead)
            self._set(first, S.WRAP_UP, t, now, out, "transferred_out")
            self._after(t, now, out)
            return out
        self._set(first, S.WRAP_UP, t, now, out, "transferred")
        first.wrap_started = t
        self._make_available(first, t, now, out, "transferred")
        target = self.board.get(tr.to_agent)
        call.agent_id = target.agent_id
        target.call_id = call_id
        target.talk_started = t
        self._set(target, S.TALKING, t, now, out, "transfer")
        self._after(t, now, out)
        return out

    @delivers_held
    def transfer_failed(self, now: datetime, call_id: str, reason: str) -> list[Action]:
        """The target's phone did not take the call, or the transfer was cancelled: the
        target is free again and the call stays with the first agent."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        tr = self._pending(call_id, "transfer_failed")
        del self._transfers[call_id]
        why = ("transfer_cancelled" if reason == "cancelled"
               else f"transfer_failed:{reason or 'unknown'}")[:64]
        if tr.to_agent is not None:
            self._make_available(self.board.get(tr.to_agent), t, now, out, why)
        self._after(t, now, out)
        return out

    def _end_transfer(self, call: CallRecord, t: float, now: datetime,
                      out: list[Action]) -> None:
        """The call ended with a transfer in progress: its target is free again."""
        tr = self._transfers.pop(call.call_id, None)
        if tr is not None and tr.to_agent is not None:
            self._make_available(self.board.get(tr.to_agent), t, now, out,
                                 "transfer_call_ended")
