"""The state of one running campaign, and the internals every engine input shares.

`CampaignEngine` (engine.py) is built in three layers, one file each, so that no file has
to be read whole to follow one input: this one holds the state, the clock, the agents'
moves, routing and the abandon deadline; dialing.py adds the pacing pass; engine.py adds
the inputs a driver calls. Only `CampaignEngine` is meant to be instantiated.
"""

from __future__ import annotations

import itertools
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from common.vocabulary import AgentState, AttemptResult, AttemptStage, DialMode
from dialer.core.abandon import AbandonLedger, WindowCounts
from dialer.core.actions import (
    Action,
    AgentStateChanged,
    BridgeTo,
    PlayMessage,
    ScreenPop,
    VisitorLeft,
)
from dialer.core.agents import AgentBoard, AgentRecord
from dialer.core.calls import CallRecord, CallTable, Offer
from dialer.core.config import EngineConfig
from dialer.core.errors import IllegalTransitionError, InvalidInputError
from dialer.core.governor import AbandonGovernor, HourOutlook, hour_outlook_spans
from dialer.core.hopper import Hopper
from dialer.core.pacer import Pacer, pacer_for
from dialer.core.router import choose_agent
from dialer.core.stats import CallEstimator, DurationEstimator, PacingModel
from dialer.core.tickets import LeadTicket

#: the name these records had before the engine was split into layers
log = logging.getLogger("dialer.core.engine")

S = AgentState
#: datetimes carry microseconds: a wake-up time read back may be 1 us early, so "due"
#: comparisons allow for it (otherwise a driver would tick forever just before a timer)
EPS = 2e-6


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


