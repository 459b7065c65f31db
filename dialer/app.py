"""`dialer run`: the whole dialer in one process, with SIP nodes as child processes.

Start order: database (migrated) -> close attempts a previous crash left open -> campaigns
and agents from the config (plus the database's agents, dialer/app_web.py) -> metrics
endpoint -> SIP node pool -> campaign runtimes -> MQTT (embedded broker when none is
configured) -> web server -> scheduling jobs. Agent commands from MQTT and from the web
desktop's WebSocket go through one `AgentCommandRunner` to `_on_agent_command`; messages to
an agent (`send_agent`) go out on both.
Stop (SIGTERM/SIGINT or `stop()`): stop starting calls, let live calls finish up to the
drain deadline, hang up the rest, close every attempt with an honest final state, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from common.clock import SYSTEM_CLOCK, Clock
from common.vocabulary import AttemptResult
from db.migrate import upgrade
from db.models import Agent, Campaign
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer import app_web
from dialer.agent_commands import AgentCommands
from dialer.bus import AgentBus as MqttAgentBus
from dialer.bus import AgentCommand
from dialer.bus.broker import EmbeddedBroker
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import (
    SUPERVISOR_EVENTS,
    CallbackReminderEvt,
    CallEndedEvt,
    DialerMessage,
    PreviewEvt,
    ScreenPopEvt,
    StateEvt,
)
from dialer.call_controls import ListenIn, set_hold_music
from dialer.call_transfer import ready_targets, transfer_groups
from dialer.campaign_visits import Visits
from dialer.cluster import Cluster, ClusterRunner, start_cluster
from dialer.config import ConfigError, Settings
from dialer.control import Control
from dialer.control.cluster_view import ClusterView
from dialer.dispositions import hold_open_wrapups
from dialer.hopper import SchedulingCallability
from dialer.metrics import DialerMetrics
from dialer.ports import AgentMessageKind, Body, SipEvent, SipEventHandler, SipPool, Store
from dialer.runtime import CampaignRuntime, PacingPriors, pacing_priors
from dialer.web.agent_relay import AgentRelay
from dialer.web.agent_ws import AgentSocketHub
from dialer.web.server import WebServer
from dialer.webhooks import WebhookWorker, WorkerSettings, report_pause
from scheduling.callbacks import CallbackReminder
from scheduling.jobs import JobHooks, JobSettings, SchedulingJobs, build_scheduler
from sip.api import TrunkHealthChanged
from sip.assets import ensure_default_message
from sip.config import PoolConfig, TrunkConfig
from sip.pool import NodePool
from sip.trunk_health import BreakerConfig

log = logging.getLogger(__name__)

_AGENT_MESSAGES: dict[AgentMessageKind, type[
    StateEvt | ScreenPopEvt | CallEndedEvt | PreviewEvt | CallbackReminderEvt]] = {
    "state": StateEvt, "screen_pop": ScreenPopEvt, "call_ended": CallEndedEvt,
    "preview": PreviewEvt, "callback_reminder": CallbackReminderEvt,
}


def trunk_target(trunk_domain: str, user_for: Callable[[str], str]) -> Callable[[str], str]:
    """The Request-URI of a call: the dial plan's user part at the trunk's domain."""

    def target(e164: str) -> str:
        return f"sip:{user_for(e164)}@{trunk_domain}"

    return target


def trunk_configs(settings: Settings) -> dict[str, TrunkConfig]:
    out: dict[str, TrunkConfig] = {}
    for name, t in settings.sip.trunks.items():
        domain = t.uri.split(":", 1)[1] if t.uri.lower().startswith("sip:") else t.uri
        out[name] = TrunkConfig(
            name=name, domain=domain, username=t.username, password=t.password, realm=t.realm,
            register=t.registration, outbound_proxy=t.outbound_proxy or None,
            transport=t.transport, dtmf_method=t.dtmf_method,
        )
    return out


@dataclass
class RunSummary:
    placed: int = 0
    results: dict[str, int] = field(default_factory=dict)
    bridge_latencies_ms: list[float] = field(default_factory=list)
    queue_waits_ms: list[float] = field(default_factory=list)
    closed_at_stop: int = 0
    orphans_closed_at_start: int = 0
    #: connected calls still without a disposition at the stop (now "needs outcome")
    held_for_outcome: int = 0


class DialerApp:
    """The running dialer. `await app.run()` until `app.stop()` or a signal."""

    def __init__(
        self,
        settings: Settings,
        *,
        target_for: Callable[[str], str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pool_overrides: dict[str, Any] | None = None,
        metrics: DialerMetrics | None = None,
        pool_factory: Callable[[SipEventHandler], SipPool] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._target_for = target_for
        self._pool_overrides = pool_overrides or {}
        #: builds the SIP pool from the event handler (default: pjsua2 node processes, from
        #: the config); tests pass sip.memory.MemoryPool
        self._pool_factory = pool_factory
        self.metrics = metrics or DialerMetrics()
        self.runtimes: dict[str, CampaignRuntime] = {}
        self.agent_campaign: dict[str, str] = {}
        self.commands = AgentCommands()
        #: one command at a time per agent, whether it came over MQTT or a WebSocket
        self.runner = ClusterRunner(self._on_agent_command)  # gated when [cluster] is on
        self.hub = AgentSocketHub(self.runner, self.metrics)
        self.web: WebServer | None = None
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.summary = RunSummary()
        self.broker: EmbeddedBroker | None = None
        self.bus: MqttAgentBus | None = None
        self.pool: SipPool | None = None
        self.metrics_url: str | None = None
        self.store: SqlStore | None = None
        self.callability: SchedulingCallability | None = None
        #: the supervisors' controls (dialer/control), once the runtimes exist
        self.control: Control | None = None
        #: the supervisors' listen-in (the console's /api/console/listen) over the runtimes
        self.listen_in = ListenIn(self.runtimes)
        self.cluster: Cluster | None = None

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    # ------------------------------------------------------------------ run
    async def run(self) -> RunSummary:
        s = self.settings
        url = s.database.url
        if url.startswith("sqlite") and ":///" in url:
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade, url)  # idempotent; alembic runs its own loop
        engine = create_engine(url)
        sessions = session_factory(engine)
        self.store = store = SqlStore(sessions)
        self.callability = callability = SchedulingCallability(sessions)
        data_dir = Path(s.dialer.data_dir)
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        try:
            now = self.clock.now()
            self.summary.orphans_closed_at_start = await store.close_orphaned_attempts(
                dialer_id=s.dialer.id, now=now)
            if self.summary.orphans_closed_at_start:
                log.warning("closed %d attempts a previous run left open (result lost)",
                            self.summary.orphans_closed_at_start)
            held = await store.hold_orphaned_outcomes(dialer_id=s.dialer.id)
            if held:
                log.warning("%d connected calls of a previous run have no disposition: they "
                            "wait as 'needs outcome' and their leads are not called", held)
            campaigns = [await store.upsert_campaign(c) for c in s.campaigns]
            if not campaigns:
                campaigns = await store.campaigns()
            if not campaigns:
                raise RuntimeError("no campaign configured: add a [[campaigns]] table")
            agents = {a.login: await store.upsert_agent(a.login, a.sip_uri, a.display_name,
                                                        a.groups)
                      for a in s.agents}
            await self._place_config_agents(store, campaigns)
            db_secrets = await app_web.take_on_agents(self, sessions, campaigns, agents)
            message = str(ensure_default_message(data_dir / "message.wav"))
            async with contextlib.AsyncExitStack() as stack:
                if s.metrics.enabled:
                    server = self.metrics.start_http(s.metrics.port, s.metrics.host)
                    stack.callback(server.close)
                    self.metrics_url = server.url
                await self._start_pool(stack, campaigns, message, data_dir)
                for c in campaigns:
                    self.metrics.add_campaign(c.name)
                    priors = await pacing_priors(store, c.id, self.clock.now())
                    self.runtimes[c.name] = self._runtime(c, agents, message, priors)
                    set_hold_music(self.runtimes[c.name], next(
                        (x.hold_music_wav for x in s.campaigns if x.name == c.name), ""))
                # an agent of one campaign may take a transfer of another's call
                visits = Visits(self.runtimes, self.agent_campaign)
                for rt in self.runtimes.values():
                    rt.visits = visits
                # several instances: which agents are this one's (dialer/cluster.py)
                self.cluster = await start_cluster(self, stack, sessions)
                # a supervisor's pause or stop outlives a restart (docs/console.md)
                self.control = Control(sessions=sessions, clock=self.clock,
                                       runtimes=self.runtimes,
                                       agent_campaign=self.agent_campaign, runner=self.runner)
                await self.control.restore()
                if self.cluster is not None:  # one console for the campaign whole
                    self.control.cluster_view = ClusterView(self.cluster, self.control, sessions)
                # MQTT and web last: an agent's first command must find its campaign runtime
                stack.push_async_callback(self.runner.close)
                await self._start_bus(stack, db_secrets)
                self.web = await app_web.start_web(self, stack, sessions)
                if s.webhooks.enabled:  # outcome webhooks' delivery (docs/webhooks.md)
                    await stack.enter_async_context(WebhookWorker(
                        sessions, holder=s.dialer.id, metrics=self.metrics.webhooks,
                        settings=WorkerSettings.from_section(s.webhooks), clock=self.clock))
                jobs = SchedulingJobs(
                    sessions, holder=s.dialer.id, clock=self.clock,
                    settings=JobSettings.from_section(s.scheduling),
                    hooks=JobHooks(open_dialing=self._open, close_dialing=self._close,
                                   callback_reminder=self._reminder),
                )
                for c in campaigns:
                    await callability.refresh(
                        campaign_id=c.id, now=self.clock.now(),
                        abandon_lockout=timedelta(seconds=s.scheduling.abandon_lockout_s))
                scheduler = build_scheduler(jobs)
                scheduler.start()
                stack.callback(scheduler.shutdown, wait=False)
                tasks = [asyncio.create_task(rt.run(), name=f"campaign-{name}")
                         for name, rt in self.runtimes.items()]
                gauges = asyncio.create_task(self._gauges(), name="gauges")
                self.ready.set()
                log.info("dialer %s running: %d campaign(s), %d agent(s), %d SIP slots",
                         s.dialer.id, len(campaigns), len(agents),
                         self.pool.capacity if self.pool else 0)
                await self._stop.wait()
                await self._drain()
                gauges.cancel()
                for rt in self.runtimes.values():
                    rt.stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                for rt in self.runtimes.values():
                    self.summary.placed += rt.stats.placed
                    for k, v in rt.stats.results.items():
                        self.summary.results[k] = self.summary.results.get(k, 0) + v
                    self.summary.bridge_latencies_ms += rt.stats.bridge_latencies_ms
                    self.summary.queue_waits_ms += rt.stats.queue_waits_ms
        finally:
            await engine.dispose()
        return self.summary

    def _runtime(
        self, c: Campaign, agents: dict[str, Agent], message: str, priors: PacingPriors
    ) -> CampaignRuntime:
        s = self.settings
        target = self._target_for
        if target is None:
            if not (c.trunk and c.trunk in s.sip.trunks):
                raise ConfigError(f"campaign {c.name!r}: trunk {c.trunk!r} is not configured "
                                  f"in [sip.trunks] (known: {sorted(s.sip.trunks)})")
            trunk = s.sip.trunks[c.trunk]
            domain = trunk.uri.split(":", 1)[1] if trunk.uri.lower().startswith("sip:") \
                else trunk.uri
            target = trunk_target(domain, trunk.user_for())
        assert self.pool is not None and self.store is not None \
            and self.callability is not None, "the runtime is built after the pool and store"
        capacity = self.pool.capacity // 2
        return CampaignRuntime(
            campaign=c, store=self.store, callability=self.callability, pool=self.pool,
            dialer_id=s.dialer.id,
            agents={k: v for k, v in agents.items() if self.agent_campaign.get(k) == c.name},
            target_for=target, bus=self, metrics=self.metrics,
            message_wav=message, recordings_dir=Path(s.dialer.data_dir) / "recordings",
            claim_ttl=timedelta(seconds=s.scheduling.claim_ttl_s),
            abandon_lockout=timedelta(seconds=s.scheduling.abandon_lockout_s),
            agent_answer_timeout_s=s.sip.agent_answer_timeout_s, clock=self.clock,
            max_lines=capacity, priors=priors,
        )

    async def _start_bus(self, stack: contextlib.AsyncExitStack,
                         db_secrets: dict[str, str]) -> None:
        s = self.settings
        url = s.mqtt.url
        creds = None
        if not url:
            secrets = {a.login: a.mqtt_secret for a in s.agents if a.mqtt_secret}
            broker = EmbeddedBroker(
                {**db_secrets, **secrets},
                host=s.mqtt.embedded_host, port=s.mqtt.embedded_port, prefix=s.mqtt.topic_prefix,
                supervisors=s.mqtt.supervisors)
            await stack.enter_async_context(broker)
            self.broker = broker
            url, creds = broker.url, broker.dialer_credentials
            log.info("embedded MQTT broker on %s", broker.url)
        # a cluster member also carries the events of agents served elsewhere to its own
        # WebSockets, and relays those sockets' commands (dialer/web/agent_relay.py)
        relay = AgentRelay(self.hub, self.cluster) if self.cluster is not None else None
        lending = self.cluster.lending if self.cluster is not None else None
        bus = MqttAgentBus(url, s.mqtt.topic_prefix, creds, runner=self.runner,
                           events=relay.event if relay is not None else None,
                           peer=(s.dialer.id, lending.on_message) if lending else None)
        await stack.enter_async_context(bus)
        self.bus = bus
        if lending is not None:
            lending.send = bus.to_peer
        if relay is not None:
            self.hub.relay = bus.relay

    async def _place_config_agents(self, store: Store, campaigns: list[Campaign]) -> None:
        """Each config agent's campaign: the one its [[agents]] entry names, unless a
        supervisor moved it since the file last changed (the row's campaign stands:
        db.repositories.seed_agent_campaign). A moved-to campaign that does not run here:
        in a cluster another member serves the agent; alone, the file's campaign again."""
        running = {c.name for c in campaigns}
        for a in self.settings.agents:
            named = a.campaign or campaigns[0].name
            where = await store.seed_agent_campaign(a.login, named) or named
            if where != named and where not in running and not self.settings.cluster.enabled:
                log.warning("agent %s: moved to campaign %s, which this dialer does not run; "
                            "back on %s as the config file says", a.login, where, named)
                where = named
            elif where != named:
                log.info("agent %s works on %s (moved there; the config file says %s)",
                         a.login, where, named)
            self.agent_campaign[a.login] = where

    async def _start_pool(
        self, stack: contextlib.AsyncExitStack, campaigns: list[Campaign], message: str,
        data_dir: Path,
    ) -> None:
        s = self.settings
        if self._pool_factory is not None:
            pool = self._pool_factory(self._on_sip_event)
            await pool.start()
            stack.push_async_callback(pool.close, s.dialer.drain_deadline_s)
            self.pool = pool
            return
        planned = max(4, math.ceil(max(1, len(s.agents)) * max(c.max_dial_level
                                                                for c in campaigns)))
        kw: dict[str, Any] = {
            "nodes": s.sip.nodes, "planned_concurrency": planned, "bind_address": s.sip.bind,
            "base_port": s.sip.base_port, "transports": tuple(s.sip.transports),
            "trunks": trunk_configs(s), "setup_rate_per_node": s.sip.setup_rate_per_node,
            "message_wav": message, "node_log_dir": str(data_dir / "logs"),
            "media_timeout_s": s.sip.media_timeout_s, "session_expires_s": s.sip.session_expires_s,
            "breaker": BreakerConfig(failure_threshold=s.sip.breaker_failures,
                                     probe_interval_s=s.sip.breaker_probe_interval_s,
                                     keepalive_interval_s=s.sip.breaker_keepalive_s),
        }
        kw.update(self._pool_overrides)
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        nodes = NodePool(PoolConfig(**kw), on_event=self._on_sip_event)
        await nodes.start()
        stack.push_async_callback(nodes.close, s.dialer.drain_deadline_s)
        self.pool = nodes

    # ------------------------------------------------------------------ stop
    async def _drain(self) -> None:
        deadline = self.settings.dialer.drain_deadline_s
        log.info("stopping: no new calls; live calls may go on for %.0f s", deadline)
        for rt in self.runtimes.values():
            rt.stop_dialing()
        started = self.clock.monotonic()
        if not await self._all_idle(deadline):
            log.warning("drain deadline reached: hanging up the remaining calls")
            for rt in self.runtimes.values():
                await rt.hang_up_all("dialer shutdown")
            await self._all_idle(5.0)
        # agents finish their wrap-ups: a disposition given now is saved, not lost
        wrapups = sum(rt.open_wrapups for rt in self.runtimes.values())
        wait_s = self.settings.dialer.wrapup_deadline_s
        if wrapups:
            log.info("stopping: waiting up to %.0f s for %d dispositions", wait_s, wrapups)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(
                    *(rt.wait_wrapups() for rt in self.runtimes.values())), wait_s)
        for rt in self.runtimes.values():
            self.summary.held_for_outcome += await hold_open_wrapups(rt)
        # the last acks (a disposition's) reach the desktops
        if self.bus is not None:
            await self.bus.settle()
        else:
            await self.runner.settle(3.0)
        log.info("stopping: calls drained in %.1f s", self.clock.monotonic() - started)
        for rt in self.runtimes.values():
            await rt.flush()
            self.summary.closed_at_stop += await rt.close_open_attempts(
                AttemptResult.CANCELLED, "dialer stopped before the call ended")

    async def _all_idle(self, within_s: float) -> bool:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(rt.wait_idle() for rt in self.runtimes.values())), within_s)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ routing of inputs
    def _on_sip_event(self, ev: SipEvent) -> None:
        if isinstance(ev, TrunkHealthChanged):  # a trunk's circuit breaker moved
            self.metrics.trunk_health(ev.trunk, ev.state, ev.previous)
            for rt in self.runtimes.values():
                if rt.campaign.trunk == ev.trunk:
                    # an open circuit: claim no leads for it (they would only be refused)
                    if ev.state == "open" and ev.previous == "closed" and rt.dialing:
                        self._paused_by_rule(rt, "trunk_down")
                    rt.set_trunk_down(ev.state == "open")
            return
        for rt in self.runtimes.values():
            if ev.call_id in rt.calls:
                rt.on_sip_event(ev)
                return

    async def _on_agent_command(self, login: str, cmd: AgentCommand) -> ProtocolError | None:
        name = self.agent_campaign.get(login)
        rt = self.runtimes.get(name) if name else None
        if rt is None or login not in rt.agents:
            return ProtocolError(ErrorCode.UNKNOWN_AGENT,
                                 f"agent {login} is not configured on this dialer")
        return await self.commands.handle(rt, login, cmd)

    # the runtime's AgentBus port (dialer.ports.AgentBus) ----------------------------------
    async def send_agent(self, login: str, kind: AgentMessageKind, body: Body) -> None:
        # through JSON: the message models are strict about enums and times in Python mode
        message: DialerMessage = _AGENT_MESSAGES[kind].model_validate_json(
            json.dumps(body, default=str))
        if self.bus is not None:
            await self.bus.send(login, message)
        await self.hub.send(login, message)

    # what the web server asks (dialer.web.deps.AgentDesk) ----------------------------------
    def _runtime_of(self, login: str) -> CampaignRuntime | None:
        """The runtime of the campaign agent `login` works for here, served here or not."""
        return self.runtimes.get(self.agent_campaign.get(login, ""))

    def campaign_of(self, login: str) -> Campaign | None:
        rt = self._runtime_of(login)
        return rt.campaign if rt is not None and login in rt.agents else None

    def configured_campaign(self, login: str) -> Campaign | None:
        rt = self._runtime_of(login)
        return rt.campaign if rt is not None else None

    def holds_call(self, login: str, attempt_id: int) -> bool:
        rt = self._runtime_of(login)
        return rt is not None and any(c.attempt_id == attempt_id and c.agent_login == login
                                      for c in rt.calls.values())

    def transfer_targets(self, login: str) -> list[str]:
        rt = self._runtime_of(login)
        return ready_targets(rt, login) if rt is not None else []

    def transfer_groups(self, login: str) -> list[dict[str, object]]:
        rt = self._runtime_of(login)
        return transfer_groups(rt, login) if rt is not None else []

    async def supervisor(self, event: Body) -> None:
        if self.bus is not None:
            await self.bus.supervisor(
                SUPERVISOR_EVENTS.validate_json(json.dumps(event, default=str)))

    async def _open(self, campaign_id: int) -> None:
        for rt in self.runtimes.values():
            if rt.campaign.id == campaign_id:
                if self.control is not None:
                    self.control.calendar_opened(rt)  # unless a supervisor holds it
                else:
                    rt.resume_dialing()

    async def _close(self, campaign_id: int) -> None:
        for rt in self.runtimes.values():
            if rt.campaign.id == campaign_id:
                if rt.dialing:
                    self._paused_by_rule(rt, "calendar_closed")
                if self.control is not None:
                    self.control.calendar_closed_edge(rt)
                else:
                    rt.stop_dialing()

    def _paused_by_rule(self, rt: CampaignRuntime, reason: str) -> None:
        """The `campaign.paused` webhook, queued behind the campaign's records."""
        if self.store is not None:
            rt._write(report_pause, self.store.sessions, rt.campaign.id, reason, self.clock.now())

    async def _reminder(self, reminder: CallbackReminder) -> None:
        assert self.store is not None, "reminders start after the store"
        login = await self.store.agent_login(reminder.agent_id)
        if login:
            await self.send_agent(login, "callback_reminder", {
                "lead_id": reminder.lead_id, "due_at": reminder.due_at.isoformat()})

    async def _gauges(self) -> None:
        """Slow gauges: node capacity and use, callable leads per campaign."""
        while True:
            try:
                if self.pool is not None:
                    self.metrics.set_nodes(self.pool.nodes)
                if self.store is not None:
                    counts = await self.store.callable_counts(
                        [rt.campaign.id for rt in self.runtimes.values()], self.clock.now())
                    for rt in self.runtimes.values():
                        rt.callable_leads = counts.get(rt.campaign.id, 0)
            except Exception:
                log.exception("gauge refresh failed")
            await asyncio.sleep(5.0)
