"""A whole call center on loopback that a test can break: the fault harness (tests/faults).

`FaultStack` runs what a site runs, each as its own process where it is one in production:

* `dialer run --config dialer.toml` (the console script; its pjsua2 nodes are its children);
* a SIPp callee network behind a Kamailio proxy (the trunk points at the proxy, so a test can
  cut the trunk) and SIPp agent phones;
* simulated agents' desktops (dialer.agentsim) in the test process, over MQTT;
* SQLite and the dialer's embedded broker ("default"), or PostgreSQL and Mosquitto
  ("production").

Faults: `kill_dialer()` (kill -9), `start_dialer()`, `sigterm_dialer()` (exit code and time),
`kill_node()`, `restart_broker()`, `restart_postgres()`, `proxy.stop()/start()`. Every wait is
bounded; `close()` (called by the async context manager, also on failure) stops everything
and then checks that no process the stack started is still alive.

The SIPp callee's behaviour is chosen per lead: `StackSpec.leads` maps a callee user part of
docs/sip.md ("answer_1_20", "status503_0_0", ...) to a number of leads; the dialer's dial plan
(a module written into the test's directory) maps each lead's number back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from common.processes import stop_process
from db.pgserver import TempPostgres
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, SimulatedAgent, simulated_agents
from sip.sipp import SippProcess, free_udp_port
from support.kamailio import KamailioProxy
from support.leads import make_numbers, seed_campaign
from support.mosquitto import MOSQUITTO, MosquittoServer, dialer_acl

log = logging.getLogger(__name__)

DIALER = str(Path(sys.executable).with_name("dialer"))
CAMPAIGN = "faults"
DIALER_USER = ("dialer", "dialer-pw")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- restartable servers
class RestartablePostgres(TempPostgres):
    """TempPostgres whose server process can be stopped and started again on the same data."""

    def _launch(self) -> None:
        assert self._dir is not None and self._log is not None
        self._proc = subprocess.Popen(
            self._cmd(str(self.bin / "postgres"), "-D", str(self._dir / "data"), "-p",
                      str(self.port), "-c", "listen_addresses=127.0.0.1",
                      "-c", f"unix_socket_directories={self._dir}",
                      "-c", "fsync=off", "-c", "synchronous_commit=off",
                      "-c", "full_page_writes=off", "-c", "max_connections=200"),
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                                str(self.port)], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not come back within {timeout_s} s")

    def kill_server(self) -> None:
        """A fast shutdown of the server (clients see their connections closed)."""
        if self._proc is not None:
            stop_process(self._proc, 10, sig=signal.SIGINT, group=True, kill_timeout=5)
        self._proc = None

    def start_server(self, timeout_s: float = 30.0) -> None:
        self._launch()
        self._wait_ready(timeout_s)

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


class RestartableMosquitto(MosquittoServer):
    """MosquittoServer that restarts on the same port and config."""

    def restart(self, down_s: float) -> None:
        conf = self.dir / "mosquitto.conf"
        self.stop()
        time.sleep(down_s)
        with (self.dir / "mosquitto.log").open("ab") as log_file:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=log_file)
        if not self._wait_listening():
            raise RuntimeError("mosquitto did not come back on its port")


# --------------------------------------------------------------------------- the stack
@dataclass
class StackSpec:
    kind: str = "default"  # or "production": PostgreSQL + Mosquitto
    #: SIPp callee user part (docs/sip.md) -> how many leads behave that way
    leads: Mapping[str, int] = field(default_factory=lambda: {"answer_1_20": 6})
    agents: Mapping[str, str] = field(default_factory=lambda: {"agent1": "pw-1",
                                                                "agent2": "pw-2"})
    profile: AgentProfile = field(default_factory=lambda: AgentProfile(
        wrapup_s=(0.5, 1.0), break_probability=0.0, settle_s=(0.2, 0.5),
        auto_resume_s=(1.0, 2.0), reply_timeout_s=5.0))
    #: extra TOML lines of the [[campaigns]] table (e.g. "max_call_s = 8")
    campaign_toml: str = 'dial_mode = "progressive"\n'
    nodes: int = 1
    drain_deadline_s: float = 8.0
    callee_scenario: str | Path = "callee"
    #: a PostgreSQL server of the test's own, which it may restart (production only)
    own_postgres: bool = False
    #: (abandoned, connected) attempts seeded in the last days: over the abandon cap
    abandon_history: tuple[int, int] | None = None
    #: numbers the trunk reaches that are nobody's lead (an outside party): the last three
    #: digits -> the SIPp callee user part; make such a number with support.leads.make_numbers
    outside: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Row:
    id: int
    lead_id: int
    stage: str
    result: str | None
    created_at: datetime | None
    bridged_at: datetime | None
    ended_at: datetime | None
    disposition: str | None
    agent_id: int | None
    talk_s: float | None
    sip_code: int | None


def _aware(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v if v.tzinfo else v.replace(tzinfo=UTC)


async def wait_for(cond: Callable[[], Awaitable[bool]], seconds: float, what: str,
                   every: float = 0.25) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if await cond():
                return
        except AssertionError:
            raise
        except Exception as e:  # a database mid-restart: try again
            log.debug("wait_for %s: %s", what, e)
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


class FaultStack:
    """One call center on loopback; use `async with FaultStack(...) as st:`."""

    def __init__(self, tmp_path: Path, spec: StackSpec,
                 pg_server: TempPostgres | None = None) -> None:
        self.dir = tmp_path
        self.spec = spec
        self._shared_pg = pg_server
        self.pg: RestartablePostgres | None = None
        self.mosquitto: RestartableMosquitto | None = None
        self.callee: SippProcess | None = None
        self.phones: SippProcess | None = None
        self.proxy: KamailioProxy | None = None
        self.dialer: subprocess.Popen[bytes] | None = None
        self.db_url = ""
        self.mqtt_port = 0
        self.log_path = tmp_path / "dialer.log"
        self.config_path = tmp_path / "dialer.toml"
        self.numbers: list[tuple[str, str]] = []
        self.behaviour: dict[str, str] = {}  # phone -> callee user part
        self.started_at = datetime.now(UTC)
        self.agents: list[SimulatedAgent] = []
        self.notes: list[str] = []
        self._agents_cm: contextlib.AbstractAsyncContextManager[list[SimulatedAgent]] | None \
            = None
        self._seen: set[tuple[int, float]] = set()  # (pid, create_time) of every process
        self._watch: asyncio.Task[None] | None = None
        self._log_offset = 0

    # ------------------------------------------------------------------ start
    async def __aenter__(self) -> FaultStack:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def broker_url(self) -> str:
        """Where agents' desktops connect (credentials are their own)."""
        if self.mosquitto is not None:
            return f"mqtt://127.0.0.1:{self.mosquitto.port}"
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    async def start(self) -> None:
        s = self.spec
        now = self.started_at
        # a number's last three digits pick its behaviour; a code has only a few valid
        # numbers in a zone, so big groups spread over several codes (5 leads each)
        codes: dict[str, int] = {}
        users: dict[str, str] = {}
        for i, (user, n) in enumerate(s.leads.items()):
            for j in range(0, n, 5):
                code = f"{i}{j // 5:02d}"
                codes[code], users[code] = min(5, n - j), user
        self.numbers = make_numbers(now, codes)
        self.behaviour = {p: users[p[-3:]] for p, _ in self.numbers}
        if s.kind == "production":
            if s.own_postgres:
                self.pg = RestartablePostgres(database="faults")
                await asyncio.to_thread(self.pg.start)
                self._remember(self.pg.pid())
                self.db_url = self.pg.url
            else:
                assert self._shared_pg is not None, "the production stack needs pg_server"
                name = f"faults_{os.getpid()}_{self.dir.name[-20:]}".replace("-", "_").lower()
                self.db_url = await asyncio.to_thread(self._shared_pg.create_database, name)
            self.mosquitto = RestartableMosquitto(
                self.dir, dialer_acl(dialer=DIALER_USER[0]),
                users={**s.agents, DIALER_USER[0]: DIALER_USER[1]})
            await asyncio.to_thread(self.mosquitto.start)
            self._remember(self.mosquitto.proc.pid if self.mosquitto.proc else None)
        else:
            self.db_url = f"sqlite:///{self.dir / 'faults.db'}"
            self.mqtt_port = free_tcp_port()
        await seed_campaign(self.db_url, CAMPAIGN, self.numbers, now)
        if s.abandon_history is not None:
            await self._seed_abandon_history(*s.abandon_history)
        self.callee = SippProcess(self._callee_scenario(), max_lifetime_s=600,
                                  port=free_udp_port())
        await asyncio.to_thread(self.callee.start)
        self._remember(self.callee.proc.pid if self.callee.proc else None)
        self.phones = SippProcess.agent(max_lifetime_s=600)
        await asyncio.to_thread(self.phones.start)
        self._remember(self.phones.proc.pid if self.phones.proc else None)
        self.proxy = KamailioProxy(self.dir / "kamailio", self.callee.port)
        await asyncio.to_thread(self.proxy.start)
        self._remember_proxy()
        self._write_dialplan()
        self._write_config()
        self.start_dialer()
        self._watch = asyncio.create_task(self._watch_children())
        await self.wait_dialer_up()
        self._agents_cm = simulated_agents(dict(s.agents), self.broker_url, seed=1,
                                           profile=s.profile, stop_timeout_s=3.0)
        self.agents = await self._agents_cm.__aenter__()
        await self.wait_agents_logged_in()

    def _callee_scenario(self) -> str | Path:
        """The callee scenario (the shipped one echoes every Via, so it answers through the
        proxy)."""
        return self.spec.callee_scenario

    def _write_dialplan(self) -> None:
        users = {**{p[-3:]: u for p, u in self.behaviour.items()}, **self.spec.outside}
        (self.dir / "fault_dialplan.py").write_text(
            '"""Dial plan of one fault test: number -> SIPp callee behaviour."""\n'
            f"USERS = {users!r}\n\n\n"
            "def sipp_user(e164: str) -> str:\n"
            "    return USERS.get(e164[-3:], 'answer_1_5')\n")

    def _write_config(self) -> None:
        s = self.spec
        assert self.phones is not None and self.proxy is not None
        agents = "".join(
            f'[[agents]]\nlogin = "{login}"\nsip_uri = "{self.phones.uri(login)}"\n'
            f'password = "{pw}"\n\n' for login, pw in s.agents.items())
        if self.mosquitto is not None:
            mqtt = (f'url = "mqtt://{DIALER_USER[0]}:{DIALER_USER[1]}@127.0.0.1:'
                    f'{self.mosquitto.port}"\n')
        else:
            mqtt = f"embedded_port = {self.mqtt_port}\n"
        self.config_path.write_text(f"""
[dialer]
id = "faults"
drain_deadline_s = {s.drain_deadline_s}
data_dir = "{self.dir / 'var'}"

[database]
url = "{self.db_url}"

[mqtt]
{mqtt}
[metrics]
enabled = false

[web]
enabled = false

[sip]
nodes = {s.nodes}
base_port = 0

[sip.trunks.pstn]
uri = "{self.proxy.uri}"
dial_plan = "fault_dialplan:sipp_user"

{agents}
[[campaigns]]
name = "{CAMPAIGN}"
caller_id = "+14155550100"
trunk = "pstn"
ring_timeout_s = 6.0
min_ring_s = 5.0
{s.campaign_toml}
""")

    async def _seed_abandon_history(self, abandoned: int, connected: int) -> None:
        """Past attempts putting the campaign over its abandon cap, on a lead that is done."""
        engine = create_engine(self.db_url)
        now = datetime.now(UTC)
        try:
            async with session_factory(engine)() as ses, ses.begin():
                cid = (await ses.execute(text("SELECT id FROM campaigns WHERE name = :n"),
                                         {"n": CAMPAIGN})).scalar_one()
                lid = (await ses.execute(text(
                    "INSERT INTO leads (campaign_id, phone_e164, name, custom_fields, status, "
                    "priority, hopper_tier, has_open_complaint, attempts, created_at, "
                    "updated_at) VALUES (:c, '+14155550999', 'History', '{}', 'done', 0, 2, "
                    ":f, 0, :t, :t) RETURNING id"),
                    {"c": cid, "t": now - timedelta(days=2), "f": False})).scalar_one()
                for i in range(abandoned + connected):
                    at = now - timedelta(days=1, minutes=i)
                    res = "abandoned" if i < abandoned else "connected"
                    await ses.execute(text(
                        "INSERT INTO attempts (campaign_id, lead_id, phone_e164, dial_mode, "
                        "dialer_id, stage, result, created_at, answered_at, ended_at, "
                        "abandoned, amd_verdict, opted_out) VALUES (:c, :l, '+14155550999', "
                        "'predictive', 'history', 'ended', :r, :t, :t, :e, :a, 'not_run', :f)"),
                        {"c": cid, "l": lid, "r": res, "t": at, "e": at + timedelta(seconds=20),
                         "a": res == "abandoned", "f": False})
        finally:
            await engine.dispose()

    # ------------------------------------------------------------------ the dialer process
    def start_dialer(self) -> subprocess.Popen[bytes]:
        assert self.dialer is None or self.dialer.poll() is not None, "dialer already running"
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(self.dir), os.environ.get("PYTHONPATH", "")])}
        with self.log_path.open("ab") as out:
            self._log_offset = len(self.log_text())
            out.write(f"\n===== dialer run started at {datetime.now(UTC)} =====\n".encode())
            out.flush()
            self.dialer = subprocess.Popen([DIALER, "run", "--config", str(self.config_path)],
                                           env=env, stdout=out, stderr=subprocess.STDOUT,
                                           cwd=self.dir, start_new_session=True)
        self._remember(self.dialer.pid)
        return self.dialer

    async def wait_dialer_up(self, seconds: float = 45.0) -> None:
        """Until its MQTT side is up (the last thing `dialer run` starts)."""
        assert self.dialer is not None
        proc = self.dialer

        async def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"dialer exited rc={proc.returncode}:\n{self.log_tail()}")
            if self.mosquitto is None:
                with socket.socket() as s:
                    s.settimeout(0.3)
                    if s.connect_ex(("127.0.0.1", self.mqtt_port)) != 0:
                        return False
            return "dialer faults running" in self.log_text()[self._log_offset:]

        await wait_for(up, seconds, "the dialer to start")

    def node_pids(self) -> list[int]:
        """The SIP node processes of the running `dialer run` (its children)."""
        if self.dialer is None or self.dialer.poll() is not None:
            return []
        try:
            kids = psutil.Process(self.dialer.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for k in kids:
            with contextlib.suppress(psutil.Error):
                if "sip.node" in " ".join(k.cmdline()):
                    out.append(k.pid)
        return out

    def _descendants(self) -> list[psutil.Process]:
        if self.dialer is None:
            return []
        try:
            return psutil.Process(self.dialer.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    async def kill_dialer(self, orphan_grace_s: float = 5.0) -> None:
        """kill -9 of `dialer run` (a crash). Its nodes must go on their own; left-overs are
        noted and killed."""
        assert self.dialer is not None
        kids = self._descendants()
        for k in kids:
            self._remember(k.pid)
        self.dialer.kill()
        await asyncio.to_thread(self.dialer.wait, 10)
        _gone, alive = await asyncio.to_thread(psutil.wait_procs, kids, orphan_grace_s)
        if alive:
            self.notes.append(f"{len(alive)} node process(es) outlived a kill -9 of the dialer "
                              f"by {orphan_grace_s:.0f} s: {[p.pid for p in alive]}")
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()

    async def sigterm_dialer(self, timeout_s: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit code or None if it did not exit in time, seconds taken)."""
        assert self.dialer is not None
        for k in self._descendants():
            self._remember(k.pid)
        t0 = time.monotonic()
        self.dialer.send_signal(signal.SIGTERM)
        try:
            rc: int | None = await asyncio.to_thread(self.dialer.wait, timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    async def kill_node(self) -> int:
        pids = self.node_pids()
        assert pids, "no SIP node process found under the dialer"
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    # ------------------------------------------------------------------ the other faults
    async def restart_broker(self, down_s: float = 2.0) -> None:
        assert self.mosquitto is not None, "broker restart needs the production stack"
        await asyncio.to_thread(self.mosquitto.restart, down_s)
        self._remember(self.mosquitto.proc.pid if self.mosquitto.proc else None)

    async def restart_postgres(self, down_s: float = 3.0) -> None:
        assert self.pg is not None, "PostgreSQL restart needs StackSpec(own_postgres=True)"
        await asyncio.to_thread(self.pg.kill_server)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.pg.start_server)
        self._remember(self.pg.pid())

    async def proxy_outage(self) -> None:
        assert self.proxy is not None
        await asyncio.to_thread(self.proxy.stop)

    async def proxy_back(self) -> None:
        assert self.proxy is not None
        await asyncio.to_thread(self.proxy.start)
        self._remember_proxy()

    # ------------------------------------------------------------------ observation
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]

    async def query(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.db_url)
        try:
            async with session_factory(engine)() as ses:
                return list((await ses.execute(text(sql), params)).all())
        finally:
            await engine.dispose()

    async def attempts(self) -> list[Row]:
        rows = await self.query(
            "SELECT a.id, a.lead_id, a.stage, a.result, a.created_at, a.bridged_at, a.ended_at, "
            "a.disposition, a.agent_id, a.talk_s, a.sip_code FROM attempts a "
            "JOIN campaigns c ON c.id = a.campaign_id WHERE c.name = :n "
            "AND a.dialer_id <> 'history' ORDER BY a.id", n=CAMPAIGN)
        return [Row(r[0], r[1], str(r[2]), r[3], _aware(r[4]), _aware(r[5]), _aware(r[6]),
                    r[7], r[8], r[9], r[10]) for r in rows]

    async def wait_attempt(self, pred: Callable[[Row], bool], seconds: float,
                           what: str) -> Row:
        found: list[Row] = []

        async def cond() -> bool:
            found[:] = [r for r in await self.attempts() if pred(r)]
            return bool(found)

        await wait_for(cond, seconds, what)
        return found[0]

    async def agent_states(self) -> dict[str, tuple[str, str | None]]:
        """Each agent's latest agent_state_log row: login -> (state, reason)."""
        rows = await self.query(
            "SELECT g.login, l.state, l.reason FROM agent_state_log l "
            "JOIN agents g ON g.id = l.agent_id ORDER BY l.started_at, l.id")
        out: dict[str, tuple[str, str | None]] = {}
        for login, state, reason in rows:
            out[login] = (str(state), reason)
        return out

    async def wait_agents_logged_in(self, seconds: float = 30.0) -> None:
        async def ok() -> bool:
            states = await self.agent_states()
            return all(states.get(a, ("logged_out", None))[0] not in ("logged_out",)
                       and states[a] != ("paused", "login") for a in self.spec.agents)

        await wait_for(ok, seconds, "the agents to log in and go ready")

    # ------------------------------------------------------------------ the end
    async def stop_agents(self) -> None:
        if self._agents_cm is not None:
            cm, self._agents_cm = self._agents_cm, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cm.__aexit__(None, None, None), 15)

    def _remember(self, pid: int | None) -> None:
        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            self._seen.add((pid, psutil.Process(pid).create_time()))

    def _remember_proxy(self) -> None:
        if self.proxy is not None:
            for pid in self.proxy.pids():
                self._remember(pid)

    async def _watch_children(self) -> None:
        while True:
            for k in self._descendants():
                self._remember(k.pid)
            await asyncio.sleep(0.5)

    def leftovers(self) -> list[str]:
        out = []
        for pid, created in self._seen:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {' '.join(p.cmdline())[:120]}")
        return out

    async def close(self) -> None:
        """Stop everything (also after a failure), then fail if any process is left."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for k in self._descendants():
            self._remember(k.pid)
        if self.dialer is not None and self.dialer.poll() is None:
            await asyncio.to_thread(stop_process, self.dialer, 20, group=True, kill_timeout=5)
        await self.stop_agents()
        for p in (self.mosquitto, self.proxy):
            if p is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(p.stop)
        for sipp in (self.callee, self.phones):
            if sipp is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(sipp.close)
        if self.pg is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.pg.stop)
        left: list[str] = []
        for _ in range(20):
            left = self.leftovers()
            if not left:
                break
            await asyncio.sleep(0.25)
        if left:
            for pid, _c in self._seen:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
            raise AssertionError(f"processes left running after the test: {left}")
