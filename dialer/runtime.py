"""The live driver of one campaign: the sans-IO CampaignEngine wired to SQL, SIP and MQTT.

Inputs (SIP pool events, agent commands, timers, hopper refills) are turned into engine
calls with the wall clock's `now`; the actions the engine returns are carried out here:

* SIP actions (Dial, BridgeTo, PlayMessage, EndCall) go to the node pool at once, so the
  answer-to-agent path never waits behind bookkeeping. A Dial first writes its attempt row
  (docs/architecture.md: every attempt is a row before the INVITE leaves), then originates.
* Records (attempt stages and final results, lead outcomes, agent state log) go through one
  ordered writer task, so the database sees each call's history in order.
* Agent messages (screen pops, states, call ended) go to the MQTT bus.

All engine calls happen on the event loop thread, one at a time: the engine is plain code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AbandonPolicy,
    AbandonWindow,
    AgentState,
    AmdVerdict,
    AttemptResult,
    AttemptStage,
    CallbackScope,
    DispositionSpec,
    LeadStatus,
    disposition_catalog,
)
from db import dnc
from db import repositories as repo
from db.models import Agent, Attempt, Callback, Campaign, Company, Lead
from db.repositories import Sessions
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
from dialer.core.errors import CoreError, InvalidDispositionError, UnknownCallError
from dialer.core.pacer import LineLimits
from dialer.core.tickets import LeadTicket
from dialer.metrics import HELD_BACK_REASONS
from scheduling.facts import refresh_callability, retry_policy_from_json
from sip import api as sip

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PacingPriors:
    """What the pacer assumes before the campaign has statistics of its own in this run.

    A fresh campaign starts cautiously: assuming half the dials reach a person keeps the first
    minutes near progressive dialing (overdialing on a guess is how abandons happen);
    `pacing_priors` replaces these with the campaign's own recent figures when it has them.
    """

    live_rate: float = 0.5
    talk_s: float = 180.0
    wrap_s: float = 15.0


async def pacing_priors(sessions: Sessions, campaign_id: int, now: datetime) -> PacingPriors:
    """The campaign's answer rate and handle times over the last 7 days, where there are
    enough attempts to trust them (>= 50 finished, >= 20 connected)."""
    since = now - timedelta(days=7)
    async with sessions() as s:
        rows = (await s.execute(
            select(Attempt.result, Attempt.talk_s, Attempt.ended_at, Attempt.wrapup_ended_at)
            .where(Attempt.campaign_id == campaign_id, Attempt.created_at >= since,
                   Attempt.result.is_not(None), Attempt.result != AttemptResult.SKIPPED)
        )).all()
    base = PacingPriors()
    if len(rows) < 50:
        return base
    live = sum(1 for r in rows if r[0] in (AttemptResult.CONNECTED, AttemptResult.ABANDONED))
    talks = [r[1] for r in rows if r[0] is AttemptResult.CONNECTED and r[1]]
    wraps = [(r[3] - r[2]).total_seconds() for r in rows
             if r[0] is AttemptResult.CONNECTED and r[2] and r[3] and r[3] > r[2]]
    return PacingPriors(
        live_rate=min(0.95, max(0.02, live / len(rows))),
        talk_s=sum(talks) / len(talks) if len(talks) >= 20 else base.talk_s,
        wrap_s=sum(wraps) / len(wraps) if len(wraps) >= 20 else base.wrap_s,
    )


def engine_config(
    campaign: Campaign, *, max_lines: int | None, priors: PacingPriors | None = None
) -> EngineConfig:
    """The engine's view of a campaign row."""
    priors = priors or PacingPriors()
    specs = campaign.dispositions or []
    catalog = (
        {s["code"]: DispositionSpec(**_spec_kwargs(s)) for s in specs}
        if specs else disposition_catalog()
    )
    # the dialer's own code for a wrap-up that timed out is in every catalog
    catalog.setdefault(WRAPUP_TIMEOUT, disposition_catalog()[WRAPUP_TIMEOUT])
    return EngineConfig(
        campaign_id=campaign.name,
        mode=campaign.dial_mode,
        abandon=AbandonPolicy(
            cap=campaign.abandon_cap, window=campaign.abandon_window,
            grace_seconds=campaign.abandon_grace_s, clock_start=campaign.abandon_clock_start,
        ),
        retry=retry_policy_from_json(campaign.retry_rules),
        machine_policy=campaign.machine_policy,
        dispositions=catalog,
        # start the message inside the grace: leave 0.2 s for the node to begin playing
        agent_wait_seconds=max(0.1, campaign.abandon_grace_s - 0.2),
        limits=LineLimits(
            max_lines=max_lines,
            max_lines_per_agent=max(campaign.max_dial_level, campaign.lines_per_agent, 1.0),
            power_lines_per_agent=campaign.lines_per_agent,
        ),
        ring_timeout_seconds=campaign.ring_timeout_s,
        # never cancel an unanswered call before the campaign's minimum ring (compliance)
        min_ring_seconds=campaign.min_ring_s,
        expected_live_rate=priors.live_rate,
        expected_talk_seconds=max(1.0, priors.talk_s),
        expected_wrap_seconds=max(1.0, priors.wrap_s),
        callback_grace=timedelta(seconds=campaign.callback_grace_s),
        timezone=campaign.timezone,
    )


