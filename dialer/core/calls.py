"""The engine's calls in flight, and the one place a call's stage changes.

A call's `AttemptStage` is what the attempt row, the supervisor and the in-flight gauge
show, so it has one owner: `CallTable.set_stage`, which only makes the moves in
`STAGE_TRANSITIONS` and names the current stage when asked for anything else. Drivers read
it (`CampaignEngine.call_stage`) instead of keeping a copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from common.vocabulary import AttemptResult, AttemptStage
from dialer.core.errors import IllegalTransitionError, InvalidInputError, UnknownCallError
from dialer.core.tickets import LeadTicket

_S = AttemptStage

#: stage -> the stages a call may move to from it
STAGE_TRANSITIONS: Mapping[AttemptStage, frozenset[AttemptStage]] = {
    # DIALING is the SIP side's 100 Trying; the engine is not told of it today, so an
    # unanswered call may go straight from CREATED to ringing or answered
    _S.CREATED: frozenset({_S.DIALING, _S.RINGING, _S.ANSWERED, _S.ENDED}),
    _S.DIALING: frozenset({_S.RINGING, _S.ANSWERED, _S.ENDED}),
    _S.RINGING: frozenset({_S.ANSWERED, _S.ENDED}),
    _S.ANSWERED: frozenset({_S.BRIDGED, _S.MESSAGE, _S.ENDED}),
    _S.BRIDGED: frozenset({_S.ENDED}),
    _S.MESSAGE: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
}

#: stages in which a call has not been answered yet
UNANSWERED = frozenset({_S.CREATED, _S.DIALING, _S.RINGING})


@dataclass(slots=True)
class CallRecord:
    """One call the engine dialed, from the Dial to its AttemptFinished."""

    call_id: str
    lead: LeadTicket
    dialed_t: float
    dialed_at: datetime
    #: first 18x (call_ringing): the minimum ring time counts from here (docs/compliance.md)
    ringing_t: float | None = None
    #: agent reserved before the dial (preview, agent-owned callback)
    reserved_agent: str | None = None
    #: read through `stage`; written only by `CallTable.set_stage`. CREATED until the SIP
    #: side reports progress, as on the attempt row
    _stage: AttemptStage = field(default=AttemptStage.CREATED, repr=False)
    #: picked up (call_picked_up) and AMD still analysing: ANSWERED for anyone reading the
    #: stage, but the engine treats it as unanswered until call_answered gives the verdict
    amd_pending: bool = False
    #: agent the customer is being bridged to / talking with
    agent_id: str | None = None
    #: transferred to an outside number: bridged, with no agent of the campaign on it
    handed_out: bool = False
    answered_at: datetime | None = None
    clock_at: datetime | None = None
    deadline_t: float = math.inf
    connected_at: datetime | None = None
    message_at: datetime | None = None
    result: AttemptResult | None = None
    waiting: bool = False
    #: the engine hung it up while ringing (surplus): the lead gets NO_ANSWER
    cancelled: bool = False

    @property
    def stage(self) -> AttemptStage:
        return self._stage

    @property
    def unanswered(self) -> bool:
        """No verdict yet: not answered, or picked up with AMD still analysing."""
        return self._stage in UNANSWERED or self.amd_pending


@dataclass(slots=True)
class Offer:
    """A preview offer waiting for its agent's accept or skip (no call placed yet)."""

    call_id: str
    lead: LeadTicket
    offered_t: float


class CallTable:
    """The engine's calls in flight, by id, with the two views the pacer and router need.

    The views are plain dicts the engine edits in place: their insertion order is part of
    the engine's behaviour (FIFO for waiting customers, the pacer's view of ringing calls),
    so they are not hidden behind methods that could reorder them.
    """

    def __init__(self) -> None:
        self._all: dict[str, CallRecord] = {}
        #: unanswered and not reserved for an agent: the calls the pacer counts as ringing
        self.inflight: dict[str, CallRecord] = {}
        #: unanswered calls reserved for an agent (preview, agent-owned callback)
        self.reserved_inflight = 0
        #: answered live, no agent yet (insertion = FIFO)
        self.waiting: dict[str, CallRecord] = {}

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._all

    def __iter__(self) -> Iterator[CallRecord]:
        return iter(self._all.values())

    def get(self, call_id: str) -> CallRecord:
        try:
            return self._all[call_id]
        except KeyError:
            raise UnknownCallError(call_id) from None

    def find(self, call_id: str) -> CallRecord | None:
        return self._all.get(call_id)

    def add(self, call: CallRecord) -> None:
        """A new dial: counted in flight (by the pacer unless reserved for an agent)."""
        if call.call_id in self._all:
            raise InvalidInputError(f"call id {call.call_id!r} issued twice by the call id factory")
        self._all[call.call_id] = call
        if call.reserved_agent is None:
            self.inflight[call.call_id] = call
        else:
            self.reserved_inflight += 1

    def leave_inflight(self, call: CallRecord) -> None:
        """The call is no longer ringing (answered or ended)."""
        if self.inflight.pop(call.call_id, None) is None and call.reserved_agent is not None:
            self.reserved_inflight -= 1

    def set_stage(self, call: CallRecord, new: AttemptStage) -> None:
        """The only place a call's stage changes; refuses moves not in STAGE_TRANSITIONS."""
        if new not in STAGE_TRANSITIONS[call._stage]:
            raise IllegalTransitionError(f"call {call.call_id}", call._stage.value, new.value)
        call._stage = new

    def finish(self, call: CallRecord) -> None:
        """The call is over: ENDED, and gone from the table."""
        self.set_stage(call, AttemptStage.ENDED)
        del self._all[call.call_id]

    def stage_of(self, call_id: str) -> AttemptStage | None:
        call = self._all.get(call_id)
        return call.stage if call is not None else None

    def count_by_stage(self) -> dict[AttemptStage, int]:
        counts: dict[AttemptStage, int] = {}
        for call in self._all.values():
            counts[call._stage] = counts.get(call._stage, 0) + 1
        return counts
