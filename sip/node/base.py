"""The node's state and the actions shared by its callbacks, commands and owner loop.

Everything here runs on the owner thread (docs/sip.md, "Node internals"). Actions that call
pjsua2 again (hang up, free a player or port) are safe here because they are only reached
from the owner loop or are deferred to it when a pjsua2 callback triggers them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from common.vocabulary import AmdVerdict
from sip.amd import AmdResult
from sip.api import AgentLegFailed, AmdDone, CallEnded, CommandRejected, PlaybackDone, to_wire
from sip.config import NodeConfig
from sip.legs import MESSAGE_PLAYED, LegState, LocalEnd
from sip.node.objects import (
    AgentLeg,
    AwaitingRecording,
    CustomerLeg,
    IncomingCall,
    ListenLeg,
    LogWriter,
    MediaItem,
    NodeAccount,
    NodeCall,
    Waker,
)
from sip.node.slots import HeldSlots, PjsuaSlots
from sip.protocol import encode_frame

log = logging.getLogger("sip.node")

#: events on which the pool frees a call's slots (a call's end, an Originate not placed)
_RELEASING = (CallEnded, CommandRejected)


class NodeBase:
    """State of one node process and the actions every part of it uses."""

    def __init__(self, cfg: NodeConfig, sock: socket.socket | None) -> None:
        self.cfg = cfg
        self.sock = sock
        self._send_lock = threading.Lock()
        self.cmds: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.media_q: queue.SimpleQueue[MediaItem] = queue.SimpleQueue()
        self.ep: pj.Endpoint | None = None
        self.accounts: dict[str | None, NodeAccount] = {}
        self.legs: dict[str, CustomerLeg] = {}
        self.agents: dict[str, AgentLeg] = {}
        #: supervisors' listen-in legs by listen_call_id (sip.node.controls)
        self.listens: dict[str, ListenLeg] = {}
        self.deferred: collections.deque[Callable[[], None]] = collections.deque()
        self.pending_originates: collections.deque[CustomerLeg] = collections.deque()
        self.capacity = 0
        self.sip_port = 0
        self.stopping = False
        #: SIP Call-ID -> leg, for calls cancelled before answer whose INVITE is still open
        self.cancelling: dict[str, CustomerLeg] = {}
        #: legs whose CallEnded waits for the cancelled INVITE's final response
        self.held: dict[str, CustomerLeg] = {}
        self.awaiting_recording: list[AwaitingRecording] = []
        self._log_writer: LogWriter | None = None
        self.waker = Waker()
        self.incoming: set[IncomingCall] = set()
        #: frames produced before hello (during start), sent right after it
        self._early: list[dict[str, Any]] | None = []
        #: pjsua's live calls (docs/trunks.md, "Call slots after an outage")
        self.slots = PjsuaSlots()
        self.slot_watch = HeldSlots()
        #: the last ``held`` sent to the pool (None: nothing sent yet)
        self._held_sent: int | None = None

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

    def emit(self, ev: Any, **extra: Any) -> None:
        if isinstance(ev, _RELEASING):
            # the pool frees slots on these: first tell it which ones pjsua still holds, on
            # the same ordered channel, so it never offers a slot in between
            self.report_slots()
        self.send({"kind": "event", "event": to_wire(ev), **extra})

    def reject(
        self, call_id: str, error: str, retryable: bool, command: str, *, full: bool = False
    ) -> None:
        """``full``: pjsua had no free slot (PJ_ETOOMANY) - the pool places the call elsewhere."""
        ev = CommandRejected(call_id=call_id, error=error, retryable=retryable, command=command)
        if full:
            self.emit(ev, full=True)
        else:
            self.emit(ev)

    # ------------------------------------------------------------------ slots
    def _live_ids(self) -> set[int]:
        """pjsua ids of the calls the pool still counts (legs not yet ended).

        A customer leg counts until its CallEnded (it leaves ``legs`` then); an agent leg only
        while its customer leg does, since the pool frees both slots at the CallEnded.
        """
        ids: set[int] = set()
        for leg in self.legs.values():
            for call in (leg.call, leg.agent.call if leg.agent is not None else None):
                if call is not None:
                    ids.add(call.getId())
            ids.update(x.call.getId() for x in leg.listens.values() if x.call is not None)
            if leg.transfer is not None and leg.transfer.call is not None:
                ids.add(leg.transfer.call.getId())
        return ids

    def _live_count(self) -> int:
        return sum(
            (leg.call is not None)
            + (leg.agent is not None and leg.agent.call is not None)
            + sum(x.call is not None for x in leg.listens.values())
            + (leg.transfer is not None and leg.transfer.call is not None)
            for leg in self.legs.values()
        )

    def held_slots(self) -> int | None:
        """Slots pjsua holds for calls the node has let go of (None: unknown on this build).

        A BYE or CANCEL still waiting for its answer, an agent leg hanging up after its call
        ended, a declined incoming call: pjsua keeps their slots although no live call needs
        them (sip.node.slots.HeldSlots says which of them count and from when).
        """
        count = self.slots.live_calls()
        if count is None:
            return None
        if count <= self._live_count():
            # the usual case, checked without pjsua's lock: nothing let go of is left
            return self.slot_watch.count(set(), set(), 0.0)
        ids = self.slots.call_ids()
        if ids is None:
            return None
        return self.slot_watch.count(ids, self._live_ids(), time.monotonic())

    def report_slots(self) -> None:
        """Send ``{"kind": "slots", "held": n}`` when ``n`` changed (sip/protocol.py)."""
        held = self.held_slots()
        if held is None or held == self._held_sent:
            return
        self._held_sent = held
        self.send({"kind": "slots", "held": held})

    def room_for(self, leg: CustomerLeg) -> bool:
        """Whether pjsua has a slot for this customer leg and the agent slot it reserves.

        The pool reserved both, but its view lags pjsua's by a frame; a customer leg placed
        without its agent's slot would answer and then fail to reach any agent. Counted:
        pjsua's calls, plus one per other leg whose reserved agent slot is not in use.
        """
        count = self.slots.live_calls()
        if count is None:
            return True  # unknown on this build: makeCall's PJ_ETOOMANY is the only check
        reserved = sum(
            1
            for other in self.legs.values()
            if other is not leg
            and other.cmd.reserve_agent_slot
            and (other.agent is None or other.agent.call is None)
        )
        need = 2 if leg.cmd.reserve_agent_slot else 1
        return count + reserved + need <= self.capacity

    def _mark_dead(self, call: NodeCall | None) -> None:
        """Its far end is gone: its slot counts as held from the hangup on (sip.node.slots)."""
        if call is not None:
            self.slot_watch.mark_dead(call.getId())

    # ------------------------------------------------------------------ actions
    def _hangup_customer(self, leg: CustomerLeg, why: LocalEnd, *, dead: bool = False) -> None:
        """Hang the customer leg up; ``dead``: its far end is gone (no media), so its BYE
        gets a short transaction timeout and pjsua frees the slot soon (sip.node.slots)."""
        leg.mark_local_end(why)
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
        if dead:
            self._mark_dead(call)
        try:
            with self.slots.short_transactions() if dead else contextlib.nullcontext():
                call.hangup(prm)
        except pj.Error as exc:
            log.debug("node %d: hangup %s: %s", self.cfg.node_id, leg.call_id, exc.info())

    def _hangup_agent(self, a: AgentLeg, *, dead: bool = False) -> None:
        a.local_hangup = True
        call = a.call
        if call is None:
            return
        if dead:
            self._mark_dead(call)
        try:
            with self.slots.short_transactions() if dead else contextlib.nullcontext():
                call.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            log.debug("node %d: agent hangup %s: %s", self.cfg.node_id, a.agent_call_id, exc.info())

    def _agent_failed(self, a: AgentLeg, code: int | None, reason: str) -> None:
        if a.failed_reported:
            return
        a.failed_reported = True
        if a.customer.agent is a:
            a.customer.agent = None
        if a.customer.answered_and_up:
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
            self._hangup_customer(leg, MESSAGE_PLAYED)

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

    def _emit_end(self, leg: CustomerLeg, ev: CallEnded) -> None:
        """Send the call's one CallEnded and forget the leg."""
        self.legs.pop(leg.call_id, None)
        self.held.pop(leg.call_id, None)
        if leg.sip_call_id:
            self.cancelling.pop(leg.sip_call_id, None)
        ev = leg.final_event(ev)
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

    @staticmethod
    def _stats(call: NodeCall) -> tuple[int, int]:
        try:
            st = call.getStreamStat(0)
            return int(st.rtcp.rxStat.pkt), int(st.rtcp.txStat.pkt)
        except pj.Error:
            return (0, 0)
