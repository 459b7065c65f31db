"""Real MQTT brokers for the bus tests: Debian's Mosquitto and the embedded amqtt broker.

Mosquitto runs once per test session on a free loopback port, with a password file made by
`mosquitto_passwd` and the ACL rules of docs/agent-protocol.md. The `broker` fixture is
parametrized over both brokers, so every protocol test runs against each (one contract,
every backend). In CI (CI=true) a missing Mosquitto is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dialer.bus import EmbeddedBroker

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

AGENTS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
SUPERVISORS = {"supervisor": "sup-pw"}
DIALER = ("dialer", "dialer-pw")

#: the agent rules of docs/agent-protocol.md (what the embedded broker enforces too)
STRICT_ACL = """\
user dialer
topic readwrite dialer/#

user supervisor
topic read dialer/supervisor/#

pattern write dialer/agents/%u/cmd
pattern read dialer/agents/%u/evt
"""


@dataclass
class BrokerUnderTest:
    kind: str
    host: str
    port: int
    agents: dict[str, str] = field(default_factory=lambda: dict(AGENTS))
    supervisors: dict[str, str] = field(default_factory=lambda: dict(SUPERVISORS))
    dialer: tuple[str, str] = DIALER

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def dialer_url(self) -> str:
        return f"mqtt://{self.dialer[0]}:{self.dialer[1]}@{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoServer:
    """A Mosquitto process on a loopback port with its own config, passwords and ACL."""

    def __init__(self, directory: Path, acl: str,
                 users: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.acl = acl
        self.users = users if users is not None else {**AGENTS, **SUPERVISORS,
                                                      DIALER[0]: DIALER[1]}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MosquittoServer:
        passwd = self.dir / "passwd"
        for i, (user, password) in enumerate(self.users.items()):
            args = [MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []), str(passwd), user,
                    password]
            subprocess.run(args, check=True, capture_output=True, timeout=30)
        (self.dir / "acl").write_text(self.acl)
        for attempt in range(5):  # another process may grab the port between probe and bind
            self.port = free_port()
            conf = self.dir / "mosquitto.conf"
            conf.write_text(
                "per_listener_settings false\n"
                "allow_anonymous false\n"
                f"password_file {passwd}\n"
                f"acl_file {self.dir / 'acl'}\n"
                f"listener {self.port} 127.0.0.1\n"
                "persistence false\n"
                # without it Mosquitto Nagles small packets: +40 ms per hop
                "set_tcp_nodelay true\n"
                "log_dest stderr\n"
                "log_type error\nlog_type warning\n"
                # running as root, stay root so the 0700 pytest temp dir stays readable
                + ("user root\n" if os.geteuid() == 0 else "")
            )
            log_path = self.dir / "mosquitto.log"
            with log_path.open("ab") as log_file:
                self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                             stdout=subprocess.DEVNULL, stderr=log_file)
            if self._wait_listening():
                return self
            self.stop()
            if attempt == 4:
                raise RuntimeError(f"mosquitto did not start listening: {log_path.read_text()}")
        return self

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def _mosquitto_or_skip(tmp: Path, acl: str) -> MosquittoServer:
    if not (Path(MOSQUITTO).exists() and Path(MOSQUITTO_PASSWD).exists()):
        if os.environ.get("CI"):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed")
    return MosquittoServer(tmp, acl).start()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = _mosquitto_or_skip(tmp_path_factory.mktemp("mosquitto"), STRICT_ACL)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerUnderTest]:
    """A running broker with users alice, bob, carol (agents), supervisor and dialer."""
    if request.param == "mosquitto":
        server: MosquittoServer = request.getfixturevalue("mosquitto")
        yield BrokerUnderTest("mosquitto", "127.0.0.1", server.port)
        return
    async with EmbeddedBroker(AGENTS, port=0, dialer_user=DIALER[0],
                              dialer_password=DIALER[1], supervisors=SUPERVISORS) as emb:
        yield BrokerUnderTest("embedded", "127.0.0.1", emb.port)
