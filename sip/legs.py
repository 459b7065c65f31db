"""Pure call-leg logic of a SIP node: the leg state machine and how a call ended.

No pjsua2 here. The node's pjsua2 glue (:mod:`sip.node`) tells these objects what PJSIP
reported (a provisional answer, the 200, the disconnect with its SIP code, the INVITE's final
response seen in the message log) together with the time, and sends the events they return.
That keeps every decision about a leg testable without a SIP stack (tests/sip/test_sip_legs.py).

* :class:`LegState` and :data:`TRANSITIONS`: one state machine for customer and agent legs;
  :meth:`Leg.set_state` is the only place a leg's state changes.
* :class:`CustomerCall`: the customer leg's facts (timestamps, who hung up, whether a 200 was
  seen) and the rules turning them into ``CallRinging`` / ``CallAnswered`` / ``CallEnded``.
* :func:`classify_end`: how a call ended -> result, retryable, reason, ``hangup_by``,
  including a 200 OK that crosses our CANCEL (docs/sip.md, "Call-progress classification").
* :class:`AgentCall`: the agent leg's facts and what its disconnect means for the customer.
* :class:`LocalEnd` and its constructors: why the node or the dialer ended a call itself.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from common.vocabulary import AmdVerdict, AttemptResult
from sip.api import CallEnded, CallRinging, HangupBy, Originate, classify_failure

log = logging.getLogger("sip.legs")

#: pjsua's "too many calls": every call slot of the endpoint is taken (docs/sip.md)
PJ_ETOOMANY = 70010
#: SIP codes that count as ringing (the ring timeout starts at the first of them)
RINGING_CODES = frozenset({180, 181, 182, 183})
#: how long CallEnded of a cancelled call waits for the INVITE's final answer (487 or a 200
#: that crossed the CANCEL) before it is reported anyway. A 200 crossing our CANCEL was sent
#: before the callee saw the CANCEL, so it arrives within one trip; a trunk that is slow to
#: send its 487 must not stretch the ring time past ``ring_timeout_s`` (it was 4 s: a 25 s
#: ring timeout ended calls 29 s after the first ring)
CANCEL_GRACE_S = 0.8
#: appended to the reason when the callee's 200 OK crossed our CANCEL
CROSSED_CANCEL = "200 OK crossed the CANCEL (ACK+BYE sent)"


class LegState(enum.Enum):
    """Where a customer or agent leg stands (INVITE sent, 1xx seen, 2xx seen, gone)."""

    DIALING = "dialing"
    EARLY = "early"
    ANSWERED = "answered"
    ENDED = "ended"


#: the legal moves; a leg only goes forward (PJSIP's INVITE session states do too)
TRANSITIONS: Mapping[LegState, frozenset[LegState]] = MappingProxyType(
    {
        LegState.DIALING: frozenset({LegState.EARLY, LegState.ANSWERED, LegState.ENDED}),
        LegState.EARLY: frozenset({LegState.ANSWERED, LegState.ENDED}),
        LegState.ANSWERED: frozenset({LegState.ENDED}),
        LegState.ENDED: frozenset(),
    }
)


class IllegalLegTransition(RuntimeError):
    """A leg was asked to move where :data:`TRANSITIONS` does not allow: a bug in the node."""

    def __init__(self, leg: str, current: LegState, new: LegState) -> None:
        super().__init__(f"leg {leg}: illegal transition {current.value} -> {new.value}")
        self.current = current
        self.new = new


@dataclass(slots=True)
class Leg:
    """What customer and agent legs share: the state and its one setter."""

    _state: LegState = field(default=LegState.DIALING, init=False)

    @property
    def state(self) -> LegState:
        return self._state

    def leg_id(self) -> str:
        raise NotImplementedError

    def set_state(self, new: LegState) -> bool:
        """Move to ``new``; False (and nothing else) when already there.

        Raises :class:`IllegalLegTransition` naming the current state for a move the table
        forbids.
        """
        old = self._state
        if new is old:
            return False
        if new not in TRANSITIONS[old]:
            raise IllegalLegTransition(self.leg_id(), old, new)
        self._state = new
        log.debug("leg %s: %s -> %s", self.leg_id(), old.value, new.value)
        return True


# ---------------------------------------------------------------------------------------------
# Why the node or the dialer ended a call
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalEnd:
    """Why the node/dialer ended a call itself (set before the hangup is sent)."""

    result: AttemptResult | None  # None: classify from what happened (answered calls)
    hangup_by: HangupBy
    reason: str
    retryable: bool
    before_answer: bool


def setup_timeout_end(setup_timeout_s: float) -> LocalEnd:
    """No 18x/200 within ``Originate.setup_timeout_s`` of the INVITE."""
    return LocalEnd(
        AttemptResult.FAILED, "node", f"no ringing within {setup_timeout_s:g}s", True, True
    )


def ring_timeout_end(ring_timeout_s: float) -> LocalEnd:
    """Rang ``Originate.ring_timeout_s`` since the first 18x without an answer."""
    return LocalEnd(
        AttemptResult.NO_ANSWER, "node", f"ring timeout {ring_timeout_s:g}s", True, True
    )


def dialer_hangup_end(reason: str, *, answered: bool) -> LocalEnd:
    """A ``Hangup`` command: CANCELLED before the answer, classified from the call after it."""
    return LocalEnd(
        None if answered else AttemptResult.CANCELLED,
        "local",
        reason or "hung up by dialer",
        True,
        not answered,
    )


def shutdown_end(*, answered: bool) -> LocalEnd:
    """The node stops with the call still up."""
    return LocalEnd(
        None if answered else AttemptResult.CANCELLED, "node", "node shutdown", True, not answered
    )


def media_timeout_end(media_timeout_s: float) -> LocalEnd:
    """The answered customer leg received no RTP for ``media_timeout_s`` (a dead call)."""
    return LocalEnd(None, "node", f"no media for {media_timeout_s:g} s", False, False)


def agent_media_timeout_end(media_timeout_s: float) -> LocalEnd:
    """The bridged agent leg received no RTP for ``media_timeout_s``: its phone is gone as
    if its BYE was lost; the customer goes too, as when an agent hangs up."""
    return LocalEnd(None, "node", f"agent leg: no media for {media_timeout_s:g} s", False, False)


#: the bridged agent hung up: the customer goes too
AGENT_HUNG_UP = LocalEnd(None, "local", "agent hung up", False, False)
#: ``Play(hangup_after=True)`` finished its message
MESSAGE_PLAYED = LocalEnd(None, "local", "message played", False, False)


def crossed_reason(reason: str) -> str:
    return f"{reason}; {CROSSED_CANCEL}"


def retry_makecall(status: int, now: float, retry_until: float, stopping: bool = False) -> bool:
    """Whether a failed ``makeCall`` is tried again: only PJ_ETOOMANY (a slot still closing
    its CANCEL/BYE transaction) within the retry window, and not while shutting down."""
    return status == PJ_ETOOMANY and now < retry_until and not stopping


def makecall_retryable(status: int) -> bool:
    """Whether the dialer may retry an Originate whose ``makeCall`` failed for good."""
    return status == PJ_ETOOMANY


@dataclass(slots=True)
class RxWatch:
    """RTP inactivity of one answered leg, from its rx packet counter polled about once a
    second (:meth:`observe`). Counting starts at the first observation (the answer or the
    bridge); a paused watch (remote hold) restarts the count when it resumes."""

    timeout_s: float
    last_rx: int = -1
    since: float = 0.0

    def observe(self, rx: int, now: float, *, receiving: bool = True) -> bool:
        """True when no packet arrived for ``timeout_s`` (0: never)."""
        if self.last_rx < 0 or rx != self.last_rx or not receiving:
            self.last_rx = rx
            self.since = now
            return False
        return self.timeout_s > 0 and now - self.since >= self.timeout_s


# ---------------------------------------------------------------------------------------------
# How a call ended
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndOutcome:
    """The classification part of ``CallEnded``."""

    result: AttemptResult
    retryable: bool
    reason: str
    hangup_by: HangupBy
    sip_code: int | None
    answered_after_cancel: bool = False

    def event(self, call_id: str, ring_s: float | None, talk_s: float | None) -> CallEnded:
        return CallEnded(
            call_id=call_id,
            result=self.result,
            sip_code=self.sip_code,
            reason=self.reason,
            hangup_by=self.hangup_by,
            ring_s=ring_s,
            talk_s=talk_s,
            retryable=self.retryable,
            answered_after_cancel=self.answered_after_cancel,
        )


def classify_end(
    *,
    answered: bool,
    saw_200: bool,
    got_provisional: bool,
    local_end: LocalEnd | None,
    sip_code: int | None,
    sip_reason: str,
    ever_bridged: bool,
    amd_verdict: AmdVerdict,
) -> EndOutcome:
    """How a customer call ended, from what the leg saw.

    ``sip_code``/``sip_reason`` are PJSIP's last status of the INVITE session; ``saw_200``
    says a 2xx to the INVITE arrived (possibly only seen in the message log, after our CANCEL).
    """
    le = local_end
    if le is not None and le.before_answer and (answered or saw_200):
        # we cancelled, the callee answered anyway: PJSIP ACKs and BYEs the 200; the attempt
        # keeps the result of the cancel (e.g. NO_ANSWER after a ring timeout)
        return EndOutcome(
            le.result or AttemptResult.CANCELLED,
            le.retryable,
            crossed_reason(le.reason),
            le.hangup_by,
            200,
            answered_after_cancel=True,
        )
    if not answered:
        if le is not None:
            return EndOutcome(
                le.result or AttemptResult.CANCELLED,
                le.retryable,
                le.reason,
                le.hangup_by,
                sip_code,
            )
        result, retryable = classify_failure(sip_code, got_provisional=got_provisional)
        return EndOutcome(result, retryable, sip_reason, "remote", sip_code)
    if ever_bridged:
        result = AttemptResult.CONNECTED
    elif amd_verdict == AmdVerdict.MACHINE:
        result = AttemptResult.MACHINE
    else:
        result = AttemptResult.ABANDONED
    return EndOutcome(
        result,
        False,
        le.reason if le else "callee hung up",
        le.hangup_by if le else "remote",
        200,
    )


# ---------------------------------------------------------------------------------------------
# The customer leg
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class CustomerCall(Leg):
    """The customer leg's facts and rules (the pjsua2 objects live in the node's subclass)."""

    call_id: str
    cmd: Originate
    t_invite: float = 0.0
    t_first_18x: float | None = None
    t_answer: float | None = None
    early_media: bool = False
    ringing_reported: bool = False
    local_end: LocalEnd | None = None
    saw_200: bool = False
    ever_bridged: bool = False
    amd_verdict: AmdVerdict = AmdVerdict.NOT_RUN
    #: until when a makeCall that hit PJ_ETOOMANY is tried again
    retry_until: float = 0.0
    #: SIP Call-ID, known once the node cancels the call (to match the INVITE's late answer)
    sip_call_id: str = ""
    #: final response to the INVITE seen after our CANCEL (487 normally, 2xx if it crossed)
    cancel_final: int | None = None
    #: CallEnded waiting for ``cancel_final`` (at most until ``held_until``)
    held_end: CallEnded | None = None
    held_until: float = 0.0

    def leg_id(self) -> str:
        return self.call_id

    @property
    def answered_and_up(self) -> bool:
        """Answered and nobody on our side has started hanging it up."""
        return self._state == LegState.ANSWERED and self.local_end is None

    def mark_local_end(self, why: LocalEnd) -> None:
        """Record why we hang up; the first reason wins (a timeout racing a Hangup)."""
        if self.local_end is None:
            self.local_end = why

    def on_provisional(self, code: int, media_active: bool, now: float) -> CallRinging | None:
        """PJSIP reported the EARLY state (a 1xx); returns CallRinging when it is news."""
        if self._state == LegState.DIALING:
            self.set_state(LegState.EARLY)
        if code in RINGING_CODES and self.t_first_18x is None:
            self.t_first_18x = now
        # early media: a provisional answer carrying SDP (183 Session Progress usually)
        early = code == 183 or media_active
        if self.ringing_reported and not (early and not self.early_media):
            return None
        self.ringing_reported = True
        self.early_media = early or self.early_media
        if self.local_end is not None:
            return None
        return CallRinging(call_id=self.call_id, early_media=self.early_media, sip_code=code)

    def on_answered(self, now: float) -> bool:
        """PJSIP reported CONNECTING/CONFIRMED (a 2xx); True when CallAnswered is to be sent.

        A 200 that crossed our CANCEL is not an answer for the dialer: PJSIP ACKs and BYEs it
        and the call is reported at its end.
        """
        self.saw_200 = True
        if self._state not in (LegState.DIALING, LegState.EARLY):
            return False
        self.set_state(LegState.ANSWERED)
        self.t_answer = now
        return not (self.local_end is not None and self.local_end.before_answer)

    def on_invite_final(self, code: int) -> None:
        """The final response to our cancelled INVITE, read from PJSIP's message log."""
        self.cancel_final = code
        if 200 <= code < 300:
            self.saw_200 = True

    def due_timeout(self, now: float, *, call_placed: bool) -> LocalEnd | None:
        """The setup or ring timeout that has expired, if any (only while nobody hung up)."""
        if self.local_end is not None:
            return None
        cmd = self.cmd
        if (
            self._state in (LegState.DIALING, LegState.EARLY)
            and self.t_first_18x is None
            and call_placed
            and now - self.t_invite >= cmd.setup_timeout_s
        ):
            return setup_timeout_end(cmd.setup_timeout_s)
        if (
            self._state == LegState.EARLY
            and self.t_first_18x is not None
            and now - self.t_first_18x >= cmd.ring_timeout_s
        ):
            return ring_timeout_end(cmd.ring_timeout_s)
        return None

    def on_disconnected(
        self, sip_code: int | None, sip_reason: str, now: float
    ) -> CallEnded | None:
        """PJSIP reported DISCONNECTED: classify the call once and end the leg.

        None when the leg had already ended (a second DISCONNECTED must not report twice).
        The event has no media counters yet; the glue adds them.
        """
        if self._state == LegState.ENDED:
            return None
        ring_s = None
        if self.t_first_18x is not None:
            ring_s = round((self.t_answer or now) - self.t_first_18x, 3)
        talk_s = round(now - self.t_answer, 3) if self.t_answer is not None else None
        outcome = classify_end(
            answered=self.t_answer is not None,
            saw_200=self.saw_200,
            got_provisional=self.t_first_18x is not None or self._state == LegState.EARLY,
            local_end=self.local_end,
            sip_code=sip_code,
            sip_reason=sip_reason,
            ever_bridged=self.ever_bridged,
            amd_verdict=self.amd_verdict,
        )
        self.set_state(LegState.ENDED)
        return outcome.event(self.call_id, ring_s, talk_s)

    def cancelled_before_invite(self) -> CallEnded:
        """Hung up while waiting for a free call slot: no INVITE was ever sent."""
        le = self.local_end
        assert le is not None
        self.set_state(LegState.ENDED)
        return CallEnded(
            call_id=self.call_id,
            result=AttemptResult.CANCELLED,
            sip_code=None,
            reason=le.reason,
            hangup_by=le.hangup_by,
            ring_s=None,
            talk_s=None,
            retryable=True,
        )

    def must_wait_for_invite_final(self, stopping: bool) -> bool:
        """A call we cancelled before the answer: wait for the INVITE's final response, a 200
        may still cross the CANCEL (reported at most ``CANCEL_GRACE_S`` later)."""
        le = self.local_end
        return bool(
            le is not None
            and le.before_answer
            and self.t_answer is None
            and self.sip_call_id
            and self.cancel_final is None
            and not stopping
        )

    def final_event(self, ev: CallEnded) -> CallEnded:
        """The CallEnded to send: a 200 seen after the event was built still marks the cross."""
        le = self.local_end
        if self.saw_200 and le is not None and le.before_answer and not ev.answered_after_cancel:
            return dataclasses.replace(
                ev, sip_code=200, reason=crossed_reason(le.reason), answered_after_cancel=True
            )
        return ev


