"""Start the agent bus the way the config says: an external broker, or the embedded one.

    async with open_agent_bus(settings.mqtt, settings.agents, handler=runtime.on_command) as ab:
        ab.bus.send(...)           # AgentBus, connected and subscribed
        ab.agent_url               # where agents (and simulated agents) connect
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from dialer.bus.broker import EmbeddedBroker
from dialer.bus.bus import AgentBus, CommandHandler
from dialer.config import AgentConfig, MqttSection


@dataclass(frozen=True, slots=True)
class AgentBusRuntime:
    bus: AgentBus
    #: broker URL for agents, without credentials (each agent logs in as itself)
    agent_url: str
    #: the in-process broker, when the config has no mqtt.url
    embedded: EmbeddedBroker | None


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()


@asynccontextmanager
async def open_agent_bus(
    mqtt: MqttSection,
    agents: Sequence[AgentConfig],
    *,
    handler: CommandHandler | None = None,
    supervisors: Mapping[str, str] | None = None,
) -> AsyncIterator[AgentBusRuntime]:
    """Yield a connected AgentBus; with an empty `mqtt.url`, run the embedded broker first.

    With the embedded broker every agent needs `password_hash` (or the deprecated `password`)
    set in its [[agents]] entry
    (ValueError names the agent otherwise); the dialer's own password is generated.
    """
    if mqtt.url:
        bus = AgentBus(mqtt.url, prefix=mqtt.topic_prefix)
        if handler is not None:
            bus.set_handler(handler)
        async with bus:
            yield AgentBusRuntime(bus, _without_credentials(mqtt.url), None)
        return
    passwords = {a.login: a.mqtt_secret for a in agents}
    async with EmbeddedBroker(passwords, host=mqtt.embedded_host, port=mqtt.embedded_port,
                              prefix=mqtt.topic_prefix, supervisors=supervisors) as broker:
        bus = AgentBus(broker.dialer_url, prefix=mqtt.topic_prefix)
        if handler is not None:
            bus.set_handler(handler)
        async with bus:
            yield AgentBusRuntime(bus, broker.url, broker)
