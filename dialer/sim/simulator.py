"""Discrete-event simulator in virtual time that drives the real `CampaignEngine`.

The simulator plays the world around one campaign: callees from a `LeadTape`, agents who
talk, wrap up, disposition and take breaks, and a SIP side that answers, bridges and plays
messages. It is a driver like the live runtime: it feeds engine inputs with an explicit
``now`` and carries out the actions returned, calling `tick` at `next_wakeup`. Nothing of
the core is copied here, so what the benchmark measures is the code that dials for real.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.vocabulary import (
    DIALABLE_STATUSES,
    AgentState,
    AmdVerdict,
    AttemptResult,
    CallbackScope,
)
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
from dialer.core.config import EngineConfig
from dialer.core.engine import CampaignEngine
from dialer.core.tickets import LeadTicket
from dialer.sim.results import PolicySpec, RunResult, standard_policies
from dialer.sim.workload import Draw, LeadTape, Outcome, Workload

#: the simulated shift starts on a Monday morning (any aware UTC instant would do)
SIM_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

# event kinds (ints: the heap compares them when times tie)
_TICK, _ANSWER, _SIP_END, _BRIDGE, _HANGUP, _DISPO, _BREAK, _BACK, _PREVIEW, _CANCEL, _RING = (
    range(11))


_BUSY_WITH_CALL = frozenset({AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP})


@dataclass(slots=True)
class _SimCall:
    lead: int
    attempt: int
    draw: Draw
    dialed_t: float
    agent: str | None = None
    answered: bool = False


# disposition mix of connected calls, by the tape's uniform draw (callback share first)
_DISPOSITION_MIX: tuple[tuple[str, float], ...] = (
    ("meeting_set", 0.03),
    ("contract", 0.04),
    ("interested", 0.12),
    ("refused", 0.08),
    ("not_reached", 0.05),
    ("do_not_call", 0.01),
    ("wrong_number", 0.01),
)


class Simulation:
    """One run of one policy on one workload and seed."""

    def __init__(
        self,
        workload: Workload,
        policy: PolicySpec,
        seed: int,
        *,
        config: EngineConfig | None = None,
        drain: bool = True,
        keep_final_states: bool = False,
    ) -> None:
        self.w = workload
        self.policy = policy
        self.seed = seed
        self.tape = LeadTape(workload, seed)
        base = config or EngineConfig(campaign_id="sim")
        seq = itertools.count(1)
        cfg = EngineConfig(
            **{
                **{f: getattr(base, f) for f in base.__dataclass_fields__},
                "mode": policy.mode,
                "limits": policy.limits,
                "ring_timeout_seconds": workload.ring_timeout,
                # a baseline dials by its own rules: the engine's cancelling is not theirs
                "cancel_surplus_calls": base.cancel_surplus_calls
                and policy.pacer_factory is None,
            }
        )
        self.config = cfg
        self.engine = CampaignEngine(
            cfg,
            pacer=policy.pacer_factory() if policy.pacer_factory else None,
            call_id_factory=lambda: f"c{next(seq)}",
            agent_free_oracle=self._known_free_in if policy.agent_oracle else None,
        )
        self.drain = drain
        self.keep_final_states = keep_final_states
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()
        self._t = 0.0
        self._base_ts = SIM_EPOCH.timestamp()
        self._tick_at = math.inf
        self._tick_token = 0  # only the latest scheduled tick fires; older ones are stale
        self._calls: dict[str, _SimCall] = {}
        self._next_lead = 0
        self._retries: list[tuple[float, int, int, LeadUpdate]] = []
        self._locked_until: dict[int, float] = {}
        self._attempts: dict[int, int] = {}
        self._finals: dict[str, AttemptResult] = {}
        self._live_log: list[tuple[float, bool]] = []
        self._rng = random.Random(f"{seed}:agents")
        self._on_break: set[str] = set()
        #: when each busy agent will be free (sim seconds), for the agent-oracle diagnostic
        self._free_at: dict[str, float] = {}
        self._early_cancels = 0
        self._no_message = 0
        self._late_messages = 0
        self._lockout = 0
        self._double = 0
        self._horizon = workload.hours * 3600.0
        self._accepting = True

    # ------------------------------------------------------------------ plumbing
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._base_ts + self._t, UTC)

    def _at(self, dt: datetime) -> float:
        return dt.timestamp() - self._base_ts

    def _push(self, t: float, kind: int, payload: object) -> None:
        heapq.heappush(self._events, (t, kind, next(self._seq), payload))

    def _apply(self, actions: list[Action]) -> None:
        queue = list(actions)
        i = 0
        while i < len(queue):
            a = queue[i]
            i += 1
            tp = type(a)
            if tp is Dial:
                self._on_dial(a)  # type: ignore[arg-type]
            elif tp is AgentStateChanged:
                self._on_agent(a)  # type: ignore[arg-type]
            elif tp is BridgeTo:
                self._on_bridge(a)  # type: ignore[arg-type]
            elif tp is AttemptFinished:
                self._on_finished(a)  # type: ignore[arg-type]
            elif tp is LeadUpdate:
                self._on_lead_update(a)  # type: ignore[arg-type]
            elif tp is PlayMessage:
                secs = (
                    self.w.message_seconds
                    if a.kind == "abandon"
                    else self.w.machine_message_seconds  # type: ignore[union-attr]
                )
                self._push(self._t + secs, _HANGUP, a.call_id)  # type: ignore[union-attr]
            elif tp is EndCall:
                self._on_hangup(a)  # type: ignore[arg-type]
            elif tp is NeedLeads:
                queue.extend(self._give_leads(a.n))  # type: ignore[union-attr]
            elif tp is PreviewOffer:
                self._push(self._t + 5.0, _PREVIEW, a)
            elif tp is ScreenPop:
                pass  # the simulated agent needs no screen

    def _schedule_tick(self) -> None:
        wake = self.engine.next_wakeup
        if wake is None:
            return
        t = max(self._at(wake), self._t)
        if t < self._tick_at:
            self._tick_at = t
            self._tick_token += 1
            self._push(t, _TICK, self._tick_token)

    # ------------------------------------------------------------------ actions
    def _on_dial(self, a: Dial) -> None:
        lead = int(a.lead.lead_id)
        attempt = a.lead.attempts
        if self._locked_until.get(lead, -math.inf) > self._t + 1e-6:
            self._lockout += 1
        draw = self.tape.draw(lead, attempt)
        self._calls[a.call_id] = _SimCall(lead, attempt, draw, self._t)
        # the simulated network rings at once (no post-dial delay): the first 18x is now
        self._push(self._t, _RING, a.call_id)
        at = self._t + draw.ring
        if draw.outcome is Outcome.HUMAN or draw.outcome is Outcome.MACHINE:
            self._push(at, _ANSWER, a.call_id)
        else:
            self._push(at, _SIP_END, a.call_id)

    def _on_hangup(self, a: EndCall) -> None:
        call = self._calls.get(a.call_id)
        if call is not None and not call.answered:
            # the engine cancels a ringing call: it ends now as a no-answer, and whatever
            # the tape held for it later (an answer) is lost
            self._push(self._t, _CANCEL, a.call_id)
        else:
            self._push(self._t + 0.1, _HANGUP, a.call_id)

    def _on_agent(self, a: AgentStateChanged) -> None:
        if a.new in (AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT):
            self._free_at.pop(a.agent_id, None)
        if a.new is AgentState.PAUSED and a.reason == "break":
            self._push(self._t + self.w.break_minutes * 60.0, _BACK, a.agent_id)

    def _on_bridge(self, a: BridgeTo) -> None:
        call = self._calls[a.call_id]
        call.agent = a.agent_id
        failed = self.w.bridge_fail_rate > 0 and self._rng.random() < self.w.bridge_fail_rate
        if not failed:
            d = call.draw
            self._free_at[a.agent_id] = self._t + self.w.bridge_seconds + d.talk + d.wrap
        self._push(self._t + self.w.bridge_seconds, _BRIDGE, (a.call_id, a.agent_id, failed))

    def _on_finished(self, a: AttemptFinished) -> None:
        if a.call_id in self._finals:
            self._double += 1
        self._finals[a.call_id] = a.result
        self._calls.pop(a.call_id, None)
        if (
            a.result is AttemptResult.NO_ANSWER
            and a.dialed_at is not None
            and (a.ended_at - a.dialed_at).total_seconds()
            < self.config.min_ring_seconds - 1e-6
        ):
            self._early_cancels += 1
        if a.result is AttemptResult.ABANDONED:
            if a.message_at is None:
                self._no_message += 1
            elif a.clock_started_at is not None and (
                (a.message_at - a.clock_started_at).total_seconds()
                > self.config.abandon.grace_seconds + 1e-6
            ):
                self._late_messages += 1
        if a.result in (AttemptResult.CONNECTED, AttemptResult.ABANDONED):
            clock = a.clock_started_at or a.answered_at or a.ended_at
            self._live_log.append((self._at(clock), a.result is AttemptResult.ABANDONED))

    def _on_lead_update(self, u: LeadUpdate) -> None:
        lead = int(u.lead_id)
        self._attempts[lead] = u.attempts
        if u.next_contact_at is None or u.status not in DIALABLE_STATUSES:
            self._locked_until[lead] = math.inf
            return
        due = self._at(u.next_contact_at)
        self._locked_until[lead] = due
        if due < self._horizon:
            heapq.heappush(self._retries, (due, lead, u.attempts, u))

    def _give_leads(self, n: int) -> list[Action]:
        if not self._accepting:
            return self.engine.add_leads(self._now(), [])
        now = self._now()
        tickets: list[LeadTicket] = []
        while self._retries and len(tickets) < n and self._retries[0][0] <= self._t:
            _, lead, attempts, u = heapq.heappop(self._retries)
            is_cb = u.callback_scope is not None
            tickets.append(
                LeadTicket(
                    lead_id=str(lead),
                    phone_e164=f"+1555{lead:07d}",
                    due_at=u.next_contact_at or now,
                    status=u.status,
                    callback_owner=u.owner,
                    callback_due_at=u.next_contact_at if is_cb else None,
                    attempts=attempts,
                )
            )
        while len(tickets) < n:
            lead = self._next_lead
            self._next_lead += 1
            tickets.append(LeadTicket(lead_id=str(lead), phone_e164=f"+1555{lead:07d}", due_at=now))
        return self.engine.add_leads(now, tickets)

    # ------------------------------------------------------------------ world events
    def _disposition_for(self, call: _SimCall) -> tuple[str, datetime | None, CallbackScope | None]:
        u = call.draw.disp_u
        now = self._now()
        cb = self.w.callback_share
        if u < cb:
            frac = u / cb if cb else 0.0
            when = now + timedelta(minutes=30 + 90 * frac)
            scope = CallbackScope.AGENT if frac < 0.5 else CallbackScope.CAMPAIGN
            return "callback", when, scope
        acc = cb
        for code, share in _DISPOSITION_MIX:
            acc += share
            if u < acc:
                if code == "meeting_set":
                    return code, now + timedelta(days=2), CallbackScope.AGENT
                return code, None, None
        return "no_need", None, None

    def _handle(self, kind: int, payload: object) -> list[Action]:
        eng = self.engine
        now = self._now()
        if kind == _TICK:
            return eng.tick(now)
        if kind == _RING:
            if payload not in self._calls:
                return []
            return eng.call_ringing(now, payload)  # type: ignore[arg-type]
        if kind == _ANSWER:
            cid = payload  # type: ignore[assignment]
            call = self._calls.get(cid)  # type: ignore[arg-type]
            if call is None:
                return []  # cancelled by the dialer before this answer
            call.answered = True
            verdict = AmdVerdict.HUMAN if call.draw.outcome is Outcome.HUMAN else AmdVerdict.MACHINE
            return eng.call_answered(now, cid, verdict)  # type: ignore[arg-type]
        if kind == _SIP_END:
            cid = payload
            call = self._calls.get(cid)  # type: ignore[arg-type]
            if call is None:
                return []  # cancelled by the dialer before the SIP side ended it
            result = {
                Outcome.BUSY: AttemptResult.BUSY,
                Outcome.FAILED: AttemptResult.FAILED,
                Outcome.NO_ANSWER: AttemptResult.NO_ANSWER,
            }[call.draw.outcome]
            return eng.call_ended(now, cid, result)  # type: ignore[arg-type]
        if kind == _BRIDGE:
            cid, agent, failed = payload  # type: ignore[misc]
            if cid not in self._calls or self._calls[cid].agent != agent:
                return []  # customer hung up meanwhile (not in this model) or re-routed
            if failed:
                out = eng.bridge_failed(now, cid, "agent_phone_no_answer")
                # the agent notices and comes back after a minute
                self._push(self._t + 60.0, _BACK, agent)
                return out
            out = eng.bridge_ok(now, cid)
            self._push(self._t + self._calls[cid].draw.talk, _HANGUP, cid)
            return out
        if kind == _HANGUP:
            cid = payload
            call = self._calls.get(cid)  # type: ignore[arg-type]
            if call is None:
                return []
            out = eng.call_ended(now, cid)  # type: ignore[arg-type]
            if call.agent is not None and eng.agent_state(call.agent) is AgentState.WRAP_UP:
                self._push(self._t + call.draw.wrap, _DISPO, (call.agent, cid, call))
            return out
        if kind == _CANCEL:
            cid = payload
            call = self._calls.get(cid)  # type: ignore[arg-type]
            if call is None:
                return []
            if call.answered:  # the answer came first at this very instant
                return eng.call_ended(now, cid)  # type: ignore[arg-type]
            return eng.call_ended(now, cid, AttemptResult.CANCELLED)  # type: ignore[arg-type]
        if kind == _DISPO:
            agent, cid, call = payload  # type: ignore[misc]
            code, when, scope = self._disposition_for(call)
            return eng.disposition(
                now, agent, cid, code, next_contact_at=when, callback_scope=scope
            )
        if kind == _BREAK:
            agent = payload
            if not self._accepting:
                return []
            return eng.agent_pause(now, agent, "break")  # type: ignore[arg-type]
        if kind == _BACK:
            agent = payload
            if not self._accepting or eng.agent_state(agent) is not AgentState.PAUSED:  # type: ignore[arg-type]
                return []
            return eng.agent_ready(now, agent)  # type: ignore[arg-type]
        if kind == _PREVIEW:
            offer: PreviewOffer = payload  # type: ignore[assignment]
            if eng.agent_state(offer.agent_id) is not AgentState.RESERVED:
                return []
            if self._rng.random() < 0.05:
                return eng.preview_skip(now, offer.agent_id)
            try:
                return eng.preview_accept(now, offer.agent_id)
            except Exception:  # offer withdrawn in the meantime (agent paused)
                return []
        raise AssertionError(f"unknown event kind {kind}")

    def _known_free_in(self, t: float) -> tuple[float, ...]:
        """Agent oracle: seconds until each busy agent not going on a pause is free."""
        sim_t = t - self._base_ts
        return tuple(
            max(0.0, self._free_at[rec.agent_id] - sim_t)
            for rec in self.engine.board
            # the engine's state, not ours: within one engine call an agent may already
            # be READY (counted as ready) before our copy of its state changes
            if rec.pending is None
            and rec.state in _BUSY_WITH_CALL
            and rec.agent_id in self._free_at
        )

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        w = self.w
        agents = [f"agent{j:03d}" for j in range(w.agents)]
        now = self._now()
        for a in agents:
            self._apply(self.engine.agent_login(now, a, ready=True))
        period = w.break_every_hours * 3600.0
        if w.break_minutes > 0:
            for a in agents:
                jitter = self._rng.uniform(-period / 4, period / 4)
                k = 0
                while (at := (k + 0.5) * period + jitter) < self._horizon:
                    if at > 0:
                        self._push(at, _BREAK, a)
                    k += 1
        self._schedule_tick()
        measured: tuple[float, ...] | None = None
        events = self._events
        while events:
            t, kind, _, payload = heapq.heappop(events)
            if t > self._horizon and measured is None:
                self._t = self._horizon
                measured = self._measure(agents)
                if not self.drain:
                    break
                self._accepting = False
                self.engine.drain_hopper()
                now = self._now()
                for a in agents:
                    self._apply(self.engine.agent_logout(now, a))
            if kind == _TICK:
                if payload != self._tick_token:
                    continue
                self._tick_at = math.inf
            if measured is not None and kind in (_BREAK, _TICK) and not self._waiting_work():
                continue
            self._t = t
            self._apply(self._handle(kind, payload))
            self._schedule_tick()
        if measured is None:
            self._t = self._horizon
            measured = self._measure(agents)
        agent_h, talk, wrap, idle = measured
        counts = self._counts_at_horizon
        return RunResult(
            policy=self.policy.name,
            workload=w,
            seed=self.seed,
            hours=w.hours,
            agent_hours=agent_h,
            talk_seconds=talk,
            wrap_seconds=wrap,
            idle_seconds=idle,
            dials=self._dials_at_horizon,
            connected=counts.live - counts.abandoned,
            live=counts.live,
            abandoned=counts.abandoned,
            machines=counts.machines,
            abandon_rate=counts.rate,
            worst_hour_abandon=self._worst_hour(),
            early_cancels=self._early_cancels,
            abandons_without_message=self._no_message,
            late_messages=self._late_messages,
            lockout_redials=self._lockout,
            double_finals=self._double,
            unfinished=len(self._calls) if self.drain else 0,
            final_states=dict(self._finals) if self.keep_final_states else {},
        )

    def _waiting_work(self) -> bool:
        c = self.engine.counters()
        return c.calls_waiting > 0 or c.calls_in_flight > 0

    def _measure(self, agents: list[str]) -> tuple[float, float, float, float]:
        now = self._now()
        avail = talk = wrap = idle = 0.0
        for a in agents:
            times = self.engine.agent_times(now, a)
            paused = times.get(AgentState.PAUSED, 0.0) + times.get(AgentState.LOGGED_OUT, 0.0)
            av = self._t - paused
            avail += av
            talk += times.get(AgentState.TALKING, 0.0)
            wrap += times.get(AgentState.WRAP_UP, 0.0)
            idle += times.get(AgentState.READY, 0.0) + times.get(AgentState.RESERVED, 0.0)
        self._counts_at_horizon = self.engine.abandon_counts(now)
        self._dials_at_horizon = self.engine.counters().dials
        return avail / 3600.0, talk, wrap, idle

    def _worst_hour(self) -> float:
        """Worst abandon rate over any full 60-minute window inside the shift."""
        log = sorted(x for x in self._live_log if x[0] <= self._horizon)
        if not log:
            return 0.0
        times = [t for t, _ in log]
        prefix = [0]
        for _, ab in log:
            prefix.append(prefix[-1] + int(ab))
        span = min(3600.0, self._horizon)
        starts = [t for t in times if t + span <= self._horizon]
        starts.append(self._horizon - span)
        worst = 0.0
        for s in starts:
            i = bisect_left(times, s)
            k = bisect_left(times, s + span)
            if k > i:
                worst = max(worst, (prefix[k] - prefix[i]) / (k - i))
        return worst


def run_one(
    workload: Workload,
    policy: PolicySpec,
    seed: int,
    *,
    config: EngineConfig | None = None,
    keep_final_states: bool = False,
) -> RunResult:
    """Run one policy on one workload and seed (deterministic)."""
    return Simulation(
        workload, policy, seed, config=config, keep_final_states=keep_final_states
    ).run()


__all__ = [
    "SIM_EPOCH",
    "PolicySpec",
    "RunResult",
    "Simulation",
    "run_one",
    "standard_policies",
]