# ---------------------------------------------------------------------------------------------
# The agent leg
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentFailure:
    """Report ``AgentLegFailed`` with this code and reason."""

    sip_code: int | None
    reason: str


@dataclass(slots=True, kw_only=True)
class AgentCall(Leg):
    """The agent leg's facts and rules (the pjsua2 objects live in the node's subclass)."""

    agent_call_id: str
    t_start: float = 0.0
    failed_reported: bool = False
    bridged: bool = False
    local_hangup: bool = False

    def leg_id(self) -> str:
        return self.agent_call_id

    def on_early(self) -> None:
        if self._state in (LegState.DIALING, LegState.EARLY):
            self.set_state(LegState.EARLY)

    def on_confirmed(self) -> bool:
        """The agent's phone answered; True the first time."""
        if self._state not in (LegState.DIALING, LegState.EARLY):
            return False
        return self.set_state(LegState.ANSWERED)

    def answer_timed_out(self, now: float, answer_timeout_s: float) -> bool:
        return (
            self._state in (LegState.DIALING, LegState.EARLY)
            and not self.local_hangup
            and now - self.t_start >= answer_timeout_s
        )

    def on_disconnected(
        self, sip_code: int | None, sip_reason: str, *, customer_up: bool
    ) -> LocalEnd | AgentFailure | None:
        """The agent leg ended. Returns why to hang up the customer (a bridged agent hung up
        on a customer still up), the AgentLegFailed to report, or None."""
        prev = self._state
        self.set_state(LegState.ENDED)
        if self.bridged:
            return AGENT_HUNG_UP if customer_up and not self.local_hangup else None
        if self.failed_reported:
            return None
        if prev != LegState.ANSWERED:
            return AgentFailure(sip_code, sip_reason or "agent leg failed")
        return AgentFailure(sip_code, "agent hung up before bridge")
