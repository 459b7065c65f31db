"""The runtime's ordered record writer: attempt stages and results, lead outcomes and the
agent state log go through one queue and one task, so the database sees each call's history
in the order it happened, and the SIP path never waits behind bookkeeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: one queued write: a coroutine function with its arguments already bound
Job = Callable[[], Awaitable[object]]


class RecordWriter:
    """Runs queued writes one at a time, in order. A failed write is logged and skipped (the
    call goes on; its final state is written by a later write or at the drain)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-writer")

    def put(self, job: Job) -> None:
        self._jobs.put_nowait(job)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        await self._jobs.put(None)
        if self._task is not None:
            await self._task

    async def flush(self) -> None:
        """Wait until every record queued so far is written."""
        if self._task is None or self._task.done():
            return
        done = asyncio.Event()

        async def mark() -> None:
            done.set()

        self._jobs.put_nowait(mark)
        await done.wait()

    async def _run(self) -> None:
        while True:
            job = await self._jobs.get()
            if job is None:
                return
            try:
                await job()
            except Exception:
                log.exception("campaign %s: a database write failed", self.name)
