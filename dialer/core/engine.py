"""CampaignEngine: the sans-IO core of one running campaign.

The driver (the live asyncio runtime, or the simulator) owns every clock and socket. It
calls the engine's input methods with an explicit aware-UTC ``now`` and carries out the
actions they return, in order; it calls `tick` no later than `next_wakeup`. The engine
holds agents, calls in flight, the hopper, the pacing statistics and the abandon ledger,
and never does IO or reads a clock, so the same object runs in real and virtual time.

Life of an outbound call, as the engine sees it::

    Dial -> [call_ringing] -> call_answered(verdict) -> BridgeTo -> bridge_ok
         -> call_ended -> (agent in wrap-up) -> disposition -> LeadUpdate
    no agent within agent_wait after the compliance clock started:
         PlayMessage("abandon") -> call_ended -> AttemptFinished(ABANDONED) + LeadUpdate
    not answered: call_ended(result) -> AttemptFinished + LeadUpdate (retry rules)
"""

from __future__ import annotations

import itertools
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from common.vocabulary import (
    AbandonClockStart,
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DialMode,
    MachinePolicy,
)
from dialer.core.abandon import AbandonLedger, WindowCounts
from dialer.core.actions import (
    Action,
    AgentStateChanged,
    AttemptFinished,
    BridgeTo,
    Dial,
    EndCall,
    LeadUpdate,
    NeedLeads,
    PlayMessage,
    PreviewOffer,
    ScreenPop,
)
from dialer.core.agents import AgentBoard, AgentRecord
from dialer.core.config import EngineConfig
from dialer.core.errors import (
    IllegalTransitionError,
    InvalidDispositionError,
    InvalidInputError,
    UnknownCallError,
)
from dialer.core.governor import AbandonGovernor
from dialer.core.hopper import Hopper
from dialer.core.outcomes import apply_disposition, apply_system_result
from dialer.core.pacer import (
    AbandonBudget,
    Pacer,
    PacerSnapshot,
    pacer_for,
    ringing_calls_to_keep,
)
from dialer.core.router import choose_agent
from dialer.core.stats import CallEstimator, DurationEstimator, PacingModel
from dialer.core.tickets import LeadTicket

log = logging.getLogger(__name__)

S = AgentState
#: datetimes carry microseconds: a wake-up time read back may be 1 us early, so "due"
#: comparisons allow for it (otherwise a driver would tick forever just before a timer)
_EPS = 2e-6
_UNANSWERED = frozenset({AttemptStage.CREATED, AttemptStage.DIALING, AttemptStage.RINGING})
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
    }
)


@dataclass(slots=True)
class _Call:
    call_id: str
    lead: LeadTicket
    dialed_t: float
    dialed_at: datetime
    #: first 18x (call_ringing): the minimum ring time counts from here (docs/compliance.md)
    ringing_t: float | None = None
    #: agent reserved before the dial (preview, agent-owned callback)
    reserved_agent: str | None = None
    stage: AttemptStage = AttemptStage.DIALING
    #: agent the customer is being bridged to / talking with
    agent_id: str | None = None
    answered_at: datetime | None = None
    clock_at: datetime | None = None
    deadline_t: float = math.inf
    connected_at: datetime | None = None
    message_at: datetime | None = None
    result: AttemptResult | None = None
    waiting: bool = False
    #: the engine hung it up while ringing (surplus): the lead gets NO_ANSWER
    cancelled: bool = False


@dataclass(slots=True)
class _Offer:
    call_id: str
    lead: LeadTicket
    offered_t: float


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """Running totals since the engine started (for metrics and the simulator)."""

    dials: int
    live_answers: int
    connected: int
    abandoned: int
    machines: int
    calls_in_flight: int
    calls_waiting: int
    hopper_size: int
    #: ringing calls hung up as surplus (after the minimum ring time)
    surplus_cancels: int = 0


