"""The node's command handlers: Originate, Bridge, Play, StartRecording, Hangup.

Commands arrive from the pool through the reader thread's queue and run on the owner loop
(docs/sip.md, "Node internals"), so they may call pjsua2 directly. A command that cannot run
is answered with ``CommandRejected``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pjsua2 as pj

from sip.api import Bridge, CallTrying, Originate, Play, StartRecording
from sip.api import Hangup as HangupCmd
from sip.api_controls import CONTROL_COMMANDS
from sip.legs import (
    PJ_ETOOMANY,
    LegState,
    dialer_hangup_end,
    makecall_retryable,
    retry_makecall,
)
from sip.node.controls import NodeControls
from sip.node.objects import AgentLeg, CustomerLeg, NodeCall, Player, pj_status

#: how long the node retries a makeCall that hit PJ_ETOOMANY (slot still closing its transaction)
ETOOMANY_RETRY_S = 1.0
#: the same for an agent leg: short, the 2-second abandon clock is running
AGENT_ETOOMANY_RETRY_S = 0.3


class NodeCommands(NodeControls):
    """The command side of a node (see the module docstring).

    It builds on the callback side because every Call it places reports back to it.
    """

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
        elif isinstance(cmd, CONTROL_COMMANDS):
            self.handle_control(cmd)  # hold, DTMF, listen-in: sip.node.controls
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
            self.emit(leg.cancelled_before_invite())
            return
        if not self.room_for(leg):
            # no pjsua slot for this call and its agent yet: wait as for PJ_ETOOMANY
            self._no_slot(leg, PJ_ETOOMANY)
            return
        acc = self.accounts[cmd.trunk]
        call = NodeCall(self, acc, leg)
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
            if leg.state == LegState.ENDED:
                # PJSIP disconnected the call inside makeCall (e.g. an unresolvable host) and
                # its CallEnded is out: raising afterwards must not add a second final event
                self.legs.pop(leg.call_id, None)
                return
            status = pj_status(exc)
            if status == PJ_ETOOMANY:
                self._no_slot(leg, status)
                return
            self.legs.pop(leg.call_id, None)
            self.reject(
                leg.call_id,
                f"makeCall failed: {exc.info()}",
                makecall_retryable(status),
                "Originate",
            )
            return
        if leg.state == LegState.DIALING and leg.call is not None:
            self.emit(CallTrying(call_id=leg.call_id, node=f"node-{self.cfg.node_id}"))

    def _no_slot(self, leg: CustomerLeg, status: int) -> None:
        """No pjsua slot for the call yet: try again for ``ETOOMANY_RETRY_S`` (a slot closing
        its transaction), then hand the Originate back as ``full``."""
        if retry_makecall(status, time.monotonic(), leg.retry_until, self.stopping):
            self.pending_originates.append(leg)
            return
        self.legs.pop(leg.call_id, None)
        # the node is full, neither the trunk nor the lead is at fault: ``full`` lets the pool
        # place the call on another node (or refuse it as retryable "pool full")
        self.reject(
            leg.call_id,
            f"node-{self.cfg.node_id} full: no free pjsua call slot (PJ_ETOOMANY)",
            True,
            "Originate",
            full=True,
        )

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
        now = time.monotonic()
        a = AgentLeg(agent_call_id=cmd.agent_call_id, customer=leg, cmd=cmd, t_start=now)
        leg.agent = a
        self.agents[a.agent_call_id] = a
        self._place_agent(a, time.monotonic() + AGENT_ETOOMANY_RETRY_S)

    def _place_agent(self, a: AgentLeg, retry_until: float) -> None:
        if a.customer.agent is not a or a.customer.state != LegState.ANSWERED:
            self.agents.pop(a.agent_call_id, None)
            return
        call = NodeCall(self, self.accounts[a.cmd.trunk], a)
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
            if retry_makecall(pj_status(exc), time.monotonic(), retry_until):
                self.deferred.append(lambda: self._place_agent(a, retry_until))
                return
            self.agents.pop(a.agent_call_id, None)
            status = pj_status(exc)
            if status == PJ_ETOOMANY:
                # the agent leg must share the customer's conference bridge, so it cannot go
                # to another node; the pool's slot accounting (docs/trunks.md) prevents this
                self.report_slots()
                self._agent_failed(a, None, "no free pjsua call slot on the node (PJ_ETOOMANY)")
                return
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
        player = Player(cmd.call_id, self.media_q, self.waker)
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

    def _hangup_cmd(self, cmd: HangupCmd) -> None:
        leg = self.legs.get(cmd.call_id)
        if leg is None:
            self.reject(cmd.call_id, "unknown call_id", False, "Hangup")
            return
        if leg.local_end is not None:
            return  # already ending
        self._hangup_customer(
            leg, dialer_hangup_end(cmd.reason, answered=leg.state == LegState.ANSWERED)
        )
