"""An in-memory SIP pool: `sip.api` commands in, `sip.api` events out, no sockets, no nodes.

`MemoryPool` stands in for `sip.pool.NodePool` where a test needs the dialer's whole call
path but not real SIP (the runtime contract suite, tests/runtime, runs every test over both).
It plays the callee network the way the SIPp callee scenario does (sip/scenarios/callee.xml,
docs/sip.md "Callee dial plan"): the Request-URI user part chooses the behaviour,

    <behaviour>[<code>]_<ring_s>_<talk_s>      e.g. answer_2_5, status486_1_0, optout_1_20

so one test, one dial plan, either pool. Behaviours: answer, early, status<code>, noanswer,
trying, optout (presses 9 one second after answering), race, auth (no challenge here: like
answer), human, machine, slowcancel (like noanswer here), silent (answers and sends no media:
ended by the media timeout, "no media for <n> s", hangup_by node); an unknown word acts like
answer (as the scenario falls through). A
user part that does not match the grammar gets no answer at all (SIPp drops such an INVITE), so
the setup timeout ends it. Agent legs (Bridge) to a user part outside the grammar answer at
once, as the SIPp agent phone does; inside it they ring, fail or hang up as the callee would.

Final events follow the node's rules (sip/node/ and sip/legs.py): exactly one CallEnded per accepted
Originate (or CommandRejected of it), results classified by `sip.api.classify_failure` for
refusals, CONNECTED / MACHINE / ABANDONED for answered calls, `hangup_by` local for dialer
commands and node for the node's own timers (ring and setup timeouts, shutdown).

Time: every delay (the grammar's seconds, the commands' ring/setup/answer timeouts, a
message's length) is a real asyncio sleep of that many seconds times `time_scale`; event
stamps (`mono`, `wall`) and durations (`ring_s`, `talk_s`, bridge latency) come from the
injected `Clock`, the same one the dialer reads. AMD is not analysed: a verdict is given after
a fixed time per behaviour (human: HUMAN; anything with a long or steady greeting: MACHINE).

The call controls (hold, DTMF, listen-in, transfer: docs/call-controls.md) answer at once
with the events a node sends, with the same refusals (sip.pool_controls.memory_control).

Trunks have the same circuit breaker as in NodePool (sip/trunk_monitor.py, docs/trunks.md):
outcomes are counted the same way; the OPTIONS probe is pretended - a trunk answers it unless
its name is in `dead_trunks` (a test knob).

Imports only sip/ and common/ (the SIP layer knows nothing of the dialer).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import wave
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from common.clock import SYSTEM_CLOCK, Clock
from common.vocabulary import AmdVerdict, AttemptResult
from sip.api import (
    AgentLegFailed,
    AmdDone,
    Bridge,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallRinging,
    CallTrying,
    Command,
    CommandRejected,
    DtmfReceived,
    Event,
    Hangup,
    HangupBy,
    Originate,
    Play,
    PlaybackDone,
    SipApiError,
    StartRecording,
    classify_failure,
)
from sip.config import check_media_timeout
from sip.pool_controls import CONTROL_COMMANDS, memory_call_ended, memory_control
from sip.trunk_health import BreakerConfig
from sip.trunk_monitor import TrunkMonitor

log = logging.getLogger(__name__)

#: the callee scenario's INVITE regexp (callee.xml), on the Request-URI
_GRAMMAR = re.compile(r"sip:([a-z]+)([0-9]*)_([0-9.]+)_([0-9.]+)@")
#: final codes the scenario can send; any other status<code> sends 500
_STATUS_CODES = frozenset({403, 404, 408, 480, 484, 486, 488, 500, 502, 503, 504, 600, 603, 604})
#: the scenario's opt-out callee presses this key one second after answering
OPTOUT_DIGIT = "9"
OPTOUT_AFTER_S = 1.0
#: an agent phone (the SIPp agent scenario) answers at once; a few ms of signalling
AGENT_ANSWER_S = 0.02
#: how long the AMD verdict takes per callee (ms), as the analyser hears their audio
_AMD_HUMAN_MS = 1700  # "hello" (0.3 s silence + 0.6 s word) then 0.8 s of silence
_AMD_MACHINE_MS = 1800  # 0.3 s silence, then a greeting longer than greeting_ms (1.5 s)
_AMD_TONE_MS = 1500  # a steady tone from the start: a long greeting

EventCallback = Callable[[Event], None]


class _Stamp(TypedDict):
    mono: float
    wall: datetime


class _State(enum.Enum):
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A parsed dial-plan user part (see the module doc)."""

    kind: str
    code: int | None
    ring_s: float
    #: 0: the callee never hangs up
    talk_s: float

    @classmethod
    def of(cls, uri: str) -> Behaviour | None:
        m = _GRAMMAR.search(uri)
        if m is None:
            return None
        word, code, ring, talk = m.groups()
        # 0.1 s resolution, as the scenario counts 100 ms ticks
        return cls(kind=word, code=int(code) if code else None,
                   ring_s=round(float(ring), 1), talk_s=round(float(talk), 1))

    @property
    def final_code(self) -> int:
        return self.code if self.code in _STATUS_CODES else 500


