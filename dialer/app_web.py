"""DialerApp's wiring of the web server and of the agents kept in the database (docs/web.md).

* `take_on_agents`: config agents with a `password_hash` get their web account when the
  database has none; active database agents with a campaign and a web account (`dialer
  agents add`) join the config's agents (the config wins for a login in both). Returns the
  MQTT secrets of the database agents, so the embedded broker lets them in as well.
* `start_web`: the web server after the MQTT bus, sharing the app's command runner (one
  command at a time per agent across both transports) and its socket hub; in a cluster it
  advertises the console's base URL in the heartbeat row (`[web] advertise_url`, else the
  bound address), where the other members forward agent controls and listen-ins.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from db import web_accounts as accounts
from db.models import Agent, Campaign
from db.repositories import Sessions
from dialer.web.auth import SignInLimiter
from dialer.web.deps import WebDeps
from dialer.web.server import WebServer

if TYPE_CHECKING:
    from dialer.app import DialerApp

log = logging.getLogger(__name__)


async def take_on_agents(app: DialerApp, sessions: Sessions, campaigns: list[Campaign],
                         agents: dict[str, Agent]) -> dict[str, str]:
    """See the module docstring; `agents` and `app.agent_campaign` are extended in place."""
    now = app.clock.now()
    for a in app.settings.agents:
        if a.password_hash and await accounts.ensure_agent_account(
                sessions, login=a.login, password_hash=a.password_hash, now=now):
            log.info("agent %s: web account created from the config's password_hash", a.login)
    running = {c.name for c in campaigns}
    secrets: dict[str, str] = {}
    for wa in await accounts.web_agents(sessions):
        login = wa.agent.login
        if login in agents:
            continue  # a config agent: its [[agents]] entry says where it works
        if wa.campaign not in running:
            log.warning("agent %s: its campaign %s does not run on this dialer; not taken on",
                        login, wa.campaign)
            continue
        agents[login] = wa.agent
        app.agent_campaign[login] = wa.campaign
        secrets[login] = wa.password_hash
    if secrets:
        log.info("%d agent(s) from the database: %s", len(secrets), ", ".join(sorted(secrets)))
    return secrets


async def start_web(app: DialerApp, stack: contextlib.AsyncExitStack,
                    sessions: Sessions) -> WebServer | None:
    """Start the web server when `[web] enabled`; None when disabled or it cannot listen
    (logged as an ERROR: calls go on and MQTT desktops keep working)."""
    web = app.settings.web
    if not web.enabled:
        return None
    server = WebServer(WebDeps(sessions=sessions, web=web, clock=app.clock, hub=app.hub,
                               limiter=SignInLimiter(app.clock.monotonic),
                               metrics=app.metrics, desk=app))
    try:
        await stack.enter_async_context(server)
    except OSError as e:
        log.error("%s; the dialer runs without its web desktop", e)
        return None
    if app.cluster is not None:
        url = web.advertise_url or server.url
        try:
            await app.cluster.advertise(url)
        except Exception as e:  # the next heartbeat writes it (cluster.console_url is set)
            log.warning("cluster: advertising the console at %s failed: %s", url, e)
        log.info("cluster: instance %s's console advertised at %s", app.cluster.id, url)
    return server
