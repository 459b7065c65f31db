"""The pool's view of one node process and its INVITE pacer (split out of :mod:`sip.pool`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sip.config import PoolConfig

#: the directory holding the ``sip`` package, put on the nodes' PYTHONPATH
_PKG_ROOT = str(Path(__file__).resolve().parent.parent)


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
    #: slots pjsua still holds for calls already ended (a BYE waiting for a dead far end),
    #: as the node last reported them (docs/trunks.md, "Call slots after an outage")
    held: int = 0
    pacer: SetupPacer = field(default_factory=lambda: SetupPacer(40.0))
    alive: bool = False
    hello: asyncio.Future[dict[str, Any]] | None = None
    started_mono: float = 0.0

    @property
    def free(self) -> int:
        """Slots no call reserves and pjsua does not hold: what a new call may take."""
        return max(0, self.capacity - self.in_use - self.held) if self.alive else 0

    def release(self, call_id: str) -> int:
        """Free the slots reserved for ``call_id``; returns how many there were."""
        slots = self.calls.pop(call_id, 0)
        self.in_use = max(0, self.in_use - slots)
        return slots

    @property
    def name(self) -> str:
        return f"node-{self.index}"


async def start_node_process(
    config: PoolConfig, index: int, server_port: int
) -> asyncio.subprocess.Process:
    """``python -m sip.node`` for node ``index``, connecting back to the pool's channel server
    (its PJSIP output to ``node-<index>.log`` in ``config.node_log_dir``, if set)."""
    env = dict(os.environ)
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + pp if pp else "")
    logf = None
    if config.node_log_dir:
        logf = open(  # noqa: SIM115, ASYNC230 (a local file open, handed to the child)
            os.path.join(config.node_log_dir, f"node-{index}.log"), "ab"
        )
    cfg_json = config.node_config(index).to_json()
    cfg_json["node_id"] = index
    try:
        return await asyncio.create_subprocess_exec(
            config.python or sys.executable,
            "-m",
            "sip.node",
            "--connect",
            f"127.0.0.1:{server_port}",
            "--config",
            json.dumps(cfg_json),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=logf if logf is not None else asyncio.subprocess.DEVNULL,
            stderr=logf,
            env=env,
        )
    finally:
        if logf is not None:
            logf.close()  # the child holds its own descriptor
