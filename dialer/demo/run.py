"""`dialer demo`: a predictive campaign on loopback with real SIP, RTP, SQL and MQTT.

What runs (docs/demo.md):
* SQLite database under var/demo (fresh each run), filled by dialer.demo.data;
* SIPp as the callee network (behaviour chosen by each number's last digits) and as the
  agents' auto-answering phones (RTP echo);
* the real dialer (DialerApp): pjsua2 node processes, the sans-IO engine, the embedded
  MQTT broker, scheduling jobs and /metrics;
* simulated agents: MQTT clients speaking the agent protocol (dialer.agentsim);
* the web server with one more seat for a person (`HUMAN_LOGIN`, a password made at each
  start and printed once): its phone is the same SIPp auto-answering phone the simulated
  agents have, so the person sees screen pops in the browser, hears nothing, and
  dispositions the calls.
It shows live progress, then writes the end-of-day report and prints one summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import shutil
import signal
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from common.clock import SYSTEM_CLOCK, Clock
from common.vocabulary import AbandonClockStart, AgentState, AttemptResult, DialMode
from db import web_accounts
from db.migrate import upgrade
from db.seed import CompanySeed, LeadSeed, seed_campaign
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, SimulatedAgent
from dialer.app import DialerApp, RunSummary
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    DatabaseSection,
    DialerSection,
    MetricsSection,
    MqttSection,
    SchedulingSection,
    Settings,
    SipSection,
    TrunkSection,
    WebSection,
)
from dialer.demo.data import demo_behaviour, generate
from dialer.passwords import hash_password
from scheduling.days import local_date
from scheduling.plan import build_daily_plan
from sip.sipp import SippProcess

log = logging.getLogger(__name__)
console = Console()


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    minutes: float = 3.0
    agents: int = 8
    metrics_port: int = 9464
    live: bool = True
    seed: int = 7
    #: leads per generated company (a long run needs more than a 3-minute one)
    leads_per_company: int = 30
    workdir: Path = Path("var/demo")
    database_url: str | None = None
    amd: bool = False
    #: the web server's port (the person's seat signs in there); 0 picks a free one
    web_port: int = 8080


#: the login of the seat for a person at the web desktop
HUMAN_LOGIN = "you"


def sipp_user(e164: str) -> str:
    """The demo dial plan: a demo number -> the SIPp callee grammar (docs/sip.md)."""
    kind, ring, talk = demo_behaviour(e164)
    return {
        # a person says "hello?" and waits; a machine plays a long greeting (AMD tells them apart)
        "human": f"human_{ring:g}_{talk:g}",
        "machine": f"machine_{ring:g}_{talk:g}",
        "busy": "status486_2_0",
        "no_answer": "noanswer_0_0",
        "rejected": "status603_1_0",
        "invalid": "status404_0_0",
        "failed": "status503_0_0",
        "unavailable": "status480_3_0",
    }[kind]


def settings_for(opts: DemoOptions, callee_port: int, agent_uris: list[str]) -> Settings:
    db = opts.database_url or f"sqlite:///{opts.workdir / 'demo.db'}"
    return Settings(
        dialer=DialerSection(id="demo", drain_deadline_s=20.0, data_dir=opts.workdir),
        database=DatabaseSection(url=db),
        mqtt=MqttSection(url="", embedded_port=0),
        metrics=MetricsSection(enabled=True, port=opts.metrics_port),
        web=WebSection(enabled=True, port=opts.web_port),
        sip=SipSection(nodes="auto", base_port=0, trunks={
            "demo-pstn": TrunkSection(uri=f"sip:127.0.0.1:{callee_port}",
                                      dial_plan="dialer.demo.run:sipp_user")}),
        scheduling=SchedulingSection(),
        agents=[AgentConfig(login=f"agent{i + 1}", sip_uri=uri, display_name=f"Agent {i + 1}",
                            password=f"demo-pass-{i + 1}")
                for i, uri in enumerate(agent_uris)],
        campaigns=[CampaignConfig(
            name="demo", caller_id="+14155550100", dial_mode=DialMode.PREDICTIVE, trunk="demo-pstn",
            timezone="UTC", ring_timeout_s=20.0, min_ring_s=15.0, abandon_cap=0.03,
            # with --amd: answering-machine detection; as the FCC rule allows, the 2-second
            # clock then starts when the person's greeting ends (AMD's verdict)
            amd_enabled=opts.amd,
            abandon_clock_start=AbandonClockStart.GREETING_END if opts.amd
            else AbandonClockStart.ANSWER,
            calling_window="us_federal", max_attempts=4,
            script="Hello, this is Dana from Example Networks. Do you have a minute to talk "
                   "about your office connectivity?",
        )],
    )


async def seed_human_seat(url: str, now: datetime, sip_uri: str) -> str:
    """The person's seat: an agent kept in the database (as `dialer agents add` makes it)
    with a random password, new at each start; returns the password (shown once)."""
    password = secrets.token_urlsafe(9)
    hashed = await asyncio.to_thread(hash_password, password)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        try:
            await web_accounts.add_agent(sessions, login=HUMAN_LOGIN, sip_uri=sip_uri,
                                         password_hash=hashed, now=now,
                                         display_name="You", campaign="demo")
        except web_accounts.AccountError:  # a kept database (--db): a new password
            await web_accounts.set_password(sessions, login=HUMAN_LOGIN, password_hash=hashed,
                                            now=now, role="agent")
    finally:
        await engine.dispose()
    return password


async def seed_database(url: str, now: datetime, seed: int, *,
                        leads_per_company: int = 30) -> tuple[int, int]:
    """Companies with calendars and their leads; returns (companies, leads)."""
    await asyncio.to_thread(upgrade, url)
    companies, leads = generate(now, seed=seed, leads_per_company=leads_per_company)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        campaign_id = await seed_campaign(
            sessions, name="demo", caller_id="+14155550100", now=now,
            companies=[CompanySeed(name=c.name, timezone=c.timezone, weekly_hours=c.weekly_hours,
                                   holiday_country=c.holiday_country, closures=c.closures)
                       for c in companies],
            leads=[LeadSeed(phone_e164=lead.phone_e164, name=lead.name, company=lead.company,
                            timezone=lead.timezone, priority=lead.priority,
                            custom_fields=lead.custom_fields) for lead in leads])
        await build_daily_plan(sessions, campaign_id=campaign_id,
                               plan_date=local_date(now, "UTC"), now=now)
    finally:
        await engine.dispose()
    return len(companies), len(leads)


def _progress(app: DialerApp, started: float, minutes: float) -> Table:
    rt = app.runtimes.get("demo")
    elapsed = app.clock.monotonic() - started
    table = Table(title=f"dialer demo - {elapsed:5.0f} s of {minutes * 60:.0f} s",
                  show_header=False, min_width=70)
    if rt is None:
        table.add_row("starting", "...")
        return table
    states = Counter(rec.state for rec in rt.engine.board)
    stages = rt.stages_in_flight()
    c = rt.engine.counters()
    now = rt.clock.now()
    ab = rt.engine.abandon_counts(now)
    answered = c.live_answers + c.machines
    lat = rt.stats.bridge_latencies_ms
    table.add_row("agents", "  ".join(f"{s.value}={states.get(s, 0)}" for s in AgentState
                                      if s is not AgentState.LOGGED_OUT))
    table.add_row("calls in flight", "  ".join(f"{k}={v}" for k, v in sorted(stages.items()))
                  or "none")
    working = rt.engine.board.working
    table.add_row("dial level", f"{rt.live_calls / working:.2f} lines/agent" if working else "-")
    table.add_row("placed / connected / abandoned",
                  f"{rt.stats.placed} / {c.connected} / {c.abandoned}")
    table.add_row("answer rate", f"{answered / c.dials:.0%}" if c.dials else "-")
    table.add_row("abandon rate (cap)",
                  f"{ab.rate:.2%} of {ab.live} live answers (cap {rt.campaign.abandon_cap:.0%})")
    if lat:
        waits = rt.stats.queue_waits_ms
        table.add_row("answer -> agent", f"p50 {statistics.median(lat):.1f} ms, "
                                         f"max {max(lat):.1f} ms, n={len(lat)}")
        table.add_row("  of which waiting", f"{sum(1 for w in waits if w > 1)} calls waited "
                                            f"for a free agent, longest {max(waits):.0f} ms")
    table.add_row("results", "  ".join(f"{k}={v}" for k, v in sorted(rt.stats.results.items())))
    if app.metrics_url:
        table.add_row("metrics", app.metrics_url)
    return table


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def summary_line(summary: RunSummary) -> str:
    r = summary.results
    connected = r.get(AttemptResult.CONNECTED.value, 0)
    abandoned = r.get(AttemptResult.ABANDONED.value, 0)
    live = connected + abandoned
    lat = summary.bridge_latencies_ms
    return (f"demo: placed={summary.placed} connected={connected} abandoned={abandoned} "
            f"abandon_rate={abandoned / live if live else 0.0:.4f} "
            f"bridge_p50_ms={percentile(lat, 0.5):.1f} bridge_p99_ms={percentile(lat, 0.99):.1f}")


class _StopSignal:
    """SIGTERM / SIGINT end the demo early, the orderly way: log it, stop the dialer (which
    drains its calls), the simulated agents and SIPp, and return normally (exit 0)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.name: str | None = None
        self._installed: list[int] = []

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                continue
            self._installed.append(sig)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def _on_signal(self, sig: int) -> None:
        if self.name is None:
            self.name = signal.Signals(sig).name
            log.warning("demo: %s received: stopping (dialer drains its calls, then the "
                        "simulated agents and SIPp stop)", self.name)
        self.event.set()

    @property
    def set(self) -> bool:
        return self.event.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking at once when a stop signal arrives."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)


