"""The dialer end to end, no mocks on the path (issue 6).

SIPp is the callee network and the agents' phones; the real DialerApp places calls through
pjsua2 node processes; simulated agents speak the agent protocol through a real broker; a
real Prometheus scrapes /metrics. Run twice: with the defaults (SQLite, embedded broker) and
with the production engines (PostgreSQL, Mosquitto with password file and ACL).

Each lead's number tells the SIPp callee what to do (dialer.demo.data), so the test knows
which final result every attempt must have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import func, select

from common.vocabulary import AttemptResult, AttemptStage
from db.models import Attempt, Lead
from db.pgserver import TempPostgres
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, SimulatedAgent
from dialer.app import DialerApp
from dialer.bus.client import AgentClient
from dialer.bus.errors import ProtocolError
from dialer.bus.messages import DispositionCmd, ErrorEvt, LoginCmd
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    DatabaseSection,
    DialerSection,
    MetricsSection,
    MqttSection,
    Settings,
    SipSection,
    TrunkSection,
)
from dialer.demo.data import demo_behaviour
from sip.sipp import SippProcess
from support.leads import make_numbers, seed_campaign
from support.mosquitto import MosquittoServer, dialer_acl
from support.prometheus import PrometheusServer

pytestmark = [pytest.mark.sipp, pytest.mark.slow]

#: behaviour codes (last three digits) and how many leads of each
CODES = {"000": 3, "100": 3, "200": 2, "300": 2, "400": 2, "500": 2, "600": 1, "700": 1,
         "800": 1, "810": 1, "900": 1, "910": 1}
EXPECTED = {
    "human": {AttemptResult.CONNECTED, AttemptResult.ABANDONED},
    "machine": {AttemptResult.CONNECTED, AttemptResult.ABANDONED},  # AMD is off by default
    "busy": {AttemptResult.BUSY},
    "no_answer": {AttemptResult.NO_ANSWER},
    "rejected": {AttemptResult.REJECTED},
    "invalid": {AttemptResult.INVALID_NUMBER},
    "failed": {AttemptResult.FAILED},
    "unavailable": {AttemptResult.NO_ANSWER},
}
AGENTS = {"agent1": "pw-1", "agent2": "pw-2", "agent3": "pw-3", "tester": "pw-t"}
DIALER_USER = ("dialer", "dialer-pw")
SUPERVISOR = ("boss", "boss-pw")
ACL = dialer_acl(dialer=DIALER_USER[0], supervisors=[SUPERVISOR[0]])


@dataclass
class Stack:
    kind: str
    db_url: str
    mqtt_url: str  # "" = embedded


@pytest.fixture(params=["defaults", "production"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Stack:
    if request.param == "defaults":
        return Stack("defaults", f"sqlite:///{tmp_path / 'e2e.db'}", "")
    pg: TempPostgres = request.getfixturevalue("pg_server")
    mosq = MosquittoServer(tmp_path, ACL, users={**AGENTS, DIALER_USER[0]: DIALER_USER[1],
                                                 SUPERVISOR[0]: SUPERVISOR[1]})
    mosq.start()
    request.addfinalizer(mosq.stop)
    url = pg.create_database(f"e2e_{tmp_path.name[-12:].replace('-', '_').lower()}")
    return Stack("production", url,
                 f"mqtt://{DIALER_USER[0]}:{DIALER_USER[1]}@127.0.0.1:{mosq.port}")


def settings_for(st: Stack, callee_port: int, phone_uri: str) -> Settings:
    return Settings(
        dialer=DialerSection(id=f"e2e-{st.kind}", drain_deadline_s=10.0),
        database=DatabaseSection(url=st.db_url),
        mqtt=MqttSection(url=st.mqtt_url, embedded_port=0,
                         supervisors=dict([SUPERVISOR]) if not st.mqtt_url else {}),
        metrics=MetricsSection(enabled=True, port=0),
        sip=SipSection(nodes=3, base_port=0,
                       trunks={"pstn": TrunkSection(uri=f"sip:127.0.0.1:{callee_port}",
                                                    dial_plan="dialer.demo.run:sipp_user")}),
        agents=[AgentConfig(login=login, sip_uri=phone_uri.replace("LOGIN", login), password=pw)
                for login, pw in AGENTS.items()],
        campaigns=[CampaignConfig(name="e2e", caller_id="+14155550100", trunk="pstn",
                                  ring_timeout_s=6.0, min_ring_s=5.0, max_attempts=3)],
    )


@contextlib.asynccontextmanager
async def running(app: DialerApp) -> AsyncIterator[asyncio.Task[object]]:
    task: asyncio.Task[object] = asyncio.create_task(app.run())
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        yield task
    finally:
        app.stop()
        await asyncio.wait_for(task, 60)


async def db_state(url: str) -> tuple[list[tuple[str, AttemptStage, AttemptResult | None,
                                                 str | None]], int]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            rows = [(phone, stage, result, dispo) for phone, stage, result, dispo in (
                await s.execute(select(Attempt.phone_e164, Attempt.stage, Attempt.result,
                                       Attempt.disposition)))]
            leads = int(await s.scalar(select(func.count()).select_from(Lead)) or 0)
        return rows, leads
    finally:
        await engine.dispose()


async def watch_supervisor(broker_url: str, seen: list[dict[str, object]]) -> None:
    """A supervisor's view: every event of the supervisor stream, as received."""
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    async with aiomqtt.Client(host, int(port), username=SUPERVISOR[0],
                              password=SUPERVISOR[1]) as client:
        await client.subscribe("dialer/supervisor/#", qos=1)
        async for message in client.messages:
            seen.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]


