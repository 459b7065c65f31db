"""One SIP node: an OS process owning one PJSIP endpoint (pjsua2), driven by pool commands.

Run as ``python -m sip.node --connect HOST:PORT --config JSON``. The process connects to the
pool, measures its call capacity, says hello, then executes commands and streams events.

Threading (see docs/sip.md): the process's main thread is the pjsua2
owner thread. It creates the Endpoint with ``threadCnt=0`` / ``mainThreadOnly=True`` and
loops on ``libHandleEvents``; a reader thread only decodes pool frames into a queue. Media
callbacks (AMD frames, player EOF) run on the media clock thread: they compute and queue,
never touch pjsua2. pjsua2 callbacks may re-enter (``hangup`` inside ``onCallState``), so they
only update leg state and queue work; anything that calls pjsua2 again is deferred to the
owner loop.

Call objects: the only reference to a ``pj.Call`` lives in its leg and is dropped inside its
``onCallState(DISCONNECTED)``; a stale Call deleted later could hang up a new call that reuses
its slot.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import enum
import json
import logging
import os
import queue
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

from common.vocabulary import AmdVerdict, AttemptResult
from sip.amd import AmdAnalyzer, AmdResult
from sip.api import (
    AgentLegAnswered,
    AgentLegFailed,
    AmdDone,
    Bridge,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallRinging,
    CallTrying,
    CommandRejected,
    DtmfReceived,
    HangupBy,
    MediaStats,
    Originate,
    Play,
    PlaybackDone,
    StartRecording,
    TrunkStatus,
    classify_failure,
    from_wire,
    to_wire,
)
from sip.api import Hangup as HangupCmd
from sip.config import NodeConfig, TrunkConfig
from sip.protocol import ProtocolError, encode_frame, recv_frame_blocking

log = logging.getLogger("sip.node")

PJ_ETOOMANY = 70010
#: libHandleEvents wait. Commands and media results do not wait for it: their producers
#: wake the loop (see Waker); it only bounds timer resolution (ring/answer timeouts).
POLL_MS = 20
#: how long the node retries a makeCall that hit PJ_ETOOMANY (slot still closing its transaction)
ETOOMANY_RETRY_S = 1.0
#: how long CallEnded of a cancelled call waits for the INVITE's final answer (487 or a 200
#: that crossed the CANCEL) before it is reported anyway
CANCEL_GRACE_S = 4.0
#: upper bound on waiting for PJSIP to finalise a recording's WAV header after the call
RECORDING_FINALISE_S = 1.0
_DTMF_METHODS = {
    int(getattr(pj, "PJSUA_DTMF_METHOD_RFC2833", 0)): "rfc2833",
    int(getattr(pj, "PJSUA_DTMF_METHOD_SIP_INFO", 1)): "sip_info",
}
_RX_INVITE_RESPONSE = re.compile(r"RX \d+ bytes Response msg (\d{3})/INVITE/")
_CALL_ID_HDR = re.compile(r"^(?:Call-ID|i)\s*:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def _pj_status(exc: BaseException) -> int:
    return int(getattr(exc, "status", 0) or 0)


class Waker:
    """Wakes the owner thread out of ``libHandleEvents`` from another thread.

    pjsua2 offers no thread-safe wake-up, but its SIP UDP socket is in the ioqueue the owner
    thread waits on, and PJSIP silently drops a bare CRLF keep-alive (RFC 5626). A CRLF sent
    to our own port therefore ends the wait at once without touching pjsua2 from a foreign
    thread. Repeated wakes before the loop runs are coalesced.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._addr: tuple[str, int] | None = None
        self.pending = threading.Event()

    def bind(self, host: str, port: int) -> None:
        self._addr = (host, port)

    def wake(self) -> None:
        if self._addr is None or self.pending.is_set():
            return
        self.pending.set()
        with contextlib.suppress(OSError):
            self._sock.sendto(b"\r\n\r\n", self._addr)

    def clear(self) -> None:
        self.pending.clear()

    def close(self) -> None:
        self._sock.close()


class LegState(enum.Enum):
    DIALING = "dialing"
    EARLY = "early"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(slots=True)
class LocalEnd:
    """Why the node/dialer ended a call itself (set before the hangup is sent)."""

    result: AttemptResult | None  # None: classify from what happened (answered calls)
    hangup_by: HangupBy
    reason: str
    retryable: bool
    before_answer: bool


@dataclass(slots=True)
class AgentLeg:
    agent_call_id: str
    customer: CustomerLeg
    cmd: Bridge
    call: _Call | None = None
    state: LegState = LegState.DIALING
    t_start: float = field(default_factory=time.monotonic)
    failed_reported: bool = False
    bridged: bool = False
    local_hangup: bool = False
    stats: tuple[int, int] = (0, 0)


@dataclass(slots=True)
class CustomerLeg:
    call_id: str
    cmd: Originate
    call: _Call | None = None
    state: LegState = LegState.DIALING
    t_invite: float = 0.0
    t_first_18x: float | None = None
    t_answer: float | None = None
    early_media: bool = False
    ringing_reported: bool = False
    local_end: LocalEnd | None = None
    saw_200: bool = False
    media_up: bool = False
    amd: AmdAnalyzer | None = None
    amd_port: _AmdPort | None = None
    amd_started: float | None = None
    amd_verdict: AmdVerdict = AmdVerdict.NOT_RUN
    player: _Player | None = None
    play_cmd: Play | None = None
    recorder: pj.AudioMediaRecorder | None = None
    record_path: str | None = None
    agent: AgentLeg | None = None
    ever_bridged: bool = False
    stats: tuple[int, int] = (0, 0)
    retry_until: float = 0.0
    #: SIP Call-ID, known once the node cancels the call (to match the INVITE's late answer)
    sip_call_id: str = ""
    #: final response to the INVITE seen after our CANCEL (487 normally, 2xx if it crossed)
    cancel_final: int | None = None
    held_end: CallEnded | None = None
    recorder_used: bool = False
    held_until: float = 0.0