class EngineState:
    """The engine's state and shared internals (see the module docstring)."""

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
        #: the engine's own pacers are held to `over_cap_clamp` in every pacing pass; an
        #: injected pacer (the benchmark's models of other products) is run as it is
        self._guard_clamp = pacer is None
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
        #: calls in flight; a call's stage changes only through `calls.set_stage`
        self.calls = CallTable()
        self._offers: dict[str, Offer] = {}  # preview offers by agent id
        #: abandon messages produced by the deadline check of an input that then raised
        #: (see engine.delivers_held); returned first by the next input or tick
        self._held: list[Action] = []
        self._expired_now: list[Action] = []
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

    @staticmethod
    def _check_aware(now: datetime) -> None:
        if now.tzinfo is None:
            raise InvalidInputError(f"now must be timezone-aware (UTC), got {now.isoformat()}")

    def _clock(self, now: datetime) -> float:
        self._check_aware(now)
        t = now.timestamp()
        # a wall clock may step back a little (NTP); the engine's time never does
        if t < self._t:
            t = self._t
        self._t = t
        return t

    @staticmethod
    def _dt(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC)

    # ------------------------------------------------------------------ reading
    def counters(self) -> EngineCounters:
        return EngineCounters(
            dials=self._dials,
            live_answers=self._connected + self._abandoned,
            connected=self._connected,
            abandoned=self._abandoned,
            machines=self._machines,
            calls_in_flight=len(self.calls.inflight) + self.calls.reserved_inflight,
            calls_waiting=len(self.calls.waiting),
            hopper_size=len(self.hopper),
            surplus_cancels=self._cancels,
        )

    def set_dial_settings(self, mode: DialMode, max_dial_level: float) -> None:
        """A supervisor's new dial mode and maximum dial level, from the next pacing pass on.
        The pacer and the surplus-call switch follow the mode (an injected pacer, as the
        benchmarks use, stays); calls in flight and preview offers are not touched."""
        cfg = self.config
        limits = replace(cfg.limits, max_lines_per_agent=max(
            max_dial_level, cfg.limits.power_lines_per_agent, 1.0))
        self.config = replace(cfg, mode=mode, limits=limits)
        if self._guard_clamp:
            self._pacer = pacer_for(mode)
        self._cancelling = cfg.cancel_surplus_calls and mode is DialMode.PREDICTIVE

    def abandon_counts(self, now: datetime) -> WindowCounts:
        """Counts over the campaign's regulatory window ending at ``now``."""
        return self.ledger.counts(now)

    def hour_counts(self, now: datetime) -> HourOutlook | None:
        """Counts over the last 60 minutes and the parts of it the hours ending within
        ``hour_lookahead_s`` keep (`HourOutlook`), for the governor's hour guard (None: off).
        Future answers are assumed at ``hour_future_rate`` of the last hour's rate."""
        g = self.config.governor
        if not g.hour_cap_ratio:
            return None
        windows = tuple((3600.0 - span, self.ledger.counts(now, span))
                        for span in hour_outlook_spans(g))
        return HourOutlook(windows, g.hour_future_rate * windows[0][1].denominator / 3600.0)

    def call_stage(self, call_id: str) -> AttemptStage | None:
        """The stage of a call in flight; None once the engine finished it (or never knew it)."""
        return self.calls.stage_of(call_id)

    def calls_by_stage(self) -> dict[AttemptStage, int]:
        """How many calls in flight are in each stage (stages with none are left out)."""
        return self.calls.count_by_stage()

    def agent_state(self, agent_id: str) -> AgentState:
        return self.board.get(agent_id).state

    def agent_times(self, now: datetime, agent_id: str) -> dict[AgentState, float]:
        """Seconds the agent has spent in each state (open interval up to ``now``)."""
        return self.board.time_in_state(self.board.get(agent_id), now.timestamp())

    # ------------------------------------------------------------------ internals
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
        """The agent is free: honour a pending pause/logout, else READY and serve the queue.
        A visiting agent (dialer/core/transfer.py) goes home instead (`VisitorLeft`); a
        log-out it asked for is applied here, where its desktop is told."""
        rec.call_id = None
        if rec.visiting:
            then, why = (rec.pending, rec.pending_reason) if rec.pending is not None \
                else (S.READY, reason)
            if then is S.LOGGED_OUT:
                self._set(rec, S.LOGGED_OUT, t, now, out, why)
            self.board.leave(rec.agent_id)
            out.append(VisitorLeft(rec.agent_id, then, why))
            return
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

    # leaving safely: a ready agent's pause/logout waits while calls are placed for it
    def _unassigned_calls(self) -> int:
        """Calls placed (or answered and waiting) that no agent holds or is reserved for."""
        return len(self.calls.inflight) - self.calls.reserved_inflight + len(self.calls.waiting)

    def _machine_goes_to_agent(self, call: CallRecord, now: datetime) -> bool:
        """Whether an AMD machine verdict is handed to a free agent instead of hung up on:
        when counting its false-positive estimate (where the policy counts them, as Ofcom's
        does) would put the window over the guard's cap, and an agent is reserved for the
        call or ready with no other call needing them. Only a window with very few live
        answers is moved by one estimate: with 1 live answer and 3 machines the estimate
        alone is (0.012 x 3) / (1 + 0.012 x 3) = 3.5 %, on a Monday morning of a UK
        campaign (bench/compliance.py, 100 agents). The agent hears the machine."""
        free = call.reserved_agent is not None or self._ready_staying() > self._unassigned_calls()
        return free and self._machine_estimate_breaks(now)

    def _machine_estimate_breaks(self, now: datetime) -> bool:
        """Whether one more machine verdict's false-positive estimate would put the
        window over the guard's cap (`_machine_goes_to_agent`)."""
        pol = self.ledger.policy
        if not pol.count_amd_false_positives or pol.amd_false_positive_rate <= 0.0:
            return False
        c = self.ledger.counts(now)
        fp = pol.amd_false_positive_rate
        cap = self.config.abandon.cap * (1.0 - self.governor.settings.guard_margin)
        return c.numerator + fp > cap * (c.denominator + fp)

    def _ready_staying(self) -> int:
        """Ready agents without a pending pause/logout: the ones new dials are for."""
        return sum(1 for r in self.board.ready.values() if r.pending is None)

    def _defer_leave(self, rec: AgentRecord, new: AgentState, reason: str) -> bool:
        """A ready agent asks to pause or log out while the calls already placed outnumber
        the ready agents who stay: it stays ready, with the request pending, so an answered
        call still finds it (else that person is abandoned); the request is applied after
        that call, or as soon as the calls no longer need it (`_settle_leaving`)."""
        if self.config.mode is DialMode.PREVIEW \
                or self._unassigned_calls() <= self._ready_staying() - 1:
            return False
        rec.pending, rec.pending_reason = new, reason
        return True

    def _settle_leaving(self, t: float, now: datetime, out: list[Action]) -> None:
        """Apply the pending pause/logout of ready agents the placed calls no longer need."""
        leaving = [r for r in self.board.ready.values() if r.pending is not None]
        for rec in sorted(leaving, key=lambda r: (r.ready_since, r.agent_id)):
            if self._unassigned_calls() > self._ready_staying():
                return
            new, why = rec.pending, rec.pending_reason
            rec.pending = rec.pending_reason = None
            assert new is not None
            self._set(rec, new, t, now, out, why)

    def _assign(self, call: CallRecord, rec: AgentRecord, now: datetime, out: list[Action]) -> None:
        """Reserve ``rec`` for ``call`` and ask the driver to bridge (one call per agent)."""
        t = self._t
        if rec.state is S.READY:
            self._set(rec, S.RESERVED, t, now, out, "bridging")
        elif rec.state is not S.RESERVED or rec.call_id not in (None, call.call_id):
            raise IllegalTransitionError(f"agent {rec.agent_id}", rec.state.value, "bridging")
        rec.call_id = call.call_id
        call.agent_id = rec.agent_id
        call.waiting = False
        self.calls.waiting.pop(call.call_id, None)
        out.append(ScreenPop(rec.agent_id, call.call_id, call.lead))
        out.append(BridgeTo(call.call_id, rec.agent_id))

    def _route(self, now: datetime, out: list[Action]) -> None:
        """Give waiting customers (oldest first) to the longest-waiting ready agents."""
        while self.calls.waiting and self.board.ready:
            rec = choose_agent(self.board.ready.values(), self.config.tie_break)
            assert rec is not None
            call = next(iter(self.calls.waiting.values()))
            self._assign(call, rec, now, out)

    def _expire(self, t: float, out: list[Action]) -> None:
        """Abandon waiting calls whose agent wait is over: message, count, hang up after."""
        if not self.calls.waiting:
            return
        for call in [c for c in self.calls.waiting.values() if c.deadline_t <= t + EPS]:
            del self.calls.waiting[call.call_id]
            call.waiting = False
            self.calls.set_stage(call, AttemptStage.MESSAGE)
            # when the engine asked for the message: a late tick shows up as a late message
            call.message_at = self._dt(t)
            self._record_abandon(call, t)
            log.info(
                "call %s: no agent within %.1fs, abandon message",
                call.call_id,
                self.config.agent_wait_seconds,
            )
            message = PlayMessage(call.call_id, "abandon", True)
            out.append(message)
            self._expired_now.append(message)

    def _record_abandon(self, call: CallRecord, t: float) -> None:
        call.result = AttemptResult.ABANDONED
        self._abandoned += 1
        self.ledger.record(self._clock_t(call, t), live=True, abandoned=True)
        self.governor.observe(abandoned=True)

    @staticmethod
    def _clock_t(call: CallRecord, t: float) -> float:
        return call.clock_at.timestamp() if call.clock_at is not None else t

    def _learn_call(
        self,
        call: CallRecord,
        t: float,
        *,
        needs_agent: bool,
        result: AttemptResult | None = None,
    ) -> None:
        """Teach the answer-time table how this call resolved (network failures are not
        callee outcomes and are left out: `stats.NETWORK_RESULTS`)."""
        if self._call_est.add(t - call.dialed_t, needs_agent, result=result):
            self._refresh_model()

    def _refresh_model(self) -> None:
        self.model = PacingModel(
            calls=self._call_est.dist, talk=self._talk_est.dist, wrap=self._wrap_est.dist
        )

    def _pace_soon(self, t: float) -> None:
        soon = max(t, self._last_pace_t + self.config.min_pace_gap_seconds)
        if soon < self._next_pace_t:
            self._next_pace_t = soon