def scrape_attempts(metrics_url: str) -> Counter[str]:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    out: Counter[str] = Counter()
    for m in re.finditer(r'^dialer_attempts_total\{([^}]*)\} ([0-9.e+]+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("campaign") == "e2e":
            out[labels["result"]] += int(float(m.group(2)))
    return +out


async def test_campaign_end_to_end(stack: Stack) -> None:
    now = datetime.now(UTC)
    numbers = make_numbers(now, CODES)
    await seed_campaign(stack.db_url, "e2e", numbers, now)
    with SippProcess.callee(max_lifetime_s=300) as callee, \
            SippProcess.agent(max_lifetime_s=300) as phones:
        settings = settings_for(stack, callee.port, phones.uri("LOGIN"))
        app = DialerApp(settings)
        async with running(app):
            broker_url = app.broker.url if app.broker else stack.mqtt_url.replace(
                f"{DIALER_USER[0]}:{DIALER_USER[1]}@", "")
            supervised: list[dict[str, object]] = []
            watcher = asyncio.create_task(watch_supervisor(broker_url, supervised))
            profile = AgentProfile(wrapup_s=(0.5, 1.5), break_probability=0.0)
            agents = [SimulatedAgent(login, AGENTS[login], broker_url, random.Random(i),
                                     profile) for i, login in enumerate(("agent1", "agent2",
                                                                         "agent3"))]
            tasks = [asyncio.create_task(a.run()) for a in agents]
            # wait until every lead was dialed once, every attempt is closed and every
            # connected call has its disposition
            rows: list = []
            for _ in range(240):
                await asyncio.sleep(0.5)
                rows, _n = await db_state(stack.db_url)
                done = len(rows) == len(numbers) and all(
                    r[1] is AttemptStage.ENDED for r in rows) and all(
                    r[3] is not None for r in rows if r[2] is AttemptResult.CONNECTED)
                if done:
                    break
            assert len(rows) == len(numbers), f"placed {len(rows)} of {len(numbers)}"

            # every attempt ends in exactly one final state, the one its number asked for
            by_phone = {r[0]: r for r in rows}
            assert len(by_phone) == len(numbers)  # exactly one attempt per lead
            for phone, _zone in numbers:
                _, stage, result, _dispo = by_phone[phone]
                kind = demo_behaviour(phone)[0]
                assert stage is AttemptStage.ENDED
                assert result in EXPECTED[kind], (kind, result)
            db_counts = Counter(r[2].value for r in rows)
            assert db_counts[AttemptResult.CONNECTED.value] >= 1
            # dispositions sent by agents landed (the simulated agents' own tally agrees)
            dispositions = Counter(r[3] for r in rows if r[3])
            assert sum(dispositions.values()) == db_counts[AttemptResult.CONNECTED.value]
            sent = sum((a.stats.dispositions for a in agents), Counter())
            assert sent == dispositions

            # /metrics counters equal the database counts, and Prometheus sees them
            assert app.metrics_url is not None
            assert scrape_attempts(app.metrics_url) == db_counts
            target = app.metrics_url.removeprefix("http://").removesuffix("/metrics")
            with PrometheusServer([target]) as prom:
                result: list = []
                for _ in range(60):
                    result = prom.query('sum(dialer_attempts_total{campaign="e2e"})')
                    if result:
                        break
                    await asyncio.sleep(0.5)
                assert result, "Prometheus returned no dialer_attempts_total"
                assert int(float(result[0]["value"][1])) == len(numbers)

            # a malformed or foreign disposition gets an error and changes nothing
            connected = next(p for p, r in by_phone.items()
                             if r[2] is AttemptResult.CONNECTED)
            async with AgentClient("tester", AGENTS["tester"], broker_url) as tester:
                await tester.request(LoginCmd(login="tester"))
                engine = create_engine(stack.db_url)
                try:
                    async with session_factory(engine)() as s:
                        attempt_id = await s.scalar(
                            select(Attempt.id).where(Attempt.phone_e164 == connected))
                finally:
                    await engine.dispose()
                with pytest.raises(ProtocolError):
                    await tester.request(DispositionCmd(
                        login="tester", attempt_id=attempt_id, code="contract", notes="mine"))
                await tester.publish_raw(tester.topics.cmd("tester"), b"{not json")
                err = None
                for _ in range(20):
                    ev = await tester.next_event(5)
                    if isinstance(ev, ErrorEvt):
                        err = ev
                        break
                assert err is not None
            after, _ = await db_state(stack.db_url)
            assert {r[0]: r[3] for r in after} == {r[0]: r[3] for r in rows}

            # the supervisor stream saw every call end and the agents' state changes,
            # with ids only (no phone numbers)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            ended = [e for e in supervised if e.get("type") == "call" and e.get("stage") == "ended"]
            assert len(ended) == len(numbers)
            assert any(e.get("type") == "agent_state" for e in supervised)
            assert not any(p in json.dumps(supervised) for p, _ in numbers)
            for a in agents:
                a.stop()
            await asyncio.wait(tasks, timeout=10)
    final, _ = await db_state(stack.db_url)
    assert all(r[1] is AttemptStage.ENDED and r[2] is not None for r in final)
