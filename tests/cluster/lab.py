"""Three `dialer run` instances as separate hosts (tests/support/netns.py), on one campaign.

Hosts: `data` (PostgreSQL + Mosquitto), `pstn` (SIPp callees and the agents' SIPp phones),
`d1`, `d2`, `d3` (one dialer instance each, `[cluster] enabled`). The simulated agents'
desktops run in the test process, which reaches the broker over the lab bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from db import web_accounts
from db.pgserver import find_pg_bin
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, SimulatedAgent, simulated_agents
from dialer.passwords import hash_password
from sip.assets import write_callee_audio
from sip.sipp import scenario_path
from support.leads import make_numbers, seed_campaign
from support.mosquitto import MOSQUITTO, MOSQUITTO_PASSWD, dialer_acl
from support.netns import Host, NetLab

DIALER = str(Path(sys.executable).with_name("dialer"))
CAMPAIGN = "cluster"
CALLEE_PORT, PHONES_PORT, SUPERVISOR_PHONE_PORT = 5060, 5070, 5080
WEB_PORT = 8080
#: the consoles' supervisor (login, password)
SUPERVISOR = ("sue", "sue-cluster-pw")


class ClusterLab:
    def __init__(self, lab: NetLab, tmp: Path, *, leads: Mapping[str, int],
                 agents: int = 6, instances: int = 3, campaign_toml: str = "") -> None:
        self.lab, self.dir = lab, tmp
        self.lead_spec = leads
        self.agent_creds = {f"agent{i + 1}": f"pw-{i + 1}" for i in range(agents)}
        self.n = instances
        self.campaign_toml = campaign_toml or 'dial_mode = "progressive"\n'
        self.data: Host | None = None
        self.pstn: Host | None = None
        self.hosts: dict[str, Host] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_dir: Path | None = None
        self.db_url = ""
        self.behaviour: dict[str, str] = {}
        self.agents: list[SimulatedAgent] = []
        self._agents_cm: Any = None
        self.started_at = datetime.now(UTC)

    # ------------------------------------------------------------------ servers
    def start_postgres(self) -> None:
        assert self.data is not None
        pg = find_pg_bin()
        self.pg_dir = Path(tempfile.mkdtemp(prefix="dialer-clpg-"))
        shutil.chown(self.pg_dir, "postgres", "postgres")
        data = self.pg_dir / "data"
        subprocess.run(["runuser", "-u", "postgres", "--", str(pg / "initdb"), "-D", str(data),
                        "-U", "postgres", "--auth=trust", "--no-sync"], check=True,
                       capture_output=True)
        with (data / "pg_hba.conf").open("a") as f:
            f.write(f"host all all {self.lab.net} trust\n")
        self._launch_postgres()
        subprocess.run([str(pg / "createdb"), "-h", self.data.ip, "-p", "5432", "-U",
                        "postgres", "dialer"], check=True, capture_output=True)
        self.db_url = f"postgresql+asyncpg://postgres@{self.data.ip}:5432/dialer"

    def _launch_postgres(self) -> None:
        assert self.data is not None and self.pg_dir is not None
        pg = find_pg_bin()
        with (self.pg_dir / "server.log").open("ab") as log:
            self.procs["postgres"] = self.lab.popen(self.data, [
                "runuser", "-u", "postgres", "--", str(pg / "postgres"), "-D",
                str(self.pg_dir / "data"), "-p", "5432", "-c",
                f"listen_addresses={self.data.ip}",
                "-c", f"unix_socket_directories={self.pg_dir}", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = subprocess.run([str(pg / "pg_isready"), "-h", self.data.ip, "-p", "5432"],
                               capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("postgres did not start in its namespace")

    async def restart_postgres(self, down_s: float) -> None:
        """A fast shutdown of the shared database, `down_s` seconds down, and back."""
        proc = self.procs["postgres"]
        self.lab.kill(proc, 2)  # SIGINT: PostgreSQL's fast shutdown
        await asyncio.to_thread(proc.wait, 30)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self._launch_postgres)

    def start_mosquitto(self) -> None:
        assert self.data is not None
        d = self.dir / "mosquitto"
        d.mkdir()
        users = {**self.agent_creds, "dialer": "dialer-pw"}
        for i, (u, p) in enumerate(users.items()):
            subprocess.run([MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []),
                            str(d / "passwd"), u, p], check=True, capture_output=True)
        (d / "acl").write_text(dialer_acl(dialer="dialer"))
        (d / "mosquitto.conf").write_text(
            "per_listener_settings false\nallow_anonymous false\n"
            f"password_file {d / 'passwd'}\nacl_file {d / 'acl'}\n"
            f"listener 1883 {self.data.ip}\npersistence false\nset_tcp_nodelay true\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nuser root\n")
        self._launch_mosquitto()

    def _launch_mosquitto(self) -> None:
        assert self.data is not None
        d = self.dir / "mosquitto"
        with (d / "mosquitto.log").open("ab") as log:
            self.procs["mosquitto"] = self.lab.popen(
                self.data, [MOSQUITTO, "-c", str(d / "mosquitto.conf")],
                stdout=subprocess.DEVNULL, stderr=log)
        _wait_tcp(self.data.ip, 1883)

    async def restart_broker(self, down_s: float) -> None:
        """The shared broker stops, stays down `down_s` seconds, and comes back."""
        proc = self.procs["mosquitto"]
        self.lab.kill(proc, 15)
        await asyncio.to_thread(proc.wait, 15)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self._launch_mosquitto)

    def start_sipp(self) -> None:
        assert self.pstn is not None
        for name, scen, port, mport, extra in (
                ("callee", "callee", CALLEE_PORT, 16000, ["-aa"]),
                ("phones", "agent", PHONES_PORT, 17000, ["-rtp_echo"])):
            wd = self.dir / name
            wd.mkdir()
            write_callee_audio(wd)
            self.procs[name] = self.lab.popen(self.pstn, [
                "sipp", "-sf", str(scenario_path(scen)), "-i", self.pstn.ip, "-p", str(port),
                "-mp", str(mport), "-nostdin", "-timeout", "900s", "-timeout_error",
                "-max_recv_loops", "10000", "-max_sched_loops", "10000", *extra],
                cwd=wd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=(wd / "stderr.log").open("wb"))
        time.sleep(1.0)
        for name in ("callee", "phones"):
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"sipp {name} exited: "
                                   f"{(self.dir / name / 'stderr.log').read_text()[-1000:]}")

    def start_supervisor_phone(self) -> tuple[str, Path]:
        """A supervisor's phone on `pstn` whose media a test counts: SIPp's phone.xml answers
        with an SDP naming the port of an RTP counter (tests/cluster/rtp_count.py) on the same
        host. Returns the phone's SIP URI and the counter's state file (JSON)."""
        assert self.pstn is not None
        wd = self.dir / "supervisor-phone"
        wd.mkdir()
        state = wd / "rtp.json"
        self.procs["supervisor-rtp"] = self.lab.popen(
            self.pstn, [sys.executable, str(Path(__file__).with_name("rtp_count.py")),
                        self.pstn.ip, str(state)],
            stdout=subprocess.DEVNULL, stderr=(wd / "rtp.log").open("wb"))
        self.procs["supervisor-phone"] = self.lab.popen(self.pstn, [
            "sipp", "-sf", str(scenario_path("phone")), "-i", self.pstn.ip,
            "-p", str(SUPERVISOR_PHONE_PORT), "-nostdin", "-timeout", "900s", "-timeout_error",
            "-max_recv_loops", "10000", "-max_sched_loops", "10000"],
            cwd=wd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(wd / "stderr.log").open("wb"))
        deadline = time.monotonic() + 10
        while not state.exists():
            if time.monotonic() > deadline or self.procs["supervisor-rtp"].poll() is not None:
                raise RuntimeError(f"the RTP counter did not start: "
                                   f"{(wd / 'rtp.log').read_text()[-1000:]}")
            time.sleep(0.1)
        port = json.loads(state.read_text())["port"]
        return f"sip:supervisor-{port}@{self.pstn.ip}:{SUPERVISOR_PHONE_PORT}", state

    # ------------------------------------------------------------------ the dialers
    def write_config(self, dialer_id: str, host: Host) -> Path:
        assert self.data is not None and self.pstn is not None
        agents = "".join(
            f'[[agents]]\nlogin = "{a}"\nsip_uri = "sip:{a}@{self.pstn.ip}:{PHONES_PORT}"\n'
            f'password = "{p}"\n\n' for a, p in self.agent_creds.items())
        path = self.dir / f"{dialer_id}.toml"
        path.write_text(f"""
