"""What the pool heard of each call in progress, and the one-final-event rule (pure: times are
the events' own ``mono`` stamps and the ``now`` passed in).

* A call's facts (its node, first 18x, answer, bridge) let ``CallLost`` say how far the call
  had got when its node died: answered or not, bridged or not, ring and talk time so far.
* Exactly one final event per accepted Originate: ``CallEnded``, ``CallLost`` or the node's
  ``CommandRejected`` of the Originate. A second one for the same call (a ``CallEnded`` the
  channel delivered after the node was declared dead, a second loss report) is dropped.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from sip.api import CallAnswered, CallBridged, CallEnded, CallLost, CallRinging, CommandRejected

#: finished call ids remembered to drop late duplicates (oldest forgotten first)
_REMEMBER = 50_000


def is_final(ev: object) -> bool:
    return isinstance(ev, (CallEnded, CallLost)) or (
        isinstance(ev, CommandRejected) and ev.command == "Originate"
    )


@dataclass(slots=True)
class CallFacts:
    node: str
    t_ring: float | None = None
    t_answer: float | None = None
    bridged: bool = False


class CallBook:
    """Facts of the calls in progress and the ids of recently finished ones."""

    def __init__(self, remember: int = _REMEMBER) -> None:
        self._calls: dict[str, CallFacts] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember

    def placed(self, call_id: str, node: str) -> None:
        """An Originate was handed to ``node`` (a new call: a reused id starts afresh)."""
        self._finished.pop(call_id, None)
        self._calls[call_id] = CallFacts(node)

    def facts(self, call_id: str) -> CallFacts | None:
        return self._calls.get(call_id)

    def note(self, ev: object) -> bool:
        """Record what ``ev`` says; False when it is a second final event (drop it)."""
        call_id = getattr(ev, "call_id", None)
        if not isinstance(call_id, str):
            return True
        if is_final(ev):
            if call_id in self._finished:
                return False
            self._finish(call_id)
            return True
        f = self._calls.get(call_id)
        if f is None:
            return True
        mono = float(getattr(ev, "mono", 0.0))
        if isinstance(ev, CallRinging) and f.t_ring is None:
            f.t_ring = mono
        elif isinstance(ev, CallAnswered) and f.t_answer is None:
            f.t_answer = mono
        elif isinstance(ev, CallBridged):
            f.bridged = True
        return True

    def lost(self, call_id: str, reason: str, now: float) -> CallLost | None:
        """The call's CallLost with what was known of it; None if it already had its end."""
        if call_id in self._finished:
            return None
        f = self._calls.get(call_id) or CallFacts("")
        self._finish(call_id)
        ring_s = None
        if f.t_ring is not None:
            ring_s = round(max(0.0, (f.t_answer or now) - f.t_ring), 3)
        talk_s = round(max(0.0, now - f.t_answer), 3) if f.t_answer is not None else None
        return CallLost(
            call_id=call_id,
            reason=reason,
            answered=f.t_answer is not None,
            bridged=f.bridged,
            ring_s=ring_s,
            talk_s=talk_s,
            node=f.node,
            mono=now,
        )

    def closed(self, call_id: str) -> None:
        """The pool itself gave the call its final event (a refusal after placement)."""
        self._finish(call_id)

    def _finish(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._finished[call_id] = None
        while len(self._finished) > self._remember:
            self._finished.popitem(last=False)