async def run_demo(opts: DemoOptions, clock: Clock = SYSTEM_CLOCK) -> RunSummary:
    stop = _StopSignal()
    stop.install()
    try:
        return await _run_demo(opts, clock, stop)
    finally:
        stop.remove()


async def _run_demo(opts: DemoOptions, clock: Clock, stop: _StopSignal) -> RunSummary:
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp not found: install the Debian package sip-tester "
                           "(scripts/setup does it)")
    if opts.database_url is None:
        shutil.rmtree(opts.workdir, ignore_errors=True)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    now = clock.now()
    lifetime = opts.minutes * 60 + 120
    with contextlib.ExitStack() as stack:
        callee = stack.enter_context(SippProcess.callee(max_lifetime_s=lifetime))
        phones = stack.enter_context(SippProcess.agent(max_lifetime_s=lifetime))
        agent_uris = [phones.uri(f"agent{i + 1}") for i in range(opts.agents)]
        settings = settings_for(opts, callee.port, agent_uris)
        n_companies, n_leads = await seed_database(
            settings.database.url, now, opts.seed, leads_per_company=opts.leads_per_company)
        console.print(f"demo: {n_companies} companies in several time zones, {n_leads} leads; "
                      f"SIPp callees on 127.0.0.1:{callee.port}, agent phones on "
                      f"127.0.0.1:{phones.port}")
        human_password = await seed_human_seat(settings.database.url, now,
                                               phones.uri(HUMAN_LOGIN))
        app = DialerApp(settings, clock=clock)
        run = asyncio.create_task(app.run(), name="dialer")
        ready = asyncio.create_task(app.ready.wait())
        stopped = asyncio.create_task(stop.event.wait())
        await asyncio.wait({run, ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if run.done():
            ready.cancel()
            return run.result()  # start-up failed: re-raises its error
        if not app.ready.is_set():  # a stop signal during start-up
            ready.cancel()
            app.stop()
            return await run
        assert app.broker is not None
        if app.web is not None:
            # the terminal only (never a log): the person's one-time credentials
            console.print(f"web desktop for you: {app.web.url}/login  login: {HUMAN_LOGIN}  "
                          f"password: {human_password}  (your phone answers by itself)",
                          highlight=False)
        rng = random.Random(opts.seed)
        profile = AgentProfile(wrapup_s=(3.0, 10.0), break_probability=0.05,
                               break_s=(10.0, 30.0))
        agents = [SimulatedAgent(a.login, a.password, app.broker.url,
                                 random.Random(rng.random()), profile)
                  for a in settings.agents]
        agent_tasks = [asyncio.create_task(a.run(), name=f"sim-{a.login}") for a in agents]
        started = clock.monotonic()
        end = started + opts.minutes * 60
        if opts.live:
            with Live(_progress(app, started, opts.minutes), console=console,
                      refresh_per_second=2) as live:
                while clock.monotonic() < end and not run.done() and not stop.set:
                    await stop.sleep(0.5)
                    live.update(_progress(app, started, opts.minutes))
        else:
            last = 0.0
            while clock.monotonic() < end and not run.done() and not stop.set:
                await stop.sleep(0.5)
                if clock.monotonic() - last >= 15:
                    last = clock.monotonic()
                    console.print(_progress(app, started, opts.minutes))
        app.stop()
        summary = await run
        for a in agents:
            a.stop()
        await asyncio.wait(agent_tasks, timeout=10)
        for t in agent_tasks:
            t.cancel()
        await asyncio.gather(*agent_tasks, return_exceptions=True)
        console.print(Group(_progress(app, started, opts.minutes)))
    # leaving the ExitStack stopped both SIPp processes
    if stop.set:
        log.warning("demo: stopped early by %s: dialer, simulated agents and SIPp stopped",
                    stop.name)
    await print_report(settings.database.url, now)
    direct = [b - w for b, w in zip(summary.bridge_latencies_ms, summary.queue_waits_ms,
                                    strict=True)]
    console.print(f"answer-to-agent latency without queue wait{' (incl. AMD)' if opts.amd else ''}"
                  f": p50 {percentile(direct, 0.5):.1f}"
                  f" ms, p99 {percentile(direct, 0.99):.1f} ms; "
                  f"{sum(1 for w in summary.queue_waits_ms if w > 1)} of {len(direct)} "
                  "answered people waited for a free agent (within the 2 s rule)")
    # plain print: the summary is one line for scripts to grep, never wrapped by rich
    print(summary_line(summary), flush=True)
    return summary


async def print_report(url: str, now: datetime) -> None:
    from dialer.cli_schedule import render_day_report

    csv_path = None
    if url.startswith("sqlite"):
        csv_path = Path(url.split(":///", 1)[1]).with_name("report.csv")
    await render_day_report(url, local_date(now, "UTC"), csv_path=csv_path, rebuild=True)
