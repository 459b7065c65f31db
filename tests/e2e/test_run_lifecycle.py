"""`dialer run` as a process: a crash leaves attempts open, the next start closes them as
lost; SIGTERM drains live calls, closes every attempt honestly and exits 0 (issue 6).

Real everything: the `dialer` console script, pjsua2 nodes, SIPp, the embedded MQTT broker,
SQLite; simulated agents connect from the test process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from common.vocabulary import AttemptResult, AttemptStage
from db.models import Attempt
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, simulated_agents
from sip.sipp import SippProcess, free_udp_port
from support.leads import make_numbers, seed_campaign

pytestmark = [pytest.mark.sipp, pytest.mark.slow]

DIALER = str(Path(sys.executable).with_name("dialer"))
AGENTS = {"agent1": "pw-1", "agent2": "pw-2"}


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, db: Path, callee_port: int, phones: SippProcess,
                 mqtt_port: int) -> Path:
    agents = "".join(
        f'[[agents]]\nlogin = "{login}"\nsip_uri = "{phones.uri(login)}"\npassword = "{pw}"\n\n'
        for login, pw in AGENTS.items())
    path.write_text(f"""
[dialer]
id = "lifecycle"
drain_deadline_s = 8.0
data_dir = "{path.parent / 'var'}"

[database]
url = "sqlite:///{db}"

[mqtt]
embedded_port = {mqtt_port}

[metrics]
port = 0

[sip]
nodes = 2
base_port = 0

[sip.trunks.pstn]
uri = "sip:127.0.0.1:{callee_port}"
dial_plan = "dialer.demo.run:sipp_user"  # numbers tell SIPp what to do (docs/demo.md)

{agents}
[[campaigns]]
name = "life"
caller_id = "+14155550100"
trunk = "pstn"
ring_timeout_s = 6.0
min_ring_s = 5.0
""")
    return path


async def attempts(db: Path) -> list[tuple[int, AttemptStage, AttemptResult | None]]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        async with session_factory(engine)() as s:
            return [tuple(r) for r in (await s.execute(  # type: ignore[misc]
                select(Attempt.id, Attempt.stage, Attempt.result).order_by(Attempt.id)))]
    finally:
        await engine.dispose()


async def wait_for(cond: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    for _ in range(int(seconds * 4)):
        if await cond():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def start_dialer(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([DIALER, "run", "--config", str(config)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)


async def test_crash_then_restart_then_sigterm(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    db = tmp_path / "life.db"
    # people who answer fast and talk long: calls are live when the dialer is killed
    numbers = make_numbers(now, {"009": 4, "109": 4, "209": 4, "309": 4})
    await seed_campaign(f"sqlite:///{db}", "life", numbers, now)
    log = tmp_path / "dialer.log"
    mqtt_port = free_tcp_port()
    broker = f"mqtt://127.0.0.1:{mqtt_port}"
    profile = AgentProfile(wrapup_s=(0.5, 1.0), break_probability=0.0)
    with SippProcess.callee(max_lifetime_s=300, port=free_udp_port()) as callee, \
            SippProcess.agent(max_lifetime_s=300) as phones:
        config = write_config(tmp_path / "dialer.toml", db, callee.port, phones, mqtt_port)
        proc = start_dialer(config, log)
        try:
            async with simulated_agents(AGENTS, broker, seed=1, profile=profile):

                async def bridged() -> bool:
                    rows = await attempts(db)
                    return sum(1 for r in rows if r[1] is AttemptStage.BRIDGED) >= 2

                await wait_for(bridged, 60, "two bridged calls")
                proc.kill()  # a crash: no drain, no final states
                proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        open_before = [r for r in await attempts(db) if r[1] is not AttemptStage.ENDED]
        assert open_before, "the crash should leave live calls' attempts open"

        proc = start_dialer(config, log)
        try:
            async with simulated_agents(AGENTS, broker, seed=2, profile=profile):

                async def orphans_closed() -> bool:
                    rows = {r[0]: r for r in await attempts(db)}
                    return all(rows[a][1] is AttemptStage.ENDED for a, _, _ in open_before)

                await wait_for(orphans_closed, 60, "orphaned attempts to be closed")
                rows = {r[0]: r for r in await attempts(db)}
                assert {rows[a][2] for a, _, _ in open_before} == {AttemptResult.LOST}

                async def new_live_call() -> bool:
                    return any(r[0] > max(a for a, _, _ in open_before)
                               and r[1] is AttemptStage.BRIDGED for r in await attempts(db))

                await wait_for(new_live_call, 60, "a live call after the restart")
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert code == 0, log.read_text()[-3000:]
    final = await attempts(db)
    assert all(r[1] is AttemptStage.ENDED and r[2] is not None for r in final), final
    assert "stopped: placed=" in log.read_text()
