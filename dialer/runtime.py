"""The live driver of one campaign: the sans-IO CampaignEngine wired to its ports.

Inputs (SIP pool events, agent commands, timers, hopper refills) are turned into engine
calls with the clock's `now`; the actions the engine returns are carried out here:

* SIP actions (Dial, BridgeTo, PlayMessage, EndCall) go to the SIP pool at once, so the
  answer-to-agent path never waits behind bookkeeping. A Dial first writes its attempt row
  (docs/architecture.md: every attempt is a row before the INVITE leaves), then originates.
* Records (attempt stages and final results, lead outcomes, agent state log) go through one
  ordered writer (dialer.records), so the store sees each call's history in order.
* Agent messages (screen pops, states, call ended) go to the agent bus (dialer.agent_messages).

The ports (dialer.ports) are the SIP pool, the store, the calling-rule check, the metrics and
the agent bus; time comes from one `common.clock.Clock`. The engine owns every call's stage
and the wrap-up timeout; this driver keeps only ids and SIP facts per call. Engine calls run
on the event loop thread, one at a time; dialer.sip_events turns SIP events into inputs.

Size: one driver per campaign; its helpers live in dialer.sip_events, dialer.dispositions and
dialer.records already, and the cluster's self-fence adds only its three hook lines here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from common.clock import SYSTEM_CLOCK, Clock
from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AbandonWindow,
    AgentState,
    AttemptResult,
    AttemptStage,
    CallbackScope,
)
from db.models import Agent, Campaign
from dialer.agent_messages import AgentOutbox, preview_body
from dialer.campaign_visits import Visits
from dialer.cluster_agents import Fence, Peers
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
    VisitorLeft,
)
from dialer.core.engine import CampaignEngine
from dialer.core.errors import CoreError, InvalidDispositionError, UnknownCallError
from dialer.core.tickets import LeadTicket
from dialer.dispositions import (
    SaveMarks,
    call_back_after_a_cut,
    cut_by_fault,
    hold_overdue_wrapup,
    prefetch_screen_pop,
    prefetched_screen_pop,
    queue_lead_update,
    restore_agents,
    state_body,
)
from dialer.engine_setup import PacingPriors, amd_settings, engine_config, pacing_priors
from dialer.hopper import claim_tickets
from dialer.metrics import HELD_BACK_REASONS
from dialer.ports import (
    AgentBus,
    AgentMessageKind,
    Body,
    Callability,
    Metrics,
    SipEvent,
    SipPool,
    Store,
)
from dialer.records import RecordWriter
from dialer.sip_events import LiveCall, end_overlong_calls, handle_sip_event
from sip import api as sip

__all__ = [
    "CampaignRuntime", "LiveCall", "PacingPriors", "RuntimeStats", "engine_config",
    "pacing_priors",
]

log = logging.getLogger(__name__)


@dataclass
class RuntimeStats:
    placed: int = 0
    results: Counter[str] = field(default_factory=Counter)
    bridge_latencies_ms: list[float] = field(default_factory=list)
    #: per bridged call, the part of the answer-to-agent time spent waiting for a free agent
    #: (AMD's analysis, when on, is neither: it is the rest of answer-to-agent)
    queue_waits_ms: list[float] = field(default_factory=list)
    held_back: Counter[str] = field(default_factory=Counter)


class CampaignRuntime:
    """Runs one campaign: see the module docstring."""

    def __init__(
        self,
        *,
        campaign: Campaign,
        store: Store,
        callability: Callability,
        pool: SipPool,
        dialer_id: str,
        agents: dict[str, Agent],
        target_for: Callable[[str], str],
        bus: AgentBus,
        metrics: Metrics | None = None,
        message_wav: str | None = None,
        recordings_dir: Path = Path("var/recordings"),
        claim_ttl: timedelta = timedelta(minutes=5),
        abandon_lockout: timedelta = timedelta(hours=72),
        agent_answer_timeout_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        max_lines: int | None = None,
        priors: PacingPriors | None = None,
    ) -> None:
        self.campaign = campaign
        self.name = campaign.name
        self.store = store
        self.callability = callability
        self.pool = pool
        self.dialer_id = dialer_id
        self.agents = agents  # login -> Agent row
        self.target_for = target_for
        self.bus = bus
        self.metrics = metrics
        self.message_wav = message_wav
        self.recordings_dir = recordings_dir
        self.claim_ttl = claim_ttl
        self.abandon_lockout = abandon_lockout
        self.agent_answer_timeout_s = agent_answer_timeout_s
        self.clock = clock
        self.engine = CampaignEngine(engine_config(campaign, max_lines=max_lines, priors=priors))
        self.calls: dict[str, LiveCall] = {}
        self.stats = RuntimeStats()
        self._records = RecordWriter(self.name)
        self.dispositions = SaveMarks()
        self._outbox = AgentOutbox(self.name, bus, self._spawn)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed: set[int] = set()  # lead ids claimed and held by the engine's hopper
        self._refilling = False
        self._accepting = True
        self.trunk_down = False  # the trunk's circuit breaker is open (sip/trunk_health.py)
        self._stopped = asyncio.Event()
        #: agent -> clock.monotonic() when its wrap-up began (the wrap-up duration metric)
        self._wrap_started: dict[str, float] = {}
        self._call_ended = asyncio.Event()
        self._claims_renewed = clock.monotonic()
        #: leads of the campaign callable now (refreshed by the app's periodic count)
        self.callable_leads = 0
        self.fence: Fence | None = None  # the cluster's self-fence (dialer/cluster.py)
        #: the other cluster members' agents, for transfers (dialer/cluster_lend.py)
        self.peers: Peers | None = None
        #: this dialer's other campaigns' agents, for transfers (dialer/campaign_visits.py)
        self.visits: Visits | None = None

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Drive the engine until stop(); then the caller drains."""
        self._records.start()
        try:
            await self._seed_abandon_ledger()
            await restore_agents(self)
            self._apply(self.engine.tick(self.clock.now()))
            while not self._stopped.is_set():
                wake = self.engine.next_wakeup
                timeout = 1.0
                if wake is not None:
                    timeout = min(1.0, max(0.0, (wake - self.clock.now()).total_seconds()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                # tick even when not dialing: answered calls still have abandon deadlines,
                # and the engine closes overdue wrap-ups here
                self._apply(self.engine.tick(self.clock.now()))
                end_overlong_calls(self)
                self._publish_gauges()
                self._renew_claims_if_due()
                self._wake.clear()  # after the tick: its own `_apply` must not make us spin
        finally:
            await self._records.close()

    def stop_dialing(self) -> None:
        """Stop starting calls (SIGTERM): agents finish, live calls go on until drained."""
        self._accepting = False
        self._return_hopper()

    def _return_hopper(self) -> None:
        """The hopper's undialed leads go back: their claims are released (leads of calls
        still live stay claimed until their outcome is written)."""
        drained = [int(t.lead_id) for t in self.engine.drain_hopper()]
        self._write(self.store.release_claims, holder=self.dialer_id, lead_ids=drained)
        self._claimed.difference_update(drained)

    def resume_dialing(self) -> None:
        """The campaign's calendar opened again: start claiming leads."""
        if not self._accepting:
            self._accepting = True
            self._wake.set()

    def set_trunk_down(self, down: bool) -> None:
        """The trunk's circuit opened (no refills; the hopper's leads go back) or closed."""
        self.trunk_down = down
        if down:
            self._return_hopper()
        self._wake.set()

    @property
    def dialing(self) -> bool:
        return self._accepting

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    @property
    def live_calls(self) -> int:
        return sum(1 for c in self.calls.values() if not c.engine_done)

    def stages_in_flight(self) -> Counter[str]:
        """Live calls by stage (the engine's), for the in-flight gauge and the demo."""
        return Counter(s.value for c in self.calls.values() if not c.engine_done
                       if (s := self.engine.call_stage(c.call_id)) is not None)

    async def wait_idle(self) -> None:
        """Return once no call of this campaign is live (the drain's condition)."""
        while self.live_calls:
            self._call_ended.clear()
            await self._call_ended.wait()

    @property
    def open_wrapups(self) -> int:
        """Connected calls whose agent has not given the disposition yet."""
        return sum(1 for c in self.calls.values() if c.engine_done and c.agent_login)

    async def wait_wrapups(self) -> None:
        """Return once every connected call of this campaign has its disposition."""
        while self.open_wrapups:
            self._call_ended.clear()
            await self._call_ended.wait()

    async def hang_up_all(self, reason: str) -> None:
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await self.pool.submit(sip.Hangup(call_id=call.call_id, reason=reason))

    async def close_open_attempts(self, result: AttemptResult, reason: str) -> int:
        """After a drain deadline: close what is still open, honestly."""
        n = 0
        now = self.clock.now()
        for call in list(self.calls.values()):
            if await self.store.finish_attempt(call.attempt_id, result=result, ended_at=now,
                                               sip_reason=reason):
                n += 1
        return n

    def _renew_claims_if_due(self) -> None:
        """Renew the hopper's lead claims at half their lease (leases for claims),
        so no other dialer process takes a lead this one still holds."""
        now = self.clock.monotonic()
        if now - self._claims_renewed < self.claim_ttl.total_seconds() / 2 or not self._claimed:
            return
        self._claims_renewed = now
        self._write(self.store.renew_claims, holder=self.dialer_id,
                    lead_ids=list(self._claimed), now=self.clock.now(), ttl=self.claim_ttl)

    async def _seed_abandon_ledger(self) -> None:
        """Live answers and abandons of the regulatory window, from the attempt rows."""
        since = self.clock.now() - timedelta(days=31)
        for answered_at, result in await self.store.answered_outcomes(self.campaign.id, since):
            self.engine.ledger.record(
                answered_at.timestamp(), live=result is not AttemptResult.MACHINE,
                abandoned=result is AttemptResult.ABANDONED,
            )

    # ------------------------------------------------------------------ plumbing
    def _spawn(self, coro: Coroutine[object, object, None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("campaign %s: task %s failed", self.name, task.get_name(),
                      exc_info=task.exception())

    def _submit(self, cmd: sip.Command) -> None:
        """Send a SIP command without waiting (failures come back as CommandRejected)."""
        self._spawn(self.pool.submit(cmd), type(cmd).__name__.lower())

    def _engine(self, fn: Callable[..., list[Action]], *args: object, **kw: object) -> None:
        """Call an engine input and carry out its actions; engine errors are logged."""
        try:
            self._input(fn, *args, **kw)
        except CoreError as e:
            log.warning("campaign %s: %s", self.name, e)

    def _input(self, fn: Callable[..., list[Action]], *args: object, **kw: object) -> None:
        """An engine input at `now`. On a CoreError the loop is woken before it propagates:
        a refused input may leave an abandon message due now, held for the next tick."""
        try:
            actions = fn(self.clock.now(), *args, **kw)
        except CoreError:
            self._wake.set()
            raise
        self._apply(actions)

    def _write(self, fn: Callable[..., Awaitable[object]], *args: object, **kw: object) -> None:
        """Queue a record write; it runs after every write queued before it."""
        self._records.put(functools.partial(fn, *args, **kw))

    async def flush(self) -> None:
        """Wait until every record queued so far is written."""
        await self._records.flush()

    def on_sip_event(self, ev: SipEvent) -> None:
        """Pool events (already on the event loop); see dialer.sip_events."""
        handle_sip_event(self, ev)

    # agent commands (from the bus handler): a CoreError becomes the agent's error reply
    def agent_login(self, login: str) -> None:
        self._input(self.engine.agent_login, login)

    def agent_ready(self, login: str) -> None:
        self._input(self.engine.agent_ready, login)

    def agent_pause(self, login: str, reason: str) -> None:
        self._input(self.engine.agent_pause, login, reason)

    def agent_logout(self, login: str) -> None:
        self._input(self.engine.agent_logout, login)

    def agent_disposition(
        self, login: str, attempt_id: int, code: str, notes: str,
        next_contact_at: datetime | None, scope: CallbackScope,
    ) -> None:
        call_id = next((c.call_id for c in self.calls.values() if c.attempt_id == attempt_id),
                       None)
        if call_id is None:
            raise UnknownCallError(f"attempt {attempt_id} is not waiting for a disposition")
        spec = self.engine.config.dispositions.get(code)
        if spec is not None and spec.system:
            raise InvalidDispositionError(f"disposition {code!r} is set by the dialer only")
        self._input(self.engine.disposition, login, call_id, code, notes=notes or None,
                          next_contact_at=next_contact_at, callback_scope=scope)

    def preview_decision(self, login: str, accept: bool) -> None:
        self._input(self.engine.preview_accept if accept else self.engine.preview_skip,
                          login)

    # ------------------------------------------------------------------ agent messages
    def _to_agent(self, login: str, kind: AgentMessageKind, body: Body) -> None:
        self._outbox.put(login, kind, body)

    async def flush_agent_messages(self, login: str | None = None) -> None:
        """Hand an agent's (or all) queued messages to the bus, in order (before an ack)."""
        await self._outbox.flush(login)

    def _supervise(self, event: Body) -> None:
        self._spawn(self.bus.supervisor(event), "supervisor")

    def _supervise_call(self, call: LiveCall, stage: AttemptStage, **extra: object) -> None:
        self._supervise({
            "type": "call", "campaign": self.name, "attempt_id": call.attempt_id,
            "stage": stage.value, "agent": call.agent_login, "lead_id": call.lead_id, **extra,
        })

    # ------------------------------------------------------------------ actions
    def _apply(self, actions: Iterable[Action]) -> None:
        for a in actions:
            try:
                self._carry_out(a)
            except Exception:
                # one failed action must not stop the campaign; the call's own timers and
                # the node's events still bring it to a final state
                log.exception("campaign %s: carrying out %s failed", self.name,
                              type(a).__name__)
        self._wake.set()

    def _carry_out(self, a: Action) -> None:
        if isinstance(a, Dial):
            self._spawn(self._place(a), "dial")
        elif isinstance(a, BridgeTo):
            self._bridge(a)
        elif isinstance(a, PlayMessage):
            self._play(a)
        elif isinstance(a, EndCall):
            self._submit(sip.Hangup(call_id=a.call_id, reason="dialer"))
        elif isinstance(a, ScreenPop):
            # through the agent outbox: the pop goes before the `talking` state queued later
            self._outbox.put(a.agent_id, "screen_pop", functools.partial(self._screen_pop, a))
        elif isinstance(a, PreviewOffer):
            self._spawn(self._preview(a), "preview")
        elif isinstance(a, AttemptFinished):
            self._finished(a)
        elif isinstance(a, LeadUpdate):
            self._lead_update(a)
        elif isinstance(a, AgentStateChanged):
            self._agent_state(a)
        elif isinstance(a, VisitorLeft) and self.visits is not None:
            self.visits.left(self, a)
        elif isinstance(a, NeedLeads) and self._accepting and not self._refilling \
                and not self.trunk_down:
            self._refilling = True
            self._spawn(self._refill(a.n), "refill")

    async def _place(self, a: Dial) -> None:
        if self.fence is not None and self.fence.refuse(self, a):
            return
        lead_id = int(a.lead.lead_id)
        c = self.campaign
        try:
            attempt_id = await self.store.create_attempt(
                now=self.clock.now(), campaign_id=c.id, lead_id=lead_id,
                phone_e164=a.lead.phone_e164, dial_mode=c.dial_mode, dialer_id=self.dialer_id,
                trunk=c.trunk,
                agent_id=self.agents[a.agent_id].id if a.agent_id in self.agents else None,
            )
        except Exception:
            log.exception("campaign %s: could not write the attempt row; call not placed",
                          self.name)
            self._engine(self.engine.call_ended, a.call_id, AttemptResult.SKIPPED)
            return
        call = LiveCall(call_id=a.call_id, attempt_id=attempt_id, lead_id=lead_id,
                        agent_login=a.agent_id, amd=amd_settings(c, a.lead))
        self.calls[a.call_id] = call
        prefetch_screen_pop(self, call)
        self._supervise_call(call, AttemptStage.CREATED)
        self.stats.placed += 1
        amd = call.amd
        record = None
        if c.record_calls:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            record = str(self.recordings_dir / f"{c.name}-{attempt_id}.wav")
        await self.pool.submit(sip.Originate(
            call_id=a.call_id, target=self.target_for(a.lead.phone_e164), caller_id=c.caller_id,
            ring_timeout_s=c.ring_timeout_s, trunk=c.trunk, amd=amd, record_path=record,
        ))

    def _bridge(self, a: BridgeTo) -> None:
        call = self.calls.get(a.call_id)
        agent = self.agents.get(a.agent_id)
        if call is None or agent is None:
            log.error("campaign %s: bridge for unknown call/agent", self.name)
            return
        call.agent_login = a.agent_id
        if call.live_mono is not None:
            call.queue_wait_ms = max(0.0, (self.clock.monotonic() - call.live_mono) * 1000.0)
        self._submit(sip.Bridge(
            call_id=a.call_id, agent_call_id=f"{a.call_id}-agent", agent_uri=agent.sip_uri,
            answer_timeout_s=self.agent_answer_timeout_s,
        ))
        self._write(self.store.update_attempt, call.attempt_id, agent_id=agent.id)

    def _play(self, a: PlayMessage) -> None:
        call = self.calls.get(a.call_id)
        if call is None:
            return
        wav = self.campaign.message_wav or self.message_wav
        if wav:
            self._submit(sip.Play(call_id=a.call_id, wav_path=wav, hangup_after=a.hangup_after))
        else:  # no message configured: hang up rather than hold a person in silence
            self._submit(sip.Hangup(call_id=a.call_id, reason="no message"))
        self._write(self.store.update_attempt, call.attempt_id,
                    stage=AttemptStage.MESSAGE, message_started_at=self.clock.now())
        self._supervise_call(call, AttemptStage.MESSAGE)

    def _finished(self, a: AttemptFinished) -> None:
        call = self.calls.get(a.call_id)
        if call is None:
            return
        call.engine_done = True
        self._call_ended.set()
        end = call.sip_end
        self.stats.results[a.result.value] += 1
        fields: dict[str, object] = {
            "message_started_at": a.message_at,
            "sip_code": end.sip_code if end else None,
            "sip_reason": (end.reason[:200] if end and end.reason else None),
            "hangup_by": end.hangup_by if end else None,
            "ring_s": end.ring_s if end else None,
            "talk_s": end.talk_s if end else None,
        }
        if a.agent_id in self.agents:
            fields["agent_id"] = self.agents[a.agent_id].id
        result = cut_by_fault(self, call, a.result)
        if self.metrics is not None:
            # talk time is an agent's: an abandoned person heard the message, not an agent
            talked = a.result is AttemptResult.CONNECTED and end is not None
            self.metrics.attempt_finished(
                self.name, result, end.sip_code if end else None,
                ring_s=end.ring_s if end else None, talk_s=end.talk_s if talked else None)
        self._write(self.store.finish_attempt, call.attempt_id, result=result,
                    ended_at=a.ended_at, **fields)
        if a.result is AttemptResult.CONNECTED and call.agent_login and not call.handed_out:
            self._to_agent(call.agent_login, "call_ended", {
                "attempt_id": call.attempt_id, "talk_s": float(end.talk_s or 0.0) if end else 0.0,
            })
        self._supervise_call(
            call, AttemptStage.ENDED, result=result.value,
            sip_code=end.sip_code if end and end.sip_code else None,
            ring_s=end.ring_s if end else None, talk_s=end.talk_s if end else None)
        if a.result is not AttemptResult.CONNECTED or call.disposed:
            self.calls.pop(a.call_id, None)  # connected calls wait for the disposition

    def _lead_update(self, u: LeadUpdate) -> None:
        if self.fence is not None and self.fence.swallow(self, u):
            return
        call = self.calls.pop(u.call_id, None) if u.call_id else None
        if call is not None and call.handed_out and not call.engine_done:
            # its agent wrapped it up while the outside parties still talk: kept till its end
            call.disposed = True
            self.calls[call.call_id] = call
        attempt_id = call.attempt_id if call else None
        lead_id = int(u.lead_id)
        if u.disposition == WRAPUP_TIMEOUT and call is not None:
            u = hold_overdue_wrapup(self, call, u)
        self._claimed.discard(lead_id)
        if call is not None and call.cut_by_fault:
            u = call_back_after_a_cut(self, call, u)
        queue_lead_update(self, u, lead_id, attempt_id)
        self._call_ended.set()  # a wrap-up ended: the stop may be waiting for it

    def _agent_state(self, a: AgentStateChanged) -> None:
        agent = self.agents.get(a.agent_id)
        if agent is not None:
            self._write(self.store.log_agent_state, agent_id=agent.id,
                        campaign_id=self.campaign.id, state=a.new, reason=a.reason, at=a.at)
        # the wrap-up duration metric: from entering WRAP_UP to leaving it (a disposition,
        # or the engine's wrap-up timeout), on the monotonic clock
        if a.new is AgentState.WRAP_UP:
            self._wrap_started[a.agent_id] = self.clock.monotonic()
        elif a.old is AgentState.WRAP_UP:
            started = self._wrap_started.pop(a.agent_id, None)
            if started is not None and self.metrics is not None:
                self.metrics.observe_wrapup(self.name, self.clock.monotonic() - started)
        body = state_body(self, a.agent_id, a.new, a.reason)
        self._to_agent(a.agent_id, "state", body)
        self._supervise({
            "type": "agent_state", "login": a.agent_id, "state": a.new.value,
            "previous": a.old.value, "reason": a.reason, "attempt_id": body["attempt_id"],
        })

    async def _screen_pop(self, a: ScreenPop) -> Body | None:
        call = self.calls.get(a.call_id)
        return await prefetched_screen_pop(self, call) if call is not None else None

    async def _preview(self, a: PreviewOffer) -> None:
        card = await self.store.lead_card(int(a.lead.lead_id))
        if card is None:
            return
        await self.bus.send_agent(a.agent_id, "preview",
                                  preview_body(card, self.campaign.script or ""))

    # ------------------------------------------------------------------ hopper
    async def _refill(self, n: int) -> None:
        """Claim due leads, re-check every rule at this instant, hand the callable ones over."""
        tickets: list[LeadTicket] = []
        try:
            got = await claim_tickets(
                self.store, self.callability, campaign_id=self.campaign.id,
                now=self.clock.now(), n=n, holder=self.dialer_id, ttl=self.claim_ttl,
                abandon_lockout=self.abandon_lockout, agents=self.agents)
            tickets = got.tickets
            self._claimed.update(int(t.lead_id) for t in tickets)
            for gate, count in got.held_back.items():
                self.stats.held_back[gate] += count
                if self.metrics is not None and gate in HELD_BACK_REASONS:
                    self.metrics.held_back(self.name, gate, count)
        except Exception:
            log.exception("campaign %s: hopper refill failed", self.name)
            tickets = []
        finally:
            self._refilling = False
        if self._accepting:
            self._engine(self.engine.add_leads, tickets)
        else:
            await self.store.release_claims(holder=self.dialer_id,
                                            lead_ids=[int(t.lead_id) for t in tickets])

    # ------------------------------------------------------------------ metrics
    def _publish_gauges(self) -> None:
        if self.metrics is None:
            return
        now = self.clock.now()
        self.metrics.set_in_flight(self.name, self.stages_in_flight())  # others set to 0
        self.metrics.set_agents(self.name, Counter(rec.state for rec in self.engine.board))
        c = self.engine.counters()
        working = self.engine.board.working
        # dial level as VICIdial reports it: live calls per working agent
        self.metrics.set_dial_level(self.name, self.live_calls / working if working else 0.0)
        # answer rate of this run: live answers and machines per dial
        answered = c.live_answers + c.machines
        if c.dials:
            self.metrics.set_answer_rate(self.name, answered / c.dials)
        # every window ops may be asked about; the campaign's own one drives the pacer
        for window in AbandonWindow:
            rate = self.engine.ledger.counts(now, window).rate
            self.metrics.set_abandon(self.name, window.value, rate, self.campaign.abandon_cap)
        self.metrics.set_hopper(self.name, c.hopper_size, self.callable_leads)