class CampaignEngine:
    """Sans-IO state of one running campaign. See the module docstring for the protocol."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        pacer: Pacer | None = None,
        call_id_factory: Callable[[], str] | None = None,
        agent_free_oracle: Callable[[float], tuple[float, ...]] | None = None,
    ) -> None:
        """``agent_free_oracle`` (simulator diagnostics only): given POSIX time, the exact
        seconds until each busy agent is free; every snapshot then carries it as
        `PacerSnapshot.known_free_in` instead of the talk/wrap-up forecast."""
        self.config = config
        self._agent_free_oracle = agent_free_oracle
        self._pacer: Pacer = pacer if pacer is not None else pacer_for(config.mode)
        if call_id_factory is None:
            run = uuid.uuid4().hex[:8]
            seq = itertools.count(1)
            prefix = f"{config.campaign_id}-{run}"
            call_id_factory = lambda: f"{prefix}-{next(seq)}"  # noqa: E731
        self._new_call_id = call_id_factory
        self.board = AgentBoard()
        self.hopper = Hopper(config.callback_grace)
        self.ledger = AbandonLedger(config.abandon, config.timezone)
        self.governor = AbandonGovernor(config.abandon_target, config.abandon.cap, config.governor)
        grid = math.ceil(config.ring_timeout_seconds) + 20
        self._call_est = CallEstimator(
            grid_seconds=grid,
            prior_live_rate=config.expected_live_rate,
            prior_live_seconds=min(10.0, config.ring_timeout_seconds / 2),
        )
        self._talk_est = DurationEstimator(prior_mean=config.expected_talk_seconds)
        self._wrap_est = DurationEstimator(
            prior_mean=config.expected_wrap_seconds, grid_seconds=600
        )
        self.model = PacingModel(
            calls=self._call_est.dist, talk=self._talk_est.dist, wrap=self._wrap_est.dist
        )
        self._calls: dict[str, _Call] = {}
        self._inflight: dict[str, _Call] = {}  # unanswered and not reserved
        self._reserved_inflight = 0
        self._waiting: dict[str, _Call] = {}  # answered live, no agent yet (insertion = FIFO)
        self._offers: dict[str, _Offer] = {}  # preview offers by agent id
        self._wrap_leads: dict[str, tuple[str, LeadTicket]] = {}  # agent -> (call, lead)
        self._t = -math.inf
        self._last_pace_t = -math.inf
        self._next_pace_t = -math.inf
        self._lead_request_t: float | None = None
        self._recent_dials: deque[float] = deque()  # dial times of the last minute
        self._dials = 0
        self._connected = 0
        self._abandoned = 0
        self._machines = 0
        self._cancels = 0
        self._cancelling = config.cancel_surplus_calls and config.mode is DialMode.PREDICTIVE
        #: (time a ringing call reaches the minimum ring time, call id), in dial order
        self._ring_checks: deque[tuple[float, str]] = deque()

    # ------------------------------------------------------------------ clock
    def _clock(self, now: datetime) -> float:
        if now.tzinfo is None:
            raise InvalidInputError(f"now must be timezone-aware (UTC), got {now.isoformat()}")
        t = now.timestamp()
        # a wall clock may step back a little (NTP); the engine's time never does
        if t < self._t:
            t = self._t
        self._t = t
        return t

    @staticmethod
    def _dt(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC)

    @property
    def next_wakeup(self) -> datetime | None:
        """When the driver must call `tick` next (None: nothing scheduled)."""
        best = math.inf
        if self.board.working > 0 or self._waiting or self._offers:
            best = self._next_pace_t
        for c in self._waiting.values():
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
            cb = self.hopper.next_callback_change(self._dt(max(self._t, 0.0)))
            return cb
        return self._dt(max(best, self._t))

    # ------------------------------------------------------------------ agents
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

    def agent_ready(self, now: datetime, agent_id: str) -> list[Action]:
        """A paused agent becomes ready. A busy agent's pending pause is cancelled."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        rec = self.board.get(agent_id)
        if rec.state is S.PAUSED:
            self._make_available(rec, t, now, out, None)
        elif rec.state in (S.RESERVED, S.TALKING, S.WRAP_UP):
            rec.pending = None
            rec.pending_reason = None
        elif rec.state is S.LOGGED_OUT:
            raise IllegalTransitionError(f"agent {agent_id}", rec.state.value, S.READY.value)
        self._after(t, now, out)
        return out

    def agent_pause(self, now: datetime, agent_id: str, reason: str) -> list[Action]:
        """Pause now if ready (a preview offer is withdrawn); if busy, after this call."""
        if not reason:
            raise InvalidInputError("a pause needs a reason code")
        return self._leave(now, agent_id, S.PAUSED, reason)

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
        if rec.state in (S.READY, S.PAUSED):
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
    def call_ringing(self, now: datetime, call_id: str) -> list[Action]:
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self._call(call_id)
        if call.stage in (AttemptStage.CREATED, AttemptStage.DIALING):
            call.stage = AttemptStage.RINGING
        if call.ringing_t is None:
            call.ringing_t = t
            if self._cancelling and call.call_id in self._inflight:
                # weighed just after the minimum ring time, counted from the first 18x
                # (docs/compliance.md: never cancel an unanswered call before it)
                self._ring_checks.append((t + self.config.min_ring_seconds + 1e-3, call_id))
        self._after(t, now, out)
        return out

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
        call = self._call(call_id)
        if call.stage not in _UNANSWERED:
            raise IllegalTransitionError(f"call {call_id}", call.stage.value, "answered")
        self._leave_inflight(call)
        call.stage = AttemptStage.ANSWERED
        call.answered_at = answered_at or now
        if call.cancelled:
            self._answered_after_cancel(call, verdict, t, now, out)
            return out
        machine = verdict is AmdVerdict.MACHINE and (
            self.config.machine_policy is not MachinePolicy.TREAT_AS_HUMAN
        )
        self._learn_call(call, t, needs_agent=not machine)
        if machine:
            self._machines += 1
            call.result = AttemptResult.MACHINE
            self.ledger.record(t, live=False)
            if self.config.machine_policy is MachinePolicy.LEAVE_MESSAGE:
                call.stage = AttemptStage.MESSAGE
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
            self._waiting[call_id] = call
        self._after(t, now, out)
        return out

    def bridge_ok(self, now: datetime, call_id: str) -> list[Action]:
        """The customer and the agent are connected: the agent is talking."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        call = self._call(call_id)
        if call.agent_id is None or call.stage is not AttemptStage.ANSWERED:
            raise IllegalTransitionError(f"call {call_id}", call.stage.value, "bridged")
        rec = self.board.get(call.agent_id)
        call.stage = AttemptStage.BRIDGED
        call.connected_at = now
        call.result = AttemptResult.CONNECTED
        rec.talk_started = t
        self._set(rec, S.TALKING, t, now, out, None)
        self._connected += 1
        self.ledger.record(self._clock_t(call, t), live=True, abandoned=False)
        self.governor.observe(abandoned=False)
        self._after(t, now, out)
        return out

    def bridge_failed(self, now: datetime, call_id: str, reason: str) -> list[Action]:
        """The agent's phone did not take the call: pause that agent, re-route the customer."""
        t = self._clock(now)
        out: list[Action] = []
        call = self._call(call_id)
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
            self._set(rec, S.PAUSED, t, now, out, f"bridge_failed:{reason or 'unknown'}")
        log.warning("call %s: agent %s did not take the bridge (%s)", call_id, rec.agent_id, reason)
        call.waiting = True
        self._waiting[call_id] = call
        self._expire(t, out)
        self._after(t, now, out)
        return out

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
        call = self._call(call_id)
        lead_update: LeadUpdate | None = None
        if call.stage in _UNANSWERED:
            if result is None or result not in _UNANSWERED_RESULTS:
                raise InvalidInputError(
                    f"call {call_id} ended unanswered: result must be one of "
                    f"{sorted(r.value for r in _UNANSWERED_RESULTS)}, got {result!r}"
                )
            self._leave_inflight(call)
            if call.cancelled and result in (AttemptResult.CANCELLED, AttemptResult.NO_ANSWER):
                # for the lead it rang out unanswered: retried as a no-answer
                result = AttemptResult.NO_ANSWER
            # a cancelled call is learnt as resolved at the cancel: under this policy that
            # is how such calls end (leaving them out would overstate the live rate)
            self._learn_call(call, t, needs_agent=False)
            call.result = result
            if call.reserved_agent is not None:
                rec = self.board.get(call.reserved_agent)
                call.reserved_agent = None
                self._make_available(rec, t, now, out, "reserved_call_unanswered")
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
            self._waiting.pop(call_id, None)
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
        del self._calls[call_id]
        self._pace_soon(t)
        self._after(t, now, out)
        return out

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

    def tick(self, now: datetime) -> list[Action]:
        """Timers: abandon deadlines, preview timeouts, lead requests, pacing."""
        t = self._clock(now)
        out: list[Action] = []
        self._expire(t, out)
        timeout = self.config.preview_timeout_seconds
        if timeout is not None:
            for agent_id, offer in list(self._offers.items()):
                if t + _EPS >= offer.offered_t + timeout:
                    del self._offers[agent_id]
                    self._dial(
                        offer.lead, t, now, out, reserved_agent=agent_id, call_id=offer.call_id
                    )
        if (
            self._lead_request_t is not None
            and t + _EPS >= self._lead_request_t + self.config.lead_request_timeout_seconds
        ):
            self._lead_request_t = None  # ask again below
        self._after(t, now, out)
        return out

    # ------------------------------------------------------------------ reading
    def counters(self) -> EngineCounters:
        return EngineCounters(
            dials=self._dials,
            live_answers=self._connected + self._abandoned,
            connected=self._connected,
            abandoned=self._abandoned,
            machines=self._machines,
            calls_in_flight=len(self._inflight) + self._reserved_inflight,
            calls_waiting=len(self._waiting),
            hopper_size=len(self.hopper),
            surplus_cancels=self._cancels,
        )

    def abandon_counts(self, now: datetime) -> WindowCounts:
        """Counts over the campaign's regulatory window ending at ``now``."""
        return self.ledger.counts(now)

    def agent_state(self, agent_id: str) -> AgentState:
        return self.board.get(agent_id).state

    def agent_times(self, now: datetime, agent_id: str) -> dict[AgentState, float]:
        """Seconds the agent has spent in each state (open interval up to ``now``)."""
        return self.board.time_in_state(self.board.get(agent_id), now.timestamp())

    def snapshot(self, now: datetime) -> PacerSnapshot:
        """The pacer's view of the campaign at ``now`` (also useful for dashboards)."""
        t = now.timestamp()
        talking: list[float] = []
        wrapping: list[float] = []
        for rec in self.board:
            st = rec.state
            if rec.pending is not None:
                continue  # going on a break / logging out after this call: not future supply
            if st is S.TALKING:
                talking.append(t - rec.talk_started)
            elif st is S.WRAP_UP:
                wrapping.append(t - rec.wrap_started)
            elif st is S.RESERVED and rec.call_id is not None and rec.agent_id not in self._offers:
                call = self._calls.get(rec.call_id)
                if call is not None and call.agent_id == rec.agent_id:
                    talking.append(0.0)  # bridge in progress: a talk is about to start
        counts = self.ledger.counts(now)
        return PacerSnapshot(
            mode=self.config.mode,
            t=t,
            agents_logged_in=self.board.logged_in,
            agents_working=self.board.working,
            agents_ready=len(self.board.ready),
            talking_elapsed=tuple(talking),
            wrap_elapsed=tuple(wrapping),
            inflight_ages=tuple(t - c.dialed_t for c in self._inflight.values()),
            reserved_calls=self._reserved_inflight,
            waiting=len(self._waiting),
            lines_in_use=len(self._calls),
            leads_available=self.hopper.available(now),
            limits=self.config.limits,
            model=self.model,
            abandon=AbandonBudget(
                cap=self.config.abandon.cap,
                target=self.config.abandon_target,
                window_live=counts.denominator,
                window_abandoned=counts.numerator,
                risk=self.governor.allowed_risk(counts),
            ),
            agent_wait=self.config.agent_wait_seconds,
            dials_total=self._dials,
            live_total=self._connected + self._abandoned,
            abandoned_total=self._abandoned,
            machines_total=self._machines,
            cancel_after=self.config.min_ring_seconds if self._cancelling else None,
            known_free_in=self._agent_free_oracle(t) if self._agent_free_oracle else None,
        )

    # ------------------------------------------------------------------ internals
    def _call(self, call_id: str) -> _Call:
        try:
            return self._calls[call_id]
        except KeyError:
            raise UnknownCallError(call_id) from None

    def _set(
        self,
        rec: AgentRecord,
        new: AgentState,
        t: float,
        now: datetime,
        out: list[Action],
        reason: str | None,
    ) -> None:
        ev: AgentStateChanged | None = self.board.set_state(rec, new, t, now, reason)
        if ev is not None:
            out.append(ev)

    def _make_available(
        self, rec: AgentRecord, t: float, now: datetime, out: list[Action], reason: str | None
    ) -> None:
        """The agent is free: honour a pending pause/logout, else READY and serve the queue."""
        rec.call_id = None
        if rec.pending is not None:
            new, why = rec.pending, rec.pending_reason
            rec.pending = None
            rec.pending_reason = None
            if rec.state is S.PAUSED and new is S.PAUSED:
                rec.reason = why
                return
            self._set(rec, new, t, now, out, why)
            return
        self._set(rec, S.READY, t, now, out, reason)
        self._pace_soon(t)

    def _assign(self, call: _Call, rec: AgentRecord, now: datetime, out: list[Action]) -> None:
        """Reserve ``rec`` for ``call`` and ask the driver to bridge (one call per agent)."""
        t = self._t
        if rec.state is S.READY:
            self._set(rec, S.RESERVED, t, now, out, "bridging")
        elif rec.state is not S.RESERVED or rec.call_id not in (None, call.call_id):
            raise IllegalTransitionError(f"agent {rec.agent_id}", rec.state.value, "bridging")
        rec.call_id = call.call_id
        call.agent_id = rec.agent_id
        call.waiting = False
        self._waiting.pop(call.call_id, None)
        out.append(ScreenPop(rec.agent_id, call.call_id, call.lead))
        out.append(BridgeTo(call.call_id, rec.agent_id))

    def _route(self, now: datetime, out: list[Action]) -> None:
        """Give waiting customers (oldest first) to the longest-waiting ready agents."""
        while self._waiting and self.board.ready:
            rec = choose_agent(self.board.ready.values(), self.config.tie_break)
            assert rec is not None
            call = next(iter(self._waiting.values()))
            self._assign(call, rec, now, out)

    def _expire(self, t: float, out: list[Action]) -> None:
        """Abandon waiting calls whose agent wait is over: message, count, hang up after."""
        if not self._waiting:
            return
        for call in [c for c in self._waiting.values() if c.deadline_t <= t + _EPS]:
            del self._waiting[call.call_id]
            call.waiting = False
            call.stage = AttemptStage.MESSAGE
            # when the engine asked for the message: a late tick shows up as a late message
            call.message_at = self._dt(t)
            self._record_abandon(call, t)
            log.info(
                "call %s: no agent within %.1fs, abandon message",
                call.call_id,
                self.config.agent_wait_seconds,
            )
            out.append(PlayMessage(call.call_id, "abandon", True))

    def _record_abandon(self, call: _Call, t: float) -> None:
        call.result = AttemptResult.ABANDONED
        self._abandoned += 1
        self.ledger.record(self._clock_t(call, t), live=True, abandoned=True)
        self.governor.observe(abandoned=True)

    @staticmethod
    def _clock_t(call: _Call, t: float) -> float:
        return call.clock_at.timestamp() if call.clock_at is not None else t

    def _leave_inflight(self, call: _Call) -> None:
        if self._inflight.pop(call.call_id, None) is None and call.reserved_agent is not None:
            self._reserved_inflight -= 1

    def _learn_call(self, call: _Call, t: float, *, needs_agent: bool) -> None:
        if self._call_est.add(t - call.dialed_t, needs_agent):
            self._refresh_model()

    def _refresh_model(self) -> None:
        self.model = PacingModel(
            calls=self._call_est.dist, talk=self._talk_est.dist, wrap=self._wrap_est.dist
        )

    def _pace_soon(self, t: float) -> None:
        soon = max(t, self._last_pace_t + self.config.min_pace_gap_seconds)
        if soon < self._next_pace_t:
            self._next_pace_t = soon

    def _after(self, t: float, now: datetime, out: list[Action]) -> None:
        """Common tail of every input: route, cancel surplus calls, pace when due, leads."""
        self._route(now, out)
        if self._ring_checks and t + _EPS >= self._ring_checks[0][0]:
            self._cancel_surplus(t, now, out)
        if t + _EPS >= self._next_pace_t:
            self._pace(t, now, out)
        self._need_leads(t, now, out)

    def _dial(
        self,
        lead: LeadTicket,
        t: float,
        now: datetime,
        out: list[Action],
        *,
        reserved_agent: str | None = None,
        call_id: str | None = None,
    ) -> None:
        cid = call_id or self._new_call_id()
        if cid in self._calls:
            raise InvalidInputError(f"call id {cid!r} issued twice by the call id factory")
        call = _Call(
            call_id=cid, lead=lead, dialed_t=t, dialed_at=now, reserved_agent=reserved_agent
        )
        self._calls[cid] = call
        if reserved_agent is None:
            self._inflight[cid] = call
        else:
            self._reserved_inflight += 1
            self.board.get(reserved_agent).call_id = cid
        self._dials += 1
        out.append(Dial(cid, lead, reserved_agent))

    def _pace(self, t: float, now: datetime, out: list[Action]) -> None:
        self._next_pace_t = t + self.config.pace_interval_seconds
        board = self.board
        if board.working <= 0:
            return  # nothing paced: the next agent to log in is served at once
        self._last_pace_t = t
        dials_before = self._dials
        # agent-owned callbacks go to their owners first, whatever the mode
        if board.ready and len(self.hopper):
            for agent_id in self.hopper.owners_with_due_callbacks(now):
                rec = board.ready.get(agent_id)
                if rec is None:
                    continue
                lead = self.hopper.take_for_owner(agent_id, now)
                if lead is None:
                    continue
                self._set(rec, S.RESERVED, t, now, out, "callback")
                if self.config.mode is DialMode.PREVIEW:
                    cid = self._new_call_id()
                    self._offers[agent_id] = _Offer(cid, lead, t)
                    rec.call_id = cid
                    out.append(PreviewOffer(agent_id, cid, lead))
                else:
                    self._dial(lead, t, now, out, reserved_agent=agent_id)
        if self.config.mode is DialMode.PREVIEW:
            for rec in sorted(board.ready.values(), key=lambda r: (r.ready_since, r.agent_id)):
                leads = self.hopper.take(1, now)
                if not leads:
                    break
                self._set(rec, S.RESERVED, t, now, out, "preview")
                cid = self._new_call_id()
                self._offers[rec.agent_id] = _Offer(cid, leads[0], t)
                rec.call_id = cid
                out.append(PreviewOffer(rec.agent_id, cid, leads[0]))
        else:
            if self._cancelling:
                self._cancel_surplus(t, now, out)
            snap = self.snapshot(now)
            n = self._pacer(snap)
            if n > 0:
                for lead in self.hopper.take(n, now):
                    self._dial(lead, t, now, out)
        for _ in range(self._dials - dials_before):
            self._recent_dials.append(t)
        horizon = t - 60.0
        while self._recent_dials and self._recent_dials[0] < horizon:
            self._recent_dials.popleft()

    def _cancel_surplus(self, t: float, now: datetime, out: list[Action]) -> None:
        """Hang up ringing calls past the minimum ring time that no agent is expected for.

        Runs when a call reaches the minimum ring time and before every predictive pacing
        pass (a call kept once is weighed again as the agents' state changes). The pacer
        counts a younger call's answers only up to the minimum ring time; this is what
        makes that safe. The calls are weighed youngest first: they have the most answer
        probability left, so the oldest are the first to go.
        """
        while self._ring_checks and t + _EPS >= self._ring_checks[0][0]:
            self._ring_checks.popleft()
        min_ring = self.config.min_ring_seconds
        old = [c for c in self._inflight.values()
               if c.ringing_t is not None and t + _EPS >= c.ringing_t + min_ring]
        if not old:
            return
        old.sort(key=lambda c: -c.dialed_t)
        for c in old:
            del self._inflight[c.call_id]
        keep = ringing_calls_to_keep(self.snapshot(now), tuple(t - c.dialed_t for c in old))
        for c in old[:keep]:
            self._inflight[c.call_id] = c
        for c in old[keep:]:
            c.cancelled = True
            self._cancels += 1
            out.append(EndCall(c.call_id))

    def _answered_after_cancel(
        self, call: _Call, verdict: AmdVerdict, t: float, now: datetime, out: list[Action]
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

    def _need_leads(self, t: float, now: datetime, out: list[Action]) -> None:
        if self._lead_request_t is not None:
            return
        low = max(
            self.config.hopper_low_water,
            math.ceil(len(self._recent_dials) / 60.0 * self.config.hopper_lookahead_seconds),
        )
        have = len(self.hopper)
        if have < low:
            self._lead_request_t = t
            out.append(NeedLeads(2 * low - have))