@dataclass(slots=True)
class MemoryNode:
    """The one pretend node (fields as `sip.pool.NodeHandle`, for the node gauges)."""

    index: int = 0
    generation: int = 0
    capacity: int = 0
    in_use: int = 0
    alive: bool = False

    @property
    def free(self) -> int:
        return self.capacity - self.in_use if self.alive else 0


@dataclass(slots=True, eq=False)
class _Leg:
    cmd: Originate
    behaviour: Behaviour | None
    slots: int
    state: _State = _State.DIALING
    t_first_18x: float | None = None
    t_answer: float | None = None
    agent_call_id: str | None = None
    agent_bridged: bool = False
    ever_bridged: bool = False
    amd_verdict: AmdVerdict | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def call_id(self) -> str:
        return self.cmd.call_id


class MemoryPool:
    """`dialer.ports.SipPool` in memory; see the module doc.

    Use either ``on_event`` (called on the event loop for every event) or `events()` /
    `next_event()`, as with `NodePool`.
    """

    def __init__(
        self,
        *,
        on_event: EventCallback | None = None,
        clock: Clock = SYSTEM_CLOCK,
        capacity: int = 64,
        message_wav: str = "",
        time_scale: float = 1.0,
        trunks: Collection[str] = (),
        breaker: BreakerConfig | None = None,
        media_timeout_s: float = 20.0,
    ) -> None:
        if capacity < 2:
            raise SipApiError("MemoryPool capacity must be >= 2 (a call and its agent leg)")
        if time_scale <= 0:
            raise SipApiError("MemoryPool time_scale must be positive")
        self._on_event = on_event
        self.clock = clock
        self.message_wav = message_wav
        self.time_scale = time_scale
        #: names of the configured trunks (an Originate through another is refused, as by
        #: NodePool)
        self.trunks = frozenset(trunks)
        check_media_timeout(media_timeout_s, "MemoryPool media_timeout_s")
        self.media_timeout_s = media_timeout_s
        #: trunks whose pretend OPTIONS probe gets no answer (tests set it)
        self.dead_trunks: set[str] = set()
        self.trunk_health = TrunkMonitor(
            sorted(self.trunks), breaker or BreakerConfig(), clock, self._probe, self._emit
        )
        self._node = MemoryNode(capacity=capacity)
        self._legs: dict[str, _Leg] = {}
        #: trunk of a call whose CallEnded is being emitted (the leg is gone by then)
        self._ended_trunk: dict[str, str] = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._accepting = False
        self._closed = False
        self._idle = asyncio.Event()

    # ------------------------------------------------------------------ properties
    @property
    def capacity(self) -> int:
        return self._node.capacity if self._node.alive else 0

    @property
    def in_use(self) -> int:
        return self._node.in_use

    @property
    def free_slots(self) -> int:
        return self._node.free

    @property
    def free_call_pairs(self) -> int:
        return self._node.free // 2

    @property
    def nodes(self) -> list[MemoryNode]:
        return [self._node]

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> MemoryPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(drain_deadline_s=0)

    async def start(self) -> None:
        self._node.alive = True
        self._accepting = True
        # no start-up snapshot here: a MemoryPool's first event stays its first call's
        self.trunk_health.start(snapshot=False)

    async def _probe(self, trunk: str) -> tuple[bool, str]:
        await self._sleep(0.01)
        if trunk in self.dead_trunks:
            return False, "no response (pretend)"
        return True, "200 OK (pretend)"

    async def close(self, drain_deadline_s: float = 10.0) -> None:
        """Stop taking calls, wait up to the deadline for calls to end, then end the rest
        as the node does at shutdown (hangup_by "node")."""
        if self._closed:
            return
        self._accepting = False
        await self.trunk_health.stop()
        if self._legs and drain_deadline_s > 0:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain_deadline_s)
        for leg in list(self._legs.values()):
            self._end_local(leg, "node", "node shutdown")
        self._closed = True
        self._node.alive = False
        await self._events.put(None)

    # ------------------------------------------------------------------ events
    def _emit(self, ev: Event) -> None:
        if isinstance(ev, (CallRinging, CallAnswered, CallEnded)):
            leg = self._legs.get(ev.call_id)
            trunk = leg.cmd.trunk if leg is not None else self._ended_trunk.pop(ev.call_id, None)
            self.trunk_health.observe(trunk, ev)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:
                log.exception("memory pool: on_event callback failed for %s", type(ev).__name__)
        else:
            self._events.put_nowait(ev)

    async def events(self) -> AsyncIterator[Event]:
        """Yield events until the pool is closed (use either this or ``on_event``)."""
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            yield ev

    async def next_event(self, within_s: float | None = None) -> Event:
        ev = await asyncio.wait_for(self._events.get(), within_s)
        if ev is None:
            raise SipApiError("pool closed")
        return ev

    def _stamp(self) -> _Stamp:
        """Event time from the injected clock (sip.api's defaults would read the system's)."""
        return {"mono": self.clock.monotonic(), "wall": self.clock.now()}

    # ------------------------------------------------------------------ commands
    async def submit(self, cmd: Command) -> None:
        """Carry out a command; failures arrive as CommandRejected events, as from NodePool."""
        if self._closed:
            raise SipApiError("MemoryPool.submit() after close()")
        if isinstance(cmd, Originate):
            self._originate(cmd)
            return
        leg = self._legs.get(cmd.call_id)
        if leg is None or leg.state is _State.ENDED:
            self._reject(cmd, "unknown call_id (ended or never placed)", False)
        elif isinstance(cmd, Hangup):
            self._hangup(leg, cmd)
        elif isinstance(cmd, Bridge):
            self._bridge(leg, cmd)
        elif isinstance(cmd, Play):
            self._play(leg, cmd)
        elif isinstance(cmd, StartRecording):
            if leg.state is not _State.ANSWERED:
                self._reject(cmd, "call not answered", False)
        elif isinstance(cmd, CONTROL_COMMANDS):  # hold, DTMF, listen-in
            memory_control(self, leg, cmd)
        else:
            raise SipApiError(f"not a sip.api command: {type(cmd).__name__}")

    def _reject(self, cmd: Command, error: str, retryable: bool) -> None:
        self._emit(CommandRejected(call_id=cmd.call_id, error=error, retryable=retryable,
                                   command=type(cmd).__name__, **self._stamp()))

    def _originate(self, cmd: Originate) -> None:
        if not self._accepting:
            self._reject(cmd, "pool is not accepting calls (starting or closing)", True)
            return
        if cmd.call_id in self._legs:
            self._reject(cmd, "duplicate call_id: a call with this id is in progress", False)
            return
        if cmd.trunk is not None and cmd.trunk not in self.trunks:
            self._reject(cmd, f"unknown trunk {cmd.trunk!r}", False)
            return
        need = 2 if cmd.reserve_agent_slot else 1
        if self._node.free < need:
            self._reject(cmd, f"pool full ({self.in_use}/{self.capacity} slots in use)", True)
            return
        refusal = self.trunk_health.admit(cmd.trunk, cmd.call_id)
        if refusal is not None:
            self._reject(cmd, refusal, True)
            return
        leg = _Leg(cmd=cmd, behaviour=Behaviour.of(cmd.target), slots=need)
        self._legs[cmd.call_id] = leg
        self._node.in_use += need
        self._spawn(leg, self._callee(leg))

    def _spawn(self, leg: _Leg, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        leg.tasks.add(task)
        task.add_done_callback(leg.tasks.discard)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.time_scale)

    # ------------------------------------------------------------------ the callee
    async def _callee(self, leg: _Leg) -> None:
        """The callee's script for one call (callee.xml), up to its answer or refusal."""
        b = leg.behaviour
        cmd = leg.cmd
        self._emit(CallTrying(call_id=leg.call_id, node="node-0", **self._stamp()))
        if b is None or b.kind == "trying":
            # no provisional response ever: the node gives up at the setup timeout
            await self._sleep(cmd.setup_timeout_s)
            self._end_unanswered(leg, AttemptResult.FAILED, None, "node",
                                 f"no ringing within {cmd.setup_timeout_s:g}s", True)
            return
        if b.kind == "status" and b.ring_s == 0:
            await self._sleep(0.01)
            self._refused(leg, b.final_code)
            return
        await self._sleep(0.01)
        leg.state = _State.RINGING
        leg.t_first_18x = self.clock.monotonic()
        early = b.kind == "early"
        self._emit(CallRinging(call_id=leg.call_id, early_media=early,
                               sip_code=183 if early else 180, **self._stamp()))
        if b.kind in ("noanswer", "race", "slowcancel") or b.ring_s >= cmd.ring_timeout_s:
            # rings until CANCEL; the node's ring timer (from the first 18x) sends it
            await self._sleep(cmd.ring_timeout_s)
            self._end_unanswered(leg, AttemptResult.NO_ANSWER, 487, "node",
                                 f"ring timeout {cmd.ring_timeout_s:g}s", True)
            return
        await self._sleep(b.ring_s)
        if b.kind == "status":
            self._refused(leg, b.final_code)
            return
        self._answered(leg)
        if b.kind == "silent" and self.media_timeout_s > 0 and not 0 < b.talk_s <= (
            self.media_timeout_s
        ):
            await self._sleep(self.media_timeout_s)
            self._end_answered(leg, "node", f"no media for {self.media_timeout_s:g} s")
            return
        if b.talk_s > 0:
            # the scenario's opt-out callee starts its talk time after pressing the key
            await self._sleep(b.talk_s + (OPTOUT_AFTER_S if b.kind == "optout" else 0.0))
            self._end_answered(leg, "remote", "callee hung up")

    def _refused(self, leg: _Leg, code: int) -> None:
        result, retryable = classify_failure(code, got_provisional=leg.t_first_18x is not None)
        self._end_unanswered(leg, result, code, "remote", f"callee answered {code}", retryable)

    def _answered(self, leg: _Leg) -> None:
        b = leg.behaviour
        leg.state = _State.ANSWERED
        leg.t_answer = self.clock.monotonic()
        self._emit(CallAnswered(call_id=leg.call_id, **self._stamp()))
        if leg.cmd.amd is not None and b is not None:
            verdict, took_ms, cause = {
                "human": (AmdVerdict.HUMAN, _AMD_HUMAN_MS, "silence_after_greeting"),
                "machine": (AmdVerdict.MACHINE, _AMD_MACHINE_MS, "long_greeting"),
            }.get(b.kind, (AmdVerdict.MACHINE, _AMD_TONE_MS, "long_greeting"))
            if took_ms > leg.cmd.amd.max_analysis_ms:
                verdict, took_ms, cause = (AmdVerdict.UNKNOWN, leg.cmd.amd.max_analysis_ms,
                                           "max_analysis_time")
            self._spawn(leg, self._amd(leg, verdict, took_ms, cause))
        if b is not None and b.kind == "optout":
            self._spawn(leg, self._press_optout(leg))

    async def _amd(self, leg: _Leg, verdict: AmdVerdict, took_ms: int, cause: str) -> None:
        await self._sleep(took_ms / 1000.0)
        if leg.state is _State.ANSWERED:
            leg.amd_verdict = verdict
            self._emit(AmdDone(call_id=leg.call_id, verdict=verdict,
                               took_ms=took_ms, cause=cause, **self._stamp()))

    async def _press_optout(self, leg: _Leg) -> None:
        await self._sleep(OPTOUT_AFTER_S)
        if leg.state is _State.ANSWERED:
            self._emit(DtmfReceived(call_id=leg.call_id, digit=OPTOUT_DIGIT,
                                    method="sip_info", **self._stamp()))

    # ------------------------------------------------------------------ dialer commands
    def _hangup(self, leg: _Leg, cmd: Hangup) -> None:
        reason = cmd.reason or "hung up by dialer"
        if leg.state is _State.ANSWERED:
            self._end_answered(leg, "local", reason)
        elif leg.behaviour is not None and leg.behaviour.kind == "race" \
                and leg.state is _State.RINGING:
            # the callee answers the INVITE anyway: a 200 crossing the CANCEL
            self._end(leg, CallEnded(
                call_id=leg.call_id, result=AttemptResult.CANCELLED, sip_code=200,
                reason=f"{reason}; 200 OK crossed the CANCEL (ACK+BYE sent)", hangup_by="local",
                ring_s=self._ring_s(leg), talk_s=0.0, retryable=True,
                answered_after_cancel=True, **self._stamp()))
        else:
            self._end_unanswered(leg, AttemptResult.CANCELLED, 487, "local", reason, True)

    def _bridge(self, leg: _Leg, cmd: Bridge) -> None:
        if leg.state is not _State.ANSWERED:
            self._reject(cmd, f"call not answered (state {leg.state.value})", False)
            return
        if leg.agent_call_id is not None:
            self._reject(cmd, f"agent leg {leg.agent_call_id} already active", False)
            return
        if leg.slots < 2:
            if self._node.free < 1:
                self._reject(cmd, "no free slot for the agent leg on the call's node", True)
                return
            leg.slots += 1
            self._node.in_use += 1
        leg.agent_call_id = cmd.agent_call_id
        self._spawn(leg, self._agent_leg(leg, cmd))

    async def _agent_leg(self, leg: _Leg, cmd: Bridge) -> None:
        """The agent's phone: an auto-answering phone, or a callee behaviour (docs/sip.md)."""
        b = Behaviour.of(cmd.agent_uri)
        if b is None:
            await self._sleep(AGENT_ANSWER_S)
        elif b.kind in ("noanswer", "trying", "race") or b.ring_s >= cmd.answer_timeout_s:
            await self._sleep(cmd.answer_timeout_s)
            self._agent_failed(leg, cmd, 408, f"no answer within {cmd.answer_timeout_s:g}s")
            return
        else:
            await self._sleep(max(b.ring_s, AGENT_ANSWER_S))
            if b.kind == "status":
                self._agent_failed(leg, cmd, b.final_code, f"agent phone answered {b.final_code}")
                return
        if leg.state is not _State.ANSWERED or leg.agent_call_id != cmd.agent_call_id:
            return
        leg.agent_bridged = leg.ever_bridged = True
        latency = (self.clock.monotonic() - (leg.t_answer or self.clock.monotonic())) * 1000.0
        self._emit(CallBridged(call_id=leg.call_id, agent_call_id=cmd.agent_call_id,
                               latency_ms=latency, **self._stamp()))
        if b is not None and b.talk_s > 0:
            await self._sleep(b.talk_s)
            if leg.state is _State.ANSWERED and leg.agent_call_id == cmd.agent_call_id:
                self._end_answered(leg, "local", "agent hung up")

    def _agent_failed(self, leg: _Leg, cmd: Bridge, code: int | None, reason: str) -> None:
        if leg.state is not _State.ANSWERED or leg.agent_call_id != cmd.agent_call_id:
            return
        leg.agent_call_id = None  # the customer stays up: the dialer may bridge again
        self._emit(AgentLegFailed(call_id=leg.call_id, agent_call_id=cmd.agent_call_id,
                                  sip_code=code, reason=reason, **self._stamp()))

    def _play(self, leg: _Leg, cmd: Play) -> None:
        if leg.state is not _State.ANSWERED:
            self._reject(cmd, "call not answered or unknown", False)
            return
        wav = cmd.wav_path or self.message_wav
        if not wav:
            self._reject(cmd, "Play without wav_path and no message_wav", False)
            return
        self._spawn(leg, self._player(leg, cmd, _wav_seconds(wav)))

    async def _player(self, leg: _Leg, cmd: Play, seconds: float) -> None:
        await self._sleep(seconds)
        if leg.state is not _State.ANSWERED:
            return
        self._emit(PlaybackDone(call_id=leg.call_id, **self._stamp()))
        if cmd.hangup_after:
            self._end_answered(leg, "local", "message played")

    # ------------------------------------------------------------------ call ends
    def _ring_s(self, leg: _Leg) -> float | None:
        if leg.t_first_18x is None:
            return None
        return round((leg.t_answer or self.clock.monotonic()) - leg.t_first_18x, 3)

    def _end_unanswered(self, leg: _Leg, result: AttemptResult, code: int | None,
                        by: HangupBy, reason: str, retryable: bool) -> None:
        self._end(leg, CallEnded(
            call_id=leg.call_id, result=result, sip_code=code, reason=reason, hangup_by=by,
            ring_s=self._ring_s(leg), talk_s=None, retryable=retryable,
            **self._stamp()))

    def _end_answered(self, leg: _Leg, by: HangupBy, reason: str) -> None:
        if leg.ever_bridged:
            result = AttemptResult.CONNECTED
        elif leg.amd_verdict is AmdVerdict.MACHINE:
            result = AttemptResult.MACHINE
        else:
            result = AttemptResult.ABANDONED
        talk = round(self.clock.monotonic() - leg.t_answer, 3) if leg.t_answer else None
        self._end(leg, CallEnded(
            call_id=leg.call_id, result=result, sip_code=200, reason=reason, hangup_by=by,
            ring_s=self._ring_s(leg), talk_s=talk, retryable=False,
            **self._stamp()))

    def _end_local(self, leg: _Leg, by: HangupBy, reason: str) -> None:
        if leg.state is _State.ANSWERED:
            self._end_answered(leg, by, reason)
        else:
            self._end_unanswered(leg, AttemptResult.CANCELLED, None, by, reason, True)

    def _end(self, leg: _Leg, ev: CallEnded) -> None:
        """The call's one final event: stop its scripts, free its slots, report it."""
        if leg.state is _State.ENDED:
            return
        leg.state = _State.ENDED
        current = asyncio.current_task()
        for t in list(leg.tasks):
            if t is not current:
                t.cancel()
        self._legs.pop(leg.call_id, None)
        if leg.cmd.trunk is not None:
            self._ended_trunk[leg.call_id] = leg.cmd.trunk
        self._node.in_use -= leg.slots
        if not self._legs:
            self._idle.set()
        self._emit(ev)
        memory_call_ended(self, leg.call_id)
        if leg.cmd.trunk is not None:  # after the outcome was counted
            self.trunk_health.finished(leg.cmd.trunk, leg.call_id)


def _wav_seconds(path: str) -> float:
    """A message's length; a file this cannot read (not PCM WAV) counts as 2 seconds."""
    try:
        with wave.open(path, "rb") as w:
            return w.getnframes() / float(w.getframerate() or 8000)
    except (OSError, wave.Error, EOFError):
        return 2.0
