"""The pool's view of one node process and its INVITE pacer (split out of :mod:`sip.pool`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


class SetupPacer:
    """Spaces call setups of one node at most ``rate`` per second (pure: time is passed in).

    ``reserve`` books the next free setup time and returns how long the caller must wait.
    A reservation made without waiting (an agent leg: the abandon clock is running) still
    pushes later setups back, so the node's average rate stays within the limit.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._next = float("-inf")

    def next_at(self, now: float) -> float:
        return max(self._next, now)

    def reserve(self, now: float, *, wait: bool = True) -> float:
        start = max(self._next, now)
        self._next = start + self.interval
        return start - now if wait else 0.0


@dataclass(eq=False)
class NodeHandle:
    """The pool's view of one node process."""

    index: int
    generation: int
    proc: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task[None] | None = None
    pid: int = 0
    capacity: int = 0
    sip_port: int = 0
    pjsip: str = ""
    in_use: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # call_id -> reserved slots
    pacer: SetupPacer = field(default_factory=lambda: SetupPacer(40.0))
    alive: bool = False
    hello: asyncio.Future[dict[str, Any]] | None = None
    started_mono: float = 0.0

    @property
    def free(self) -> int:
        return self.capacity - self.in_use if self.alive else 0

    @property
    def name(self) -> str:
        return f"node-{self.index}"
