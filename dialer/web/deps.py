"""What the web server's routes share: the database, the settings, the clock, the agent
socket hub, the sign-in limiter and the running dialer (`WebDeps`, one per app)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from fastapi import Request

from common.clock import Clock
from db import web_accounts as accounts
from db.models import Campaign
from db.repositories import Sessions, campaign_by_name
from db.web_accounts import Account
from dialer.config import WebSection
from dialer.metrics import DialerMetrics

if TYPE_CHECKING:
    from dialer.call_controls import ListenIn
    from dialer.cluster import Cluster
    from dialer.control import Control
    from dialer.web.agent_ws import AgentSocketHub
    from dialer.web.auth import SignInLimiter

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


class AgentDesk(Protocol):
    """What the web server asks the running dialer (DialerApp) about its agents."""

    def campaign_of(self, login: str) -> Campaign | None:
        """The running campaign agent `login` takes calls for (None: not on this dialer)."""

    def configured_campaign(self, login: str) -> Campaign | None:
        """The running campaign the config (or, at start, the agents row) names for agent
        `login`, whether this member serves it or another one does (None: unknown here)."""

    def holds_call(self, login: str, attempt_id: int) -> bool:
        """Whether agent `login` is on (or wrapping up) the live call of `attempt_id`."""

    def transfer_targets(self, login: str) -> list[str]:
        """The ready agents of `login`'s campaign it may transfer to, longest-idle first."""

    def transfer_groups(self, login: str) -> list[dict[str, object]]:
        """The named groups of `login`'s campaign's other agents: {name, ready}."""


@dataclass(eq=False)
class WebDeps:
    sessions: Sessions
    web: WebSection
    clock: Clock
    hub: AgentSocketHub
    limiter: SignInLimiter
    metrics: DialerMetrics | None = None
    #: None: a web server without a dialer (tests): campaigns come from the database
    desk: AgentDesk | None = None
    static_dir: Path = STATIC_DIR
    #: (campaign id, local date) -> (when read, the day's report rows): /api/agent/day
    day_cache: dict[tuple[int, str], tuple[float, Any]] = field(default_factory=dict)
    #: the supervisor console's controls (dialer/control); None: taken from the desk's
    #: `control` (DialerApp's), else no console controls (a server without a dialer)
    console: Control | None = None
    #: the console's listen-in (dialer.call_controls.ListenIn); None: the desk's `listen_in`
    listen_in: ListenIn | None = None
    #: listen-in session id -> the login of the supervisor who started it (the wallboard's
    #: "who listens"); pruned when the session is gone
    listeners: dict[str, str] = field(default_factory=dict)
    #: this instance's cluster membership (docs/cluster.md); None: the desk's `cluster`, else
    #: alone. Agent controls and listen-ins for what another member serves go to its console
    cluster: Cluster | None = None
    _refresh: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _peers: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.console is None and self.desk is not None:
            self.console = getattr(self.desk, "control", None)
        if self.listen_in is None and self.desk is not None:
            self.listen_in = getattr(self.desk, "listen_in", None)
        if self.cluster is None and self.desk is not None:
            self.cluster = getattr(self.desk, "cluster", None)

    def peer_client(self) -> httpx.AsyncClient:
        """The HTTP client to the other members' consoles (dialer/web/console_forward.py):
        one per web server, kept alive between requests; never a proxy from the environment
        (the supervisor's session cookie goes straight to the member)."""
        if self._peers is None:
            self._peers = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._peers

    async def aclose(self) -> None:
        if self._peers is not None:
            peers, self._peers = self._peers, None
            await peers.aclose()

    def count_sign_in_failure(self) -> None:
        if self.metrics is not None:
            self.metrics.web_sign_in_failed()

    def sessions_changed(self) -> None:
        """Refresh the sessions gauge soon (a sign-in or sign-out changed it)."""
        if self.metrics is not None and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self.refresh_gauges(), name="web-gauges")

    async def refresh_gauges(self) -> None:
        if self.metrics is None:
            return
        try:
            self.metrics.set_web_sessions(
                await accounts.sessions_by_role(self.sessions, self.clock.now()))
        except Exception:
            log.exception("web: refreshing the sessions gauge failed")

    async def agent_campaign(self, user: Account) -> Campaign | None:
        """The campaign an agent account takes calls for: the running dialer's word, else
        the agents row's campaign, else the config's (no dialer here, or, in a cluster,
        another member serves the agent: the desktop may be signed in on any member)."""
        if self.desk is not None:
            mine = self.desk.campaign_of(user.login)
            if mine is not None:
                return mine
        if user.campaign:  # a move writes it, so it outranks the config
            return await campaign_by_name(self.sessions, user.campaign)
        return self.desk.configured_campaign(user.login) if self.desk is not None else None


def deps(request: Request) -> WebDeps:
    """FastAPI dependency: the app's WebDeps."""
    d: WebDeps = request.app.state.deps
    return d
