"""SIP pool events into the campaign engine (`CampaignRuntime.on_sip_event` calls
`handle_sip_event`; these functions are the runtime's own code, kept in a file of their own).

Each event of a call updates its attempt row (through the ordered writer), tells the
supervisor about stage changes and feeds the engine the input it stands for. The engine owns
the call's stage; this side keeps the SIP facts the records need (`LiveCall`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from common.vocabulary import AmdVerdict, AttemptResult, AttemptStage
from dialer.call_controls import on_sip_event as controls_event
from dialer.call_transfer import on_sip_event as transfer_event
from sip import api as sip

if TYPE_CHECKING:
    from dialer.ports import SipEvent
    from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)

#: the engine stages in which a first 18x moves the call (and its row) to RINGING
_BEFORE_RINGING = frozenset({AttemptStage.CREATED, AttemptStage.DIALING})


@dataclass(slots=True)
class LiveCall:
    """What the driver keeps per call besides the engine's state: ids and SIP facts."""

    call_id: str
    attempt_id: int
    lead_id: int
    agent_login: str | None = None
    answered_wall: datetime | None = None
    answered_mono: float | None = None
    #: when the dialer knew a person was there (the answer, or AMD's verdict)
    live_mono: float | None = None
    sip_end: sip.CallEnded | None = None
    bridge_latency_ms: float | None = None
    #: answer -> the router picked an agent (queue wait; 0 when an agent was ready)
    queue_wait_ms: float | None = None
    opted_out: bool = False
    engine_done: bool = False
    #: the call was cut by a fault while the person talked to the agent (node lost)
    cut_by_fault: bool = False
    #: hung up for reaching the campaign's max_call_s (asked once)
    hung_up_long: bool = False
    #: the screen pop being read while the call rings (dispositions.prefetch_screen_pop)
    pop_prefetch: asyncio.Future[dict[str, object] | None] | None = None
    #: the AMD this call runs (None: off for its campaign or its lead; engine_setup)
    amd: sip.AmdSettings | None = None
    #: transferred to an outside number: `agent_login` wraps it up while it goes on
    handed_out: bool = False
    #: its lead update (the disposition) came before the call's end (a handed-out call)
    disposed: bool = False


def handle_sip_event(rt: CampaignRuntime, ev: SipEvent) -> None:
    """One pool event (already on the event loop) of one of the runtime's calls."""
    call = rt.calls.get(ev.call_id)
    if call is None:
        return
    controls_event(rt, call, ev)  # hold, DTMF, listen-in (dialer.call_controls)
    transfer_event(rt, call, ev)  # agent transfers, who held the call (dialer.call_transfer)
    if isinstance(ev, sip.CallTrying):
        rt._write(rt.store.update_attempt, call.attempt_id, stage=AttemptStage.DIALING,
                  dialing_at=ev.wall, node=getattr(ev, "node", None) or None)
        rt._supervise_call(call, AttemptStage.DIALING)
    elif isinstance(ev, sip.CallRinging):
        # only the first 18x moves the row (early media may send another)
        if rt.engine.call_stage(ev.call_id) in _BEFORE_RINGING:
            rt._write(rt.store.update_attempt, call.attempt_id,
                      stage=AttemptStage.RINGING, ringing_at=ev.wall)
            rt._supervise_call(call, AttemptStage.RINGING)
        rt._engine(rt.engine.call_ringing, ev.call_id)
    elif isinstance(ev, sip.CallAnswered):
        call.answered_wall, call.answered_mono = ev.wall, ev.mono
        # the engine's stage is ANSWERED from here, while AMD (if on) still listens
        rt._engine(rt.engine.call_picked_up, ev.call_id)
        rt._write(rt.store.update_attempt, call.attempt_id,
                  stage=AttemptStage.ANSWERED, answered_at=ev.wall)
        rt._supervise_call(call, AttemptStage.ANSWERED)
        if call.amd is None:
            call.live_mono = ev.mono
            rt._engine(rt.engine.call_answered, ev.call_id, AmdVerdict.NOT_RUN,
                       answered_at=ev.wall)
    elif isinstance(ev, sip.AmdDone):
        rt._write(rt.store.update_attempt, call.attempt_id,
                  amd_verdict=ev.verdict, amd_ms=ev.took_ms, amd_done_at=ev.wall,
                  amd_cause=ev.cause[:64] or None)
        if rt.metrics is not None and ev.verdict is not AmdVerdict.NOT_RUN:
            rt.metrics.observe_amd(rt.name, ev.verdict, ev.took_ms / 1000.0)
        call.live_mono = ev.mono
        rt._engine(rt.engine.call_answered, ev.call_id, ev.verdict,
                   answered_at=call.answered_wall or rt.clock.now())
    elif isinstance(ev, sip.CallBridged):
        _bridged(rt, call, ev)
    elif isinstance(ev, sip.AgentLegFailed):
        log.warning("campaign %s: agent phone of %s failed (%s %s)", rt.name,
                    call.agent_login, ev.sip_code, ev.reason)
        _agent_leg_failed(rt, call, f"{ev.sip_code or ''} {ev.reason}".strip())
    elif isinstance(ev, sip.CallEnded):
        call.sip_end = ev
        rt._engine(rt.engine.call_ended, ev.call_id, ev.result)
    elif isinstance(ev, sip.CallLost):
        talk_s = getattr(ev, "talk_s", None)
        if talk_s is None and call.answered_mono is not None:
            talk_s = max(0.0, ev.mono - call.answered_mono)  # up to the loss, as seen here
        call.sip_end = sip.CallEnded(
            call_id=ev.call_id, result=AttemptResult.LOST, sip_code=None,
            reason=f"node lost: {ev.reason}", hangup_by="node",
            ring_s=getattr(ev, "ring_s", None), talk_s=talk_s,
            retryable=True, mono=ev.mono, wall=ev.wall)
        if rt.metrics is not None:
            rt.metrics.calls_lost(rt.name)
        rt._engine(rt.engine.call_ended, ev.call_id, AttemptResult.LOST)
    elif isinstance(ev, sip.CommandRejected):
        _on_rejected(rt, call, ev)
    elif isinstance(ev, sip.DtmfReceived):
        _on_key(rt, call, ev)