class _Call(pj.Call):
    """pjsua2 Call forwarding callbacks to the node (runs on the owner thread)."""

    def __init__(self, node: Node, acc: pj.Account, leg: CustomerLeg | AgentLeg) -> None:
        super().__init__(acc)
        self.node = node
        self.leg = leg

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.node.on_call_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.node.on_media_state(self)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        # may come from the media thread (RFC 2833): queue only
        leg = self.leg
        if isinstance(leg, CustomerLeg):
            method = _DTMF_METHODS.get(int(prm.method), "unknown")
            self.node.media_q.put(("dtmf", leg.call_id, (str(prm.digit), method)))
            self.node.waker.wake()

    def onStreamDestroyed(self, prm: pj.OnStreamDestroyedParam) -> None:
        # last chance to read RTP counters: the stream is gone by DISCONNECTED
        try:
            st = self.getStreamStat(prm.streamIdx)
            counts = (int(st.rtcp.rxStat.pkt), int(st.rtcp.txStat.pkt))
        except pj.Error:
            return
        self.leg.stats = counts


class _AmdPort(pj.AudioMediaPort):
    """Receives the customer's audio frames; analysis runs here, results go to a queue."""

    def __init__(
        self, call_id: str, analyzer: AmdAnalyzer, out: queue.SimpleQueue, waker: Waker
    ) -> None:
        super().__init__()
        self.call_id = call_id
        self.analyzer = analyzer
        self.out = out
        self.waker = waker
        self.done = False

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if self.done:
            return
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO:
            res = self.analyzer.feed_energy(0.0)
        else:
            res = self.analyzer.feed(bytes(frame.buf))
        if res is not None:
            self.done = True
            self.out.put(("amd", self.call_id, res))
            self.waker.wake()


class _Player(pj.AudioMediaPlayer):
    def __init__(self, call_id: str, out: queue.SimpleQueue, waker: Waker) -> None:
        super().__init__()
        self.call_id = call_id
        self.out = out
        self.waker = waker

    def onEof2(self) -> None:
        self.out.put(("eof", self.call_id, None))
        self.waker.wake()


class _LogWriter(pj.LogWriter):
    """PJSIP log sink: forwards to stdout up to the configured level and watches for the
    final response to a cancelled INVITE.

    pjsua reports a call DISCONNECTED as soon as it is hung up while ringing; if the callee's
    200 OK crosses the CANCEL, PJSIP ACKs and BYEs it internally without any call callback.
    The message log (level 4) is the only place the wheel shows it, so the node reads it here.
    Runs on whichever thread logs: it only sets plain attributes.
    """

    def __init__(self, node: Node, console_level: int) -> None:
        super().__init__()
        self.node = node
        self.console_level = console_level

    def write(self, entry: pj.LogEntry) -> None:
        msg = entry.msg
        if entry.level <= self.console_level:
            sys.stdout.write(msg if msg.endswith("\n") else msg + "\n")
            sys.stdout.flush()
        if not self.node.cancelling or "/INVITE/" not in msg:
            return
        m = _RX_INVITE_RESPONSE.search(msg)
        if m is None:
            return
        code = int(m.group(1))
        if code < 200:
            return
        cid = _CALL_ID_HDR.search(msg)
        if cid is None:
            return
        leg = self.node.cancelling.pop(cid.group(1), None)
        if leg is not None:
            leg.cancel_final = code
            if 200 <= code < 300:
                leg.saw_200 = True


class _IncomingCall(pj.Call):
    """An unsolicited incoming call, declined; dropped at DISCONNECTED like every Call."""

    def __init__(self, node: Node, acc: pj.Account, call_id: int) -> None:
        super().__init__(acc, call_id)
        self.node = node

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            done = self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED
        except pj.Error:
            done = True
        if done:
            self.node.incoming.discard(self)


class _Account(pj.Account):
    def __init__(self, node: Node, trunk: TrunkConfig | None) -> None:
        super().__init__()
        self.node = node
        self.trunk = trunk

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        # a dialer node takes no incoming calls: decline them so a stray or hostile INVITE
        # cannot hold one of the node's few call slots ringing forever
        self.node.decline_incoming(self, prm.callId)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        if self.trunk is None:
            return
        code = int(prm.code)
        self.node.emit(
            TrunkStatus(
                call_id=f"trunk:{self.trunk.name}",
                trunk=self.trunk.name,
                registered=code // 100 == 2 and int(prm.expiration) > 0,
                sip_code=code,
                reason=str(prm.reason),
            )
        )


