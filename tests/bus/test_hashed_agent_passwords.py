"""The embedded broker takes an agent's `password_hash` (issue #12)."""

from __future__ import annotations

import pytest

from dialer.bus.broker import AccessPolicy
from dialer.bus.client import AgentClient
from dialer.bus.errors import ProtocolError
from dialer.bus.messages import AgentCommand, LoginCmd
from dialer.bus.service import open_agent_bus
from dialer.bus.topics import Topics
from dialer.config import AgentConfig, MqttSection
from dialer.passwords import hash_password


def test_policy_accepts_hashes_and_plain_passwords() -> None:
    policy = AccessPolicy(Topics("dialer"), agents={"ann": hash_password("pw-a"), "bob": "pw-b"},
                          dialer=("dialer", "d"))
    assert policy.authenticate("ann", "pw-a") and policy.authenticate("ann", b"pw-a")
    assert not policy.authenticate("ann", "pw-b") and not policy.authenticate("ann", "")
    assert not policy.authenticate("ann", hash_password("pw-a"))  # the hash is no password
    assert policy.authenticate("bob", "pw-b") and not policy.authenticate("bob", "pw-a")
    assert not policy.authenticate("mallory", "pw-a")


async def test_embedded_broker_logs_in_an_agent_with_a_password_hash() -> None:
    agents = [AgentConfig(login="ann", sip_uri="sip:ann@127.0.0.1:5070",
                          password_hash=hash_password("pw-ann"))]
    seen: list[str] = []

    async def handler(login: str, cmd: AgentCommand) -> ProtocolError | None:
        seen.append(f"{login}:{cmd.type}")
        return None

    mqtt = MqttSection(url="", embedded_port=0)
    async with open_agent_bus(mqtt, agents, handler=handler) as ab:
        async with AgentClient("ann", "pw-ann", ab.agent_url) as ann:
            await ann.request(LoginCmd(login="ann"))
        with pytest.raises(Exception):  # noqa: B017 - whichever error the client raises
            async with AgentClient("ann", "wrong", ab.agent_url):
                pass
    assert seen == ["ann:login"]
