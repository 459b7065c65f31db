"""deploy/mosquitto against a real Mosquitto: logins from the example password file, and the
ACL (each agent writes only `dialer/agents/<login>/cmd` and reads only
`dialer/agents/<login>/evt`; the dialer has all of `dialer/#`; supervisors read
`dialer/supervisor/#`).

The broker runs the deploy config with only what must change outside a container rewritten
(listener on a free loopback port, file paths, no persistence). Negative checks need no
sleeps: a forbidden message is published before an allowed sentinel on the same connection,
and the broker delivers a publisher's QoS 1 messages in order, so once the sentinel arrives
the forbidden message would have arrived too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from ops_promql import DEPLOY

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
CONF = DEPLOY / "mosquitto" / "mosquitto.conf"
PASSWORD = "change-me"  # the example password file's password (docs/operations.md)

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists() and not os.environ.get("CI"),
    reason="Debian mosquitto not installed",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local_config(port: int) -> str:
    out = []
    for line in CONF.read_text(encoding="utf-8").splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            line = f"listener {port} 127.0.0.1"
        elif key == "password_file":
            line = f"password_file {DEPLOY / 'mosquitto' / 'passwd'}"
        elif key == "acl_file":
            line = f"acl_file {DEPLOY / 'mosquitto' / 'acl'}"
        elif key == "persistence":
            line = "persistence false"
        elif key in ("persistence_location", "log_dest"):
            continue
        out.append(line)
    if os.geteuid() == 0:
        # as root, mosquitto would switch to user "mosquitto", who cannot read pytest's tmp
        out.append("user root")
    out.append("log_dest stderr")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    work = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(_local_config(port), encoding="utf-8")
    log = work / "mosquitto.log"
    with log.open("w") as out:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited {proc.returncode}:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not listen in 15s:\n{log.read_text()}")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(port: int, user: str | None, password: str | None = PASSWORD) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username=user,
                          password=password if user else None, identifier=f"t-{user}-{port}",
                          timeout=5)


async def _collect_until(client: aiomqtt.Client, sentinel_topic: str) -> list[str]:
    """Topics received up to and including the first message on `sentinel_topic`."""
    seen: list[str] = []
    async with asyncio.timeout(10):
        async for msg in client.messages:
            seen.append(str(msg.topic))
            if msg.topic.matches(sentinel_topic):
                return seen
    return seen


@pytest.mark.parametrize(("user", "password"), [(None, None), ("alice", "wrong"),
                                                 ("mallory", PASSWORD)])
async def test_unknown_or_anonymous_clients_are_refused(
    broker: int, user: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with _client(broker, user, password):
            pass


async def test_agent_reads_only_its_own_events(broker: int) -> None:
    async with _client(broker, "dialer") as dialer, _client(broker, "alice") as alice:
        await alice.subscribe("dialer/agents/alice/evt", qos=1)
        await alice.subscribe("dialer/agents/bob/evt", qos=1)  # the ACL must deny delivery
        await alice.subscribe("dialer/supervisor/events", qos=1)
        await dialer.publish("dialer/agents/bob/evt", b'{"type":"screen_pop"}', qos=1)
        await dialer.publish("dialer/supervisor/events", b'{"type":"agent_state"}', qos=1)
        await dialer.publish("dialer/agents/alice/evt", b'{"type":"screen_pop"}', qos=1)
        seen = await _collect_until(alice, "dialer/agents/alice/evt")
    assert seen == ["dialer/agents/alice/evt"]


async def test_agent_writes_only_its_own_commands(broker: int) -> None:
    async with _client(broker, "dialer") as dialer, _client(broker, "alice") as alice:
        await dialer.subscribe("dialer/agents/+/cmd", qos=1)
        await dialer.subscribe("dialer/agents/+/evt", qos=1)
        await dialer.subscribe("dialer/supervisor/#", qos=1)
        await alice.publish("dialer/agents/bob/cmd", b'{"type":"disposition"}', qos=1)
        await alice.publish("dialer/supervisor/events", b'{"type":"fake"}', qos=1)
        await alice.publish("dialer/agents/alice/evt", b'{"type":"screen_pop"}', qos=1)
        await alice.publish("dialer/agents/alice/cmd", b'{"type":"ready"}', qos=1)
        seen = await _collect_until(dialer, "dialer/agents/alice/cmd")
    assert seen == ["dialer/agents/alice/cmd"]


async def test_supervisor_reads_event_stream_but_cannot_write(broker: int) -> None:
    async with (
        _client(broker, "dialer") as dialer,
        _client(broker, "supervisor") as sup,
        _client(broker, "bob") as bob,
    ):
        await sup.subscribe("dialer/supervisor/events", qos=1)
        await sup.subscribe("dialer/agents/bob/evt", qos=1)  # not a supervisor's topic
        await dialer.subscribe("dialer/agents/+/cmd", qos=1)
        await dialer.subscribe("dialer/supervisor/#", qos=1)
        await sup.publish("dialer/agents/bob/cmd", b'{"type":"logout"}', qos=1)
        await sup.publish("dialer/supervisor/events", b'{"type":"fake"}', qos=1)
        await dialer.publish("dialer/agents/bob/evt", b"{}", qos=1)
        await dialer.publish("dialer/supervisor/events", b'{"type":"call"}', qos=1)
        seen_sup = await _collect_until(sup, "dialer/supervisor/events")
        await bob.publish("dialer/agents/bob/cmd", b'{"type":"ready"}', qos=1)
        seen_dialer = await _collect_until(dialer, "dialer/agents/bob/cmd")
    assert seen_sup == ["dialer/supervisor/events"]
    # the dialer saw its own supervisor event, then bob's command: nothing the supervisor sent
    assert seen_dialer == ["dialer/supervisor/events", "dialer/agents/bob/cmd"]


def _message_size_limit() -> int:
    limits = [int(ln.split()[1]) for ln in CONF.read_text(encoding="utf-8").splitlines()
              if ln.split(" ", 1)[0] == "message_size_limit"]
    assert len(limits) == 1, "deploy/mosquitto/mosquitto.conf must set message_size_limit once"
    return limits[0]


async def test_payloads_over_the_message_size_limit_are_dropped(broker: int) -> None:
    """Mosquitto's default accepts payloads up to 256 MB; the deploy config caps them
    (docs/operations.md). Over the cap: dropped (the QoS 1 flow still completes); at the cap:
    delivered."""
    limit = _message_size_limit()
    assert 64 * 1024 <= limit < 1024 * 1024
    async with _client(broker, "dialer") as dialer, _client(broker, "alice") as alice:
        await alice.subscribe("dialer/agents/alice/evt", qos=1)
        await dialer.publish("dialer/agents/alice/evt", b"x" * (limit + 1), qos=1)
        await dialer.publish("dialer/agents/alice/evt", b"y" * limit, qos=1)
        await dialer.publish("dialer/agents/alice/evt", b"x" * (1024 * 1024), qos=1)
        await dialer.publish("dialer/agents/alice/evt", b"end", qos=1)
        sizes: list[int] = []
        async with asyncio.timeout(10):
            async for msg in alice.messages:
                payload = bytes(msg.payload)  # type: ignore[arg-type]
                sizes.append(len(payload))
                if payload == b"end":
                    break
    assert sizes == [limit, 3]
