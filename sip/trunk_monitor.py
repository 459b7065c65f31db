"""The pool side of trunk health: one :class:`~sip.trunk_health.TrunkBreaker` per trunk, the
OPTIONS probes they ask for, and a ``TrunkHealthChanged`` event plus a WARNING line on every
transition (docs/trunks.md). Shared by ``NodePool`` and ``MemoryPool``; the probe is injected
(``NodePool``: :func:`sip.options_probe.probe`; ``MemoryPool``: a pretend one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable

from common.clock import Clock
from sip.api import CallEnded, CommandRejected, TrunkHealthChanged
from sip.trunk_health import (
    BreakerConfig,
    Transition,
    TrunkBreaker,
    TrunkState,
    outcome_of,
)

log = logging.getLogger("sip.trunks")

#: probe(trunk name) -> (alive, detail)
Prober = Callable[[str], Awaitable[tuple[bool, str]]]
Emit = Callable[[TrunkHealthChanged], None]


def refusal_text(trunk: str, state: TrunkState) -> str:
    """The ``CommandRejected.error`` of an Originate refused by the breaker."""
    if state is TrunkState.OPEN:
        return f"trunk {trunk} unavailable (circuit open)"
    return f"trunk {trunk} unavailable (circuit half_open: trial call in progress)"


class TrunkMonitor:
    """Breakers of a pool's trunks; call :meth:`start` on the event loop, :meth:`stop` at close."""

    def __init__(
        self,
        trunks: Iterable[str],
        config: BreakerConfig,
        clock: Clock,
        prober: Prober,
        emit: Emit,
        *,
        unprobed: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.clock = clock
        self._prober = prober
        self._emit = emit
        quiet = set(unprobed)
        self.unprobed = frozenset(quiet)
        self.breakers: dict[str, TrunkBreaker] = {
            t: TrunkBreaker(
                t,
                dataclasses.replace(config, keepalive_interval_s=0) if t in quiet else config,
                clock,
            )
            for t in trunks
        }
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ calls
    def admit(self, trunk: str | None, call_id: str) -> str | None:
        """None when the call may go; else the refusal text (the breaker is open)."""
        b = self.breakers.get(trunk) if trunk is not None else None
        if b is None or b.admit(call_id):
            return None
        return refusal_text(b.trunk, b.state)

    def observe(self, trunk: str | None, ev: object) -> None:
        """One event of a call through ``trunk`` (from the nodes, before the slots are freed)."""
        b = self.breakers.get(trunk) if trunk is not None else None
        if b is None:
            return
        call_id = getattr(ev, "call_id", "")
        outcome = outcome_of(ev)
        detail = ""
        if isinstance(ev, CallEnded):
            detail = f"{ev.sip_code or 'no SIP answer'} {ev.reason}".strip()
        elif isinstance(ev, CommandRejected):
            detail = ev.error
        self._apply(b.record(call_id, outcome, detail[:120]))

    def finished(self, trunk: str | None, call_id: str) -> None:
        """The call's final event (or its refusal): free any half-open trial place."""
        b = self.breakers.get(trunk) if trunk is not None else None
        if b is not None:
            b.release(call_id)

    def state(self, trunk: str) -> TrunkState:
        return self.breakers[trunk].state

    # ------------------------------------------------------------------ transitions
    def _apply(self, tr: Transition | None) -> None:
        if tr is None:
            return
        log.warning(
            "trunk %s: circuit %s -> %s: %s (consecutive failures %d)",
            tr.trunk,
            tr.old.value,
            tr.new.value,
            tr.reason,
            tr.failures,
        )
        self._wake.set()  # the probe period depends on the state
        self._emit(
            TrunkHealthChanged(
                call_id=f"trunk:{tr.trunk}",
                trunk=tr.trunk,
                state=tr.new.value,
                previous=tr.old.value,
                reason=tr.reason,
                failures=tr.failures,
                mono=tr.mono,
                wall=self.clock.now(),
            )
        )

    # ------------------------------------------------------------------ probing
    def start(self, *, snapshot: bool = True) -> None:
        """Begin probing; with ``snapshot`` first report every trunk's starting state
        (``previous == state``, so the dialer shows each configured trunk from the start)."""
        if self._task is None and snapshot:
            for name, b in self.breakers.items():
                self._emit(
                    TrunkHealthChanged(
                        call_id=f"trunk:{name}",
                        trunk=name,
                        state=b.state.value,
                        previous=b.state.value,
                        reason="pool started",
                        mono=self.clock.monotonic(),
                        wall=self.clock.now(),
                    )
                )
        if self._task is None and self.config.enabled and self.breakers:
            self._task = asyncio.create_task(self._probe_loop(), name="sip-trunk-probes")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_loop(self) -> None:
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                now = self.clock.monotonic()
                soonest: float | None = None
                for name, b in self.breakers.items():
                    if name in running:
                        continue
                    due = b.next_probe_at()
                    if due is None:
                        continue
                    if due <= now:
                        b.probe_started()
                        running[name] = asyncio.create_task(self._probe(name, b, running))
                        due = b.next_probe_at()
                    if due is not None:
                        soonest = due if soonest is None else min(soonest, due)
                wait = 1.0 if soonest is None else max(0.01, min(1.0, soonest - now))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            for t in running.values():
                t.cancel()

    async def _probe(
        self, name: str, b: TrunkBreaker, running: dict[str, asyncio.Task[None]]
    ) -> None:
        try:
            if name in self.unprobed:
                # no OPTIONS for this trunk: the open period itself is the probe
                alive, detail = True, "probing off for this trunk: open period over"
            else:
                alive, detail = await self._prober(name)
        except Exception as exc:  # a probe bug must not stop the monitor
            log.exception("trunk %s: probe failed", name)
            alive, detail = False, f"probe error {type(exc).__name__}"
        finally:
            running.pop(name, None)
        self._apply(b.probe_result(alive, detail))
        self._wake.set()
