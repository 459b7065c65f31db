"""The telephony engine's call-control commands and events (docs/call-controls.md).

Part of the interface of :mod:`sip.api` (kept in a module of its own for size): hold and
resume of the customer leg, DTMF to the customer, and listen-in legs (a supervisor's phone
joined to a live bridged call in monitor, whisper or barge mode). Every class here is
registered with :mod:`sip.api`'s wire codec, so pool and nodes exchange them like the rest.

* ``Hold`` / ``Resume``: a re-INVITE with a hold SDP (``a=sendonly``) and back; while held the
  customer hears ``music_wav`` looped (or silence) and the agent hears nothing. The node
  reports ``CallHeld`` once the re-INVITE is answered (``on_hold`` True, then False).
* ``SendDtmf``: digits to the customer as RFC 2833/4733 telephone-events, or SIP INFO
  (``application/dtmf-relay``); ``method="auto"`` takes the trunk's setting, else RFC 2833
  when the customer's SDP offered telephone-event, else SIP INFO. ``DtmfSent`` says how many
  digits went by which method (never the digits: they may be a card number or a PIN).
* ``Listen`` / ``StopListen``: a third leg from the call's node to ``supervisor_uri``,
  connected in that node's conference bridge (monitor: the supervisor hears both sides and
  nobody hears the supervisor; whisper: the agent hears the supervisor, the customer does not;
  barge: both do). A second ``Listen`` with the same ``listen_call_id`` changes the mode.
  The pool reserves the leg's call slot on the call's node and refuses it (retryable) when
  the node has none. ``ListenStarted`` when the supervisor's phone answered and is connected,
  ``ListenEnded`` when the leg is gone (with its RTP counters).
* ``TransferAgent``: the call goes to another agent's phone (see the class), at once or after
  a consultation (``consult``: ``CompleteTransfer`` / ``CancelTransfer``); the new leg's
  slot is reserved on the call's node like a listen leg's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sip import api as _api
from sip.api import (
    AUTO_ANSWER_HEADERS,
    SipApiError,
    _check_call_id,
    _check_headers,
    _check_sip_uri,
    _EventBase,
)

ListenMode = Literal["monitor", "whisper", "barge"]
LISTEN_MODES: tuple[str, ...] = ("monitor", "whisper", "barge")
DtmfMethod = Literal["auto", "rfc2833", "sip_info"]
DTMF_METHODS: tuple[str, ...] = ("auto", "rfc2833", "sip_info")
#: digits a keypad may send (RFC 4733 events 0-15); at most this many per command
DTMF_MAX_DIGITS = 32
DTMF_DIGITS_RE = re.compile(rf"^[0-9*#A-D]{{1,{DTMF_MAX_DIGITS}}}$")


def check_dtmf_digits(digits: str) -> None:
    if not isinstance(digits, str) or not DTMF_DIGITS_RE.fullmatch(digits):
        raise SipApiError(
            f"DTMF digits must be 1..{DTMF_MAX_DIGITS} of 0-9 * # A-D"
        )


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Put the customer on hold (re-INVITE ``a=sendonly``); ``music_wav`` "" = silence."""

    call_id: str
    music_wav: str = ""

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        if not isinstance(self.music_wav, str):
            raise SipApiError("Hold.music_wav must be a file path or ''")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Take the customer off hold (re-INVITE ``a=sendrecv``); media to the agent again."""

    call_id: str

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDtmf:
    """Send keypad digits to the customer (see the module doc for ``method``)."""

    call_id: str
    digits: str
    method: DtmfMethod = "auto"
    #: length of each tone (RFC 2833) / the INFO's Duration
    duration_ms: int = 160

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        check_dtmf_digits(self.digits)
        if self.method not in DTMF_METHODS:
            raise SipApiError(f"SendDtmf.method must be one of {DTMF_METHODS}")
        if not isinstance(self.duration_ms, int) or not 40 <= self.duration_ms <= 1000:
            raise SipApiError("SendDtmf.duration_ms must be an int in [40, 1000]")

    def __repr__(self) -> str:  # the digits stay out of logs and tracebacks
        return f"SendDtmf(call_id={self.call_id!r}, digits=<{len(self.digits)}>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    """Join a supervisor's phone to the bridged call ``call_id`` (see the module doc)."""

    call_id: str
    listen_call_id: str
    supervisor_uri: str
    mode: ListenMode = "monitor"
    answer_timeout_s: float = 20.0
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTO_ANSWER_HEADERS))
    trunk: str | None = None

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_call_id(self.listen_call_id, "listen_call_id")
        _check_sip_uri(self.supervisor_uri, "Listen.supervisor_uri")
        if self.mode not in LISTEN_MODES:
            raise SipApiError(f"Listen.mode must be one of {LISTEN_MODES}, got {self.mode!r}")
        if not 0 < self.answer_timeout_s <= 120:
            raise SipApiError("Listen.answer_timeout_s must be in (0, 120]")
        _check_headers(self.headers, "Listen.headers")


