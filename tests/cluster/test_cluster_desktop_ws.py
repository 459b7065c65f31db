"""The browser desktop on any instance's web server (docs/cluster.md, "The browser desktop on
any instance"), without processes: two whole DialerApps `a` and `b` in one cluster (in-memory
SIP pools, real web servers on loopback ports) over one PostgreSQL and ONE real Mosquitto.

* ann is served by b; her desktop's WebSocket is open on a: `get_state`, `ready`, the call b
  bridges to her (`screen_pop`), `hangup` and `disposition` all go through a's socket, and
  the acks and events come from b;
* cat's first command arrives on a's socket, so a serves her: every reply and event
  reaches the socket exactly once (the broker's copy of a's own events is dropped);
* the broker down: a command of ann's on a gets `error internal` at once, nothing relayed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AttemptStage, DialMode
from db.pgserver import TempPostgres
from dialer.app import DialerApp
from dialer.bus.messages import LoginCmd
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    ClusterSection,
    MqttSection,
    Settings,
    WebSection,
)
from dialer.passwords import hash_password
from dialer.ports import SipEventHandler
from dialer.web.auth import COOKIE
from sip.memory import MemoryPool
from support.leads import loopback_settings, make_numbers, seed_campaign
from support.mosquitto import MOSQUITTO, MosquittoServer, dialer_acl

from .test_cluster_forwarding import agent_cmd, until

PW = {"ann": "ann-agent-pw", "cat": "cat-agent-pw"}
DIALER = ("dialer", "dialer-mqtt-pw")


def _settings(db_url: str, mqtt_url: str, data: Path, dialer_id: str) -> Settings:
    main = CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                          dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5,
                          max_wrapup_s=30.0)
    agents = [AgentConfig(login=login, sip_uri=f"sip:{login}@memory.invalid",
                          password_hash=hash_password(pw), campaign="mem")
              for login, pw in PW.items()]
    s = loopback_settings(dialer_id, db_url, data / dialer_id, 5060, agents, main)
    return s.model_copy(update={
        "dialer": s.dialer.model_copy(update={"wrapup_deadline_s": 2.0}),
        "mqtt": MqttSection(url=mqtt_url),  # one broker for both, as a cluster has
        "web": WebSection(port=0),
        "cluster": ClusterSection(enabled=True, heartbeat_s=0.5, lease_ttl_s=2.0),
    })


def _pool(on_event: SipEventHandler) -> MemoryPool:
    return MemoryPool(on_event=on_event, trunks={"pstn"}, capacity=4)


async def _start(db_url: str, mqtt_url: str, data: Path,
                 dialer_id: str) -> tuple[DialerApp, asyncio.Task[Any]]:
    # the callee answers after 0.2 s and never hangs up
    app = DialerApp(_settings(db_url, mqtt_url, data, dialer_id), clock=SYSTEM_CLOCK,
                    target_for=lambda _e164: "sip:answer_0.2_0@memory.invalid",
                    pool_factory=_pool)
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.ready.wait(), 30)
    return app, task


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """The cluster's one broker, with the dialer's user and the ACL of the agent protocol."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed")
    broker_dir = tmp_path / "mosquitto"
    broker_dir.mkdir()
    server = MosquittoServer(broker_dir, dialer_acl(dialer=DIALER[0]),
                             {DIALER[0]: DIALER[1]}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def two(pg_server: TempPostgres, tmp_path: Path,
              broker: MosquittoServer) -> AsyncIterator[Any]:
    mqtt_url = f"mqtt://{DIALER[0]}:{DIALER[1]}@127.0.0.1:{broker.port}"
    db_url = pg_server.create_database(f"wsr_{uuid.uuid4().hex[:12]}",
                                       template="template_dialer")
    now = SYSTEM_CLOCK.now()
    await seed_campaign(db_url, "mem", make_numbers(now, {f"{i:03d}": 5 for i in range(2)}),
                        now)
    a, ta = await _start(db_url, mqtt_url, tmp_path, "a")
    b, tb = await _start(db_url, mqtt_url, tmp_path, "b")
    try:
        yield a, b, broker
    finally:
        for app, task in ((b, tb), (a, ta)):
            app.stop()
            await asyncio.wait_for(task, 30)


async def _socket(base: str, login: str) -> ClientConnection:
    """A browser's desktop socket: signed in on `base`, with its cookie, csrf and Origin."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        r = await http.post("/api/session", json={"login": login, "password": PW[login]})
        assert r.status_code == 200, r.text
        token, csrf = http.cookies[COOKIE], r.json()["csrf"]
    return await connect(base.replace("http", "ws") + f"/ws/agent?csrf={csrf}",
                         additional_headers={"Cookie": f"{COOKIE}={token}"}, origin=base,
                         open_timeout=5)


def _cmd(type_: str, login: str, id_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, "v": 1, "id": id_, "ts": SYSTEM_CLOCK.now().isoformat(),
                       "login": login, **fields})


async def _until(ws: ClientConnection, pred: Any, wait_s: float = 10.0) -> dict[str, Any]:
    """The first frame that `pred` accepts (the frames before it are skipped)."""
    async def read() -> dict[str, Any]:
        while True:
            frame = dict(json.loads(await ws.recv()))
            if pred(frame):
                return frame
    return await asyncio.wait_for(read(), wait_s)


async def _frames(ws: ClientConnection, quiet_s: float) -> list[dict[str, Any]]:
    """Every frame until none came for `quiet_s`."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            got.append(dict(json.loads(await asyncio.wait_for(ws.recv(), quiet_s))))
        except TimeoutError:
            return got


def _ack(id_: str) -> Any:
    return lambda f: f["type"] in ("ack", "error") and f.get("ref_id") == id_


async def test_the_browser_desktop_works_on_an_instance_that_does_not_serve_the_agent(
    two: tuple[DialerApp, DialerApp, MosquittoServer],
) -> None:
    a, b, broker = two
    assert a.web is not None and a.cluster is not None and b.cluster is not None

    # ---- ann works on b (her first command took b's lease); her browser is on a
    assert await agent_cmd(b, LoginCmd(login="ann")) is None
    assert "ann" in b.cluster.mine
    ann = await _socket(a.web.url, "ann")
    try:
        await ann.send(_cmd("get_state", "ann", "g1"))
        frames = await _frames(ann, 1.5)
        assert [(f["type"], f.get("state"), f.get("ref_id")) for f in frames] == [
            ("state", "paused", None), ("ack", None, "g1")], frames
        await ann.send(_cmd("ready", "ann", "r1"))
        assert (await _until(ann, _ack("r1")))["type"] == "ack"
        pop = await _until(ann, lambda f: f["type"] == "screen_pop", 30)
        attempt = pop["attempt_id"]
        rt = b.runtimes["mem"]
        assert any(c.attempt_id == attempt and c.agent_login == "ann" for c in rt.calls.values())
        assert "ann" not in a.cluster.mine and "ann" not in a.runtimes["mem"].agents
        # the call's commands through a's socket, handled by b (once the call is bridged)
        await until(lambda: any(rt.engine.call_stage(c.call_id) is AttemptStage.BRIDGED
                                for c in rt.calls.values() if c.attempt_id == attempt),
                    10, "ann's call bridged on b")
        await ann.send(_cmd("hangup", "ann", "h1", attempt_id=attempt))
        h1 = await _until(ann, _ack("h1"))
        assert h1["type"] == "ack", (h1["code"], h1["message"])
        await ann.send(_cmd("disposition", "ann", "d1", attempt_id=attempt, code="no_need"))
        assert (await _until(ann, _ack("d1")))["type"] == "ack"
        await until(lambda: rt.engine.board.get("ann").state.value != "wrapup", 10,
                    "ann out of wrap-up on b")

        # ---- cat's first command arrives on a's socket: a serves her, and each message a
        # sends her reaches the socket once (its copy from the broker is dropped)
        assert a.bus is not None
        sent: list[str] = []
        bus_send = a.bus.send

        async def spy(login: str, message: Any) -> None:
            if login == "cat":
                sent.append(message.id)
            await bus_send(login, message)

        a.bus.send = spy  # type: ignore[method-assign]
        cat = await _socket(a.web.url, "cat")
        try:
            await cat.send(_cmd("login", "cat", "l1"))
            await cat.send(_cmd("get_state", "cat", "g2"))
            await cat.send(_cmd("pause", "cat", "p1", reason="break"))
            frames = await _frames(cat, 1.5)
            assert "cat" in a.cluster.mine and "cat" not in b.cluster.mine
            assert [f["ref_id"] for f in frames if f["type"] == "ack"] == ["l1", "g2", "p1"]
            events = [f["id"] for f in frames if f["type"] != "ack"]
            assert sent and events == sent, [(f["type"], f.get("ref_id")) for f in frames]
        finally:
            await cat.close()

        # ---- the broker is down: ann's command on a cannot reach b; she hears it at once
        broker.stop()
        await until(lambda: a.bus is not None and not a.bus.connected, 10, "a's bus down")
        await ann.send(_cmd("get_state", "ann", "g3"))
        err = await _until(ann, _ack("g3"), 5)
        assert (err["type"], err["code"]) == ("error", "internal"), err
        assert "broker" in err["message"]
    finally:
        await ann.close()
