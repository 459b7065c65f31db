"""pjsua2 callbacks of the node: call state, media state, unsolicited incoming calls.

They run on the owner thread but inside pjsua2 (which may re-enter: ``hangup`` inside
``onCallState``), so they only update leg state and queue work; anything that calls pjsua2
again is deferred to the owner loop (docs/sip.md, "Node internals"). What a state change
means for the call is decided in :mod:`sip.legs`.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import pjsua2 as pj

from common.vocabulary import AmdVerdict
from sip.amd import make_analyzer
from sip.api import AgentLegAnswered, CallAnswered, CallBridged, MediaStats
from sip.legs import CANCEL_GRACE_S, AgentFailure, LegState, LocalEnd
from sip.node.base import NodeBase
from sip.node.objects import (
    AgentLeg,
    AmdPort,
    CustomerLeg,
    IncomingCall,
    ListenLeg,
    NodeCall,
    TransferLeg,
)

log = logging.getLogger("sip.node")

#: upper bound on waiting for PJSIP to finalise a recording's WAV header after the call
RECORDING_FINALISE_S = 1.0


class NodeCallbacks(NodeBase):
    """The pjsua2 callback side of a node (see the module docstring)."""

    def decline_incoming(self, acc: pj.Account, pj_call_id: int) -> None:
        call = IncomingCall(self.incoming, acc, pj_call_id)
        self.incoming.add(call)
        log.warning("node %d: declined an incoming call", self.cfg.node_id)

        def decline() -> None:
            prm = pj.CallOpParam(True)
            prm.statusCode = 603
            if call in self.incoming:
                call.hangup(prm)

        self.deferred.append(decline)

    def on_call_state(self, call: NodeCall) -> None:
        leg = call.leg
        try:
            ci = call.getInfo()
        except pj.Error:
            return
        if isinstance(leg, ListenLeg):
            self.on_listen_state(call, leg, ci)  # type: ignore[attr-defined]  # node.controls
        elif isinstance(leg, TransferLeg) and not leg.swapped:
            self.on_transfer_state(call, leg, ci)  # type: ignore[attr-defined]  # node.controls
        elif isinstance(leg, AgentLeg):
            self._on_agent_state(call, leg, ci)
        else:
            self._on_customer_state(call, leg, ci)

    def _on_customer_state(self, call: NodeCall, leg: CustomerLeg, ci: pj.CallInfo) -> None:
        now = time.monotonic()
        st = ci.state
        if st == pj.PJSIP_INV_STATE_EARLY:
            media_active = bool(ci.media and ci.media[0].status == pj.PJSUA_CALL_MEDIA_ACTIVE)
            ringing = leg.on_provisional(int(ci.lastStatusCode), media_active, now)
            if ringing is not None:
                self.emit(ringing)
        elif st in (pj.PJSIP_INV_STATE_CONNECTING, pj.PJSIP_INV_STATE_CONFIRMED):
            if not leg.on_answered(now):
                return  # already answered, or a 200 that crossed our CANCEL (reported at the end)
            self.emit(CallAnswered(call_id=leg.call_id))
            if leg.cmd.record_path:
                leg.record_path = leg.cmd.record_path
            if leg.cmd.amd is not None:
                leg.amd = make_analyzer(leg.cmd.amd)
            if leg.media_up:
                self._media_answered(leg)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            leg.stats = leg.stats if leg.stats != (0, 0) else self._stats(call)
            leg.call = None  # the only reference: the Call goes away with this callback
            self._customer_ended(leg, ci, now)

    def _customer_ended(self, leg: CustomerLeg, ci: pj.CallInfo, now: float) -> None:
        ev = leg.on_disconnected(int(ci.lastStatusCode) or None, str(ci.lastReason), now)
        if ev is None:
            return  # already ended
        a = leg.agent
        agent_stats = (0, 0)
        if a is not None:
            # the agent leg is still up here: read its counters before it is hung up
            agent_stats = a.stats if a.stats != (0, 0) or a.call is None else self._stats(a.call)
            if a.call is not None:
                self.deferred.append(lambda: self._hangup_agent(a))
        self.controls_ended(leg)  # type: ignore[attr-defined]  # listen legs, hold music
        self._release_media(leg)
        rx, tx = leg.stats
        media = MediaStats(
            rx_packets=rx,
            tx_packets=tx,
            agent_rx_packets=agent_stats[0],
            agent_tx_packets=agent_stats[1],
        )
        ev = dataclasses.replace(ev, media=media)
        if leg.must_wait_for_invite_final(self.stopping):
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

    def _on_agent_state(self, call: NodeCall, a: AgentLeg, ci: pj.CallInfo) -> None:
        st = ci.state
        if st == pj.PJSIP_INV_STATE_EARLY:
            a.on_early()
        elif st == pj.PJSIP_INV_STATE_CONFIRMED:
            if a.on_confirmed():
                if a.local_hangup or a.failed_reported or a.customer.agent is not a:
                    self.deferred.append(lambda: self._hangup_agent(a))
                    return
                self._try_connect(a)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            if a.stats == (0, 0):
                a.stats = self._stats(call)
            a.call = None
            self.agents.pop(a.agent_call_id, None)
            cust = a.customer
            what = a.on_disconnected(
                int(ci.lastStatusCode) or None,
                str(ci.lastReason),
                customer_up=cust.answered_and_up,
            )
            if isinstance(what, LocalEnd):
                self.deferred.append(lambda: self._hangup_customer(cust, what))
            elif isinstance(what, AgentFailure):
                self._agent_failed(a, what.sip_code, what.reason)

    def on_media_state(self, call: NodeCall) -> None:
        leg = call.leg
        try:
            ci = call.getInfo()
        except pj.Error:
            return
        if self.controls_media(call, leg, ci):  # type: ignore[attr-defined]  # node.controls
            return  # a listen-in leg, or a hold/resume re-INVITE's answer
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
            if leg.answered_and_up:
                self._media_answered(leg)

    def _media_answered(self, leg: CustomerLeg) -> None:
        """Customer answered and its media is up: start AMD and the recorder."""
        call = leg.call
        if call is None:
            return
        if leg.amd is not None and leg.amd_port is None and leg.amd_verdict == AmdVerdict.NOT_RUN:
            port = AmdPort(leg.call_id, leg.amd, self.media_q, self.waker)
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
