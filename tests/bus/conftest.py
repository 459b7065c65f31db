"""Real MQTT brokers for the bus tests: Debian's Mosquitto and the embedded amqtt broker.

Mosquitto runs once per test session on a free loopback port, with a password file made by
`mosquitto_passwd` and the ACL rules of docs/agent-protocol.md. The `broker` fixture is
parametrized over both brokers, so every protocol test runs against each (one contract,
every backend). In CI (CI=true) a missing Mosquitto is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dialer.bus import EmbeddedBroker
from support.mosquitto import MOSQUITTO, MOSQUITTO_PASSWD, MosquittoServer, dialer_acl

AGENTS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
SUPERVISORS = {"supervisor": "sup-pw"}
DIALER = ("dialer", "dialer-pw")

#: the agent rules of docs/agent-protocol.md (what the embedded broker enforces too)
STRICT_ACL = dialer_acl(dialer=DIALER[0], supervisors=SUPERVISORS)


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


def _mosquitto_or_skip(tmp: Path, acl: str) -> MosquittoServer:
    if not (Path(MOSQUITTO).exists() and Path(MOSQUITTO_PASSWD).exists()):
        if os.environ.get("CI"):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed")
    return MosquittoServer(tmp, acl, {**AGENTS, **SUPERVISORS, DIALER[0]: DIALER[1]}).start()


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
