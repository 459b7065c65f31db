"""The capacity probe: how many concurrent calls this PJSIP build allows.

pjsua2 exposes no way to read the effective PJSUA_MAX_CALLS (4 in the PyPI wheel, see
docs/sip.md), so the node measures it once at start, before it says hello to the pool.
"""

from __future__ import annotations

import socket
import time

import pjsua2 as pj

from sip.legs import PJ_ETOOMANY
from sip.node.objects import pj_status


class ProbeCall(pj.Call):
    def __init__(self, acc: pj.Account) -> None:
        super().__init__(acc)
        self.ended = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.ended = True
        except pj.Error:
            self.ended = True


def probe_capacity(ep: pj.Endpoint, acc: pj.Account, bind_address: str, limit: int) -> int:
    """Measure how many concurrent calls this PJSIP build allows (at most ``limit``).

    The node places media-less calls to a throw-away local UDP socket (no SIP stack, nothing
    leaves the host) until makeCall fails with PJ_ETOOMANY, then answers every INVITE with
    486 so the calls end at once. Counting successes gives the real limit of the running build.
    Runs on the owner thread (it pumps ``libHandleEvents``).
    """
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((bind_address, 0))
    sink.setblocking(False)
    port = sink.getsockname()[1]
    calls: list[ProbeCall] = []
    capacity = 0
    try:
        for _ in range(limit):
            c = ProbeCall(acc)
            prm = pj.CallOpParam(True)
            prm.opt.audioCount = 0
            prm.opt.videoCount = 0
            prm.opt.flag = pj.PJSUA_CALL_NO_SDP_OFFER
            try:
                c.makeCall(f"sip:capacity-probe@{bind_address}:{port}", prm)
            except pj.Error as exc:
                if pj_status(exc) != PJ_ETOOMANY:
                    raise
                break
            calls.append(c)
            capacity += 1
            if capacity % 32 == 0:  # keep bursts small for big builds (ioqueue limits)
                _pump(ep, sink, 0.05)
        deadline = time.monotonic() + 10
        while any(not c.ended for c in calls) and time.monotonic() < deadline:
            _pump(ep, sink, 0.02)
        # let the INVITE transactions release their slots
        _pump(ep, sink, 0.05)
    finally:
        sink.close()
    for c in calls:
        c.ended = True
    calls.clear()
    if capacity == 0:
        raise RuntimeError("capacity probe: not even one call could be placed")
    return capacity


def _pump(ep: pj.Endpoint, sink: socket.socket, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        ep.libHandleEvents(5)
        while True:
            try:
                data, addr = sink.recvfrom(65535)
            except BlockingIOError:
                break
            reply = busy_reply(data)
            if reply:
                sink.sendto(reply, addr)
        if time.monotonic() >= end:
            return


def busy_reply(data: bytes) -> bytes | None:
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
