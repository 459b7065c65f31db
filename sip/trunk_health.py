"""Per-trunk circuit breaker: plain code over data, time from an injected clock (docs/trunks.md).

No sockets, no asyncio: :class:`TrunkBreaker` is told what happened (a call's outcome, a probe's
result) and returns the :class:`Transition` it caused, if any. The pool
(:mod:`sip.trunk_monitor`) feeds it, runs the OPTIONS probes it asks for and turns transitions
into ``TrunkHealthChanged`` events and WARNING log lines.

States (:class:`TrunkState`):

* ``closed`` - calls go through. ``failure_threshold`` consecutive *trunk failures*
  (:func:`outcome_of`) open it, and so does a keep-alive OPTIONS probe that gets no answer.
  Any callee answer (a 18x, a 200, a 486/404/603...) resets the count.
* ``open`` - every Originate through the trunk is refused at once (retryable; the lead is not
  burned). The trunk is probed every ``probe_interval_s``; call outcomes are ignored (a late
  answer of a call placed before the outage proves nothing about now). A probe that gets any
  SIP response moves it to half-open.
* ``half_open`` - at most ``half_open_trials`` trial calls at a time go through, the rest are
  refused. The first trial answered by the callee side (ringing, answer, or a callee final
  response) closes the breaker; a trial ending in a trunk failure, or a failed probe, opens
  it again. A trial that ends without telling (cancelled before any response, lost with its
  node) just frees its place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from common.clock import Clock
from common.vocabulary import AttemptResult
from sip.api import CallAnswered, CallEnded, CallRinging, SipApiError

#: final codes meaning the trunk (or the proxy in front of it) is unwell, not the callee
TRUNK_FAILURE_CODES = frozenset({408, 500, 502, 503, 504})


class TrunkState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


#: the ``dialer_trunk_up`` gauge value of each state
UP_VALUE: Mapping[TrunkState, float] = MappingProxyType(
    {TrunkState.CLOSED: 1.0, TrunkState.HALF_OPEN: 0.5, TrunkState.OPEN: 0.0}
)

#: the legal moves of the breaker
TRANSITIONS: Mapping[TrunkState, frozenset[TrunkState]] = MappingProxyType(
    {
        TrunkState.CLOSED: frozenset({TrunkState.OPEN}),
        TrunkState.OPEN: frozenset({TrunkState.HALF_OPEN}),
        TrunkState.HALF_OPEN: frozenset({TrunkState.CLOSED, TrunkState.OPEN}),
    }
)


class CallOutcome(enum.Enum):
    """What one event of a call says about its trunk."""

    SUCCESS = "success"  # the callee side answered something: the trunk carries calls
    TRUNK_FAILURE = "trunk_failure"
    NEUTRAL = "neutral"  # says nothing (cancelled before any answer, lost, other events)


def is_trunk_failure(ev: CallEnded) -> bool:
    """A call that ended because the trunk did not carry it.

    FAILED without any 18x and either no SIP answer at all (timeout, transport error: no
    code), one of :data:`TRUNK_FAILURE_CODES`, or the node's setup timeout (the only FAILED
    the node decides itself). Callee answers (486, 480, 404, 603, 487...) and successes are
    not; nor is a 5xx after ringing (the trunk carried the call to the callee's network).
    """
    if ev.result is not AttemptResult.FAILED or ev.ring_s is not None or ev.talk_s is not None:
        return False
    if ev.answered_after_cancel:
        return False
    return ev.sip_code is None or ev.sip_code in TRUNK_FAILURE_CODES or ev.hangup_by == "node"


def outcome_of(ev: object) -> CallOutcome:
    """Classify one pool event of a call for the breaker."""
    if isinstance(ev, (CallRinging, CallAnswered)):
        return CallOutcome.SUCCESS
    if isinstance(ev, CallEnded):
        if is_trunk_failure(ev):
            return CallOutcome.TRUNK_FAILURE
        if ev.sip_code is not None or ev.talk_s is not None or ev.ring_s is not None:
            return CallOutcome.SUCCESS
    return CallOutcome.NEUTRAL


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """Circuit-breaker settings shared by every trunk of a pool (docs/trunks.md)."""

    #: consecutive trunk failures that open the breaker
    failure_threshold: int = 5
    #: OPTIONS probe period while open or half-open
    probe_interval_s: float = 2.0
    #: OPTIONS keep-alive period while closed (0: no probing while closed)
    keepalive_interval_s: float = 10.0
    #: how long a probe waits for any SIP response (it retransmits meanwhile)
    probe_timeout_s: float = 2.0
    #: trial calls allowed at once while half-open
    half_open_trials: int = 1
    #: False: no breaker at all (never refuses, never probes)
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.failure_threshold, int) or not 1 <= self.failure_threshold <= 1000:
            raise SipApiError(
                f"BreakerConfig.failure_threshold must be an int in [1, 1000], "
                f"got {self.failure_threshold!r}"
            )
        if not 0.05 <= self.probe_interval_s <= 3600:
            raise SipApiError(
                f"BreakerConfig.probe_interval_s must be in [0.05, 3600], "
                f"got {self.probe_interval_s!r}"
            )
        if self.keepalive_interval_s != 0 and not 0.05 <= self.keepalive_interval_s <= 3600:
            raise SipApiError(
                f"BreakerConfig.keepalive_interval_s must be 0 or in [0.05, 3600], "
                f"got {self.keepalive_interval_s!r}"
            )
        if not 0.05 <= self.probe_timeout_s <= 60:
            raise SipApiError(
                f"BreakerConfig.probe_timeout_s must be in [0.05, 60], got {self.probe_timeout_s!r}"
            )
        if not isinstance(self.half_open_trials, int) or not 1 <= self.half_open_trials <= 100:
            raise SipApiError(
                f"BreakerConfig.half_open_trials must be an int in [1, 100], "
                f"got {self.half_open_trials!r}"
            )


@dataclass(frozen=True, slots=True)
class Transition:
    """The breaker of ``trunk`` moved ``old`` -> ``new`` at ``mono`` because of ``reason``."""

    trunk: str
    old: TrunkState
    new: TrunkState
    reason: str
    #: consecutive trunk failures counted when it moved
    failures: int
    mono: float


class IllegalTrunkTransition(RuntimeError):
    """A move :data:`TRANSITIONS` forbids: a bug in the breaker."""


class TrunkBreaker:
    """The breaker of one trunk (see the module doc). Not thread-safe: one owner."""

    def __init__(self, trunk: str, config: BreakerConfig, clock: Clock) -> None:
        self.trunk = trunk
        self.config = config
        self.clock = clock
        self._state = TrunkState.CLOSED
        self.failures = 0
        self.last_failure = ""
        self.trials: set[str] = set()
        self._last_probe: float | None = None
        self._created = clock.monotonic()

    @property
    def state(self) -> TrunkState:
        return self._state

    # ------------------------------------------------------------------ the one setter
    def _move(self, new: TrunkState, reason: str) -> Transition:
        old = self._state
        if new not in TRANSITIONS[old]:
            raise IllegalTrunkTransition(f"trunk {self.trunk}: {old.value} -> {new.value}")
        self._state = new
        failures = self.failures
        self.trials.clear()
        if new is TrunkState.OPEN:
            self._last_probe = self.clock.monotonic()  # the next probe one period from now
        else:
            self.failures = 0
        return Transition(self.trunk, old, new, reason, failures, self.clock.monotonic())

    # ------------------------------------------------------------------ calls
    def admit(self, call_id: str) -> bool:
        """May an Originate through the trunk be placed now? (books a half-open trial)"""
        if not self.config.enabled or self._state is TrunkState.CLOSED:
            return True
        if self._state is TrunkState.OPEN:
            return False
        if len(self.trials) >= self.config.half_open_trials:
            return False
        self.trials.add(call_id)
        return True

    def release(self, call_id: str) -> None:
        """The call ended or was never placed: it no longer holds a trial place."""
        self.trials.discard(call_id)

    def record(self, call_id: str, outcome: CallOutcome, detail: str = "") -> Transition | None:
        """One event of a call through the trunk; ``detail`` names a failure for the logs."""
        if not self.config.enabled or outcome is CallOutcome.NEUTRAL:
            return None
        if self._state is TrunkState.CLOSED:
            if outcome is CallOutcome.SUCCESS:
                self.failures = 0
                return None
            self.failures += 1
            self.last_failure = detail
            if self.failures >= self.config.failure_threshold:
                why = f"{self.failures} consecutive trunk failures (last: {detail or 'failure'})"
                return self._move(TrunkState.OPEN, why)
            return None
        if self._state is TrunkState.HALF_OPEN and call_id in self.trials:
            self.trials.discard(call_id)
            if outcome is CallOutcome.SUCCESS:
                return self._move(TrunkState.CLOSED, "trial call answered by the far end")
            self.failures += 1
            self.last_failure = detail
            return self._move(TrunkState.OPEN, f"trial call failed ({detail or 'failure'})")
        return None  # open: outcomes of calls placed before say nothing about now

    # ------------------------------------------------------------------ probes
    def next_probe_at(self) -> float | None:
        """Monotonic time the next OPTIONS probe is due (None: no probing in this state)."""
        if not self.config.enabled:
            return None
        if self._state is TrunkState.CLOSED:
            every = self.config.keepalive_interval_s
            if every == 0:
                return None
        else:
            every = self.config.probe_interval_s
        if self._last_probe is None:
            return self._created  # the first one as soon as the breaker exists
        return self._last_probe + every

    def probe_started(self) -> None:
        self._last_probe = self.clock.monotonic()

    def probe_result(self, alive: bool, detail: str) -> Transition | None:
        """An OPTIONS probe got a SIP response (alive) or none within its timeout."""
        if not self.config.enabled:
            return None
        if alive:
            if self._state is TrunkState.OPEN:
                return self._move(TrunkState.HALF_OPEN, f"OPTIONS probe answered ({detail})")
            return None
        if self._state is TrunkState.OPEN:
            return None
        self.last_failure = detail
        return self._move(TrunkState.OPEN, f"OPTIONS probe failed ({detail})")
