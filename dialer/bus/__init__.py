"""The agent protocol over MQTT (docs/agent-protocol.md).

* `AgentBus` - the dialer's connection: receives agents' commands, sends them events.
* `EmbeddedBroker` - an in-process MQTT broker with per-agent passwords and topic ACL,
  used when the config has no `mqtt.url`.
* `AgentClient` - the agent's side (simulated agents, tests).
* `messages` - the strict message models; `topics` - the topic layout.
"""

from dialer.bus.broker import AccessPolicy, EmbeddedBroker
from dialer.bus.bus import AgentBus, BrokerAddress, BusStats, CommandHandler
from dialer.bus.client import AgentClient
from dialer.bus.errors import BusError, ErrorCode, ProtocolError, protocol_error_for
from dialer.bus.messages import (
    AckEvt,
    AgentCommand,
    CallbackReminderEvt,
    CallEndedEvt,
    DialerMessage,
    DispositionCmd,
    DispositionOption,
    ErrorEvt,
    HistoryEntry,
    LeadCard,
    LoginCmd,
    LogoutCmd,
    PauseCmd,
    PreviewAcceptCmd,
    PreviewEvt,
    PreviewSkipCmd,
    ReadyCmd,
    ScreenPopEvt,
    StateEvt,
    SupervisorAgentEvent,
    SupervisorCallEvent,
    SupervisorEvent,
    SupervisorListenEvent,
)
from dialer.bus.runner import AgentCommandRunner
from dialer.bus.service import AgentBusRuntime, open_agent_bus
from dialer.bus.topics import Topics

__all__ = [
    "AccessPolicy",
    "AckEvt",
    "AgentBus",
    "AgentBusRuntime",
    "AgentClient",
    "AgentCommand",
    "AgentCommandRunner",
    "BrokerAddress",
    "BusError",
    "BusStats",
    "CallEndedEvt",
    "CallbackReminderEvt",
    "CommandHandler",
    "DialerMessage",
    "DispositionCmd",
    "DispositionOption",
    "EmbeddedBroker",
    "ErrorCode",
    "ErrorEvt",
    "HistoryEntry",
    "LeadCard",
    "LoginCmd",
    "LogoutCmd",
    "PauseCmd",
    "PreviewAcceptCmd",
    "PreviewEvt",
    "PreviewSkipCmd",
    "ProtocolError",
    "ReadyCmd",
    "ScreenPopEvt",
    "StateEvt",
    "SupervisorAgentEvent",
    "SupervisorCallEvent",
    "SupervisorEvent",
    "SupervisorListenEvent",
    "Topics",
    "open_agent_bus",
    "protocol_error_for",
]