@dataclass(frozen=True, slots=True, kw_only=True)
class StopListen:
    """Hang up the supervisor's leg ``listen_call_id`` of call ``call_id``."""

    call_id: str
    listen_call_id: str

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_call_id(self.listen_call_id, "listen_call_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferAgent:
    """Hand the bridged call to another agent's phone (a blind transfer at the SIP level).

    A new agent leg ``agent_call_id`` is placed from the call's node; the current agent stays
    connected until it answers, then the customer is switched over in the bridge and the first
    agent's leg is hung up (the customer hears no gap). ``AgentTransferred`` on success,
    ``TransferFailed`` (the call stays with the first agent) when the phone does not answer.
    """

    call_id: str
    agent_call_id: str
    agent_uri: str
    answer_timeout_s: float = 15.0
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTO_ANSWER_HEADERS))
    trunk: str | None = None
    #: a warm transfer: the customer is put on hold, the new agent talks with the first one
    #: (``ConsultStarted``) until ``CompleteTransfer`` (the customer goes to the new agent and
    #: is taken off hold) or ``CancelTransfer`` (the new leg is hung up; still on hold)
    consult: bool = False

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_call_id(self.agent_call_id, "agent_call_id")
        _check_sip_uri(self.agent_uri, "TransferAgent.agent_uri")
        if not 0 < self.answer_timeout_s <= 120:
            raise SipApiError("TransferAgent.answer_timeout_s must be in (0, 120]")
        _check_headers(self.headers, "TransferAgent.headers")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteTransfer:
    """A warm transfer's consultation is over: hand the customer to the new agent."""

    call_id: str

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTransfer:
    """Give up a transfer in progress: the new agent's leg is hung up (``TransferFailed``
    with reason "cancelled"); the call stays with the first agent."""

    call_id: str

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)


CONTROL_COMMANDS = (
    Hold, Resume, SendDtmf, Listen, StopListen, TransferAgent, CompleteTransfer, CancelTransfer,
)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeld(_EventBase):
    """The hold (``on_hold``) or resume re-INVITE was answered; ``took_ms`` since the command."""

    on_hold: bool
    took_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfSent(_EventBase):
    """``count`` digits went to the customer by ``method`` ("rfc2833" or "sip_info")."""

    count: int
    method: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenStarted(_EventBase):
    """The supervisor's phone answered and is connected in ``mode`` (also after a change)."""

    listen_call_id: str
    mode: str
    #: Listen command at the node -> connected in the bridge
    join_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenEnded(_EventBase):
    """The supervisor's leg is gone (``answered`` False: it never answered)."""

    listen_call_id: str
    reason: str
    answered: bool = False
    sip_code: int | None = None
    rx_packets: int = 0
    tx_packets: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTransferred(_EventBase):
    """The call is now bridged to ``agent_call_id``; ``previous_agent_call_id`` is hung up."""

    agent_call_id: str
    previous_agent_call_id: str
    #: TransferAgent at the node -> the customer connected to the new agent
    took_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultStarted(_EventBase):
    """A warm transfer's new agent answered: the two agents hear each other, the customer is
    on hold."""

    agent_call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferFailed(_EventBase):
    """The new agent's phone did not take the call; the call stays with the first agent."""

    agent_call_id: str
    sip_code: int | None
    reason: str


CONTROL_EVENTS = (
    CallHeld, DtmfSent, ListenStarted, ListenEnded, AgentTransferred, ConsultStarted,
    TransferFailed,
)

# the wire codec of sip.api knows these from here on
_api._CLASSES.update({c.__name__: c for c in (*CONTROL_COMMANDS, *CONTROL_EVENTS)})