def _spec_kwargs(s: dict[str, Any]) -> dict[str, Any]:
    out = dict(s)
    if out.get("new_status"):
        out["new_status"] = LeadStatus(out["new_status"])
    if out.get("default_next_contact") is not None:
        out["default_next_contact"] = timedelta(seconds=float(out["default_next_contact"]))
    return out


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
    stage: AttemptStage = AttemptStage.CREATED
    sip_end: sip.CallEnded | None = None
    bridge_latency_ms: float | None = None
    #: answer -> the router picked an agent (queue wait; 0 when an agent was ready)
    queue_wait_ms: float | None = None
    opted_out: bool = False
    engine_done: bool = False


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
        sessions: Sessions,
        pool: Any,
        dialer_id: str,
        agents: dict[str, Agent],
        target_for: Callable[[str], str],
        send_agent: Callable[[str, str, dict[str, Any]], Awaitable[None]],
        supervisor: Callable[[dict[str, Any]], Awaitable[None]],
        metrics: Any | None = None,
        message_wav: str | None = None,
        recordings_dir: Path = Path("var/recordings"),
        claim_ttl: timedelta = timedelta(minutes=5),
        abandon_lockout: timedelta = timedelta(hours=72),
        agent_answer_timeout_s: float = 5.0,
        clock: Clock = wall_clock,
        max_lines: int | None = None,
        priors: PacingPriors | None = None,
    ) -> None:
        self.campaign = campaign
        self.name = campaign.name
        self.sessions = sessions
        self.pool = pool
        self.dialer_id = dialer_id
        self.agents = agents  # login -> Agent row
        self.target_for = target_for
        self.send_agent = send_agent
        self.supervisor = supervisor
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
        self._writes: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._claimed: set[int] = set()  # lead ids claimed and held by the engine's hopper
        self._refilling = False
        self._accepting = True
        self._stopped = asyncio.Event()
        self._wrap_started: dict[str, float] = {}
        self._call_ended = asyncio.Event()
        self._agent_outbox: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._agent_flush_scheduled = False
        self._writer_task: asyncio.Task[None] | None = None
        self._claims_renewed = time.monotonic()
        #: leads of the campaign callable now (refreshed by the app's periodic count)
        self.callable_leads = 0

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Drive the engine until stop(); then the caller drains."""
        writer = self._writer_task = asyncio.create_task(self._writer(),
                                                         name=f"{self.name}-writer")
        try:
            await self._seed_abandon_ledger()
            self._apply(self.engine.tick(self.clock()))
            while not self._stopped.is_set():
                wake = self.engine.next_wakeup
                timeout = 1.0
                if wake is not None:
                    timeout = min(1.0, max(0.0, (wake - self.clock()).total_seconds()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                # tick even when not dialing: answered calls still have abandon deadlines
                self._apply(self.engine.tick(self.clock()))
                self._publish_gauges()
                self._renew_claims_if_due()
                self._close_overdue_wrapups()
        finally:
            await self._writes.put(None)
            await writer

    def stop_dialing(self) -> None:
        """Stop starting calls (SIGTERM): agents finish, live calls go on until drained."""
        self._accepting = False
        for ticket in self.engine.drain_hopper():
            self._claimed.discard(int(ticket.lead_id))
        self._write(self._release_all)

    def resume_dialing(self) -> None:
        """The campaign's calendar opened again: start claiming leads."""
        if not self._accepting:
            self._accepting = True
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

    async def wait_idle(self) -> None:
        """Return once no call of this campaign is live (the drain's condition)."""
        while self.live_calls:
            self._call_ended.clear()
            await self._call_ended.wait()

    async def hang_up_all(self, reason: str) -> None:
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await self.pool.submit(sip.Hangup(call_id=call.call_id, reason=reason))

    async def close_open_attempts(self, result: AttemptResult, reason: str) -> int:
        """After a drain deadline: close what is still open, honestly."""
        n = 0
        now = self.clock()
        for call in list(self.calls.values()):
            if await repo.finish_attempt(self.sessions, call.attempt_id, result=result,
                                         ended_at=now, sip_reason=reason):
                n += 1
        return n

    def _close_overdue_wrapups(self) -> None:
        """An agent who gives no disposition within max_wrapup_s is made ready again; the
        call is closed with the dialer's own `wrapup_timeout` disposition."""
        limit = self.campaign.max_wrapup_s
        if not limit:
            return
        now_mono = time.monotonic()
        for login, started in list(self._wrap_started.items()):
            if now_mono - started < limit:
                continue
            call = next((c for c in self.calls.values()
                         if c.agent_login == login and c.engine_done), None)
            if call is None:
                continue
            log.warning("campaign %s: agent %s gave no disposition within %.0f s; closing "
                        "attempt %s as %s", self.name, login, limit, call.attempt_id,
                        WRAPUP_TIMEOUT)
            self._engine(self.engine.disposition, login, call.call_id, WRAPUP_TIMEOUT,
                         notes=f"no disposition within {limit:.0f} s of the call's end")

    def _renew_claims_if_due(self) -> None:
        """Renew the hopper's lead claims at half their lease (leases for claims),
        so no other dialer process takes a lead this one still holds."""
        now = time.monotonic()
        if now - self._claims_renewed < self.claim_ttl.total_seconds() / 2 or not self._claimed:
            return
        self._claims_renewed = now
        self._write(repo.renew_claims, self.sessions, holder=self.dialer_id,
                    lead_ids=list(self._claimed), now=self.clock(), ttl=self.claim_ttl)

    async def _release_all(self) -> None:
        ids = list(self._claimed)
        self._claimed.clear()
        await repo.release_claims(self.sessions, holder=self.dialer_id, lead_ids=ids)

    async def _seed_abandon_ledger(self) -> None:
        """Live answers and abandons of the regulatory window, from the attempt rows."""
        now = self.clock()
        since = now - timedelta(days=31)
        async with self.sessions() as s:
            rows = (await s.execute(
                select(Attempt.answered_at, Attempt.result)
                .where(Attempt.campaign_id == self.campaign.id, Attempt.answered_at >= since,
                       Attempt.result.in_([AttemptResult.CONNECTED, AttemptResult.ABANDONED,
                                           AttemptResult.MACHINE]))
            )).all()
        for answered_at, result in sorted(rows, key=lambda r: r[0]):
            self.engine.ledger.record(
                answered_at.timestamp(), live=result is not AttemptResult.MACHINE,
                abandoned=result is AttemptResult.ABANDONED,
            )

    # ------------------------------------------------------------------ inputs
    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("campaign %s: task %s failed", self.name, task.get_name(),
                      exc_info=task.exception())

    def _engine(self, fn: Callable[..., list[Action]], *args: Any, **kw: Any) -> None:
        """Call an engine input and carry out its actions; engine errors are logged."""
        try:
            actions = fn(self.clock(), *args, **kw)
        except CoreError as e:
            log.warning("campaign %s: %s", self.name, e)
            return
        self._apply(actions)

    def on_sip_event(self, ev: Any) -> None:
        """Pool events (already on the event loop)."""
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        now = self.clock()
        if isinstance(ev, sip.CallTrying):
            self._write(repo.update_attempt, self.sessions, call.attempt_id,
                        stage=AttemptStage.DIALING, dialing_at=ev.wall)
        elif isinstance(ev, sip.CallRinging):
            if call.stage in (AttemptStage.CREATED, AttemptStage.DIALING):
                call.stage = AttemptStage.RINGING
                self._write(repo.update_attempt, self.sessions, call.attempt_id,
                            stage=AttemptStage.RINGING, ringing_at=ev.wall)
                self._supervise_call(call, AttemptStage.RINGING)
            self._engine(self.engine.call_ringing, ev.call_id)
        elif isinstance(ev, sip.CallAnswered):
            call.stage = AttemptStage.ANSWERED
            call.answered_wall, call.answered_mono = ev.wall, ev.mono
            self._write(repo.update_attempt, self.sessions, call.attempt_id,
                        stage=AttemptStage.ANSWERED, answered_at=ev.wall)
            self._supervise_call(call, AttemptStage.ANSWERED)
            if not self.campaign.amd_enabled:
                call.live_mono = ev.mono
                self._engine(self.engine.call_answered, ev.call_id, AmdVerdict.NOT_RUN,
                             answered_at=ev.wall)
        elif isinstance(ev, sip.AmdDone):
            self._write(repo.update_attempt, self.sessions, call.attempt_id,
                        amd_verdict=ev.verdict, amd_ms=ev.took_ms, amd_done_at=ev.wall)
            call.live_mono = ev.mono
            self._engine(self.engine.call_answered, ev.call_id, ev.verdict,
                         answered_at=call.answered_wall or now)
        elif isinstance(ev, sip.CallBridged):
            call.stage = AttemptStage.BRIDGED
            latency = ev.latency_ms
            if call.answered_mono is not None:
                latency = (ev.mono - call.answered_mono) * 1000.0
            call.bridge_latency_ms = latency
            self.stats.bridge_latencies_ms.append(latency)
            self.stats.queue_waits_ms.append(call.queue_wait_ms or 0.0)
            if self.metrics is not None:
                self.metrics.observe_answer_to_agent(self.name, latency / 1000.0)
            self._write(repo.update_attempt, self.sessions, call.attempt_id,
                        stage=AttemptStage.BRIDGED, bridged_at=ev.wall,
                        bridge_latency_ms=latency)
            self._supervise_call(call, AttemptStage.BRIDGED)
            self._engine(self.engine.bridge_ok, ev.call_id)
        elif isinstance(ev, sip.AgentLegFailed):
            log.warning("campaign %s: agent phone of %s failed (%s %s)", self.name,
                        call.agent_login, ev.sip_code, ev.reason)
            self._engine(self.engine.bridge_failed, ev.call_id,
                         f"{ev.sip_code or ''} {ev.reason}".strip())
        elif isinstance(ev, sip.CallEnded):
            call.sip_end = ev
            self._engine(self.engine.call_ended, ev.call_id, ev.result)
        elif isinstance(ev, sip.CallLost):
            call.sip_end = sip.CallEnded(
                call_id=ev.call_id, result=AttemptResult.LOST, sip_code=None,
                reason=f"node lost: {ev.reason}", hangup_by="node", ring_s=None, talk_s=None,
                retryable=True, mono=ev.mono, wall=ev.wall)
            if self.metrics is not None:
                self.metrics.calls_lost(self.name)
            self._engine(self.engine.call_ended, ev.call_id, AttemptResult.LOST)
        elif isinstance(ev, sip.CommandRejected):
            self._on_rejected(call, ev)
        elif isinstance(ev, sip.DtmfReceived):
            self._on_key(call, ev)

    def _on_key(self, call: LiveCall, ev: sip.DtmfReceived) -> None:
        """US rule: a key pressed during the abandon message is a DNC request, at once."""
        key = self.campaign.optout_key
        if not key or ev.digit != key or call.stage is not AttemptStage.MESSAGE \
                or call.opted_out:
            return
        call.opted_out = True
        log.info("campaign %s: attempt %s: opt-out key during the message", self.name,
                 call.attempt_id)
        self._write(self._store_optout, call.attempt_id, call.lead_id, ev.wall)
        self._spawn(self.pool.submit(sip.Hangup(call_id=call.call_id, reason="opt-out")),
                    "hangup")

    async def _store_optout(self, attempt_id: int, lead_id: int, at: datetime) -> None:
        await repo.update_attempt(self.sessions, attempt_id, opted_out=True)
        async with self.sessions() as s:
            phone = await s.scalar(select(Lead.phone_e164).where(Lead.id == lead_id))
        if phone:
            await dnc.add(self.sessions, phone, now=at, reason="opt-out key during the message",
                          attempt_id=attempt_id)
            if self.metrics is not None:
                self.metrics.dnc_hit(self.name)

    def _on_rejected(self, call: LiveCall, ev: sip.CommandRejected) -> None:
        log.warning("campaign %s: %s rejected for call %s: %s", self.name, ev.command,
                    ev.call_id, ev.error)
        if ev.command == "Originate":
            call.sip_end = sip.CallEnded(
                call_id=ev.call_id, result=AttemptResult.CANCELLED, sip_code=None,
                reason=f"not placed: {ev.error}", hangup_by="local", ring_s=None, talk_s=None,
                retryable=ev.retryable)
            self._engine(self.engine.call_ended, ev.call_id, AttemptResult.CANCELLED)
        elif ev.command == "Bridge":
            self._engine(self.engine.bridge_failed, ev.call_id, ev.error)

    # agent commands (from the MQTT bus handler) --------------------------------------
    # These raise the core's CoreError for a command the agent may not give now; the bus
    # handler translates it into the agent's error reply (dialer.bus.protocol_error_for).
    def agent_login(self, login: str) -> None:
        self._apply(self.engine.agent_login(self.clock(), login))

    def agent_ready(self, login: str) -> None:
        self._apply(self.engine.agent_ready(self.clock(), login))

    def agent_pause(self, login: str, reason: str) -> None:
        self._apply(self.engine.agent_pause(self.clock(), login, reason))

    def agent_logout(self, login: str) -> None:
        self._apply(self.engine.agent_logout(self.clock(), login))

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
        self._apply(self.engine.disposition(
            self.clock(), login, call_id, code, notes=notes or None,
            next_contact_at=next_contact_at, callback_scope=scope))

    def preview_decision(self, login: str, accept: bool) -> None:
        fn = self.engine.preview_accept if accept else self.engine.preview_skip
        self._apply(fn(self.clock(), login))

    # ------------------------------------------------------------------ agent messages
    def _to_agent(self, login: str, kind: str, body: dict[str, Any]) -> None:
        """Queue a message for an agent; sent in order by flush_agent_messages()."""
        self._agent_outbox.append((login, kind, body))
        if not self._agent_flush_scheduled:
            self._agent_flush_scheduled = True
            self._spawn(self.flush_agent_messages(), "agent-messages")

    async def flush_agent_messages(self) -> None:
        """Hand queued agent messages to the bus, in order. The agent command handler awaits
        this before it returns, so a state change reaches the agent before the command's ack."""
        self._agent_flush_scheduled = False
        while self._agent_outbox:
            login, kind, body = self._agent_outbox.popleft()
            try:
                await self.send_agent(login, kind, body)
            except Exception:
                log.exception("campaign %s: %s message to an agent failed", self.name, kind)

    def _supervise_call(self, call: LiveCall, stage: AttemptStage, **extra: Any) -> None:
        self._spawn(self.supervisor({
            "type": "call", "campaign": self.name, "attempt_id": call.attempt_id,
            "stage": stage.value, "agent": call.agent_login, "lead_id": call.lead_id, **extra,
        }), "supervisor")

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
            self._dial(a)
        elif isinstance(a, BridgeTo):
            self._bridge(a)
        elif isinstance(a, PlayMessage):
            self._play(a)
        elif isinstance(a, EndCall):
            self._spawn(self.pool.submit(sip.Hangup(call_id=a.call_id, reason="dialer")),
                        "hangup")
        elif isinstance(a, ScreenPop):
            self._spawn(self._screen_pop(a), "screen-pop")
        elif isinstance(a, PreviewOffer):
            self._spawn(self._preview(a), "preview")
        elif isinstance(a, AttemptFinished):
            self._finished(a)
        elif isinstance(a, LeadUpdate):
            self._lead_update(a)
        elif isinstance(a, AgentStateChanged):
            self._agent_state(a)
        elif isinstance(a, NeedLeads) and self._accepting and not self._refilling:
            self._refilling = True
            self._spawn(self._refill(a.n), "refill")

    def _dial(self, a: Dial) -> None:
        self._spawn(self._place(a), "dial")

    async def _place(self, a: Dial) -> None:
        lead_id = int(a.lead.lead_id)
        c = self.campaign
        try:
            attempt_id = await repo.create_attempt(
                self.sessions, now=self.clock(), campaign_id=c.id, lead_id=lead_id,
                phone_e164=a.lead.phone_e164, dial_mode=c.dial_mode, dialer_id=self.dialer_id,
                trunk=c.trunk,
                agent_id=self.agents[a.agent_id].id if a.agent_id in self.agents else None,
            )
        except Exception:
            log.exception("campaign %s: could not write the attempt row; call not placed",
                          self.name)
            self._engine(self.engine.call_ended, a.call_id, AttemptResult.CANCELLED)
            return
        call = LiveCall(call_id=a.call_id, attempt_id=attempt_id, lead_id=lead_id,
                        agent_login=a.agent_id)
        self.calls[a.call_id] = call
        self.stats.placed += 1
        amd = sip.AmdSettings(max_analysis_ms=c.amd_max_ms) if c.amd_enabled else None
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
            call.queue_wait_ms = max(0.0, (time.monotonic() - call.live_mono) * 1000.0)
        self._spawn(self.pool.submit(sip.Bridge(
            call_id=a.call_id, agent_call_id=f"{a.call_id}-agent", agent_uri=agent.sip_uri,
            answer_timeout_s=self.agent_answer_timeout_s,
        )), "bridge")
        self._write(repo.update_attempt, self.sessions, call.attempt_id, agent_id=agent.id)

    def _play(self, a: PlayMessage) -> None:
        call = self.calls.get(a.call_id)
        if call is None:
            return
        call.stage = AttemptStage.MESSAGE
        wav = self.campaign.message_wav or self.message_wav
        if wav:
            self._spawn(self.pool.submit(
                sip.Play(call_id=a.call_id, wav_path=wav, hangup_after=a.hangup_after)), "play")
        else:  # no message configured: hang up rather than hold a person in silence
            self._spawn(self.pool.submit(sip.Hangup(call_id=a.call_id, reason="no message")),
                        "hangup")
        self._write(repo.update_attempt, self.sessions, call.attempt_id,
                    stage=AttemptStage.MESSAGE, message_started_at=self.clock())

    def _finished(self, a: AttemptFinished) -> None:
        call = self.calls.get(a.call_id)
        if call is None:
            return
        call.engine_done = True
        self._call_ended.set()
        end = call.sip_end
        self.stats.results[a.result.value] += 1
        fields: dict[str, Any] = {
            "message_started_at": a.message_at,
            "sip_code": end.sip_code if end else None,
            "sip_reason": (end.reason[:200] if end and end.reason else None),
            "hangup_by": end.hangup_by if end else None,
            "ring_s": end.ring_s if end else None,
            "talk_s": end.talk_s if end else None,
        }
        if a.agent_id in self.agents:
            fields["agent_id"] = self.agents[a.agent_id].id
        if self.metrics is not None:
            self.metrics.attempt_finished(
                self.name, a.result, end.sip_code if end else None,
                ring_s=end.ring_s if end else None, talk_s=end.talk_s if end else None)
        self._write(repo.finish_attempt, self.sessions, call.attempt_id, result=a.result,
                    ended_at=a.ended_at, **fields)
        if a.result is AttemptResult.CONNECTED and call.agent_login:
            self._to_agent(call.agent_login, "call_ended", {
                "attempt_id": call.attempt_id, "talk_s": float(end.talk_s or 0.0) if end else 0.0,
            })
        self._supervise_call(
            call, AttemptStage.ENDED, result=a.result.value,
            sip_code=end.sip_code if end and end.sip_code else None,
            ring_s=end.ring_s if end else None, talk_s=end.talk_s if end else None)
        if a.result is not AttemptResult.CONNECTED:
            self.calls.pop(a.call_id, None)  # connected calls wait for the disposition

    def _lead_update(self, u: LeadUpdate) -> None:
        call = self.calls.pop(u.call_id, None) if u.call_id else None
        attempt_id = call.attempt_id if call else None
        lead_id = int(u.lead_id)
        self._claimed.discard(lead_id)
        self._write(self._store_lead_update, u, lead_id, attempt_id)

    async def _store_lead_update(self, u: LeadUpdate, lead_id: int, attempt_id: int | None) -> None:
        fields: dict[str, Any] = {
            "status": u.status, "next_contact_at": u.next_contact_at, "attempts": u.attempts,
            "owner_agent_id": self.agents[u.owner].id if u.owner in self.agents else None,
        }
        if u.result is not None:
            fields["last_result"] = u.result
            fields["last_attempt_at"] = u.at
            if u.result is AttemptResult.ABANDONED:
                fields["last_abandoned_at"] = u.at
        if u.complaint_closed:
            fields["has_open_complaint"] = False
        callback = u.callback_scope is not None and u.next_contact_at is not None
        await repo.update_lead(self.sessions, lead_id, now=u.at, callback_pending=callback,
                               **fields)
        if attempt_id is not None and u.disposition is not None:
            await repo.update_attempt(
                self.sessions, attempt_id, disposition=u.disposition, notes=u.notes,
                next_contact_at=u.next_contact_at, wrapup_ended_at=u.at)
        if callback:
            async with self.sessions.begin() as s:
                s.add(Callback(
                    campaign_id=self.campaign.id, lead_id=lead_id, scope=u.callback_scope,
                    owner_agent_id=fields["owner_agent_id"]
                    if u.callback_scope is CallbackScope.AGENT else None,
                    due_at=u.next_contact_at, attempt_id=attempt_id, notes=u.notes,
                    created_at=u.at))
        if u.dnc:
            async with self.sessions() as s:
                phone = await s.scalar(select(Lead.phone_e164).where(Lead.id == lead_id))
            if phone:
                await dnc.add(self.sessions, phone, now=u.at, reason="agent request",
                              attempt_id=attempt_id)
                if self.metrics is not None:
                    self.metrics.dnc_hit(self.name)
        await refresh_callability(self.sessions, campaign_id=self.campaign.id, now=u.at,
                                  lead_ids=[lead_id], abandon_lockout=self.abandon_lockout)

    def _agent_state(self, a: AgentStateChanged) -> None:
        agent = self.agents.get(a.agent_id)
        if agent is not None:
            self._write(repo.log_agent_state, self.sessions, agent_id=agent.id,
                        campaign_id=self.campaign.id, state=a.new, reason=a.reason, at=a.at)
        if a.new is AgentState.WRAP_UP:
            self._wrap_started[a.agent_id] = time.monotonic()
        elif a.old is AgentState.WRAP_UP:
            started = self._wrap_started.pop(a.agent_id, None)
            if started is not None and self.metrics is not None:
                self.metrics.observe_wrapup(self.name, time.monotonic() - started)
        self._to_agent(a.agent_id, "state", {"state": a.new.value, "reason": a.reason})
        self._spawn(self.supervisor({
            "type": "agent_state", "login": a.agent_id, "state": a.new.value,
            "previous": a.old.value, "reason": a.reason,
        }), "supervisor")

    async def _screen_pop(self, a: ScreenPop) -> None:
        call = self.calls.get(a.call_id)
        if call is None:
            return
        lead_id = int(a.lead.lead_id)
        async with self.sessions() as s:
            lead = await s.get(Lead, lead_id)
            company = await s.get(Company, lead.company_id) if lead and lead.company_id else None
            history = (await s.execute(
                select(Attempt, Agent.login).outerjoin(Agent, Agent.id == Attempt.agent_id)
                .where(Attempt.lead_id == lead_id, Attempt.id != call.attempt_id,
                       Attempt.result.is_not(None))
                .order_by(Attempt.created_at.desc()).limit(20)
            )).all()
        if lead is None:
            return
        await self.send_agent(a.agent_id, "screen_pop", {
            "attempt_id": call.attempt_id,
            "lead": {"id": lead.id, "name": lead.name or "-", "phone": lead.phone_e164,
                     "company": company.name if company else None,
                     "custom_fields": {k: v for k, v in (lead.custom_fields or {}).items()
                                       if isinstance(v, str | int | float | bool)},
                     "status": lead.status.value},
            "history": [{"attempt_id": h.id, "at": h.created_at.isoformat(),
                         "result": h.result.value, "disposition": h.disposition,
                         "notes": h.notes or "", "agent": login} for h, login in history],
            "script": self.campaign.script or "",
            "dispositions": [{"code": s.code, "label": s.label,
                              "needs_callback": s.needs_callback, "final": s.final}
                             for s in self.engine.config.dispositions.values() if not s.system],
        })

    async def _preview(self, a: PreviewOffer) -> None:
        async with self.sessions() as s:
            lead = await s.get(Lead, int(a.lead.lead_id))
        if lead is None:
            return
        await self.send_agent(a.agent_id, "preview", {
            "lead": {"id": lead.id, "name": lead.name or "-", "phone": lead.phone_e164,
                     "company": None, "custom_fields": {}, "status": lead.status.value},
            "script": self.campaign.script or "",
        })

    # ------------------------------------------------------------------ hopper
    async def _refill(self, n: int) -> None:
        """Claim due leads, re-check every rule at this instant, hand the callable ones over."""
        try:
            now = self.clock()
            rows = await repo.claim_leads(
                self.sessions, campaign_id=self.campaign.id, now=now, limit=max(n, 1),
                holder=self.dialer_id, ttl=self.claim_ttl)
            tickets: list[LeadTicket] = []
            if rows:
                ids = [r.id for r in rows]
                refreshed = await refresh_callability(
                    self.sessions, campaign_id=self.campaign.id, now=now, lead_ids=ids,
                    abandon_lockout=self.abandon_lockout)
                for gate, count in refreshed.held_back.items():
                    self.stats.held_back[gate] += count
                    if self.metrics is not None and gate in HELD_BACK_REASONS:
                        self.metrics.held_back(self.name, gate, count)
                async with self.sessions() as s:
                    fresh = (await s.scalars(select(Lead).where(Lead.id.in_(ids)))).all()
                    owners = dict((await s.execute(
                        select(Callback.lead_id, Agent.login)
                        .join(Agent, Agent.id == Callback.owner_agent_id)
                        .where(Callback.lead_id.in_(ids), Callback.status == "pending",
                               Callback.scope == CallbackScope.AGENT))).all())
                    cb_due = dict((await s.execute(
                        select(Callback.lead_id, Callback.due_at)
                        .where(Callback.lead_id.in_(ids), Callback.status == "pending"))).all())
                release = []
                for lead in sorted(fresh, key=lambda r: ids.index(r.id)):
                    if lead.next_call_at is None or lead.next_call_at > now:
                        release.append(lead.id)
                        continue
                    self._claimed.add(lead.id)
                    owner = owners.get(lead.id)
                    tickets.append(LeadTicket(
                        lead_id=str(lead.id), phone_e164=lead.phone_e164, priority=lead.priority,
                        due_at=lead.next_contact_at or lead.next_call_at or now,
                        status=lead.status, has_open_complaint=lead.has_open_complaint,
                        callback_owner=owner if owner in self.agents else None,
                        callback_due_at=cb_due.get(lead.id),
                        attempts=lead.attempts, timezone=lead.timezone,
                    ))
                await repo.release_claims(self.sessions, holder=self.dialer_id, lead_ids=release)
        except Exception:
            log.exception("campaign %s: hopper refill failed", self.name)
            tickets = []
        finally:
            self._refilling = False
        if self._accepting:
            self._engine(self.engine.add_leads, tickets)
        else:
            await repo.release_claims(self.sessions, holder=self.dialer_id,
                                      lead_ids=[int(t.lead_id) for t in tickets])

    # ------------------------------------------------------------------ records
    def _write(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> None:
        self._writes.put_nowait(lambda: fn(*args, **kw))

    async def _writer(self) -> None:
        while True:
            job = await self._writes.get()
            if job is None:
                return
            try:
                await job()
            except Exception:
                log.exception("campaign %s: a database write failed", self.name)

    async def flush(self) -> None:
        """Wait until every record queued so far is written."""
        if self._writer_task is None or self._writer_task.done():
            return
        done = asyncio.Event()

        async def mark() -> None:
            done.set()

        self._writes.put_nowait(mark)
        await done.wait()

    # ------------------------------------------------------------------ metrics
    def _publish_gauges(self) -> None:
        if self.metrics is None:
            return
        now = self.clock()
        stages = Counter(c.stage.value for c in self.calls.values() if not c.engine_done)
        self.metrics.set_in_flight(self.name, stages)  # stages not named are set to 0
        self.metrics.set_agents(self.name, Counter(rec.state for rec in self.engine.board))
        c = self.engine.counters()
        working = self.engine.board.working
        # dial level as VICIdial reports it: lines in use per working agent
        self.metrics.set_dial_level(self.name, self.live_calls / working if working else 0.0)
        answered = c.live_answers + c.machines
        if c.dials:
            self.metrics.set_answer_rate(self.name, answered / c.dials)
        # every window ops may be asked about; the campaign's own one drives the pacer
        for window in AbandonWindow:
            rate = self.engine.ledger.counts(now, window).rate
            self.metrics.set_abandon(self.name, window.value, rate, self.campaign.abandon_cap)
        self.metrics.set_hopper(self.name, c.hopper_size, self.callable_leads)
