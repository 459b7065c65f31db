"""Agent commands to the dialer's handler, one at a time per agent, whatever the transport.

Both transports of the agent protocol - the MQTT bus (dialer/bus/bus.py) and the web
server's WebSocket (dialer/web/agent_ws.py) - hand each validated command to one
`AgentCommandRunner`, with the function that sends the verdict back on that transport. The
runner keeps a queue per login and runs that login's commands in order (an agent's `ready`
never overtakes its `disposition`, even when one came over MQTT and the other over a
WebSocket), concurrently across logins. The handler's verdict - None (ack) or a
ProtocolError (error) - goes to the reply function; a handler fault becomes `internal`.

    runner = AgentCommandRunner(app.on_agent_command)
    refused = runner.submit("alice", cmd, reply)   # None, or `overloaded` (not queued)
    ...
    await runner.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import AgentCommand

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, AgentCommand], Awaitable[ProtocolError | None]]
#: (the command, the verdict: None = ack, the handler raised something unexpected)
Reply = Callable[[AgentCommand, ProtocolError | None, bool], None]
#: a command of an agent that another cluster member serves (the WebSocket relays it)
Elsewhere = Callable[[AgentCommand], None]

_FAULT = "the dialer failed while processing this command; it is logged there"


class AgentCommandRunner:
    """Per-login ordered execution of agent commands (see the module docstring)."""

    def __init__(self, handler: CommandHandler | None = None, *,
                 max_pending_per_agent: int = 100) -> None:
        if max_pending_per_agent < 1:
            raise ValueError("AgentCommandRunner: max_pending_per_agent must be at least 1")
        self._handler = handler
        self._max_pending = max_pending_per_agent
        self._queues: dict[str, asyncio.Queue[tuple[AgentCommand, Reply]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def set_handler(self, handler: CommandHandler) -> None:
        self._handler = handler

    @property
    def busy(self) -> bool:
        """Whether a command is queued or running."""
        return bool(self._queues)

    def submit(self, login: str, cmd: AgentCommand, reply: Reply, *,
               elsewhere: Elsewhere | None = None) -> ProtocolError | None:
        """Queue `cmd` of `login`; its verdict goes to `reply`. Returns the `overloaded` error
        (and queues nothing) when too many of this login's commands are waiting.

        `elsewhere` is for a cluster's runner (dialer/cluster.py `ClusterRunner`): it gets,
        instead of `reply`, a command whose agent another instance serves. This runner has
        no such commands and never calls it."""
        queue = self._queues.get(login)
        if queue is None:
            queue = asyncio.Queue(maxsize=self._max_pending)
            self._queues[login] = queue
            task = asyncio.create_task(self._worker(login, queue), name=f"agent-cmd-{login}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            queue.put_nowait((cmd, reply))
        except asyncio.QueueFull:
            return ProtocolError(
                ErrorCode.OVERLOADED,
                f"more than {self._max_pending} of your commands are waiting; retry later",
                ref_id=cmd.id)
        return None

    async def settle(self, within_s: float) -> bool:
        """Wait until no command is queued or running; False if that took over `within_s`."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within_s
        while self._queues:
            if loop.time() >= until:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queues.clear()

    async def _worker(self, login: str, queue: asyncio.Queue[tuple[AgentCommand, Reply]]) -> None:
        """Run one login's commands in order; exit when its queue is empty."""
        try:
            while not queue.empty():
                cmd, reply = queue.get_nowait()
                result, fault = await self._run(login, cmd)
                try:
                    reply(cmd, result, fault)
                except Exception:
                    log.exception("agent %s: sending the reply to %s failed", login, cmd.type)
        finally:
            # no await between the empty check and this: a new command starts a new worker
            if self._queues.get(login) is queue:
                del self._queues[login]

    async def _run(self, login: str, cmd: AgentCommand) -> tuple[ProtocolError | None, bool]:
        handler = self._handler
        if handler is None:
            return ProtocolError(ErrorCode.INTERNAL,
                                 "the dialer is starting and takes no commands yet; retry"), False
        try:
            result = await handler(login, cmd)
        except ProtocolError as e:
            return e, False
        except Exception:
            log.exception("agent commands: handler failed on %s from agent %s", cmd.type, login)
            return ProtocolError(ErrorCode.INTERNAL, _FAULT), True
        if result is not None and not isinstance(result, ProtocolError):
            log.error("agent commands: handler returned %s for %s; expected None or "
                      "ProtocolError", type(result).__name__, cmd.type)
            return ProtocolError(ErrorCode.INTERNAL, _FAULT), True
        return result, False
