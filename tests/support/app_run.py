"""A whole DialerApp in a test: start it, drive agents' commands as their desktops send
them, wait for conditions, stop it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dialer.app import DialerApp
from dialer.bus.errors import ProtocolError
from dialer.bus.messages import AgentCommand


async def until(cond: Callable[[], Awaitable[bool] | bool], seconds: float, what: str) -> None:
    """Poll `cond` (plain or async) every 50 ms until true; fail naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = cond()
        if await got if isinstance(got, Awaitable) else got:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def agent_cmd(app: DialerApp, login: str, cmd: AgentCommand) -> ProtocolError | None:
    """A command of the agent's own, as its desktop sends it (the runner's queue)."""
    done: asyncio.Future[ProtocolError | None] = asyncio.get_running_loop().create_future()
    assert app.runner.submit(login, cmd, lambda _c, err, _f: done.set_result(err)) is None
    return await asyncio.wait_for(done, 10)


class Running:
    """A DialerApp running in a task (`start`)."""

    def __init__(self, app: DialerApp, task: asyncio.Task[Any]) -> None:
        self.app, self.task = app, task

    @classmethod
    async def start(cls, app: DialerApp) -> Running:
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.ready.wait(), 30)
        return cls(app, task)

    async def stop(self) -> None:
        self.app.stop()
        await asyncio.wait_for(self.task, 30)
