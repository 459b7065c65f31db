"""The browser desktop on any cluster member's web server (docs/cluster.md, "The browser
desktop on any instance").

An agent is served by one member (its agent lease); the desktop's WebSocket may be open on
another one's web server. There the socket's commands pass the WebSocket's own checks, then
the gate (dialer/cluster.py): when another member serves the agent, the hub relays the
command over MQTT on the agent's cmd topic (`AgentBus.relay`), and the serving member
answers on the agent's evt topic as for an MQTT desktop. Every member's bus subscribes to
all the agents' evt topics and hands each message to `AgentRelay.event`, which gives it to
the agent's sockets here - unless this member serves the agent itself: its own hub has
already delivered that message (the broker's copy is an echo and would double it).

    relay = AgentRelay(app.hub, cluster)
    bus = AgentBus(url, prefix, creds, runner=app.runner, events=relay.event)
    app.hub.relay = bus.relay
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from dialer.bus.messages import parse_dialer_message

if TYPE_CHECKING:
    from dialer.cluster import Cluster
    from dialer.web.agent_ws import AgentSocketHub

log = logging.getLogger(__name__)


class AgentRelay:
    """Agents' events from the broker to this member's WebSockets (see the docstring)."""

    def __init__(self, hub: AgentSocketHub, cluster: Cluster) -> None:
        self.hub = hub
        self.cluster = cluster
        #: events given to sockets here (tests, logs)
        self.delivered = 0

    def event(self, login: str, payload: bytes) -> None:
        """One message from `<prefix>/agents/<login>/evt` (the bus's receive loop)."""
        if self.hub.count(login) == 0 or login in self.cluster.mine:
            return  # nobody here to tell, or our own message coming back
        try:
            message = parse_dialer_message(payload)
        except ValidationError:
            # not a dialer message (another client wrote there): never to a desktop
            log.warning("web: an unreadable message on agent %s's event topic; dropped", login)
            return
        self.hub.deliver(login, message)
        self.delivered += 1