[dialer]
id = "{dialer_id}"
drain_deadline_s = 6.0
wrapup_deadline_s = 6.0
data_dir = "{self.dir / dialer_id}"

[cluster]
enabled = true
heartbeat_s = 1.0
lease_ttl_s = 4.0

[database]
url = "{self.db_url}"

[mqtt]
url = "mqtt://dialer:dialer-pw@{self.data.ip}:1883"

[metrics]
host = "{host.ip}"
port = 9464

[web]
# each instance's console (a supervisor account: SUPERVISOR)
host = "{host.ip}"
port = {WEB_PORT}

[scheduling]
claim_ttl_s = 30

[sip]
# 2 nodes: 8 SIP slots, 4 lines; a survivor that takes over a dead instance's agents needs
# lines for them (one node holds 2 bridged calls with the PyPI pjsua2 wheel)
nodes = 2
bind = "{host.ip}"
base_port = 0

[sip.trunks.pstn]
uri = "sip:{self.pstn.ip}:{CALLEE_PORT}"
dial_plan = "cluster_dialplan:sipp_user"

{agents}
[[campaigns]]
name = "{CAMPAIGN}"
caller_id = "+14155550100"
trunk = "pstn"
ring_timeout_s = 6.0
min_ring_s = 5.0
{self.campaign_toml}
""")
        return path

    def start_dialer(self, dialer_id: str) -> subprocess.Popen[bytes]:
        host = self.hosts[dialer_id]
        cfg = self.write_config(dialer_id, host)
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(self.dir), os.environ.get("PYTHONPATH", "")])}
        with (self.dir / f"{dialer_id}.log").open("ab") as out:
            proc = self.lab.popen(host, [DIALER, "run", "--config", str(cfg)], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs[dialer_id] = proc
        return proc

    def log(self, dialer_id: str) -> str:
        p = self.dir / f"{dialer_id}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    async def wait_up(self, dialer_id: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc = self.procs[dialer_id]
            if proc.poll() is not None:
                raise AssertionError(f"{dialer_id} exited rc={proc.returncode}:\n"
                                     f"{self.log(dialer_id)[-4000:]}")
            if f"dialer {dialer_id} running" in self.log(dialer_id):
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"{dialer_id} did not start:\n{self.log(dialer_id)[-4000:]}")

    # ------------------------------------------------------------------ whole lab
    async def start(self, profile: AgentProfile, *,
                    simulated: Collection[str] | None = None) -> None:
        """Start every host and the dialers; `simulated`: the agents whose desktops are
        simulated (default all; the others' desktops are the test's own)."""
        self.data = self.lab.add_host("data")
        self.pstn = self.lab.add_host("pstn")
        for i in range(self.n):
            self.hosts[f"d{i + 1}"] = self.lab.add_host(f"d{i + 1}")
        await asyncio.to_thread(self.start_postgres)
        await asyncio.to_thread(self.start_mosquitto)
        await asyncio.to_thread(self.start_sipp)
        codes: dict[str, int] = {}
        users: dict[str, str] = {}
        for i, (user, n) in enumerate(self.lead_spec.items()):
            for j in range(0, n, 5):
                code = f"{i}{j // 5:02d}"
                codes[code], users[code] = min(5, n - j), user
        numbers = make_numbers(self.started_at, codes)
        self.behaviour = {p: users[p[-3:]] for p, _ in numbers}
        await seed_campaign(self.db_url, CAMPAIGN, numbers, self.started_at)
        await self.add_supervisor()
        by_code = {p[-3:]: u for p, u in self.behaviour.items()}
        (self.dir / "cluster_dialplan.py").write_text(
            f"USERS = {by_code!r}\n\n\ndef sipp_user(e164: str) -> str:\n"
            "    return USERS.get(e164[-3:], 'answer_1_3')\n")
        # all at once on a fresh database: their first starts' campaign and agent upserts race,
        # and must not fail (db/repositories.py retries the losing insert)
        for d in self.hosts:
            self.start_dialer(d)
        await asyncio.gather(*(self.wait_up(d) for d in self.hosts))
        assert self.data is not None
        sims = {a: p for a, p in self.agent_creds.items() if simulated is None or a in simulated}
        self._agents_cm = simulated_agents(sims, f"mqtt://{self.data.ip}:1883",
                                           seed=1, profile=profile, stop_timeout_s=5.0)
        self.agents = await self._agents_cm.__aenter__()

    async def add_supervisor(self) -> None:
        engine = create_engine(self.db_url)
        try:
            await web_accounts.create_user(
                session_factory(engine), login=SUPERVISOR[0], role="supervisor",
                password_hash=hash_password(SUPERVISOR[1]), now=self.started_at)
        finally:
            await engine.dispose()

    async def console(self, dialer_id: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
        """A supervisor signed in to instance `dialer_id`'s console, and its CSRF header."""
        http = httpx.AsyncClient(base_url=f"http://{self.hosts[dialer_id].ip}:{WEB_PORT}",
                                 timeout=20)
        r = await http.post("/api/session",
                            json={"login": SUPERVISOR[0], "password": SUPERVISOR[1]})
        assert r.status_code == 200, r.text
        return http, {"X-CSRF-Token": r.json()["csrf"]}

    def scrape(self, dialer_id: str, name: str, **labels: str) -> float | None:
        """One sample of instance `dialer_id`'s /metrics (over the lab bridge)."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{self.hosts[dialer_id].ip}:9464/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
        for fam in text_string_to_metric_families(body):
            for smp in fam.samples:
                if smp.name == name and all(smp.labels.get(k) == v for k, v in labels.items()):
                    return float(smp.value)
        return None

    async def inject_answers(self, dialer_id: str, connected: int, abandoned: int) -> None:
        """Answered attempts of a make-believe other instance, ended now, on a lead that is
        done: only the cluster's refresh can tell the running instances about them."""
        now = datetime.now(UTC)
        engine = create_engine(self.db_url)
        try:
            async with session_factory(engine)() as ses, ses.begin():
                cid = (await ses.execute(text("SELECT id FROM campaigns WHERE name = :n"),
                                         {"n": CAMPAIGN})).scalar_one()
                lid = (await ses.execute(text(
                    "INSERT INTO leads (campaign_id, phone_e164, name, custom_fields, status, "
                    "priority, hopper_tier, has_open_complaint, attempts, created_at, "
                    "updated_at) VALUES (:c, '+14155550999', 'Elsewhere', '{}', 'done', 0, 2, "
                    "false, 0, :t, :t) RETURNING id"), {"c": cid, "t": now})).scalar_one()
                for i in range(connected + abandoned):
                    res = "abandoned" if i < abandoned else "connected"
                    await ses.execute(text(
                        "INSERT INTO attempts (campaign_id, lead_id, phone_e164, dial_mode, "
                        "dialer_id, stage, result, created_at, answered_at, ended_at, "
                        "abandoned, amd_verdict, opted_out) VALUES (:c, :l, '+14155550999', "
                        "'predictive', :d, 'ended', :r, :t, :t, :t, :a, 'not_run', false)"),
                        {"c": cid, "l": lid, "d": dialer_id, "r": res, "t": now,
                         "a": res == "abandoned"})
        finally:
            await engine.dispose()

    async def query(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.db_url)
        try:
            async with session_factory(engine)() as ses:
                return list((await ses.execute(text(sql), params)).all())
        finally:
            await engine.dispose()

    async def stop_dialer(self, dialer_id: str, within_s: float = 40) -> int | None:
        proc = self.procs[dialer_id]
        if proc.poll() is None:  # SIGTERM to the dialer only: it stops its own nodes
            proc.send_signal(15)
        try:
            return await asyncio.to_thread(proc.wait, within_s)
        except subprocess.TimeoutExpired:
            return None

    async def close_agents(self) -> None:
        if self._agents_cm is not None:
            cm, self._agents_cm = self._agents_cm, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cm.__aexit__(None, None, None), 20)

    async def close(self) -> None:
        await self.close_agents()
        for d in self.hosts:
            if d in self.procs and self.procs[d].poll() is None:
                await self.stop_dialer(d)
        await asyncio.to_thread(self.lab.close)
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)


async def lab_until(cond: Any, seconds: float, what: str) -> Any:
    """Await `cond()` every 0.3 s until it gives something true (returned)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        got = await cond()
        if got:
            return got
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _wait_tcp(host: str, port: int, seconds: float = 15) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port}")
