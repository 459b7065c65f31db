"""The node's pjsua2 objects: Call/Account/media subclasses, the legs holding them, the waker.

Every class here forwards what PJSIP reports to the node (:mod:`sip.node.callbacks`) and
decides nothing itself; leg state and call-end rules live in :mod:`sip.legs`. Threading rules
(docs/sip.md, "Node internals"): callbacks of Call and Account run on the owner thread, media
callbacks (AMD frames, player EOF, RFC 2833 DTMF) on the media clock thread, so the latter only
put work on a queue and wake the owner loop.
"""

from __future__ import annotations

import contextlib
import queue
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from sip.amd import Analyzer
from sip.api import Bridge, CallEnded, Play, TrunkStatus
from sip.api_controls import Listen
from sip.config import TrunkConfig
from sip.legs import AgentCall, CustomerCall, RxWatch

if TYPE_CHECKING:
    from sip.node.callbacks import NodeCallbacks

#: (kind, customer call_id, payload) handed from media/reader threads to the owner loop
MediaItem = tuple[str, str, Any]

_DTMF_METHODS = {
    int(getattr(pj, "PJSUA_DTMF_METHOD_RFC2833", 0)): "rfc2833",
    int(getattr(pj, "PJSUA_DTMF_METHOD_SIP_INFO", 1)): "sip_info",
}
_RX_INVITE_RESPONSE = re.compile(r"RX \d+ bytes Response msg (\d{3})/INVITE/")
_CALL_ID_HDR = re.compile(r"^(?:Call-ID|i)\s*:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def pj_status(exc: BaseException) -> int:
    """The pj_status_t of a ``pj.Error`` (0 when it has none)."""
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


@dataclass(slots=True, kw_only=True)
class AgentLeg(AgentCall):
    """An agent leg with its pjsua2 Call (the only reference, dropped at DISCONNECTED)."""

    customer: CustomerLeg
    cmd: Bridge
    call: NodeCall | None = None
    stats: tuple[int, int] = (0, 0)
    #: RTP inactivity once bridged (None until then)
    rx_watch: RxWatch | None = None


@dataclass(slots=True, kw_only=True)
class TransferLeg(AgentLeg):
    """A new agent leg taking the call over (sip.node.controls); an ordinary agent leg once
    ``swapped`` in."""

    swapped: bool = False
    #: a warm transfer (TransferAgent.consult); ``consulting`` once the two agents talk
    consult: bool = False
    consulting: bool = False


@dataclass(slots=True, kw_only=True)
class CustomerLeg(CustomerCall):
    """A customer leg with its pjsua2 Call and media objects."""

    call: NodeCall | None = None
    media_up: bool = False
    amd: Analyzer | None = None
    amd_port: AmdPort | None = None
    amd_started: float | None = None
    player: Player | None = None
    play_cmd: Play | None = None
    recorder: pj.AudioMediaRecorder | None = None
    record_path: str | None = None
    agent: AgentLeg | None = None
    stats: tuple[int, int] = (0, 0)
    recorder_used: bool = False
    #: RTP inactivity once answered (None until then)
    rx_watch: RxWatch | None = None
    #: call controls (sip.node.controls): hold state and the supervisors' listen-in legs
    hold: HoldState | None = None
    listens: dict[str, ListenLeg] = field(default_factory=dict)
    #: a transfer's new agent leg until it is swapped in
    transfer: TransferLeg | None = None


@dataclass(slots=True, kw_only=True)
class HoldState:
    """A customer leg on hold (or being put on / taken off hold): sip.node.controls."""

    t_cmd: float
    #: "holding" (re-INVITE sent), "held", "resuming"
    phase: str = "holding"
    #: what the customer hears meanwhile (a looped player, or an idle tone generator: silence)
    source: Any = None


@dataclass(slots=True, kw_only=True)
class ListenLeg:
    """A supervisor's listen-in leg joined to a customer call (sip.node.controls)."""

    listen_call_id: str
    customer: CustomerLeg
    cmd: Listen
    mode: str
    t_start: float
    call: NodeCall | None = None
    answered: bool = False
    connected: bool = False
    ended: bool = False
    local_hangup: bool = False
    stats: tuple[int, int] = (0, 0)


class NodeCall(pj.Call):
    """pjsua2 Call forwarding callbacks to the node (runs on the owner thread)."""

    def __init__(
        self, node: NodeCallbacks, acc: pj.Account, leg: CustomerLeg | AgentLeg | ListenLeg
    ) -> None:
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


class AmdPort(pj.AudioMediaPort):
    """Receives the customer's audio frames; analysis runs here, results go to a queue."""

    def __init__(
        self,
        call_id: str,
        analyzer: Analyzer,
        out: queue.SimpleQueue[MediaItem],
        waker: Waker,
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


class Player(pj.AudioMediaPlayer):
    def __init__(self, call_id: str, out: queue.SimpleQueue[MediaItem], waker: Waker) -> None:
        super().__init__()
        self.call_id = call_id
        self.out = out
        self.waker = waker

    def onEof2(self) -> None:
        self.out.put(("eof", self.call_id, None))
        self.waker.wake()


class LogWriter(pj.LogWriter):
    """PJSIP log sink: forwards to stdout up to the configured level and watches for the
    final response to a cancelled INVITE.

    pjsua reports a call DISCONNECTED as soon as it is hung up while ringing; if the callee's
    200 OK crosses the CANCEL, PJSIP ACKs and BYEs it internally without any call callback.
    The message log (level 4) is the only place the wheel shows it, so the node reads it here.
    Runs on whichever thread logs: it only sets plain attributes.
    """

    def __init__(self, cancelling: dict[str, CustomerLeg], console_level: int) -> None:
        super().__init__()
        self.cancelling = cancelling
        self.console_level = console_level

    def write(self, entry: pj.LogEntry) -> None:
        msg = entry.msg
        if entry.level <= self.console_level:
            sys.stdout.write(msg if msg.endswith("\n") else msg + "\n")
            sys.stdout.flush()
        if not self.cancelling or "/INVITE/" not in msg:
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
        leg = self.cancelling.pop(cid.group(1), None)
        if leg is not None:
            leg.on_invite_final(code)


class IncomingCall(pj.Call):
    """An unsolicited incoming call, declined; dropped at DISCONNECTED like every Call."""

    def __init__(self, incoming: set[IncomingCall], acc: pj.Account, call_id: int) -> None:
        super().__init__(acc, call_id)
        self.incoming = incoming

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            done = self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED
        except pj.Error:
            done = True
        if done:
            self.incoming.discard(self)


class NodeAccount(pj.Account):
    def __init__(self, node: NodeCallbacks, trunk: TrunkConfig | None) -> None:
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


#: a CallEnded waiting for the recording's WAV header: (deadline, leg, event)
AwaitingRecording = tuple[float, CustomerLeg, CallEnded]
