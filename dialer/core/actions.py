"""What the engine asks its driver to do: frozen action values.

Every engine input returns a list of these, in the order they must be carried out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from common.vocabulary import AgentState, AttemptResult, CallbackScope, LeadStatus
from dialer.core.tickets import LeadTicket


@dataclass(frozen=True, slots=True)
class Dial:
    """Write the attempt row, then originate a call to ``lead``.

    ``agent_id`` is set when an agent is already reserved for the call (preview, or an
    agent-owned callback): a human answer goes straight to that agent.
    """

    call_id: str
    lead: LeadTicket
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeTo:
    """Connect the answered customer on ``call_id`` to ``agent_id``'s phone."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class TransferTo:
    """Hand the bridged customer on ``call_id`` from ``from_agent`` to ``to_agent``'s phone
    (``consult``: a warm transfer, the agents talk first). The engine has reserved
    ``to_agent``; None: an outside number the driver dials through the campaign's trunk. The
    driver reports the result (dialer.core.transfer)."""

    call_id: str
    from_agent: str
    to_agent: str | None
    consult: bool = False


@dataclass(frozen=True, slots=True)
class PlayMessage:
    """Play a recorded message on an answered call (abandon identification or machine)."""

    call_id: str
    kind: Literal["abandon", "machine"]
    hangup_after: bool = True


@dataclass(frozen=True, slots=True)
class EndCall:
    call_id: str


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """Show the lead on the agent's desktop: sent together with the bridge."""

    agent_id: str
    call_id: str
    lead: LeadTicket


@dataclass(frozen=True, slots=True)
class PreviewOffer:
    """Preview mode: show ``lead`` to the agent, who accepts (dial) or skips it."""

    agent_id: str
    call_id: str
    lead: LeadTicket


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadUpdate:
    """The new state of a lead after an attempt's outcome (outcome rules applied)."""

    lead_id: str
    status: LeadStatus
    next_contact_at: datetime | None
    attempts: int
    #: agent owning the next contact (agent-owned callback), else None
    owner: str | None
    dnc: bool = False
    result: AttemptResult | None = None
    disposition: str | None = None
    call_id: str | None = None
    callback_scope: CallbackScope | None = None
    complaint_closed: bool = False
    notes: str | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFinished:
    """The one final state of an attempt, for its row (and for recomputing abandon rates)."""

    call_id: str
    lead_id: str
    result: AttemptResult
    agent_id: str | None
    dialed_at: datetime | None
    answered_at: datetime | None
    #: when the compliance clock started (answer, greeting start or end)
    clock_started_at: datetime | None
    connected_at: datetime | None
    message_at: datetime | None
    ended_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged:
    agent_id: str
    old: AgentState
    new: AgentState
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class VisitorLeft:
    """An agent of another campaign, here for a transferred call, is free: it has left this
    board (no state change here) and the driver puts it back on its own campaign's board in
    ``state`` (READY, or PAUSED / LOGGED_OUT it asked for meanwhile) with ``reason``."""

    agent_id: str
    state: AgentState
    reason: str | None


@dataclass(frozen=True, slots=True)
class NeedLeads:
    """The hopper is below its low-water mark: claim up to ``n`` more and add_leads() them."""

    n: int


Action = (
    Dial
    | BridgeTo
    | TransferTo
    | PlayMessage
    | EndCall
    | ScreenPop
    | PreviewOffer
    | LeadUpdate
    | AttemptFinished
    | AgentStateChanged
    | VisitorLeft
    | NeedLeads
)
