"""CampaignEngine: the sans-IO core of one running campaign.

The driver (the live asyncio runtime, or the simulator) owns every clock and socket. It
calls the engine's input methods with an explicit aware-UTC ``now`` and carries out the
actions they return, in order; it calls `tick` no later than `next_wakeup`. The engine
holds agents, calls in flight (with their stage: drivers read `call_stage`, they keep no
copy), the hopper, the pacing statistics and the abandon ledger, and never does IO or reads
a clock, so the same object runs in real and virtual time.

Life of an outbound call, as the engine sees it::

    Dial -> [call_ringing] -> [call_picked_up: AMD listening] -> call_answered(verdict)
         -> BridgeTo -> bridge_ok -> call_ended -> (agent in wrap-up) -> disposition
         -> LeadUpdate   (no disposition within max_wrapup_seconds: tick gives one,
                          WRAPUP_TIMEOUT)
    no agent within agent_wait after the compliance clock started:
         PlayMessage("abandon") -> call_ended -> AttemptFinished(ABANDONED) + LeadUpdate
    not answered: call_ended(result) -> AttemptFinished + LeadUpdate (retry rules)

The class is built in layers: engine_state.py (state, clock, agents, routing, abandon
deadline), dialing.py (the pacing pass), transfer.py (agent transfers), this file (the
inputs); calls.py is the call table."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime

from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AbandonClockStart,
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    MachinePolicy,
)
from dialer.core.actions import Action, AttemptFinished, EndCall, LeadUpdate, PlayMessage
from dialer.core.calls import CallRecord
from dialer.core.engine_state import EPS, EngineCounters
from dialer.core.errors import (
    IllegalTransitionError,
    InvalidDispositionError,
    InvalidInputError,
)
from dialer.core.held import delivers_held
from dialer.core.manual_call import ManualStep
from dialer.core.outcomes import apply_disposition, apply_system_result
from dialer.core.tickets import LeadTicket

__all__ = ["CampaignEngine", "EngineCounters"]

log = logging.getLogger(__name__)

S = AgentState
#: SIP-level results a driver may report for a call that was never answered
_UNANSWERED_RESULTS = frozenset(
    {
        AttemptResult.BUSY,
        AttemptResult.NO_ANSWER,
        AttemptResult.INVALID_NUMBER,
        AttemptResult.REJECTED,
        AttemptResult.FAILED,
        AttemptResult.CANCELLED,
        AttemptResult.LOST,
        AttemptResult.SKIPPED,  # never placed (the SIP pool refused it): not an attempt
    }
)


class CampaignEngine(ManualStep):
    """Sans-IO state of one running campaign. See the module docstring for the protocol.

    The constructor (engine_state.py) takes ``(config, *, pacer=None, call_id_factory=None,
    agent_free_oracle=None)``.
    """

    @property
    def next_wakeup(self) -> datetime | None:
        """When the driver must call `tick` next (None: nothing scheduled)."""
        if self._held:
            return self._dt(self._t)
        best = math.inf
        if self.board.working > 0 or self.calls.waiting or self._offers:
            best = self._next_pace_t
        for c in self.calls.waiting.values():
            best = min(best, c.deadline_t)
        timeout = self.config.preview_timeout_seconds
        if timeout is not None:
            for o in self._offers.values():
                best = min(best, o.offered_t + timeout)
        if self._lead_request_t is not None:
            best = min(best, self._lead_request_t + self.config.lead_request_timeout_seconds)
        if self._ring_checks:
            best = min(best, self._ring_checks[0][0])
        if math.isinf(best):
            wake = self.hopper.next_callback_change(self._dt(max(self._t, 0.0)))
        else:
            wake = self._dt(max(best, self._t))
        # kept apart from `best` so a wrap-up deadline never hides an earlier callback
        wrap_t = self._next_wrapup_deadline()
        if wrap_t is not None:
            wrap = self._dt(max(wrap_t, self._t))
            if wake is None or wrap < wake:
                wake = wrap
        return wake

    def _next_wrapup_deadline(self) -> float | None:
        limit = self.config.max_wrapup_seconds
        if not limit or not self._wrap_leads:
            return None
        return min(self.board.get(a).wrap_started for a in self._wrap_leads) + limit

    # ------------------------------------------------------------------ agents
    @delivers_held
    def agent_login(self, now: datetime, agent_id: str, *, ready: bool = False) -> list[Action]:
        """Log an agent in, paused (reason "login") unless ``ready``. Idempotent."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.ensure(agent_id, t)
        if rec.state is not S.LOGGED_OUT:
            return out
        if ready:
            self._make_available(rec, t, now, out, "login")
        else:
            self._set(rec, S.PAUSED, t, now, out, "login")
        self._after(t, now, out)
        return out

    @delivers_held
    def agent_ready(self, now: datetime, agent_id: str) -> list[Action]:
        """A paused agent becomes ready. A busy agent's pending pause is cancelled."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.get(agent_id)
        if rec.state is S.PAUSED:
            self._make_available(rec, t, now, out, None)
        elif rec.state in (S.READY, S.RESERVED, S.TALKING, S.WRAP_UP):
            rec.pending = None  # a pause or logout asked for earlier is cancelled
            rec.pending_reason = None
        elif rec.state is S.LOGGED_OUT:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, S.READY.value)
        self._after(t, now, out)
        return out

    @delivers_held
    def agent_pause(self, now: datetime, agent_id: str, reason: str) -> list[Action]:
        """Pause now if ready (a preview offer is withdrawn); if busy, after this call."""
        if not reason:
            raise InvalidInputError("a pause needs a reason code")
        return self._leave(now, agent_id, S.PAUSED, reason)

    @delivers_held
    def agent_logout(self, now: datetime, agent_id: str) -> list[Action]:
        """Log out now if ready or paused; if busy, after this call's wrap-up."""
        return self._leave(now, agent_id, S.LOGGED_OUT, "logout")

    def _leave(self, now: datetime, agent_id: str, new: AgentState, reason: str) -> list[Action]:
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.get(agent_id)
        offer = self._offers.pop(agent_id, None)
        if offer is not None:
            self.hopper.add([offer.lead])  # not attempted: back to the buffer
            self._set(rec, S.READY, t, now, out, "offer_withdrawn")
        if rec.state is S.READY and self._defer_leave(rec, new, reason):
            pass  # applied once the calls placed for the ready agents no longer need it
        elif rec.state in (S.READY, S.PAUSED):
            if not (rec.state is S.PAUSED and new is S.PAUSED and rec.reason == reason):
                self._set(rec, new, t, now, out, reason)
        elif rec.state is S.LOGGED_OUT:
            if new is S.PAUSED:
                raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, new.value)
        else:
            rec.pending = new
            rec.pending_reason = reason
        self._after(t, now, out)
        return out

    # ------------------------------------------------------------------ leads
    @delivers_held
    def add_leads(self, now: datetime, tickets: Iterable[LeadTicket]) -> list[Action]:
        """Hand claimed, callable leads to the hopper (answer to NeedLeads; may be empty)."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        added = self.hopper.add(tickets)
        if added:
            self._lead_request_t = None
            self._pace_soon(t)
        elif self._lead_request_t is not None:
            # nothing callable now: ask again after lead_request_timeout_seconds
            self._lead_request_t = t
        self._after(t, now, out)
        return out

    def drain_hopper(self) -> list[LeadTicket]:
        """Remove every buffered lead (campaign stop): the driver releases their claims."""
        return self.hopper.drain()

    # ------------------------------------------------------------------ preview
    @delivers_held
    def preview_accept(self, now: datetime, agent_id: str) -> list[Action]:
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        offer = self._offers.pop(agent_id, None)
        if offer is None:
            raise IllegalTransitionError(f"agent {agent_id}", "no preview offer", "accept")
        self._dial(offer.lead, t, now, out, reserved_agent=agent_id, call_id=offer.call_id)
        self._after(t, now, out)
        return out

    @delivers_held
    def preview_skip(self, now: datetime, agent_id: str) -> list[Action]:
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        offer = self._offers.pop(agent_id, None)
        if offer is None:
            raise IllegalTransitionError(f"agent {agent_id}", "no preview offer", "skip")
        out.append(
            AttemptFinished(
                call_id=offer.call_id,
                lead_id=offer.lead.lead_id,
                result=AttemptResult.SKIPPED,
                agent_id=agent_id,
                dialed_at=None,
                answered_at=None,
                clock_started_at=None,
                connected_at=None,
                message_at=None,
                ended_at=now,
            )
        )
        out.append(
            apply_system_result(
                offer.lead, AttemptResult.SKIPPED, now, self.config.retry, call_id=offer.call_id
            )
        )
        self._make_available(self.board.get(agent_id), t, now, out, "preview_skipped")
        self._after(t, now, out)
        return out

    # ------------------------------------------------------------------ calls
    @delivers_held
    def call_ringing(self, now: datetime, call_id: str) -> list[Action]:
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self.calls.get(call_id)
        if call.stage in (AttemptStage.CREATED, AttemptStage.DIALING):
            self.calls.set_stage(call, AttemptStage.RINGING)
        if call.ringing_t is None:
            call.ringing_t = t
            if self._cancelling and call.call_id in self.calls.inflight:
                # weighed just after the minimum ring time, counted from the first 18x
                # (docs/compliance.md: never cancel an unanswered call before it)
                self._ring_checks.append((t + self.config.min_ring_seconds + 1e-3, call_id))
        self._after(t, now, out)
        return out

    @delivers_held
    def call_picked_up(self, now: datetime, call_id: str) -> list[Action]:
        """The callee picked up and AMD is analysing: the stage becomes ANSWERED, nothing else.

        Optional: a driver without AMD may go straight to `call_answered`. Until the verdict
        the call is treated as unanswered (surplus cancels, `call_ended` with a SIP result)
        and no timer or pacing pass runs, so reporting the pick-up changes no decision.
        Returns no actions (a list, like every input).
        """
        # no _clock(now): the engine's time moves only with inputs that may act on it
        self._check_aware(now)
        call = self.calls.get(call_id)
        self.calls.set_stage(call, AttemptStage.ANSWERED)
        call.amd_pending = True
        return []

    @delivers_held
    def call_answered(
        self,
        now: datetime,
        call_id: str,
        verdict: AmdVerdict = AmdVerdict.NOT_RUN,
        *,
        answered_at: datetime | None = None,
        greeting_started_at: datetime | None = None,
    ) -> list[Action]:
        """The callee answered; ``now`` is when the verdict is known (after AMD, if any).

        The compliance clock starts at the answer (``answered_at``, default ``now``), the
        greeting start, or ``now`` (= greeting end, as AMD ends with it), per the campaign's
        `AbandonClockStart`. A missing timestamp falls back to ``now``.
        """
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self.calls.get(call_id)
        if not call.unanswered:
            raise IllegalTransitionError(f"call {call_id}", call.stage.value, "answered")
        self.calls.leave_inflight(call)
        if call.amd_pending:
            call.amd_pending = False  # already ANSWERED since the pick-up
        else:
            self.calls.set_stage(call, AttemptStage.ANSWERED)
        call.answered_at = answered_at or now
        if call.cancelled:
            self._answered_after_cancel(call, verdict, t, now, out)
            return out
        machine = verdict is AmdVerdict.MACHINE and (
            self.config.machine_policy is not MachinePolicy.TREAT_AS_HUMAN
        )
        if machine and self._machine_goes_to_agent(call, now):
            machine = False  # a free agent hears it (EngineState._machine_goes_to_agent)
        self._learn_call(call, t, needs_agent=not machine)
        if machine:
            self._machines += 1
            call.result = AttemptResult.MACHINE
            self.ledger.record(t, live=False)
            if self.config.machine_policy is MachinePolicy.LEAVE_MESSAGE:
                self.calls.set_stage(call, AttemptStage.MESSAGE)
                call.message_at = now
                out.append(PlayMessage(call_id, "machine", True))
            else:
                out.append(EndCall(call_id))
            if call.reserved_agent is not None:
                rec = self.board.get(call.reserved_agent)
                call.reserved_agent = None
                self._make_available(rec, t, now, out, "machine_answer")
            self._after(t, now, out)
            return out
        cs = self.config.abandon.clock_start
        if cs is AbandonClockStart.ANSWER:
            clock = answered_at or now
        elif cs is AbandonClockStart.GREETING_START:
            clock = greeting_started_at or now
        else:
            clock = now
        call.clock_at = clock
        call.deadline_t = min(clock.timestamp(), t) + self.config.agent_wait_seconds
        if call.reserved_agent is not None:
            rec = self.board.get(call.reserved_agent)
            call.reserved_agent = None
            self._assign(call, rec, now, out)
        else:
            call.waiting = True
            self.calls.waiting[call_id] = call
        self._after(t, now, out)
        return out

    @delivers_held
    def bridge_ok(self, now: datetime, call_id: str) -> list[Action]:
        """The customer and the agent are connected: the agent is talking."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self.calls.get(call_id)
        if call.agent_id is None or call.stage is not AttemptStage.ANSWERED:
            raise IllegalTransitionError(f"call {call_id}", call.stage.value, "bridged")
        rec = self.board.get(call.agent_id)
        self.calls.set_stage(call, AttemptStage.BRIDGED)
        call.connected_at = now
        call.result = AttemptResult.CONNECTED
        rec.talk_started = t
        self._set(rec, S.TALKING, t, now, out, None)
        self._connected += 1
        self.ledger.record(self._clock_t(call, t), live=True, abandoned=False)
        if self.governor.has_spare_abandon(self.ledger.counts(now), self.hour_counts(now)):
            # while the guard clamps the pacers to one line per ready agent a connected
            # call was bought without risk: it says nothing about the risk level, so the
            # governor does not raise it (it would overshoot when the clamp lifts)
            self.governor.observe(abandoned=False)
        self._after(t, now, out)
        return out

    @delivers_held
    def bridge_failed(self, now: datetime, call_id: str, reason: str) -> list[Action]:
        """The agent's phone did not take the call: pause that agent, re-route the customer."""
        t = self._clock(now)
        out: list[Action] = []
        call = self.calls.get(call_id)
        if call.agent_id is None or call.stage is not AttemptStage.ANSWERED:
            raise IllegalTransitionError(f"call {call_id}", call.stage.value, "bridge_failed")
        rec = self.board.get(call.agent_id)
        call.agent_id = None
        rec.call_id = None
        if rec.pending is S.LOGGED_OUT:
            rec.pending = None
            self._set(rec, S.LOGGED_OUT, t, now, out, "logout")
        else:
            rec.pending = None
            # reasons are short codes (the state log keeps 64 characters, messages 200)
            why = f"bridge_failed:{reason or 'unknown'}"[:64]
            self._set(rec, S.PAUSED, t, now, out, why)
        log.warning("call %s: agent %s did not take the bridge (%s)", call_id, rec.agent_id, reason)
        call.waiting = True
        self.calls.waiting[call_id] = call
        self._expire(t, out)
        self._after(t, now, out)
        return out

    @delivers_held
    def call_ended(
        self, now: datetime, call_id: str, result: AttemptResult | None = None
    ) -> list[Action]:
        """The call is over (either side hung up, or the SIP attempt failed).

        For an unanswered call ``result`` is the SIP-level result and is required. For an
        answered call the engine's own classification (connected, abandoned, machine) wins.
        """
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self.calls.get(call_id)
        self._end_transfer(call, t, now, out)  # a transfer in progress frees its target
        lead_update: LeadUpdate | None = None
        if call.unanswered:
            if result is None or result not in _UNANSWERED_RESULTS:
                raise InvalidInputError(
                    f"call {call_id} ended unanswered: result must be one of "
                    f"{sorted(r.value for r in _UNANSWERED_RESULTS)}, got {result!r}"
                )
            self.calls.leave_inflight(call)
            if call.cancelled and result in (AttemptResult.CANCELLED, AttemptResult.NO_ANSWER):
                # for the lead it rang out unanswered: retried as a no-answer
                result = AttemptResult.NO_ANSWER
            # a cancelled call is learnt as resolved at the cancel: under this policy that
            # is how such calls end (leaving them out would overstate the live rate). A
            # network failure (FAILED, LOST, a CANCELLED the engine did not ask for) is not
            # learnt at all: a trunk outage must not teach the pacer that answers are rare
            self._learn_call(call, t, needs_agent=False, result=result)
            call.result = result
            if call.reserved_agent is not None:
                rec = self.board.get(call.reserved_agent)
                call.reserved_agent = None
                self._make_available(rec, t, now, out, "reserved_call_unanswered")
        elif call.stage is AttemptStage.BRIDGED and call.handed_out:
            pass  # transferred out: its agent is wrapping up since the hand-over
        elif call.stage is AttemptStage.BRIDGED:
            assert call.agent_id is not None
            rec = self.board.get(call.agent_id)
            talk = t - rec.talk_started
            rec.talk_seconds_total += talk
            rec.calls_handled += 1
            if self._talk_est.add(talk):
                self._refresh_model()
            rec.wrap_started = t
            self._wrap_leads[rec.agent_id] = (call_id, call.lead)
            self._set(rec, S.WRAP_UP, t, now, out, None)
        elif call.result is None:
            # answered and live, but the customer hung up before talking to an agent
            if call.agent_id is not None:
                rec = self.board.get(call.agent_id)
                call.agent_id = None
                rec.call_id = None
                self._make_available(rec, t, now, out, "customer_hung_up")
            self.calls.waiting.pop(call_id, None)
            call.waiting = False
            self._record_abandon(call, t)
        final = call.result
        assert final is not None
        if final is not AttemptResult.CONNECTED:
            lead_update = apply_system_result(
                call.lead, final, now, self.config.retry, call_id=call_id
            )
        out.append(
            AttemptFinished(
                call_id=call_id,
                lead_id=call.lead.lead_id,
                result=final,
                agent_id=call.agent_id,
                dialed_at=call.dialed_at,
                answered_at=call.answered_at,
                clock_started_at=call.clock_at,
                connected_at=call.connected_at,
                message_at=call.message_at,
                ended_at=now,
            )
        )
        if lead_update is not None:
            out.append(lead_update)
        self.calls.finish(call)
        self._pace_soon(t)
        self._after(t, now, out)
        return out

    def _answered_after_cancel(
        self, call: CallRecord, verdict: AmdVerdict, t: float, now: datetime, out: list[Action]
    ) -> None:
        """The answer crossed our hang-up: the SIP side ends the call without an agent.

        Counted honestly: a person who answered and got no agent is an abandoned call
        (without a message); a machine is a machine.
        """
        machine = verdict is AmdVerdict.MACHINE and (
            self.config.machine_policy is not MachinePolicy.TREAT_AS_HUMAN
        )
        if machine:
            self._machines += 1
            call.result = AttemptResult.MACHINE
            self.ledger.record(t, live=False)
        else:
            call.clock_at = call.answered_at or now
            self._record_abandon(call, t)
        log.info("call %s: answered after the dialer cancelled it", call.call_id)
        self._after(t, now, out)

    # ------------------------------------------------------------------ wrap-up, timers
    @delivers_held
    def disposition(
        self,
        now: datetime,
        agent_id: str,
        call_id: str,
        code: str,
        *,
        notes: str | None = None,
        next_contact_at: datetime | None = None,
        callback_scope: CallbackScope | None = None,
    ) -> list[Action]:
        """The agent's coded outcome for the call they just finished (in wrap-up)."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.get(agent_id)
        held = self._wrap_leads.get(agent_id)
        if rec.state is not S.WRAP_UP or held is None:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, "disposition")
        if held[0] != call_id:
            raise InvalidDispositionError(
                f"agent {agent_id} is wrapping up call {held[0]!r}, not {call_id!r}"
            )
        spec = self.config.dispositions.get(code)
        if spec is None:
            raise InvalidDispositionError(
                f"unknown disposition code {code!r}; known: {sorted(self.config.dispositions)}"
            )
        update = apply_disposition(
            held[1],
            spec,
            now,
            self.config.retry,
            agent_id=agent_id,
            next_contact_at=next_contact_at,
            callback_scope=callback_scope,
            notes=notes,
            call_id=call_id,
        )
        del self._wrap_leads[agent_id]
        if self._wrap_est.add(t - rec.wrap_started):
            self._refresh_model()
        out.append(update)
        self._make_available(rec, t, now, out, None)
        self._after(t, now, out)
        return out

    @delivers_held
    def tick(self, now: datetime) -> list[Action]:
        """Timers: abandon deadlines, preview timeouts, lead requests, pacing, wrap-up limit."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        timeout = self.config.preview_timeout_seconds
        if timeout is not None:
            for agent_id, offer in list(self._offers.items()):
                if t + EPS >= offer.offered_t + timeout:
                    del self._offers[agent_id]
                    self._dial(
                        offer.lead, t, now, out, reserved_agent=agent_id, call_id=offer.call_id
                    )
        if (
            self._lead_request_t is not None
            and t + EPS >= self._lead_request_t + self.config.lead_request_timeout_seconds
        ):
            self._lead_request_t = None  # ask again below
        self._after(t, now, out)
        limit = self.config.max_wrapup_seconds
        if limit:
            for agent_id, (call_id, _lead) in list(self._wrap_leads.items()):
                if t + EPS >= self.board.get(agent_id).wrap_started + limit:
                    # after the timers above, as one more input: the same actions a driver
                    # got by calling disposition() itself right after this tick
                    log.warning(
                        "campaign %s: agent %s gave no disposition within %.0f s; "
                        "closing call %s as %s",
                        self.config.campaign_id, agent_id, limit, call_id, WRAPUP_TIMEOUT,
                    )
                    out += self.disposition(
                        now, agent_id, call_id, WRAPUP_TIMEOUT,
                        notes=f"no disposition within {limit:.0f} s of the call's end",
                    )
        return out