class Node:
    """The owner-thread runtime of one node process."""

    def __init__(self, cfg: NodeConfig, sock: socket.socket | None) -> None:
        self.cfg = cfg
        self.sock = sock
        self._send_lock = threading.Lock()
        self.cmds: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.media_q: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()
        self.ep: pj.Endpoint | None = None
        self.accounts: dict[str | None, _Account] = {}
        self.legs: dict[str, CustomerLeg] = {}
        self.agents: dict[str, AgentLeg] = {}
        self.deferred: collections.deque[Callable[[], None]] = collections.deque()
        self.pending_originates: collections.deque[CustomerLeg] = collections.deque()
        self.capacity = 0
        self.sip_port = 0
        self.stopping = False
        #: SIP Call-ID -> leg, for calls cancelled before answer whose INVITE is still open
        self.cancelling: dict[str, CustomerLeg] = {}
        #: legs whose CallEnded waits for the cancelled INVITE's final response
        self.held: dict[str, CustomerLeg] = {}
        self.awaiting_recording: list[tuple[float, CustomerLeg, CallEnded]] = []
        self._log_writer: _LogWriter | None = None
        self.waker = Waker()
        self.incoming: set[_IncomingCall] = set()
        #: frames produced before hello (during start), sent right after it
        self._early: list[dict[str, Any]] | None = []

    # ------------------------------------------------------------------ plumbing
    def send(self, msg: dict[str, Any]) -> None:
        if self.sock is None:
            return
        if self._early is not None and msg.get("kind") not in ("hello", "error"):
            self._early.append(msg)  # the pool must hear hello first (e.g. a registration)
            return
        data = encode_frame(msg)
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                # the pool is gone: stop; calls are hung up by the shutdown sequence
                self.stopping = True

    def emit(self, ev: Any) -> None:
        self.send({"kind": "event", "event": to_wire(ev)})

    def reject(self, call_id: str, error: str, retryable: bool, command: str) -> None:
        self.emit(
            CommandRejected(call_id=call_id, error=error, retryable=retryable, command=command)
        )

    # ------------------------------------------------------------------ start / stop
    def decline_incoming(self, acc: pj.Account, pj_call_id: int) -> None:
        call = _IncomingCall(self, acc, pj_call_id)
        self.incoming.add(call)
        log.warning("node %d: declined an incoming call", self.cfg.node_id)

        def decline() -> None:
            prm = pj.CallOpParam(True)
            prm.statusCode = 603
            if call in self.incoming:
                call.hangup(prm)

        self.deferred.append(decline)

    def say_hello(self) -> None:
        self.send(
            {
                "kind": "hello",
                "node_id": self.cfg.node_id,
                "pid": os.getpid(),
                "capacity": self.capacity,
                "sip_port": self.sip_port,
                "pjsip": pj.Endpoint.instance().libVersion().full,
            }
        )
        early, self._early = self._early or [], None
        for msg in early:
            self.send(msg)

    def start(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = self.cfg.capacity_probe_limit
        ep_cfg.uaConfig.userAgent = self.cfg.user_agent
        # level 4 + message logging feed _LogWriter (the crossed-200 detection); the console
        # only gets what pjsip_log_level asks for
        # PJSIP errors (level 1) always reach the node's output
        self._log_writer = _LogWriter(self, max(1, self.cfg.pjsip_log_level))
        ep_cfg.logConfig.writer = self._log_writer
        ep_cfg.logConfig.level = max(4, self.cfg.pjsip_log_level)
        ep_cfg.logConfig.consoleLevel = max(4, self.cfg.pjsip_log_level)
        ep_cfg.logConfig.msgLogging = True
        ep_cfg.medConfig.clockRate = 8000
        ep_cfg.medConfig.sndClockRate = 8000
        ep_cfg.medConfig.noVad = True  # keep RTP flowing (carriers drop silent calls)
        ep_cfg.medConfig.ecTailLen = 0
        ep.libInit(ep_cfg)
        self.ep = ep

        tcfg = pj.TransportConfig()
        tcfg.port = self.cfg.sip_port
        tcfg.boundAddress = self.cfg.bind_address
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.sip_port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        wake_host = self.cfg.bind_address
        if wake_host in ("0.0.0.0", "::"):
            wake_host = "127.0.0.1" if wake_host == "0.0.0.0" else "::1"
        self.waker.bind(wake_host, self.sip_port)
        if "tcp" in self.cfg.transports:
            tc = pj.TransportConfig()
            tc.port = self.sip_port
            tc.boundAddress = self.cfg.bind_address
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tc)
        if "tls" in self.cfg.transports:
            tc = pj.TransportConfig()
            tc.port = self.sip_port + 1
            tc.boundAddress = self.cfg.bind_address
            tc.tlsConfig.certFile = self.cfg.tls_cert_file or ""
            tc.tlsConfig.privKeyFile = self.cfg.tls_key_file or ""
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
        ep.libStart()
        ep.audDevManager().setNullDev()

        self.accounts[None] = self._make_account(None)
        for t in self.cfg.trunks:
            self.accounts[t.name] = self._make_account(t)
        self.capacity = self._probe_capacity()

    def _make_account(self, trunk: TrunkConfig | None) -> _Account:
        acfg = pj.AccountConfig()
        if trunk is None:
            acfg.idUri = f"sip:dialer@{self.cfg.bind_address}:{self.sip_port}"
        else:
            acfg.idUri = trunk.id_uri
            if trunk.register:
                acfg.regConfig.registrarUri = _with_transport(trunk.registrar_uri, trunk.transport)
                acfg.regConfig.registerOnAdd = True
                acfg.regConfig.retryIntervalSec = 30
            else:
                acfg.regConfig.registerOnAdd = False
            if trunk.username:
                acfg.sipConfig.authCreds.append(
                    pj.AuthCredInfo("digest", trunk.realm, trunk.username, 0, trunk.password)
                )
            if trunk.outbound_proxy:
                acfg.sipConfig.proxies.append(
                    _with_transport(trunk.outbound_proxy, trunk.transport)
                )
        acfg.mediaConfig.lockCodecEnabled = False
        if self.cfg.rtp_port:
            acfg.mediaConfig.transportConfig.port = self.cfg.rtp_port
        acfg.mediaConfig.transportConfig.boundAddress = self.cfg.bind_address
        acc = _Account(self, trunk)
        acc.create(acfg, True)
        return acc

    def _probe_capacity(self) -> int:
        """Measure how many concurrent calls this PJSIP build allows.

        pjsua2 exposes no way to read the effective PJSUA_MAX_CALLS, so the node places
        media-less calls to a throw-away local UDP socket (no SIP stack, nothing leaves the
        host) until makeCall fails with PJ_ETOOMANY, then answers every INVITE with 486 so the
        calls end at once. Counting successes gives the real limit of the running build.
        """
        assert self.ep is not None
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((self.cfg.bind_address, 0))
        sink.setblocking(False)
        port = sink.getsockname()[1]
        calls: list[_ProbeCall] = []
        capacity = 0
        try:
            for _ in range(self.cfg.capacity_probe_limit):
                c = _ProbeCall(self.accounts[None])
                prm = pj.CallOpParam(True)
                prm.opt.audioCount = 0
                prm.opt.videoCount = 0
                prm.opt.flag = pj.PJSUA_CALL_NO_SDP_OFFER
                try:
                    c.makeCall(f"sip:capacity-probe@{self.cfg.bind_address}:{port}", prm)
                except pj.Error as exc:
                    if _pj_status(exc) != PJ_ETOOMANY:
                        raise
                    break
                calls.append(c)
                capacity += 1
                if capacity % 32 == 0:  # keep bursts small for big builds (ioqueue limits)
                    self._pump_probe(sink, 0.05)
            deadline = time.monotonic() + 10
            while any(not c.ended for c in calls) and time.monotonic() < deadline:
                self._pump_probe(sink, 0.02)
            # let the INVITE transactions release their slots
            self._pump_probe(sink, 0.05)
        finally:
            sink.close()
        for c in calls:
            c.ended = True
        calls.clear()
        if capacity == 0:
            raise RuntimeError("capacity probe: not even one call could be placed")
        return capacity

    def _pump_probe(self, sink: socket.socket, seconds: float) -> None:
        assert self.ep is not None
        end = time.monotonic() + seconds
        while True:
            self.ep.libHandleEvents(5)
            while True:
                try:
                    data, addr = sink.recvfrom(65535)
                except BlockingIOError:
                    break
                reply = _busy_reply(data)
                if reply:
                    sink.sendto(reply, addr)
            if time.monotonic() >= end:
                return

    def shutdown(self) -> None:
        """Safe order: hang up all, pump until no call is left, delete media, then libDestroy."""
        ep = self.ep
        if ep is None:
            return
        for leg in list(self.legs.values()):
            if leg.local_end is None:
                leg.local_end = LocalEnd(
                    AttemptResult.CANCELLED if leg.state != LegState.ANSWERED else None,
                    "node",
                    "node shutdown",
                    True,
                    leg.state != LegState.ANSWERED,
                )
        for leg in list(self.held.values()):
            if leg.held_end is not None:
                self._emit_end(leg, leg.held_end)
        with contextlib.suppress(pj.Error):
            ep.hangupAllCalls()
        deadline = time.monotonic() + 5
        while (self.legs or self.agents or self.incoming) and time.monotonic() < deadline:
            ep.libHandleEvents(10)
            self._run_deferred()
            self._flush_recordings(time.monotonic())
        for leg in list(self.legs.values()):
            self._release_media(leg)
            leg.call = None
        self._run_deferred()
        self.incoming.clear()
        for a in self.agents.values():
            a.call = None
        self.legs.clear()
        self.agents.clear()
        self.accounts.clear()
        ep.libHandleEvents(10)
        ep.libDestroy()
        self.ep = None

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        assert self.ep is not None
        while True:
            self.ep.libHandleEvents(POLL_MS)
            self.waker.clear()
            self._drain_commands()
            self._drain_media()
            self._run_deferred()
            self._timers()
            if self.stopping:
                break
        self.shutdown()

    def _drain_commands(self) -> None:
        while True:
            try:
                msg = self.cmds.get_nowait()
            except queue.Empty:
                return
            if msg is None or msg.get("kind") == "shutdown":
                self.stopping = True
                return
            if msg.get("kind") != "cmd":
                log.warning(
                    "node %d: unknown frame kind %r dropped", self.cfg.node_id, msg.get("kind")
                )
                continue
            try:
                cmd = from_wire(msg["cmd"])
            except (ValueError, KeyError) as exc:
                log.warning("node %d: bad command dropped: %s", self.cfg.node_id, exc)
                continue
            self.handle(cmd)

    def _run_deferred(self) -> None:
        for _ in range(len(self.deferred)):
            fn = self.deferred.popleft()
            try:
                fn()
            except pj.Error as exc:
                log.warning("node %d: deferred action failed: %s", self.cfg.node_id, exc.info())

    def _drain_media(self) -> None:
        while True:
            try:
                kind, call_id, payload = self.media_q.get_nowait()
            except queue.Empty:
                return
            leg = self.legs.get(call_id)
            if leg is None:
                continue
            if kind == "amd":
                self._amd_finished(leg, payload)
            elif kind == "eof":
                self._playback_finished(leg)
            elif kind == "dtmf" and leg.state == LegState.ANSWERED:
                digit, method = payload
                self.emit(DtmfReceived(call_id=leg.call_id, digit=digit, method=method))

    def _timers(self) -> None:
        now = time.monotonic()
        for leg in list(self.legs.values()):
            if leg.local_end is None:
                if (
                    leg.state in (LegState.DIALING, LegState.EARLY)
                    and leg.t_first_18x is None
                    and leg.call is not None
                    and now - leg.t_invite >= leg.cmd.setup_timeout_s
                ):
                    self._hangup_customer(
                        leg,
                        LocalEnd(
                            AttemptResult.FAILED,
                            "node",
                            f"no ringing within {leg.cmd.setup_timeout_s:g}s",
                            True,
                            True,
                        ),
                    )
                elif (
                    leg.state == LegState.EARLY
                    and leg.t_first_18x is not None
                    and now - leg.t_first_18x >= leg.cmd.ring_timeout_s
                ):
                    self._hangup_customer(
                        leg,
                        LocalEnd(
                            AttemptResult.NO_ANSWER,
                            "node",
                            f"ring timeout {leg.cmd.ring_timeout_s:g}s",
                            True,
                            True,
                        ),
                    )
            if (
                leg.amd is not None
                and leg.amd_started is not None
                and leg.amd_verdict == AmdVerdict.NOT_RUN
                and (now - leg.amd_started) * 1000 >= leg.amd.s.max_analysis_ms + 500
            ):
                # frames stopped coming (no RTP): decide now rather than stall the call
                if leg.amd_port is not None:
                    leg.amd_port.done = True
                self._amd_finished(leg, leg.amd.timeout())
            a = leg.agent
            if (
                a is not None
                and a.state in (LegState.DIALING, LegState.EARLY)
                and not a.local_hangup
                and now - a.t_start >= a.cmd.answer_timeout_s
            ):
                self._agent_failed(
                    a, None, f"agent did not answer within {a.cmd.answer_timeout_s:g}s"
                )
                self._hangup_agent(a)
        for leg in list(self.held.values()):
            if leg.held_end is not None and (leg.cancel_final is not None or now >= leg.held_until):
                self._emit_end(leg, leg.held_end)
        self._flush_recordings(now)
        # originates waiting for a slot that is still closing its transaction
        for _ in range(len(self.pending_originates)):
            leg = self.pending_originates.popleft()
            self._place(leg)

    def _flush_recordings(self, now: float) -> None:
        if not self.awaiting_recording:
            return
        waiting = self.awaiting_recording
        self.awaiting_recording = []
        for deadline, leg, ev in waiting:
            if now >= deadline or _wav_finalised(leg.record_path or ""):
                self._emit_end(leg, ev)
            else:
                self.awaiting_recording.append((deadline, leg, ev))

    # ------------------------------------------------------------------ commands
    def handle(self, cmd: Any) -> None:
        if isinstance(cmd, Originate):
            self._originate(cmd)
        elif isinstance(cmd, Bridge):
            self._bridge(cmd)
        elif isinstance(cmd, Play):
            self._play(cmd)
        elif isinstance(cmd, StartRecording):
            self._start_recording(cmd)
        elif isinstance(cmd, HangupCmd):
            self._hangup_cmd(cmd)
        else:
            self.reject(
                getattr(cmd, "call_id", "?"),
                f"unsupported command {type(cmd).__name__}",
                False,
                type(cmd).__name__,
            )

    def _originate(self, cmd: Originate) -> None:
        if cmd.call_id in self.legs:
            self.reject(cmd.call_id, "duplicate call_id", False, "Originate")
            return
        if cmd.trunk not in self.accounts:
            self.reject(cmd.call_id, f"unknown trunk {cmd.trunk!r}", False, "Originate")
            return
        if self.stopping:
            self.reject(cmd.call_id, "node shutting down", True, "Originate")
            return
        leg = CustomerLeg(
            call_id=cmd.call_id, cmd=cmd, retry_until=time.monotonic() + ETOOMANY_RETRY_S
        )
        self.legs[cmd.call_id] = leg
        self._place(leg)

    def _place(self, leg: CustomerLeg) -> None:
        cmd = leg.cmd
        if leg.local_end is not None:  # hung up while waiting for a slot
            self.legs.pop(leg.call_id, None)
            self.emit(
                CallEnded(
                    call_id=leg.call_id,
                    result=AttemptResult.CANCELLED,
                    sip_code=None,
                    reason=leg.local_end.reason,
                    hangup_by=leg.local_end.hangup_by,
                    ring_s=None,
                    talk_s=None,
                    retryable=True,
                )
            )
            return
        acc = self.accounts[cmd.trunk]
        call = _Call(self, acc, leg)
        prm = pj.CallOpParam(True)
        domain = acc.trunk.domain if acc.trunk else f"{self.cfg.bind_address}:{self.sip_port}"
        cid = cmd.caller_id
        local_uri = cid if cid.lower().startswith(("sip:", "sips:")) else f"sip:{cid}@{domain}"
        prm.txOption.localUri = f"<{local_uri}>"
        hdrs = {"P-Asserted-Identity": f"<{local_uri}>", **cmd.headers}
        for k, v in hdrs.items():
            h = pj.SipHeader()
            h.hName = k
            h.hValue = v
            prm.txOption.headers.append(h)
        leg.call = call
        leg.t_invite = time.monotonic()
        try:
            call.makeCall(cmd.target, prm)
        except pj.Error as exc:
            leg.call = None
            status = _pj_status(exc)
            if status == PJ_ETOOMANY and time.monotonic() < leg.retry_until and not self.stopping:
                self.pending_originates.append(leg)
                return
            self.legs.pop(leg.call_id, None)
            self.reject(
                leg.call_id, f"makeCall failed: {exc.info()}", status == PJ_ETOOMANY, "Originate"
            )
            return
        if leg.state == LegState.DIALING and leg.call is not None:
            self.emit(CallTrying(call_id=leg.call_id))

    def _bridge(self, cmd: Bridge) -> None:
        leg = self.legs.get(cmd.call_id)
        if leg is None or leg.state == LegState.ENDED or leg.local_end is not None:
            self.reject(cmd.call_id, "unknown or ended call_id", False, "Bridge")
            return
        if leg.state != LegState.ANSWERED or not leg.media_up:
            self.reject(
                cmd.call_id, f"call not answered (state {leg.state.value})", False, "Bridge"
            )
            return
        if leg.agent is not None:
            self.reject(
                cmd.call_id, f"agent leg {leg.agent.agent_call_id} already active", False, "Bridge"
            )
            return
        if cmd.trunk not in self.accounts:
            self.reject(cmd.call_id, f"unknown trunk {cmd.trunk!r}", False, "Bridge")
            return
        if cmd.agent_call_id in self.agents:
            self.reject(cmd.call_id, "duplicate agent_call_id", False, "Bridge")
            return
        a = AgentLeg(agent_call_id=cmd.agent_call_id, customer=leg, cmd=cmd)
        leg.agent = a
        self.agents[a.agent_call_id] = a
        self._place_agent(a, time.monotonic() + 0.3)

    def _place_agent(self, a: AgentLeg, retry_until: float) -> None:
        if a.customer.agent is not a or a.customer.state != LegState.ANSWERED:
            self.agents.pop(a.agent_call_id, None)
            return
        call = _Call(self, self.accounts[a.cmd.trunk], a)
        prm = pj.CallOpParam(True)
        for k, v in a.cmd.headers.items():
            h = pj.SipHeader()
            h.hName = k
            h.hValue = v
            prm.txOption.headers.append(h)
        a.call = call
        try:
            call.makeCall(a.cmd.agent_uri, prm)
        except pj.Error as exc:
            a.call = None
            if _pj_status(exc) == PJ_ETOOMANY and time.monotonic() < retry_until:
                self.deferred.append(lambda: self._place_agent(a, retry_until))
                return
            self.agents.pop(a.agent_call_id, None)
            self._agent_failed(a, None, f"agent makeCall failed: {exc.info()}")

    def _play(self, cmd: Play) -> None:
        leg = self.legs.get(cmd.call_id)
        if leg is None or leg.state != LegState.ANSWERED or not leg.media_up or leg.call is None:
            self.reject(cmd.call_id, "call not answered or unknown", False, "Play")
            return
        if not os.path.isfile(cmd.wav_path):
            self.reject(cmd.call_id, f"no such WAV file: {cmd.wav_path}", False, "Play")
            return
        self._stop_player(leg)
        player = _Player(cmd.call_id, self.media_q, self.waker)
        try:
            player.createPlayer(cmd.wav_path, pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(leg.call.getAudioMedia(-1))
            if leg.recorder is not None:
                player.startTransmit(leg.recorder)
        except pj.Error as exc:
            self.reject(cmd.call_id, f"cannot play {cmd.wav_path}: {exc.info()}", False, "Play")
            return
        leg.player = player
        leg.play_cmd = cmd

    def _start_recording(self, cmd: StartRecording) -> None:
        leg = self.legs.get(cmd.call_id)
        if leg is None or leg.state == LegState.ENDED:
            self.reject(cmd.call_id, "unknown or ended call_id", False, "StartRecording")
            return
        leg.record_path = cmd.wav_path
        if leg.media_up:
            self._attach_recorder(leg)

    def _attach_recorder(self, leg: CustomerLeg) -> None:
        if leg.recorder is not None or leg.record_path is None or leg.call is None:
            return
        rec = pj.AudioMediaRecorder()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(leg.record_path)), exist_ok=True)
            rec.createRecorder(leg.record_path)
            leg.call.getAudioMedia(-1).startTransmit(rec)
            if leg.agent is not None and leg.agent.bridged and leg.agent.call is not None:
                leg.agent.call.getAudioMedia(-1).startTransmit(rec)
        except (pj.Error, OSError) as exc:
            msg = exc.info() if isinstance(exc, pj.Error) else str(exc)
            self.reject(
                leg.call_id, f"cannot record to {leg.record_path}: {msg}", False, "StartRecording"
            )
            leg.record_path = None
            return
        leg.recorder = rec
        leg.recorder_used = True

    def _hangup_cmd(self, cmd: HangupCmd) -> None:
        leg = self.legs.get(cmd.call_id)
        if leg is None:
            self.reject(cmd.call_id, "unknown call_id", False, "Hangup")
            return
        if leg.local_end is not None:
            return  # already ending
        before = leg.state != LegState.ANSWERED
        self._hangup_customer(
            leg,
            LocalEnd(
                AttemptResult.CANCELLED if before else None,
                "local",
                cmd.reason or "hung up by dialer",
                True,
                before,
            ),
        )

    # ------------------------------------------------------------------ actions
    def _hangup_customer(self, leg: CustomerLeg, why: LocalEnd) -> None:
        if leg.local_end is None:
            leg.local_end = why
        call = leg.call
        if call is None:
            return
        if leg.state != LegState.ANSWERED and not leg.sip_call_id:
            try:
                leg.sip_call_id = call.getInfo().callIdString
            except pj.Error:
                leg.sip_call_id = ""
            if leg.sip_call_id:
                self.cancelling[leg.sip_call_id] = leg
        prm = pj.CallOpParam(True)
        try:
            call.hangup(prm)
        except pj.Error as exc:
            log.debug("node %d: hangup %s: %s", self.cfg.node_id, leg.call_id, exc.info())

    def _hangup_agent(self, a: AgentLeg) -> None:
        a.local_hangup = True
        call = a.call
        if call is None:
            return
        try:
            call.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            log.debug("node %d: agent hangup %s: %s", self.cfg.node_id, a.agent_call_id, exc.info())

    def _agent_failed(self, a: AgentLeg, code: int | None, reason: str) -> None:
        if a.failed_reported:
            return
        a.failed_reported = True
        if a.customer.agent is a:
            a.customer.agent = None
        if a.customer.state == LegState.ANSWERED and a.customer.local_end is None:
            self.emit(
                AgentLegFailed(
                    call_id=a.customer.call_id,
                    agent_call_id=a.agent_call_id,
                    sip_code=code,
                    reason=reason,
                )
            )

    def _amd_finished(self, leg: CustomerLeg, res: AmdResult) -> None:
        if leg.amd_verdict != AmdVerdict.NOT_RUN:
            return
        leg.amd_verdict = res.verdict
        port = leg.amd_port
        leg.amd_port = None
        if port is not None:
            port.done = True
            # free it (which detaches it from the bridge) from the owner loop, not a callback
            self.deferred.append([port].clear)
        self.emit(
            AmdDone(call_id=leg.call_id, verdict=res.verdict, took_ms=res.took_ms, cause=res.cause)
        )

    def _playback_finished(self, leg: CustomerLeg) -> None:
        cmd = leg.play_cmd
        self._stop_player(leg)
        self.emit(PlaybackDone(call_id=leg.call_id))
        if cmd is not None and cmd.hangup_after and leg.local_end is None:
            self._hangup_customer(leg, LocalEnd(None, "local", "message played", False, False))

    def _stop_player(self, leg: CustomerLeg) -> None:
        p = leg.player
        leg.player = None
        leg.play_cmd = None
        if p is not None:
            # never destroy a player inside its own EOF callback; here we are in the owner loop
            self.deferred.append([p].clear)

    def _release_media(self, leg: CustomerLeg) -> None:
        """Free the leg's media objects from the owner loop (never inside a pjsua2 callback).

        Deleting the recorder finalises its WAV header; deleting a port or player removes it
        from the conference bridge.
        """
        objs: list[Any] = [leg.amd_port, leg.player, leg.recorder]
        if leg.amd_port is not None:
            leg.amd_port.done = True
        leg.amd_port = None
        leg.player = None
        leg.play_cmd = None
        leg.recorder = None
        held = [o for o in objs if o is not None]
        if held:
            self.deferred.append(held.clear)

    # ------------------------------------------------------------------ pjsua2 callbacks
    def on_call_state(self, call: _Call) -> None:
        leg = call.leg
        try:
            ci = call.getInfo()
        except pj.Error:
            return
        if isinstance(leg, AgentLeg):
            self._on_agent_state(call, leg, ci)
        else:
            self._on_customer_state(call, leg, ci)

    def _on_customer_state(self, call: _Call, leg: CustomerLeg, ci: pj.CallInfo) -> None:
        now = time.monotonic()
        st = ci.state
        if st == pj.PJSIP_INV_STATE_EARLY:
            code = int(ci.lastStatusCode)
            if leg.state == LegState.DIALING:
                leg.state = LegState.EARLY
            if code in (180, 181, 182, 183) and leg.t_first_18x is None:
                leg.t_first_18x = now
            # early media: a provisional answer carrying SDP (183 Session Progress usually)
            early = code == 183 or bool(
                ci.media and ci.media[0].status == pj.PJSUA_CALL_MEDIA_ACTIVE
            )
            if not leg.ringing_reported or (early and not leg.early_media):
                leg.ringing_reported = True
                leg.early_media = early or leg.early_media
                if leg.local_end is None:
                    self.emit(
                        CallRinging(call_id=leg.call_id, early_media=leg.early_media, sip_code=code)
                    )
        elif st in (pj.PJSIP_INV_STATE_CONNECTING, pj.PJSIP_INV_STATE_CONFIRMED):
            leg.saw_200 = True
            if leg.state in (LegState.DIALING, LegState.EARLY):
                leg.state = LegState.ANSWERED
                leg.t_answer = now
                if leg.local_end is not None and leg.local_end.before_answer:
                    return  # 200 crossed our CANCEL: PJSIP ACKs and BYEs it; reported at the end
                self.emit(CallAnswered(call_id=leg.call_id))
                if leg.cmd.record_path:
                    leg.record_path = leg.cmd.record_path
                if leg.cmd.amd is not None:
                    leg.amd = AmdAnalyzer(leg.cmd.amd)
                if leg.media_up:
                    self._media_answered(leg)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            leg.stats = leg.stats if leg.stats != (0, 0) else self._stats(call)
            leg.call = None  # the only reference: the Call goes away with this callback
            self._customer_ended(leg, ci, now)

    def _customer_ended(self, leg: CustomerLeg, ci: pj.CallInfo, now: float) -> None:
        if leg.state == LegState.ENDED:
            return
        answered = leg.t_answer is not None
        code = int(ci.lastStatusCode) or None
        le = leg.local_end
        ring_s = None
        if leg.t_first_18x is not None:
            ring_s = round((leg.t_answer or now) - leg.t_first_18x, 3)
        talk_s = round(now - leg.t_answer, 3) if leg.t_answer is not None else None
        crossed = bool(le is not None and le.before_answer and (answered or leg.saw_200))
        if crossed:
            assert le is not None
            result = le.result or AttemptResult.CANCELLED
            ev = CallEnded(
                call_id=leg.call_id,
                result=result,
                sip_code=200,
                reason=f"{le.reason}; 200 OK crossed the CANCEL (ACK+BYE sent)",
                hangup_by=le.hangup_by,
                ring_s=ring_s,
                talk_s=talk_s,
                retryable=le.retryable,
                answered_after_cancel=True,
            )
        elif not answered:
            if le is not None:
                result = le.result or AttemptResult.CANCELLED
                ev = CallEnded(
                    call_id=leg.call_id,
                    result=result,
                    sip_code=code,
                    reason=le.reason,
                    hangup_by=le.hangup_by,
                    ring_s=ring_s,
                    talk_s=None,
                    retryable=le.retryable,
                )
            else:
                result, retryable = classify_failure(
                    code, got_provisional=leg.t_first_18x is not None or leg.state == LegState.EARLY
                )
                ev = CallEnded(
                    call_id=leg.call_id,
                    result=result,
                    sip_code=code,
                    reason=str(ci.lastReason),
                    hangup_by="remote",
                    ring_s=ring_s,
                    talk_s=None,
                    retryable=retryable,
                )
        else:
            if leg.ever_bridged:
                result = AttemptResult.CONNECTED
            elif leg.amd_verdict == AmdVerdict.MACHINE:
                result = AttemptResult.MACHINE
            else:
                result = AttemptResult.ABANDONED
            ev = CallEnded(
                call_id=leg.call_id,
                result=result,
                sip_code=200,
                reason=le.reason if le else "callee hung up",
                hangup_by=le.hangup_by if le else "remote",
                ring_s=ring_s,
                talk_s=talk_s,
                retryable=False,
            )
        a = leg.agent
        agent_stats = (0, 0)
        if a is not None:
            # the agent leg is still up here: read its counters before it is hung up
            agent_stats = a.stats if a.stats != (0, 0) or a.call is None else self._stats(a.call)
            if a.call is not None:
                self.deferred.append(lambda: self._hangup_agent(a))
        leg.state = LegState.ENDED
        self._release_media(leg)
        rx, tx = leg.stats
        media = MediaStats(
            rx_packets=rx,
            tx_packets=tx,
            agent_rx_packets=agent_stats[0],
            agent_tx_packets=agent_stats[1],
        )
        ev = _with_media(ev, media)
        if (
            le is not None
            and le.before_answer
            and not answered
            and leg.sip_call_id
            and leg.cancel_final is None
            and not self.stopping
        ):
            # wait for the INVITE's final answer: a 200 may still cross our CANCEL
            leg.held_end = ev
            leg.held_until = now + CANCEL_GRACE_S
            self.held[leg.call_id] = leg
            return
        if leg.record_path and leg.recorder_used:
            # PJSIP 2.15 removes conference ports asynchronously: the WAV header is written
            # on the media thread shortly after the recorder is deleted. Report the end once
            # the file is final, so the dialer can hand the recording on at CallEnded.
            self.awaiting_recording.append((now + RECORDING_FINALISE_S, leg, ev))
            return
        self._emit_end(leg, ev)

    def _emit_end(self, leg: CustomerLeg, ev: CallEnded) -> None:
        self.legs.pop(leg.call_id, None)
        self.held.pop(leg.call_id, None)
        if leg.sip_call_id:
            self.cancelling.pop(leg.sip_call_id, None)
        le = leg.local_end
        if leg.saw_200 and le is not None and le.before_answer and not ev.answered_after_cancel:
            ev = dataclasses.replace(
                ev,
                sip_code=200,
                reason=f"{le.reason}; 200 OK crossed the CANCEL (ACK+BYE sent)",
                answered_after_cancel=True,
            )
        self.emit(ev)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "node %d: call %s ended %s code=%s by=%s",
                self.cfg.node_id,
                leg.call_id,
                ev.result.value,
                ev.sip_code,
                ev.hangup_by,
            )

    def _on_agent_state(self, call: _Call, a: AgentLeg, ci: pj.CallInfo) -> None:
        st = ci.state
        if st == pj.PJSIP_INV_STATE_EARLY:
            a.state = LegState.EARLY
        elif st == pj.PJSIP_INV_STATE_CONFIRMED:
            if a.state != LegState.ANSWERED:
                a.state = LegState.ANSWERED
                if a.local_hangup or a.failed_reported or a.customer.agent is not a:
                    self.deferred.append(lambda: self._hangup_agent(a))
                    return
                self._try_connect(a)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            if a.stats == (0, 0):
                a.stats = self._stats(call)
            a.call = None
            prev = a.state
            a.state = LegState.ENDED
            self.agents.pop(a.agent_call_id, None)
            cust = a.customer
            if a.bridged:
                if (
                    cust.state == LegState.ANSWERED
                    and cust.local_end is None
                    and not a.local_hangup
                ):
                    self.deferred.append(
                        lambda: self._hangup_customer(
                            cust, LocalEnd(None, "local", "agent hung up", False, False)
                        )
                    )
            elif not a.failed_reported and prev != LegState.ANSWERED:
                code = int(ci.lastStatusCode) or None
                self._agent_failed(a, code, str(ci.lastReason) or "agent leg failed")
            elif not a.failed_reported:
                self._agent_failed(a, int(ci.lastStatusCode) or None, "agent hung up before bridge")

    def on_media_state(self, call: _Call) -> None:
        leg = call.leg
        try:
            ci = call.getInfo()
        except pj.Error:
            return
        active = any(
            m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
            for m in ci.media
        )
        if not active:
            return
        if isinstance(leg, AgentLeg):
            if leg.state == LegState.ANSWERED:
                self._try_connect(leg)
            return
        if not leg.media_up:
            leg.media_up = True
            if leg.state == LegState.ANSWERED and leg.local_end is None:
                self._media_answered(leg)

    def _media_answered(self, leg: CustomerLeg) -> None:
        """Customer answered and its media is up: start AMD and the recorder."""
        call = leg.call
        if call is None:
            return
        if leg.amd is not None and leg.amd_port is None and leg.amd_verdict == AmdVerdict.NOT_RUN:
            port = _AmdPort(leg.call_id, leg.amd, self.media_q, self.waker)
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
            try:
                port.createPort(f"amd-{leg.call_id}"[:30], fmt)
                call.getAudioMedia(-1).startTransmit(port)
            except pj.Error as exc:
                log.warning("node %d: AMD port failed for call: %s", self.cfg.node_id, exc.info())
                self._amd_finished(leg, leg.amd.timeout())
            else:
                leg.amd_port = port
                leg.amd_started = time.monotonic()
        self._attach_recorder(leg)

    def _try_connect(self, a: AgentLeg) -> None:
        """Both legs answered with media: connect them both ways in the conference bridge."""
        cust = a.customer
        if a.bridged or a.call is None or cust.call is None or cust.agent is not a:
            return
        try:
            cam = cust.call.getAudioMedia(-1)
            aam = a.call.getAudioMedia(-1)
        except pj.Error:
            return  # agent media not active yet; on_media_state retries
        now = time.monotonic()
        try:
            if cust.player is not None:
                cust.player.stopTransmit(cam)
            cam.startTransmit(aam)
            aam.startTransmit(cam)
            if cust.recorder is not None:
                aam.startTransmit(cust.recorder)
        except pj.Error as exc:
            self._agent_failed(a, None, f"bridge failed: {exc.info()}")
            self.deferred.append(lambda: self._hangup_agent(a))
            return
        a.bridged = True
        cust.ever_bridged = True
        self.emit(AgentLegAnswered(call_id=cust.call_id, agent_call_id=a.agent_call_id))
        latency = (now - cust.t_answer) * 1000 if cust.t_answer is not None else 0.0
        self.emit(
            CallBridged(
                call_id=cust.call_id, agent_call_id=a.agent_call_id, latency_ms=round(latency, 3)
            )
        )

    @staticmethod
    def _stats(call: _Call) -> tuple[int, int]:
        try:
            st = call.getStreamStat(0)
            return int(st.rtcp.rxStat.pkt), int(st.rtcp.txStat.pkt)
        except pj.Error:
            return (0, 0)