def _bridged(rt: CampaignRuntime, call: LiveCall, ev: sip.CallBridged) -> None:
    latency = ev.latency_ms
    # measured from the answer event when we have it: both monos are one host's clock
    if call.answered_mono is not None:
        latency = (ev.mono - call.answered_mono) * 1000.0
    call.bridge_latency_ms = latency
    rt.stats.bridge_latencies_ms.append(latency)
    rt.stats.queue_waits_ms.append(call.queue_wait_ms or 0.0)
    if rt.metrics is not None:
        rt.metrics.observe_answer_to_agent(rt.name, latency / 1000.0)
    rt._write(rt.store.update_attempt, call.attempt_id,
              stage=AttemptStage.BRIDGED, bridged_at=ev.wall, bridge_latency_ms=latency)
    rt._supervise_call(call, AttemptStage.BRIDGED)
    rt._engine(rt.engine.bridge_ok, ev.call_id)


def _on_key(rt: CampaignRuntime, call: LiveCall, ev: sip.DtmfReceived) -> None:
    """US rule: a key pressed during the abandon message is a DNC request, at once."""
    key = rt.campaign.optout_key
    if not key or ev.digit != key or call.opted_out \
            or rt.engine.call_stage(call.call_id) is not AttemptStage.MESSAGE:
        return
    call.opted_out = True
    log.info("campaign %s: attempt %s: opt-out key during the message", rt.name,
             call.attempt_id)
    rt._write(_store_optout, rt, call.attempt_id, call.lead_id, ev.wall)
    rt._submit(sip.Hangup(call_id=call.call_id, reason="opt-out"))


async def _store_optout(rt: CampaignRuntime, attempt_id: int, lead_id: int,
                        at: datetime) -> None:
    await rt.store.update_attempt(attempt_id, opted_out=True)
    phone = await rt.store.lead_phone(lead_id)
    if phone:
        await rt.store.add_dnc(phone, now=at, reason="opt-out key during the message",
                               attempt_id=attempt_id)
        if rt.metrics is not None:
            rt.metrics.dnc_hit(rt.name)


def _on_rejected(rt: CampaignRuntime, call: LiveCall, ev: sip.CommandRejected) -> None:
    log.warning("campaign %s: %s rejected for call %s: %s", rt.name, ev.command,
                ev.call_id, ev.error)
    if ev.command == "Originate":
        # never placed (a full pool, a trunk whose circuit is open): recorded `skipped`,
        # which does not count against the lead's attempts and teaches the pacer nothing
        call.sip_end = sip.CallEnded(
            call_id=ev.call_id, result=AttemptResult.SKIPPED, sip_code=None,
            reason=f"not placed: {ev.error}", hangup_by="local", ring_s=None, talk_s=None,
            retryable=ev.retryable, mono=ev.mono, wall=ev.wall)
        rt._engine(rt.engine.call_ended, ev.call_id, AttemptResult.SKIPPED)
    elif ev.command == "Bridge":
        _agent_leg_failed(rt, call, ev.error)


def _agent_leg_failed(rt: CampaignRuntime, call: LiveCall, reason: str) -> None:
    """The agent's phone did not take the call: the engine pauses that agent and re-routes
    the customer. The attempt no longer names that agent: an abandon that follows is the
    campaign's (the report's shared row), not charged to the agent whose phone failed."""
    if rt.engine.call_stage(call.call_id) is AttemptStage.ANSWERED:  # else not a live bridge
        call.agent_login = None
        rt._write(rt.store.update_attempt, call.attempt_id, agent_id=None)
    rt._engine(rt.engine.bridge_failed, call.call_id, reason)


def end_overlong_calls(rt: CampaignRuntime) -> None:
    """Hang up connected calls older than the campaign's `max_call_s` (from the answer)."""
    limit = float(rt.campaign.max_call_s or 0.0)
    if limit <= 0:
        return
    now = rt.clock.monotonic()
    for call in rt.calls.values():
        if call.engine_done or call.answered_mono is None or call.hung_up_long \
                or now - call.answered_mono < limit:
            continue
        call.hung_up_long = True
        log.warning("campaign %s: attempt %s reached max_call_s (%.0f s); hanging up",
                    rt.name, call.attempt_id, limit)
        rt._submit(sip.Hangup(call_id=call.call_id, reason=f"max_call_s {limit:.0f} s"))
