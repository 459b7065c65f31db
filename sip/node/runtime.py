"""The node process: endpoint start and shutdown, the owner loop, timers, and ``main``.

The process's main thread is the pjsua2 owner thread (docs/sip.md, "Node internals"): it
creates the Endpoint with ``threadCnt=0`` / ``mainThreadOnly=True`` and loops on
``libHandleEvents``; a reader thread only decodes pool frames into a queue and wakes the loop.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import queue
import random
import socket
import sys
import threading
import time
from typing import Any

import pjsua2 as pj

from common.vocabulary import AmdVerdict
from sip.api import DtmfReceived, from_wire
from sip.config import NodeConfig, TrunkConfig
from sip.legs import (
    LegState,
    RxWatch,
    agent_media_timeout_end,
    media_timeout_end,
    shutdown_end,
)
from sip.node.capacity import probe_capacity
from sip.node.commands import NodeCommands
from sip.node.objects import LogWriter, NodeAccount, Waker
from sip.protocol import ProtocolError, recv_frame_blocking

log = logging.getLogger("sip.node")

#: libHandleEvents wait while the node has anything live. Commands and media results do not
#: wait for it (their producers wake the loop, see Waker) and pjsip's own timers are kept by
#: libHandleEvents itself: it only bounds the resolution of the node's timers (ring, answer,
#: AMD and re-INVITE timeouts, slot retries), where 100 ms is far below what they measure.
#: It was 20 ms: 50 idle Python passes a second cost a node ~0.5 % of a core, about a third
#: of what a bridged call costs (docs/capacity.md).
POLL_MS = 100
#: the wait with nothing live on the node: only a command (the waker) or pjsip has work
IDLE_POLL_MS = 1000
#: how often answered legs' RTP rx counters are read (the media timeout's resolution)
MEDIA_POLL_S = 1.0
#: media states in which the far end legitimately sends no RTP (the watch pauses)
_HOLD = frozenset({pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD})


class Node(NodeCommands):
    """The owner-thread runtime of one node process."""

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

    @functools.cached_property
    def rtp_port_start(self) -> int:
        """The first RTP port this node's calls try: `rtp_port` when set, else random."""
        return self.cfg.rtp_port or random.randrange(16384, 32768 - 64, 2)

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        # one owner thread for everything pjsua2 (docs/sip.md): no worker threads of its own
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = self.cfg.capacity_probe_limit
        ep_cfg.uaConfig.userAgent = self.cfg.user_agent
        # level 4 + message logging feed LogWriter (the crossed-200 detection); the console
        # only gets what pjsip_log_level asks for
        # PJSIP errors (level 1) always reach the node's output
        self._log_writer = LogWriter(self.cancelling, max(1, self.cfg.pjsip_log_level))
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
        self.capacity = probe_capacity(
            ep, self.accounts[None], self.cfg.bind_address, self.cfg.capacity_probe_limit
        )

    def _make_account(self, trunk: TrunkConfig | None) -> NodeAccount:
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
            if self.cfg.session_expires_s:
                # RFC 4028 session timer on the trunk's calls: refreshed at half the interval;
                # a refresh the far end no longer answers ends a call whose BYE was lost
                acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
                acfg.callConfig.timerSessExpiresSec = self.cfg.session_expires_s
                acfg.callConfig.timerMinSESec = 90
        acfg.mediaConfig.lockCodecEnabled = False
        # PJSIP's default start is port 4000 in every process: nodes (and concurrent runs on
        # one host) would hand each other's just-freed ports to new calls, and a far end
        # still sending to the old call's port then feeds the new one (symmetric RTP follows
        # it). A random even start in 16384-32767 (the usual RTP range, below Linux's
        # ephemeral ports) makes that reuse rare; a port in use is skipped by PJSIP.
        acfg.mediaConfig.transportConfig.port = self.rtp_port_start
        acfg.mediaConfig.transportConfig.boundAddress = self.cfg.bind_address
        acc = NodeAccount(self, trunk)
        acc.create(acfg, True)
        return acc

    def shutdown(self) -> None:
        """Safe order: hang up all, pump until no call is left, delete media, then libDestroy."""
        ep = self.ep
        if ep is None:
            return
        for leg in list(self.legs.values()):
            leg.mark_local_end(shutdown_end(answered=leg.state == LegState.ANSWERED))
        for leg in list(self.held.values()):
            if leg.held_end is not None:
                self._emit_end(leg, leg.held_end)
        with contextlib.suppress(pj.Error):
            ep.hangupAllCalls()
        deadline = time.monotonic() + 5
        while (
            self.legs or self.agents or self.listens or self.incoming
        ) and time.monotonic() < deadline:
            ep.libHandleEvents(10)
            self._run_deferred()
            self._flush_recordings(time.monotonic())
        for leg in list(self.legs.values()):
            self.controls_ended(leg)
            self._release_media(leg)
            leg.call = None
        self._run_deferred()
        self.incoming.clear()
        for a in self.agents.values():
            a.call = None
        for x in self.listens.values():
            x.call = None
        self.listens.clear()
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
            self.ep.libHandleEvents(POLL_MS if self._busy() else IDLE_POLL_MS)
            self.waker.clear()
            self._drain_commands()
            self._drain_media()
            self._run_deferred()
            self._timers()
            # after callbacks and deferred hangups: pjsua has destroyed what it will destroy now
            self.report_slots()
            if self.stopping:
                break
        self.shutdown()

    def _busy(self) -> bool:
        """Whether any node timer may come due: anything live, pending or still held."""
        return bool(
            self.legs
            or self.agents
            or self.listens
            or self.incoming
            or self.held
            or self.cancelling
            or self.deferred
            or self.pending_originates
            or self.awaiting_recording
            or self._held_sent
            or self.slots.live_calls()
        )

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
            why = leg.due_timeout(now, call_placed=leg.call is not None)
            if why is not None:
                self._hangup_customer(leg, why)
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
            if a is not None and a.answer_timed_out(now, a.cmd.answer_timeout_s):
                self._agent_failed(
                    a, None, f"agent did not answer within {a.cmd.answer_timeout_s:g}s"
                )
                self._hangup_agent(a)
        for leg in list(self.held.values()):
            if leg.held_end is not None and (leg.cancel_final is not None or now >= leg.held_until):
                self._emit_end(leg, leg.held_end)
        self._flush_recordings(now)
        self.control_timers(now)  # listen legs' answer timeouts, unanswered re-INVITEs
        if now >= self._next_media_poll:
            self._next_media_poll = now + MEDIA_POLL_S
            self._check_media(now)
        # originates waiting for a slot that is still closing its transaction
        for _ in range(len(self.pending_originates)):
            leg = self.pending_originates.popleft()
            self._place(leg)

    _next_media_poll: float = 0.0

    def _check_media(self, now: float) -> None:
        """Hang up answered legs that received no RTP for ``media_timeout_s`` (dead calls)."""
        limit = self.cfg.media_timeout_s
        if not limit:
            return
        for leg in list(self.legs.values()):
            if leg.state != LegState.ANSWERED or leg.local_end is not None or leg.call is None:
                continue
            rx = self._rx(leg.call)
            if rx is None:
                continue
            if leg.rx_watch is None:
                leg.rx_watch = RxWatch(limit)
            if leg.rx_watch.observe(rx[0], now, receiving=rx[1]):
                log.warning(
                    "node %d: call %s: no media for %g s, hanging up",
                    self.cfg.node_id,
                    leg.call_id,
                    limit,
                )
                # a dialog without media for this long is dead: its BYE most likely goes
                # unanswered, so it gets a short transaction timeout (sip.node.slots)
                self._hangup_customer(leg, media_timeout_end(limit), dead=True)
                continue
            a = leg.agent
            if a is None or not a.bridged or a.call is None or a.local_hangup:
                continue
            arx = self._rx(a.call)
            if arx is None:
                continue
            if a.rx_watch is None:
                a.rx_watch = RxWatch(limit)
            if a.rx_watch.observe(arx[0], now, receiving=arx[1]):
                log.warning(
                    "node %d: call %s: agent leg %s has no media for %g s, ending the call",
                    self.cfg.node_id,
                    leg.call_id,
                    a.agent_call_id,
                    limit,
                )
                # marked first: the customer's CallEnded (sent inside its hangup) must
                # already count the dead agent leg's slot as held
                self._mark_dead(a.call)
                self._hangup_customer(leg, agent_media_timeout_end(limit))
                self._hangup_agent(a, dead=True)

    @staticmethod
    def _rx(call: Any) -> tuple[int, bool] | None:
        """(RTP packets received, not on hold) of a call; None when unknown."""
        try:
            ci = call.getInfo()
        except pj.Error:
            return None
        try:
            rx = int(call.getStreamStat(0).rtcp.rxStat.pkt)
        except pj.Error:
            rx = 0  # no stream (no media negotiated): nothing is received either
        held = bool(ci.media) and ci.media[0].status in _HOLD
        return rx, not held

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


def _reader(
    sock: socket.socket, out: queue.SimpleQueue[dict[str, Any] | None], waker: Waker
) -> None:
    """The pool-reader thread: decode frames, queue them, wake the owner loop (no pjsua2)."""
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
