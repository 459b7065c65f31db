"""The node pool: starts SIP node processes and spreads calls over them.

Each node is a separate OS process (``python -m sip.node``) owning one PJSIP endpoint; the
pool talks to it over a loopback TCP connection with length-prefixed JSON frames
(:mod:`sip.protocol`), so nodes could later live on other machines.

Slot accounting: a node reports its measured capacity at start. An ``Originate`` reserves one
slot for the customer leg plus (by default) one for the agent leg on the *same* node - the two
legs must share a conference bridge to be connected. Slots come back when the call's final
event (``CallEnded``, ``CallLost``, or ``CommandRejected`` of the Originate) arrives. A node
also reports the slots pjsua still holds for calls already ended (``slots`` frames: a BYE
waiting for a dead far end holds its slot up to 32 s); those are not offered either. A node
that still finds no slot (PJ_ETOOMANY) hands the Originate back and the pool places it on
another node, or refuses it as retryable "pool full" (docs/trunks.md).

Setup pacing: each node gets a token bucket at ``setup_rate_per_node`` INVITEs/s (the PyPI
wheel aborts under unpaced bursts). ``submit`` waits for the chosen node's next token (a few
tens of ms at most); agent legs of ``Bridge`` take a token without waiting, since the 2-second
abandon clock is running.

Crash handling: when a node process dies, every call it held gets ``CallLost`` (with how far
it had got: :mod:`sip.pool_calls`) and a new node is started in its place. Every call has
exactly one final event.

Trunk health: a circuit breaker per trunk counts the calls' outcomes and probes the trunk with
SIP OPTIONS; while it is open, an Originate through the trunk is refused at once
(:mod:`sip.trunk_monitor`, docs/trunks.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from common.clock import SYSTEM_CLOCK
from sip.api import (
    Bridge,
    CallEnded,
    Command,
    CommandRejected,
    Hangup,
    Originate,
    Play,
    SipApiError,
    StartRecording,
    TrunkStatus,
    from_wire,
    to_wire,
)
from sip.config import PoolConfig
from sip.options_probe import probe, probe_target
from sip.pool_calls import CallBook
from sip.pool_controls import CONTROL_COMMANDS, PoolControls
from sip.pool_nodes import NodeHandle, SetupPacer, start_node_process
from sip.protocol import ProtocolError, encode_frame, read_frame
from sip.trunk_monitor import TrunkMonitor

log = logging.getLogger(__name__)

EventCallback = Callable[[Any], None]
_EVENT_QUEUE_MAX = 100_000
#: nodes started concurrently at pool start
_START_BATCH = 8


class PoolError(RuntimeError):
    """The pool could not start or was used wrongly (e.g. submit before start)."""


class NodePool(PoolControls):
    """Capacity-aware pool of pjsua2 node processes (see module doc)."""

    def __init__(self, config: PoolConfig, *, on_event: EventCallback | None = None) -> None:
        self.config = config
        self._on_event = on_event
        self._events: asyncio.Queue[Any] = asyncio.Queue(_EVENT_QUEUE_MAX)
        self._nodes: list[NodeHandle] = []
        self._by_call: dict[str, NodeHandle] = {}
        self._server: asyncio.base_events.Server | None = None
        self._server_port = 0
        self._pending_hello: dict[tuple[int, int], NodeHandle] = {}
        self._accepting = False
        self._closing = False
        self._closed = asyncio.Event()
        self._idle = asyncio.Event()  # set whenever in_use drops to 0 (drain on close)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restarts = 0
        #: last TrunkStatus per trunk name (from any node)
        self.trunk_status: dict[str, TrunkStatus] = {}
        self.lost_calls = 0
        #: calls in progress per trunk (TrunkConfig.max_channels) and each call's trunk
        self._trunk_calls: collections.Counter[str] = collections.Counter()
        self._trunk_of: dict[str, str] = {}
        self._book = CallBook()
        #: Originates sent to a node and not yet heard of (placed again if the node is full)
        self._originates: dict[str, Originate] = {}
        self.trunks = TrunkMonitor(
            config.trunks,
            config.breaker,
            SYSTEM_CLOCK,
            self._probe_trunk,
            self._emit_now,
            unprobed=[n for n, t in config.trunks.items() if not t.options_probe],
        )

    # ------------------------------------------------------------------ properties
    @property
    def capacity(self) -> int:
        return sum(n.capacity for n in self._nodes if n.alive)

    @property
    def in_use(self) -> int:
        return sum(n.in_use for n in self._nodes if n.alive)

    @property
    def free_slots(self) -> int:
        return sum(n.free for n in self._nodes)

    @property
    def free_call_pairs(self) -> int:
        """How many more customer calls (each with a reserved agent slot) fit right now."""
        return sum(n.free // 2 for n in self._nodes)

    @property
    def nodes(self) -> list[NodeHandle]:
        return list(self._nodes)

    @property
    def restarts(self) -> int:
        return self._restarts

    def node_of(self, call_id: str) -> NodeHandle | None:
        return self._by_call.get(call_id)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> NodePool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(drain_deadline_s=0)

    async def start(self) -> None:
        """Start the channel server and the nodes; returns when every node said hello."""
        if self._server is not None:
            raise PoolError("NodePool.start() called twice")
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self._server_port = self._server.sockets[0].getsockname()[1]
        first = self._handle(0, 0)
        self._nodes.append(first)
        await self._spawn(first)
        count = self.config.node_count_for(first.capacity)
        others = [self._handle(i, 0) for i in range(1, count)]
        self._nodes.extend(others)
        # start the rest a few at a time: dozens of interpreters importing pjsua2 at once on a
        # small, busy machine can exceed the hello timeout; one retry covers a slow start
        errors: list[BaseException] = []
        for attempt in range(2):
            pending = [n for n in others if not n.alive]
            errors = []
            for i in range(0, len(pending), _START_BATCH):
                batch = pending[i : i + _START_BATCH]
                results = await asyncio.gather(
                    *(self._spawn(n) for n in batch), return_exceptions=True
                )
                errors += [r for r in results if isinstance(r, BaseException)]
            if not errors:
                break
            log.warning(
                "sip pool: %d nodes failed to start (attempt %d): %s",
                len(errors),
                attempt + 1,
                errors[0],
            )
        if errors:
            await self.close(drain_deadline_s=0)
            raise PoolError(f"{len(errors)} of {count} nodes failed to start: {errors[0]}")
        self._accepting = True
        self.trunks.start()
        log.info(
            "sip pool started: %d nodes, capacity %d slots (%s)",
            len(self._nodes),
            self.capacity,
            first.pjsip,
        )

    async def _spawn(self, node: NodeHandle) -> None:
        loop = asyncio.get_running_loop()
        node.hello = loop.create_future()
        self._pending_hello[(node.index, node.generation)] = node
        node.proc = await start_node_process(self.config, node.index, self._server_port)
        node.pid = node.proc.pid
        try:
            hello = await asyncio.wait_for(
                asyncio.shield(node.hello), self.config.node_start_timeout_s
            )
        except (TimeoutError, PoolError) as exc:
            with contextlib.suppress(ProcessLookupError):
                node.proc.kill()
            await node.proc.wait()
            raise PoolError(f"node {node.index} did not start: {exc or 'timeout'}") from exc
        finally:
            self._pending_hello.pop((node.index, node.generation), None)
        node.capacity = int(hello["capacity"])
        node.sip_port = int(hello["sip_port"])
        node.pjsip = str(hello.get("pjsip", ""))
        node.started_mono = time.monotonic()
        node.alive = True
        self._track(asyncio.create_task(self._watch(node), name=f"sip-node-{node.index}-watch"))

    def _handle(self, index: int, generation: int) -> NodeHandle:
        return NodeHandle(
            index=index, generation=generation, pacer=SetupPacer(self.config.setup_rate_per_node)
        )

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(read_frame(reader), self.config.node_start_timeout_s)
        except (TimeoutError, ProtocolError, ConnectionError) as exc:
            log.warning("sip pool: bad node connection: %s", exc)
            writer.close()
            return
        if first is None:
            writer.close()
            return
        node_id = first.get("node_id")
        node = None
        for (idx, _gen), n in self._pending_hello.items():
            if idx == node_id and n.pid == first.get("pid"):
                node = n
        if node is None or node.hello is None:
            log.warning("sip pool: unexpected node connection (%s)", str(first)[:200])
            writer.close()
            return
        if first.get("kind") != "hello":
            if not node.hello.done():
                node.hello.set_exception(PoolError(str(first.get("error", first))[:500]))
            writer.close()
            return
        node.writer = writer
        node.reader_task = asyncio.current_task()  # type: ignore[assignment]
        node.hello.set_result(first)
        try:
            await self._read_loop(node, reader)
        finally:
            writer.close()
            node.alive = False  # no new calls to a node we cannot talk to
            if not self._closing and node.proc is not None and node.proc.returncode is None:
                # channel lost but the process lives on: its calls can no longer be
                # controlled or reported, so end it; the watcher reports them lost and restarts
                log.error("sip node %d: channel lost, killing pid %d", node.index, node.pid)
                with contextlib.suppress(ProcessLookupError):
                    node.proc.kill()

    async def _read_loop(self, node: NodeHandle, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                msg = await read_frame(reader)
            except (ProtocolError, ConnectionError) as exc:
                log.warning("sip node %d channel error: %s", node.index, exc)
                return
            if msg is None:
                return
            kind = msg.get("kind")
            if kind == "event":
                try:
                    ev = from_wire(msg["event"])
                except (SipApiError, KeyError) as exc:
                    log.warning("sip node %d sent a bad event: %s", node.index, exc)
                    continue
                cmd = self._originates.pop(getattr(ev, "call_id", ""), None)
                if msg.get("full") and cmd is not None and isinstance(ev, CommandRejected):
                    await self._place_elsewhere(node, cmd)
                    continue
                if not self._book.note(ev):
                    log.warning(
                        "sip node %d: dropped a second final event %s of call %s",
                        node.index,
                        type(ev).__name__,
                        ev.call_id,
                    )
                    continue
                self.trunks.observe(self._trunk_of.get(ev.call_id), ev)
                self._account(node, ev)
                if isinstance(ev, TrunkStatus):
                    self._trunk_changed(node, ev)
                await self._deliver(ev)
            elif kind == "slots":
                node.held = max(0, int(msg.get("held", 0)))
            elif kind == "bye":
                return
            else:
                log.warning("sip node %d: unknown frame kind %r", node.index, kind)

    def _trunk_changed(self, node: NodeHandle, ev: TrunkStatus) -> None:
        self.trunk_status[ev.trunk] = ev
        lvl = logging.INFO if ev.registered else logging.WARNING
        log.log(
            lvl,
            "trunk %s on node %d: registered=%s code=%s %s",
            ev.trunk,
            node.index,
            ev.registered,
            ev.sip_code,
            ev.reason,
        )

    def _account(self, node: NodeHandle, ev: Any) -> None:
        """Release slots on a call's final event (and a listen leg's: sip.pool_controls)."""
        self._account_control(node, ev)
        release = isinstance(ev, CallEnded) or (
            isinstance(ev, CommandRejected) and ev.command == "Originate"
        )
        if not release:
            return
        node.release(ev.call_id)
        if self._by_call.get(ev.call_id) is node:
            del self._by_call[ev.call_id]
        self._release_trunk(ev.call_id)
        if self.in_use == 0:
            self._idle.set()

    async def _place_elsewhere(self, node: NodeHandle, cmd: Originate) -> None:
        """The node had no pjsua slot for the call (PJ_ETOOMANY): not the trunk's fault nor
        the lead's, so the pool places it again on another node (or refuses it as retryable
        "pool full" when none has room) instead of reporting a failed call."""
        log.warning(
            "sip node %d: no free pjsua slot for call %s; placing it elsewhere",
            node.index,
            cmd.call_id,
        )
        node.release(cmd.call_id)
        if self._by_call.get(cmd.call_id) is node:
            del self._by_call[cmd.call_id]
        self._release_trunk(cmd.call_id)
        self._book.closed(cmd.call_id)
        await self._submit_originate(cmd, avoid=node)
        if self.in_use == 0:
            self._idle.set()

    def _release_trunk(self, call_id: str) -> None:
        trunk = self._trunk_of.pop(call_id, None)
        if trunk is not None:
            self._trunk_calls[trunk] -= 1
            self.trunks.finished(trunk, call_id)

    def _emit_now(self, ev: Any) -> None:
        """Deliver a pool-made event from synchronous code (the trunk monitor)."""
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:
                log.exception("sip pool: on_event callback failed for %s", type(ev).__name__)
        else:
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(ev)

    async def _probe_trunk(self, name: str) -> tuple[bool, str]:
        res = await probe(
            probe_target(self.config.trunks[name]),
            self.config.breaker.probe_timeout_s,
            bind_address=self.config.bind_address,
        )
        return res.alive, res.detail

    async def _deliver(self, ev: Any) -> None:
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:
                log.exception("sip pool: on_event callback failed for %s", type(ev).__name__)
        else:
            await self._events.put(ev)

    async def _watch(self, node: NodeHandle) -> None:
        """Wait for the node process to exit; account for its calls and restart it if needed."""
        assert node.proc is not None
        rc = await node.proc.wait()
        node.alive = False
        if node.reader_task is not None and not node.reader_task.done():
            # let the channel drain events the node sent before dying
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(node.reader_task), 2.0)
        lost = list(node.calls)
        now = time.monotonic()
        for call_id in lost:
            node.calls.pop(call_id, None)
            self._originates.pop(call_id, None)
            if self._by_call.get(call_id) is node:
                del self._by_call[call_id]
            self._release_trunk(call_id)
            ev = self._book.lost(call_id, f"sip node {node.index} exited rc={rc}", now)
            if ev is None:
                continue  # its final event is already out
            self.lost_calls += 1
            await self._deliver(ev)
        node.in_use = 0
        if self.in_use == 0:
            self._idle.set()
        if self._closing:
            return
        log.error(
            "sip node %d (pid %d) died rc=%s holding %d calls", node.index, node.pid, rc, len(lost)
        )
        if not self.config.restart_crashed:
            return
        fresh = self._handle(node.index, node.generation + 1)
        self._nodes[self._nodes.index(node)] = fresh
        self._restarts += 1
        backoff = 0.1
        while not self._closing:
            try:
                await self._spawn(fresh)
                return
            except PoolError as exc:
                log.error("sip node %d restart failed: %s", node.index, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    async def close(self, drain_deadline_s: float = 10.0) -> None:
        """Stop taking calls, wait up to the deadline for calls to end, then stop the nodes.

        Calls still up at the deadline are hung up by the nodes (CallEnded, hangup_by="node").
        """
        if self._closing:
            await self._closed.wait()
            return
        self._accepting = False
        await self.trunks.stop()
        if self.in_use and drain_deadline_s > 0:
            self._idle.clear()
            if self.in_use:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), drain_deadline_s)
        self._closing = True
        for n in self._nodes:
            if n.writer is not None and n.alive:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    n.writer.write(encode_frame({"kind": "shutdown"}))
        for n in self._nodes:
            if n.proc is None:
                continue
            try:
                await asyncio.wait_for(n.proc.wait(), 8.0)
            except TimeoutError:
                log.error("sip node %d did not stop in time: killing pid %d", n.index, n.pid)
                with contextlib.suppress(ProcessLookupError):
                    n.proc.kill()
                await n.proc.wait()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(t, 3.0)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 3.0)
        self._closed.set()
        await self._events.put(None)

    # ------------------------------------------------------------------ commands
    async def submit(self, cmd: Command) -> None:
        """Send a command to the right node. Failures arrive as ``CommandRejected`` events."""
        if self._server is None:
            raise PoolError("NodePool.submit() before start()")
        if self._closed.is_set():
            raise PoolError("NodePool.submit() after close()")
        if isinstance(cmd, Originate):
            await self._submit_originate(cmd)
            return
        if isinstance(cmd, CONTROL_COMMANDS):  # hold, DTMF, listen-in
            return await self._submit_control(cmd)
        if not isinstance(cmd, (Bridge, Play, StartRecording, Hangup)):
            raise SipApiError(f"not a sip.api command: {type(cmd).__name__}")
        if isinstance(cmd, Play) and not cmd.wav_path:
            if not self.config.message_wav:
                await self._reject(
                    cmd, "Play without wav_path and no PoolConfig.message_wav", False
                )
                return
            cmd = dataclasses.replace(cmd, wav_path=self.config.message_wav)
        node = self._by_call.get(cmd.call_id)
        if node is None or not node.alive or node.writer is None:
            await self._reject(cmd, "unknown call_id (ended or never placed)", False)
            return
        if isinstance(cmd, Bridge):
            reserved = node.calls.get(cmd.call_id, 0)
            if reserved < 2:
                if node.free < 1:
                    await self._reject(
                        cmd, "no free slot for the agent leg on the call's node", True
                    )
                    return
                node.calls[cmd.call_id] = reserved + 1
                node.in_use += 1
            self._take_token(node, wait=False)
        self._send(node, cmd)

    async def _submit_originate(self, cmd: Originate, avoid: NodeHandle | None = None) -> None:
        if not self._accepting:
            await self._reject(cmd, "pool is not accepting calls (starting or closing)", True)
            return
        if cmd.call_id in self._by_call:
            await self._reject(cmd, "duplicate call_id: a call with this id is in progress", False)
            return
        if cmd.trunk is not None and cmd.trunk not in self.config.trunks:
            await self._reject(cmd, f"unknown trunk {cmd.trunk!r}", False)
            return
        trunk = self.config.trunks.get(cmd.trunk) if cmd.trunk else None
        if (
            trunk is not None
            and trunk.max_channels is not None
            and self._trunk_calls[trunk.name] >= trunk.max_channels
        ):
            await self._reject(
                cmd, f"trunk {trunk.name} full ({trunk.max_channels} channels)", True
            )
            return
        need = 2 if cmd.reserve_agent_slot else 1
        candidates = [
            n for n in self._nodes if n.free >= need and n.writer is not None and n is not avoid
        ]
        if not candidates:
            await self._reject(cmd, f"pool full ({self.in_use}/{self.capacity} slots in use)", True)
            return
        refusal = self.trunks.admit(cmd.trunk, cmd.call_id)
        if refusal is not None:
            await self._reject(cmd, refusal, True)
            return
        now = time.monotonic()
        # earliest setup token first, then the emptiest node (spreads load and media CPU)
        node = min(candidates, key=lambda n: (n.pacer.next_at(now), -n.free))
        node.calls[cmd.call_id] = need
        node.in_use += need
        self._by_call[cmd.call_id] = node
        self._book.placed(cmd.call_id, node.name)
        if trunk is not None:
            self._trunk_calls[trunk.name] += 1
            self._trunk_of[cmd.call_id] = trunk.name
        delay = self._take_token(node, wait=True)
        if delay > 0:
            await asyncio.sleep(delay)
        if not node.alive or cmd.call_id not in node.calls:
            # the node died while we waited for its token. If its watcher already closed the
            # call with CallLost, that was the call's final event; otherwise reject it here.
            if cmd.call_id in node.calls:
                node.release(cmd.call_id)
                if self._by_call.get(cmd.call_id) is node:
                    del self._by_call[cmd.call_id]
                self._release_trunk(cmd.call_id)
                self._book.closed(cmd.call_id)
                await self._reject(cmd, "node died before the call was placed", True)
            return
        self._originates[cmd.call_id] = cmd
        self._send(node, cmd)

    def _take_token(self, node: NodeHandle, *, wait: bool) -> float:
        return node.pacer.reserve(time.monotonic(), wait=wait)

    def _send(self, node: NodeHandle, cmd: Command) -> None:
        assert node.writer is not None
        node.writer.write(encode_frame({"kind": "cmd", "cmd": to_wire(cmd)}))

    async def _reject(self, cmd: Command, error: str, retryable: bool) -> None:
        await self._deliver(
            CommandRejected(
                call_id=cmd.call_id, error=error, retryable=retryable, command=type(cmd).__name__
            )
        )

    # ------------------------------------------------------------------ events
    async def events(self) -> AsyncIterator[Any]:
        """Yield events until the pool is closed (use either this or ``on_event``)."""
        if self._on_event is not None:
            raise PoolError("events() is unavailable when an on_event callback is set")
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            yield ev

    async def next_event(self, within_s: float | None = None) -> Any:
        """Wait for the next event (tests and simple drivers); TimeoutError after within_s."""
        ev = await asyncio.wait_for(self._events.get(), within_s)
        if ev is None:
            raise PoolError("pool closed")
        return ev
