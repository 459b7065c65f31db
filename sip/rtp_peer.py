"""Test and benchmark phones' media: loopback RTP endpoints that talk and count (no pjsua2).

The SIPp test phone (sip/scenarios/phone.xml) answers calls with an SDP naming one of these
endpoints' ports, so a test measures each direction of each leg itself:

* received: audio packets, their mean level (decoded PCMU, so "hears a tone" and "hears
  silence" are told apart), the time of the first one, RFC 2833 telephone-events (digits);
* sent: 20 ms PCMU packets, silence or a 1 kHz tone (``talk(True)``), once the far end's
  address is known - from its first packet (symmetric RTP, as the node sends first on a
  bridged call) - and only while the node's packets keep coming
  (the node sends on every live leg, so a second without them means the call ended).

One :class:`RtpHub` thread serves many endpoints (the monitor benchmark runs 60).
"""

from __future__ import annotations

import math
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from sip.sipp import free_media_port

PCMU = 0
_FRAME = 160  # 20 ms at 8 kHz
_RFC2833_EVENTS = "0123456789*#ABCD"


def _ulaw_decode(b: int) -> int:
    b = ~b & 0xFF
    sign, exp, mant = b & 0x80, (b >> 4) & 7, b & 0x0F
    s = (((mant << 3) + 0x84) << exp) - 0x84
    return -s if sign else s


_ULAW = [_ulaw_decode(i) for i in range(256)]


def _ulaw_encode(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exp = 7
    for e in range(7, -1, -1):
        if sample & (0x4000 >> (7 - e)):
            exp = e
            break
    mant = (sample >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


SILENCE = bytes([0xFF]) * _FRAME
#: a packet whose mean level is above this carries sound
VOICED = 300.0
#: another source takes over an endpoint once its current one was quiet this long
_SWITCH_AFTER_S = 0.2
#: an endpoint that received nothing this long stops sending (its call ended)
IDLE_STOP_S = 1.0
#: a 1 kHz tone at about -10 dBFS, exactly 20 periods per packet
TONE = bytes(_ulaw_encode(int(10000 * math.sin(2 * math.pi * i / 8))) for i in range(_FRAME))


def level(payload: bytes) -> float:
    """Mean absolute sample value of a PCMU payload."""
    return sum(abs(_ULAW[b]) for b in payload) / max(1, len(payload))


@dataclass
class Window:
    """What one endpoint received since its window was last reset."""

    packets: int = 0
    level_sum: float = 0.0

    @property
    def level(self) -> float:
        return self.level_sum / self.packets if self.packets else 0.0


@dataclass(eq=False)
class RtpPeer:
    """One endpoint (see the module doc); create it with :meth:`RtpHub.peer`."""

    sock: socket.socket
    port: int
    remote: tuple[str, int] | None = None
    talking: bool = False
    sending: bool = True
    rx_audio: int = 0
    #: audio packets carrying sound (level above VOICED), not the silence a bridge port with
    #: no source sends (the node runs without VAD, so RTP never stops on an answered leg)
    rx_voiced: int = 0
    tx: int = 0
    first_rx_mono: float | None = None
    last_rx_mono: float = 0.0
    window: Window = field(default_factory=Window)
    #: telephone-event digits, once per event (its RTP timestamp)
    digits: list[str] = field(default_factory=list)
    _event_ts: set[int] = field(default_factory=set)
    _remote_rx_mono: float = 0.0
    _seq: int = 0
    _ts: int = 0
    _ssrc: int = 0

    def talk(self, on: bool) -> None:
        self.talking = on

    def hang_up(self) -> None:
        """Stop sending, as a phone does after its BYE (what arrives is still counted)."""
        self.sending = False

    def reset_window(self) -> None:
        self.window = Window()

    def _on_packet(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return  # RTCP (port+1 is not ours) or garbage
        pt = data[1] & 0x7F
        if addr == self.remote:
            self._remote_rx_mono = now
        elif self.remote is None or now - self._remote_rx_mono > _SWITCH_AFTER_S:
            # a new call on this phone comes from a new node port once the last one went
            # quiet: answer there, as a phone with symmetric RTP does
            self.remote = addr
            self._remote_rx_mono = now
        self.last_rx_mono = now
        payload = data[12 + 4 * (data[0] & 0x0F) :]
        if pt == PCMU:
            self.rx_audio += 1
            if self.first_rx_mono is None:
                self.first_rx_mono = now
            lv = level(payload)
            self.rx_voiced += lv > VOICED
            self.window.packets += 1
            self.window.level_sum += lv
        elif 96 <= pt <= 127 and len(payload) >= 4:
            ts = struct.unpack("!I", data[4:8])[0]
            if ts not in self._event_ts and payload[0] < len(_RFC2833_EVENTS):
                self._event_ts.add(ts)
                self.digits.append(_RFC2833_EVENTS[payload[0]])

    def _send(self, now: float) -> None:
        if self.remote is None or not self.sending:
            return
        if now - self.last_rx_mono > IDLE_STOP_S:
            # the node sends on every live leg (no VAD): silence this long means the call is
            # gone; a stale sender would reach the next call given that node port (the node's
            # symmetric RTP follows it), also in other processes sharing the machine
            return
        hdr = struct.pack("!BBHII", 0x80, PCMU, self._seq & 0xFFFF, self._ts & 0xFFFFFFFF,
                          self._ssrc)
        self._seq += 1
        self._ts += _FRAME
        try:
            self.sock.sendto(hdr + (TONE if self.talking else SILENCE), self.remote)
            self.tx += 1
        except OSError:
            pass


class RtpHub:
    """One thread sending every 20 ms for all its endpoints and reading what arrives."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.peers: list[RtpPeer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-hub", daemon=True)

    def __enter__(self) -> RtpHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def peer(self) -> RtpPeer:
        """A new endpoint on a free even port (its RTCP port + 1 is left alone)."""
        for _ in range(20):
            port = free_media_port(self.host)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((self.host, port))
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            p = RtpPeer(sock=s, port=port, _ssrc=port * 7919 & 0xFFFFFFFF)
            with self._lock:
                self.peers.append(p)
            return p
        raise OSError("no free RTP port")

    def drop(self, *peers: RtpPeer) -> None:
        """Close endpoints whose calls ended: a phone stops sending after the BYE (a stale
        sender would reach the next call given the same node port, and PJSIP's symmetric RTP
        would follow it)."""
        with self._lock:
            for p in peers:
                if p in self.peers:
                    self.peers.remove(p)
                    p.sock.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        with self._lock:
            for p in self.peers:
                p.sock.close()
            self.peers.clear()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                peers = list(self.peers)
            socks = {p.sock: p for p in peers}
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                ready, _, _ = select.select(list(socks), [], [], timeout) if socks else (
                    [], [], [])
            except (OSError, ValueError):
                ready = []
            if not socks:
                time.sleep(timeout)
            now = time.monotonic()
            for s in ready:
                for _ in range(50):
                    try:
                        data, addr = s.recvfrom(2048)
                    except (BlockingIOError, OSError):
                        break
                    socks[s]._on_packet(data, addr, now)
            if now >= next_tick:
                for p in peers:
                    p._send(now)
                next_tick += 0.02
                if now - next_tick > 0.2:  # fell far behind (a loaded machine): catch up
                    next_tick = now + 0.02
