"""The node's call controls: hold / resume, DTMF to the customer, supervisors' listen-in legs,
the agent-leg swap of a transfer.

Runs on the owner thread like the other command handlers (docs/sip.md, "Node internals");
what the commands mean is in :mod:`sip.api_controls` and docs/call-controls.md.

Size: one mixin keeps every call control's pjsua2 glue next to the one function that wires
the bridge for all of them (hold, listen-in and transfer legs change the same connections);
split it by control if another one is added.

Media: one function, :meth:`NodeControls.wire`, decides every conference-bridge connection a
call has besides its recorder and AMD port, from the call's state (bridged agent, on hold,
listen legs and their modes), and makes the bridge match it: it reads each port's listeners
and starts or stops only what differs. It runs after every change (a command, a leg's media
coming up, a re-INVITE's answer - PJSIP may rebuild a stream's port on a re-INVITE), so the
graph never drifts from the state.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pjsua2 as pj

from sip.api import Bridge
from sip.api_controls import (
    AgentTransferred,
    CallHeld,
    CancelTransfer,
    CompleteTransfer,
    ConsultStarted,
    DtmfSent,
    Hold,
    Listen,
    ListenEnded,
    ListenStarted,
    Resume,
    SendDtmf,
    StopListen,
    TransferAgent,
    TransferFailed,
)
from sip.legs import PJ_ETOOMANY, LegState, retry_makecall
from sip.node.callbacks import NodeCallbacks
from sip.node.objects import (
    AgentLeg,
    CustomerLeg,
    HoldState,
    ListenLeg,
    NodeCall,
    TransferLeg,
    pj_status,
)

log = logging.getLogger("sip.node")

#: a hold / resume re-INVITE not answered this long: the node stops waiting (see below)
REINVITE_TIMEOUT_S = 8.0
#: how long a listen leg's makeCall is retried on PJ_ETOOMANY (a slot closing)
LISTEN_ETOOMANY_RETRY_S = 0.3
_HOLD_STATUS = frozenset({pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_NONE})


class NodeControls(NodeCallbacks):
    """Call-control commands and their callbacks (see the module docstring)."""

    def handle_control(self, cmd: Any) -> None:
        if isinstance(cmd, Hold):
            self._hold(cmd)
        elif isinstance(cmd, Resume):
            self._resume(cmd)
        elif isinstance(cmd, SendDtmf):
            self._dtmf(cmd)
        elif isinstance(cmd, Listen):
            self._listen(cmd)
        elif isinstance(cmd, StopListen):
            self._stop_listen(cmd)
        elif isinstance(cmd, TransferAgent):
            self._transfer(cmd)
        elif isinstance(cmd, CompleteTransfer):
            self._finish_consult(cmd.call_id, complete=True)
        elif isinstance(cmd, CancelTransfer):
            self._finish_consult(cmd.call_id, complete=False)

    # ------------------------------------------------------------------ helpers
    def _live_leg(self, call_id: str, command: str) -> CustomerLeg | None:
        leg = self.legs.get(call_id)
        if (
            leg is None
            or leg.state != LegState.ANSWERED
            or leg.local_end is not None
            or leg.call is None
            or not leg.media_up
        ):
            self.reject(call_id, "call not answered, unknown or ending", False, command)
            return None
        return leg

    @staticmethod
    def _agent_of(leg: CustomerLeg) -> AgentLeg | None:
        a = leg.agent
        return a if a is not None and a.bridged and a.call is not None else None

    @staticmethod
    def _port(call: NodeCall | None) -> pj.AudioMedia | None:
        if call is None:
            return None
        try:
            return call.getAudioMedia(-1)
        except pj.Error:
            return None  # no active audio (yet, or on a re-INVITE)

    def wire(self, leg: CustomerLeg) -> None:
        """Make the bridge connections of ``leg`` match its state (see the module doc)."""
        cam = self._port(leg.call)
        if cam is None:
            return
        a = self._agent_of(leg)
        aam = self._port(a.call) if a is not None else None
        held = leg.hold is not None
        links: list[tuple[Any, Any, bool]] = []
        if aam is not None:
            links += [(cam, aam, not held), (aam, cam, not held)]
        if leg.hold is not None and leg.hold.source is not None:
            links.append((leg.hold.source, cam, True))
        t = leg.transfer
        tam = self._port(t.call) if t is not None and t.consulting else None
        if tam is not None and aam is not None:
            links += [(aam, tam, True), (tam, aam, True)]  # the two agents consult
        for x in leg.listens.values():
            sam = self._port(x.call) if x.connected else None
            if sam is None:
                continue
            talks_to_agent = x.mode in ("whisper", "barge")
            links.append((cam, sam, True))
            links.append((sam, cam, x.mode == "barge"))
            if aam is not None:
                links += [(aam, sam, True), (sam, aam, talks_to_agent)]
            if leg.recorder is not None:
                links.append((sam, leg.recorder, x.mode == "barge"))
        for src, dst, want in links:
            try:
                has = dst.getPortId() in src.getPortInfo().listeners
                if want and not has:
                    src.startTransmit(dst)
                elif has and not want:
                    src.stopTransmit(dst)
            except pj.Error as exc:
                log.debug("node %d: bridge link: %s", self.cfg.node_id, exc.info())

    # ------------------------------------------------------------------ hold / resume
    def _hold(self, cmd: Hold) -> None:
        leg = self._live_leg(cmd.call_id, "Hold")
        if leg is None:
            return
        if self._agent_of(leg) is None:
            self.reject(cmd.call_id, "call not bridged to an agent", False, "Hold")
            return
        if leg.hold is not None:
            self.reject(cmd.call_id, f"call already {leg.hold.phase}", False, "Hold")
            return
        error = self._begin_hold(leg, cmd.music_wav)
        if error:
            self.reject(cmd.call_id, error, True, "Hold")

    def _begin_hold(self, leg: CustomerLeg, music_wav: str) -> str:
        """Cut the agent off, give the customer the hold source, send the hold re-INVITE;
        returns why it failed ("" when the re-INVITE went out)."""
        source = self._hold_source(music_wav)
        leg.hold = HoldState(t_cmd=time.monotonic(), source=source)
        self.wire(leg)  # the agent stops hearing the customer at once
        assert leg.call is not None
        try:
            leg.call.setHold(pj.CallOpParam(True))
        except pj.Error as exc:
            self._drop_hold(leg)
            return f"hold re-INVITE failed: {exc.info()}"
        return ""

    def _hold_source(self, wav: str) -> Any:
        """Music (a looped WAV) or silence (an idle tone generator keeps RTP flowing)."""
        if wav and os.path.isfile(wav):
            player = pj.AudioMediaPlayer()
            try:
                player.createPlayer(wav, 0)  # 0: loop
                return player
            except pj.Error as exc:
                log.warning("node %d: hold music unusable: %s", self.cfg.node_id, exc.info())
        tone = pj.ToneGenerator()
        try:
            tone.createToneGenerator(8000, 1)
        except pj.Error as exc:
            log.warning("node %d: silence generator failed: %s", self.cfg.node_id, exc.info())
            return None
        return tone

    def _drop_hold(self, leg: CustomerLeg) -> None:
        h = leg.hold
        leg.hold = None
        if h is not None and h.source is not None:
            src = h.source
            h.source = None
            try:
                cam = self._port(leg.call)
                if cam is not None:
                    src.stopTransmit(cam)
            except pj.Error:
                pass
            self.deferred.append([src].clear)  # freed from the owner loop
        self.wire(leg)

    def _resume(self, cmd: Resume) -> None:
        leg = self._live_leg(cmd.call_id, "Resume")
        if leg is None:
            return
        if leg.hold is None or leg.hold.phase == "resuming":
            self.reject(cmd.call_id, "call is not on hold", False, "Resume")
            return
        error = self._end_hold(leg)
        if error:
            self.reject(cmd.call_id, error, True, "Resume")

    def _end_hold(self, leg: CustomerLeg) -> str:
        """Send the resume re-INVITE (the media follow its answer); "" when it went out."""
        assert leg.hold is not None and leg.call is not None
        leg.hold.phase = "resuming"
        leg.hold.t_cmd = time.monotonic()
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        try:
            leg.call.reinvite(prm)
        except pj.Error as exc:
            leg.hold.phase = "held"
            return f"resume re-INVITE failed: {exc.info()}"
        return ""

    def _hold_answered(self, leg: CustomerLeg, ci: pj.CallInfo) -> None:
        h = leg.hold
        assert h is not None
        status = ci.media[0].status if ci.media else pj.PJSUA_CALL_MEDIA_NONE
        took = round((time.monotonic() - h.t_cmd) * 1000, 3)
        if h.phase == "holding" and status in _HOLD_STATUS:
            h.phase = "held"
            self.wire(leg)
            self.emit(CallHeld(call_id=leg.call_id, on_hold=True, took_ms=took))
        elif h.phase == "resuming" and status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            self._drop_hold(leg)
            self.emit(CallHeld(call_id=leg.call_id, on_hold=False, took_ms=took))
        else:
            self.wire(leg)

    # ------------------------------------------------------------------ DTMF
    def _dtmf(self, cmd: SendDtmf) -> None:
        leg = self._live_leg(cmd.call_id, "SendDtmf")
        if leg is None:
            return
        method = cmd.method
        if method == "auto":
            acc = self.accounts.get(leg.cmd.trunk)
            trunk = acc.trunk if acc is not None else None
            method = getattr(trunk, "dtmf_method", "auto") if trunk is not None else "auto"
        order = ["rfc2833", "sip_info"] if method == "auto" else [method]
        error = ""
        for m in order:
            prm = pj.CallSendDtmfParam()
            prm.digits = cmd.digits
            prm.duration = cmd.duration_ms
            prm.method = (
                pj.PJSUA_DTMF_METHOD_RFC2833 if m == "rfc2833" else pj.PJSUA_DTMF_METHOD_SIP_INFO
            )
            assert leg.call is not None
            try:
                leg.call.sendDtmf(prm)
            except pj.Error as exc:
                # RFC 2833 fails when the customer's SDP has no telephone-event: INFO then
                error = exc.info()
                continue
            log.debug("node %d: %d DTMF digits by %s", self.cfg.node_id, len(cmd.digits), m)
            self.emit(DtmfSent(call_id=cmd.call_id, count=len(cmd.digits), method=m))
            return
        self.reject(cmd.call_id, f"DTMF not sent: {error}", False, "SendDtmf")

    # ------------------------------------------------------------------ listen-in
    def _listen(self, cmd: Listen) -> None:
        known = self.listens.get(cmd.listen_call_id)
        if known is not None:
            if known.customer.call_id != cmd.call_id or known.local_hangup:
                self.reject(cmd.call_id, "listen_call_id in use", False, "ListenMode")
                return
            known.mode = cmd.mode  # a mode change on the same leg
            if known.connected:
                self.wire(known.customer)
                self.emit(
                    ListenStarted(
                        call_id=cmd.call_id, listen_call_id=cmd.listen_call_id, mode=cmd.mode
                    )
                )
            return
        leg = self._live_leg(cmd.call_id, "Listen")
        if leg is None:
            return
        if self._agent_of(leg) is None:
            self.reject(cmd.call_id, "call not bridged to an agent", False, "Listen")
            return
        if cmd.trunk not in self.accounts:
            self.reject(cmd.call_id, f"unknown trunk {cmd.trunk!r}", False, "Listen")
            return
        x = ListenLeg(
            listen_call_id=cmd.listen_call_id,
            customer=leg,
            cmd=cmd,
            mode=cmd.mode,
            t_start=time.monotonic(),
        )
        leg.listens[x.listen_call_id] = x
        self.listens[x.listen_call_id] = x
        self._place_listen(x, time.monotonic() + LISTEN_ETOOMANY_RETRY_S)

    def _place_listen(self, x: ListenLeg, retry_until: float) -> None:
        if x.local_hangup or x.customer.state != LegState.ANSWERED:
            self._listen_gone(x, "call ended before the listen leg was placed", None)
            return
        call = NodeCall(self, self.accounts[x.cmd.trunk], x)
        prm = pj.CallOpParam(True)
        for k, v in x.cmd.headers.items():
            h = pj.SipHeader()
            h.hName = k
            h.hValue = v
            prm.txOption.headers.append(h)
        x.call = call
        try:
            call.makeCall(x.cmd.supervisor_uri, prm)
        except pj.Error as exc:
            x.call = None
            if retry_makecall(pj_status(exc), time.monotonic(), retry_until):
                self.deferred.append(lambda: self._place_listen(x, retry_until))
                return
            self.report_slots()
            if pj_status(exc) == PJ_ETOOMANY:
                # pjsua has no slot after all (one still closing a dead dialog's BYE): the
                # same clear refusal as the pool's
                x.ended = True
                x.customer.listens.pop(x.listen_call_id, None)
                self.listens.pop(x.listen_call_id, None)
                self.reject(
                    x.customer.call_id,
                    f"node full: no free pjsua call slot on node-{self.cfg.node_id} "
                    "for a listen leg (PJ_ETOOMANY)",
                    True,
                    "Listen",
                )
                return
            self._listen_gone(x, f"listen makeCall failed: {exc.info()}", None)

    def _stop_listen(self, cmd: StopListen) -> None:
        x = self.listens.get(cmd.listen_call_id)
        if x is None or x.customer.call_id != cmd.call_id:
            self.reject(cmd.call_id, "unknown listen_call_id", False, "StopListen")
            return
        self._hangup_listen(x)

    def _hangup_listen(self, x: ListenLeg) -> None:
        x.local_hangup = True
        if x.call is None:
            return
        try:
            x.call.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            log.debug("node %d: listen hangup: %s", self.cfg.node_id, exc.info())

    def on_listen_state(self, call: NodeCall, x: ListenLeg, ci: pj.CallInfo) -> None:
        st = ci.state
        if st == pj.PJSIP_INV_STATE_CONFIRMED:
            x.answered = True
            if x.local_hangup or x.customer.state != LegState.ANSWERED:
                self.deferred.append(lambda: self._hangup_listen(x))
                return
            self._connect_listen(x)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            if x.stats == (0, 0):
                x.stats = self._stats(call)
            x.call = None  # the only reference, dropped in its DISCONNECTED callback
            if x.local_hangup:
                reason = "stopped" if x.customer.state == LegState.ANSWERED else "call ended"
            elif x.answered:
                reason = "supervisor hung up"
            else:
                reason = str(ci.lastReason) or "supervisor's phone did not answer"
            self._listen_gone(x, reason, int(ci.lastStatusCode) or None)

    def _connect_listen(self, x: ListenLeg) -> None:
        if x.connected or not x.answered or x.call is None or self._port(x.call) is None:
            return  # its media state callback retries
        x.connected = True
        self.wire(x.customer)
        join = round((time.monotonic() - x.t_start) * 1000, 3)
        self.emit(
            ListenStarted(
                call_id=x.customer.call_id,
                listen_call_id=x.listen_call_id,
                mode=x.mode,
                join_ms=join,
            )
        )

    def _listen_gone(self, x: ListenLeg, reason: str, code: int | None) -> None:
        if x.ended:
            return
        x.ended = True
        x.customer.listens.pop(x.listen_call_id, None)
        self.listens.pop(x.listen_call_id, None)
        if x.customer.state == LegState.ANSWERED:
            self.wire(x.customer)
        rx, tx = x.stats
        self.emit(
            ListenEnded(
                call_id=x.customer.call_id,
                listen_call_id=x.listen_call_id,
                reason=reason[:200],
                answered=x.answered,
                sip_code=code,
                rx_packets=rx,
                tx_packets=tx,
            )
        )

    # ------------------------------------------------------------------ transfer
    def _transfer(self, cmd: TransferAgent) -> None:
        leg = self._live_leg(cmd.call_id, "TransferAgent")
        if leg is None:
            return
        if self._agent_of(leg) is None:
            self.reject(cmd.call_id, "call not bridged to an agent", False, "TransferAgent")
            return
        if leg.transfer is not None:
            self.reject(cmd.call_id, "a transfer is in progress", False, "TransferAgent")
            return
        if cmd.trunk not in self.accounts:
            self.reject(cmd.call_id, f"unknown trunk {cmd.trunk!r}", False, "TransferAgent")
            return
        if cmd.agent_call_id in self.agents:
            self.reject(cmd.call_id, "duplicate agent_call_id", False, "TransferAgent")
            return
        bridge = Bridge(
            call_id=cmd.call_id,
            agent_call_id=cmd.agent_call_id,
            agent_uri=cmd.agent_uri,
            answer_timeout_s=cmd.answer_timeout_s,
            headers=cmd.headers,
            trunk=cmd.trunk,
        )
        t = TransferLeg(
            agent_call_id=cmd.agent_call_id, customer=leg, cmd=bridge, t_start=time.monotonic()
        )
        t.consult = cmd.consult
        if cmd.consult and leg.hold is None:
            error = self._begin_hold(leg, "")  # the customer waits on hold meanwhile
            if error:
                self.reject(cmd.call_id, error, True, "TransferAgent")
                return
        leg.transfer = t
        self.agents[t.agent_call_id] = t
        self._place_transfer(t, time.monotonic() + LISTEN_ETOOMANY_RETRY_S)

    def _place_transfer(self, t: TransferLeg, retry_until: float) -> None:
        cust = t.customer
        if cust.transfer is not t or cust.state != LegState.ANSWERED or t.local_hangup:
            self.agents.pop(t.agent_call_id, None)
            self._transfer_failed(t, None, "call ended before the transfer was placed")
            return
        call = NodeCall(self, self.accounts[t.cmd.trunk], t)
        prm = pj.CallOpParam(True)
        for k, v in t.cmd.headers.items():
            h = pj.SipHeader()
            h.hName = k
            h.hValue = v
            prm.txOption.headers.append(h)
        t.call = call
        try:
            call.makeCall(t.cmd.agent_uri, prm)
        except pj.Error as exc:
            t.call = None
            if retry_makecall(pj_status(exc), time.monotonic(), retry_until):
                self.deferred.append(lambda: self._place_transfer(t, retry_until))
                return
            self.agents.pop(t.agent_call_id, None)
            self.report_slots()
            self._transfer_failed(t, None, f"transfer makeCall failed: {exc.info()}")

    def on_transfer_state(self, call: NodeCall, t: TransferLeg, ci: pj.CallInfo) -> None:
        st = ci.state
        if st == pj.PJSIP_INV_STATE_EARLY:
            t.on_early()
        elif st == pj.PJSIP_INV_STATE_CONFIRMED:
            if t.on_confirmed():
                if t.local_hangup or t.failed_reported or t.customer.transfer is not t:
                    self.deferred.append(lambda: self._hangup_agent(t))
                    return
                self._complete_transfer(t)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            if t.stats == (0, 0):
                t.stats = self._stats(call)
            t.call = None
            self.agents.pop(t.agent_call_id, None)
            t.on_disconnected(int(ci.lastStatusCode) or None, str(ci.lastReason),
                              customer_up=False)
            reason = str(ci.lastReason) or "the new agent's phone did not take the call"
            self._transfer_failed(t, int(ci.lastStatusCode) or None, reason)

    def _complete_transfer(self, t: TransferLeg) -> None:
        """The new agent answered with media: a blind transfer switches the customer over, a
        warm one connects the two agents first (the customer stays on hold)."""
        cust = t.customer
        if t.swapped or cust.transfer is not t or self._port(t.call) is None:
            return  # its media state callback retries
        if not t.consult:
            self._swap(t)
        elif not t.consulting:
            t.consulting = True
            self.wire(cust)
            self.emit(ConsultStarted(call_id=cust.call_id, agent_call_id=t.agent_call_id))
        else:
            self.wire(cust)

    def _finish_consult(self, call_id: str, *, complete: bool) -> None:
        command = "CompleteTransfer" if complete else "CancelTransfer"
        leg = self._live_leg(call_id, command)
        if leg is None:
            return
        t = leg.transfer
        if t is None or (complete and not t.consulting):
            self.reject(call_id, "no consultation in progress" if complete
                        else "no transfer in progress", False, command)
            return
        if complete:
            self._swap(t)
            if leg.hold is not None and leg.hold.phase != "resuming":
                error = self._end_hold(leg)  # the customer comes off hold to the new agent
                if error:
                    self.reject(call_id, error, True, "Resume")
            return
        self._transfer_failed(t, None, "cancelled")
        self._hangup_agent(t)
        self.wire(leg)

    def _swap(self, t: TransferLeg) -> None:
        """Switch the customer over to the new agent and drop the old one."""
        cust = t.customer
        tam = self._port(t.call)
        assert tam is not None
        old = cust.agent
        cust.transfer = None
        cust.agent = t
        t.swapped = True
        t.consulting = False
        t.bridged = True
        if old is not None:
            old.local_hangup = True  # its end must not end the customer's call
            self._hangup_agent(old)  # frees its bridge port and every link it had
        self.wire(cust)
        if cust.recorder is not None:
            try:
                tam.startTransmit(cust.recorder)
            except pj.Error as exc:
                log.debug("node %d: recorder link: %s", self.cfg.node_id, exc.info())
        self.emit(
            AgentTransferred(
                call_id=cust.call_id,
                agent_call_id=t.agent_call_id,
                previous_agent_call_id=old.agent_call_id if old is not None else "",
                took_ms=round((time.monotonic() - t.t_start) * 1000, 3),
            )
        )

    def _transfer_failed(self, t: TransferLeg, code: int | None, reason: str) -> None:
        if t.failed_reported or t.swapped:
            return
        t.failed_reported = True
        if t.customer.transfer is t:
            t.customer.transfer = None
        self.emit(
            TransferFailed(
                call_id=t.customer.call_id,
                agent_call_id=t.agent_call_id,
                sip_code=code,
                reason=reason[:200],
            )
        )

    # ------------------------------------------------------------------ callbacks' hooks
    def controls_media(self, call: NodeCall, leg: Any, ci: pj.CallInfo) -> bool:
        """A media state change: True when it concerned a listen leg or a hold re-INVITE."""
        if isinstance(leg, TransferLeg) and not leg.swapped:
            if leg.state == LegState.ANSWERED:
                self._complete_transfer(leg)
            return True
        if isinstance(leg, ListenLeg):
            if leg.connected:
                self.wire(leg.customer)
            else:
                self._connect_listen(leg)
            return True
        if isinstance(leg, CustomerLeg) and leg.hold is not None and leg.media_up:
            self._hold_answered(leg, ci)
            return True
        if isinstance(leg, CustomerLeg) and leg.listens:
            self.wire(leg)
        return False

    def controls_ended(self, leg: CustomerLeg) -> None:
        """The customer leg ended: its listen legs go, its hold source is freed."""
        for x in list(leg.listens.values()):
            x.local_hangup = True
            self.deferred.append(lambda x=x: self._hangup_listen(x))  # type: ignore[misc]
        h = leg.hold
        leg.hold = None
        if h is not None and h.source is not None:
            self.deferred.append([h.source].clear)
            h.source = None
        t = leg.transfer
        if t is not None:
            t.local_hangup = True
            self._transfer_failed(t, None, "the call ended during the transfer")
            self.deferred.append(lambda: self._hangup_agent(t))

    def control_timers(self, now: float) -> None:
        """Listen legs not answered in time; hold / resume re-INVITEs never answered."""
        for x in list(self.listens.values()):
            if not x.answered and not x.local_hangup and now - x.t_start >= x.cmd.answer_timeout_s:
                log.info("node %d: listen leg not answered in time", self.cfg.node_id)
                self._hangup_listen(x)
        for leg in self.legs.values():
            t = leg.transfer
            if t is not None and t.answer_timed_out(now, t.cmd.answer_timeout_s):
                self._transfer_failed(t, None, f"no answer within {t.cmd.answer_timeout_s:g}s")
                self._hangup_agent(t)
            h = leg.hold
            if h is None or h.phase == "held" or now - h.t_cmd < REINVITE_TIMEOUT_S:
                continue
            # never leave agent and customer cut off: undo the hold locally (the call is as
            # it was before the command) and tell the dialer the re-INVITE went unanswered
            command = "Hold" if h.phase == "holding" else "Resume"
            self._drop_hold(leg)
            self.reject(leg.call_id, f"{command.lower()} re-INVITE not answered", True, command)
