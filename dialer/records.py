"""The runtime's ordered record writer: attempt stages and results, lead outcomes and the
agent state log go through one queue and one task, so the database sees each call's history
in the order it happened, and the SIP path never waits behind bookkeeping.

A write that fails because the database is unreachable or busy (`RepositoryError.transient`:
a PostgreSQL restart, a locked SQLite file) is retried with backoff for up to `retry_for_s`,
holding the writes queued behind it (their order matters); a write that fails otherwise, or
still fails after that, is logged and skipped. Each queued write is one transaction or
idempotent, so a retry never applies a change twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from db.repositories import RepositoryError

log = logging.getLogger(__name__)

#: one queued write: a coroutine function with its arguments already bound
Job = Callable[[], Awaitable[object]]


class RecordWriter:
    """Runs queued writes one at a time, in order; see the module doc for failures."""

    def __init__(self, name: str, *, retry_for_s: float = 300.0,
                 first_backoff_s: float = 0.25, max_backoff_s: float = 5.0) -> None:
        self.name = name
        self.retry_for_s = retry_for_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        #: writes given up on (skipped); a test or a metric may read it
        self.failed = 0
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-writer")

    def put(self, job: Job) -> None:
        self._jobs.put_nowait(job)

    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        await self._jobs.put(None)
        if self._task is not None:
            await self._task

    async def flush(self) -> None:
        """Wait until every record queued so far is written (or given up on)."""
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
            await self._write(job)

    async def _write(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.retry_for_s
        backoff = self.first_backoff_s
        retries = 0
        while True:
            try:
                await job()
            except RepositoryError as e:
                if e.transient and loop.time() + backoff < give_up_at:
                    if retries == 0:
                        log.warning("campaign %s: database unavailable (%s); holding %d "
                                    "queued records and retrying for up to %.0f s",
                                    self.name, e.operation, self._jobs.qsize() + 1,
                                    self.retry_for_s)
                    retries += 1
                    await asyncio.sleep(backoff)
                    backoff = min(self.max_backoff_s, backoff * 2)
                    continue
                self.failed += 1
                log.error("campaign %s: a database write failed and is skipped: %s",
                          self.name, e)
            except Exception:
                self.failed += 1
                log.exception("campaign %s: a database write failed", self.name)
            else:
                if retries:
                    log.warning("campaign %s: database back; the held records are written "
                                "(%d retries)", self.name, retries)
            return