def _with_transport(uri: str, transport: str) -> str:
    """Add ``;transport=tcp|tls`` to a URI unless it is UDP or already says so."""
    if transport == "udp" or ";transport=" in uri.lower():
        return uri
    return f"{uri};transport={transport}"


def _wav_finalised(path: str) -> bool:
    """True once a WAV's RIFF size field is filled in (PJSIP writes 0 until it closes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return True  # nothing to wait for
    return len(head) == 8 and head[:4] == b"RIFF" and head[4:8] != b"\0\0\0\0"


def _with_media(ev: CallEnded, media: MediaStats) -> CallEnded:
    return dataclasses.replace(ev, media=media)


class _ProbeCall(pj.Call):
    def __init__(self, acc: pj.Account) -> None:
        super().__init__(acc)
        self.ended = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.ended = True
        except pj.Error:
            self.ended = True


def _busy_reply(data: bytes) -> bytes | None:
    """Answer a probe INVITE with 486 (copying the headers a response must echo)."""
    try:
        text = data.decode("utf-8", "replace")
    except Exception:  # pragma: no cover - decode with replace cannot fail
        return None
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    if not lines or not lines[0].startswith("INVITE "):
        return None
    keep: list[str] = []
    for line in lines[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            keep.append(line)
        elif name in ("to", "t"):
            keep.append(line + ";tag=probe")
    return (
        "SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _reader(sock: socket.socket, out: queue.SimpleQueue, waker: Waker) -> None:
    try:
        while True:
            msg = recv_frame_blocking(sock)
            if msg is None:
                break
            out.put(msg)
            waker.wake()
    except (OSError, ProtocolError) as exc:
        log.warning("node: pool channel closed: %s", exc)
    out.put(None)
    waker.wake()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="dialer SIP node (one pjsua2 endpoint)")
    ap.add_argument("--connect", required=True, help="pool channel HOST:PORT")
    ap.add_argument("--config", required=True, help="NodeConfig as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = NodeConfig.from_json(json.loads(args.config))
    host, port = args.connect.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    node = Node(cfg, sock)
    try:
        node.start()
    except Exception as exc:
        node.send({"kind": "error", "error": f"node start failed: {exc}"})
        raise
    node.say_hello()
    threading.Thread(
        target=_reader, args=(sock, node.cmds, node.waker), name="pool-reader", daemon=True
    ).start()
    node.run()
    node.send({"kind": "bye"})
    with contextlib.suppress(OSError):
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
