"""The web server's records (docs/web.md): accounts, sessions, and what an agent's desktop
reads besides the agent protocol (its callbacks, the context of its own calls).

Accounts (`web_users`) hold a password hash, never a password; sessions (`web_sessions`) hold
the SHA-256 of the cookie's token, never the token. Every function takes the session factory
and an explicit `now`. Errors: SQLAlchemy errors leave as `RepositoryError` (db/repositories.py);
a request that cannot be honoured (unknown login, login taken, unknown campaign) raises
`AccountError` with a message naming what was wrong, for the CLI to print as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.vocabulary import CallbackScope
from db.models import Agent, Attempt, Callback, Campaign, Company, Lead, WebSession, WebUser
from db.repositories import Sessions, translated

__all__ = [
    "ROLES",
    "Account",
    "AccountError",
    "AttemptContext",
    "DueCallback",
    "SessionInfo",
    "WebAgent",
    "add_agent",
    "attempt_context",
    "callbacks_due",
    "create_session",
    "create_user",
    "delete_session",
    "end_sessions",
    "ensure_agent_account",
    "lead_context",
    "list_users",
    "session_for_token",
    "sessions_by_role",
    "set_password",
    "user_by_login",
    "web_agents",
]

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")


class AccountError(ValueError):
    """An account operation that cannot be done; the message names what was wrong."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    login: str
    role: str
    display_name: str
    agent_id: int | None
    active: bool
    password_hash: str
    created_at: datetime
    password_changed_at: datetime
    #: role agent: the campaign of its agents row (None: named by the config, or none)
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    user: Account
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class WebAgent:
    """An agent kept in the database: its agents row, campaign and web password hash."""

    agent: Agent
    campaign: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What the desktop shows about one of the agent's calls (or a lead offered to it): who
    it is with, and the zones and hours of the callee and the company."""

    #: None: the context of a lead (a preview offer), not of one call
    attempt_id: int | None
    lead_id: int
    lead_timezone: str | None
    phone_e164: str
    campaign: Campaign
    #: the lead's company, else the campaign's (whose calendar the calling rules use)
    company: Company | None
    lead_name: str = ""
    #: the name of the lead's own company (None: the lead has none)
    lead_company: str | None = None
    #: when the call ended (None: still on, or a lead's context)
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DueCallback:
    callback_id: int
    lead_id: int
    lead_name: str
    company: str | None
    due_at: datetime
    timezone: str
    scope: CallbackScope
    mine: bool
    notes: str | None


def _account(u: WebUser, campaign: str | None = None) -> Account:
    return Account(id=u.id, login=u.login, role=u.role, display_name=u.display_name,
                   agent_id=u.agent_id, active=u.active, password_hash=u.password_hash,
                   created_at=u.created_at, password_changed_at=u.password_changed_at,
                   campaign=campaign)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")


# ---------------------------------------------------------------- accounts


@translated
async def user_by_login(sessions: Sessions, login: str) -> Account | None:
    async with sessions() as s:
        row = (await s.execute(
            select(WebUser, Campaign.name)
            .outerjoin(Agent, Agent.id == WebUser.agent_id)
            .outerjoin(Campaign, Campaign.id == Agent.campaign_id)
            .where(WebUser.login == login))).first()
    return None if row is None else _account(row[0], row[1])


@translated
async def create_user(
    sessions: Sessions, *, login: str, role: str, password_hash: str, now: datetime,
    display_name: str = "",
) -> Account:
    """A supervisor or admin account (agents: `add_agent`, which also makes the agents row)."""
    _check_role(role)
    if role == "agent":
        raise AccountError("agent accounts are made with `dialer agents add` (they need a "
                           "phone and a campaign)")
    async with sessions.begin() as s:
        if await s.scalar(select(WebUser.id).where(WebUser.login == login)) is not None:
            raise AccountError(f"login {login!r} already has an account")
        if await s.scalar(select(Agent.id).where(Agent.login == login)) is not None:
            raise AccountError(f"login {login!r} is an agent's; pick another login for a "
                               f"{role}")
        row = WebUser(login=login, role=role, password_hash=password_hash,
                      display_name=display_name, active=True, created_at=now,
                      password_changed_at=now)
        s.add(row)
        await s.flush()
        return _account(row)


@translated
async def add_agent(
    sessions: Sessions, *, login: str, sip_uri: str, password_hash: str, now: datetime,
    display_name: str = "", campaign: str | None = None, groups: list[str] | None = None,
) -> Account:
    """An agent kept in the database: its agents row (made, or taken over from a config
    agent without an account) with its campaign, and its web account (role agent).

    Without `campaign` the database's only campaign is taken (an error names them if there
    are several, or says there is none)."""
    async with sessions.begin() as s:
        if await s.scalar(select(WebUser.id).where(WebUser.login == login)) is not None:
            raise AccountError(f"login {login!r} already has an account (change its password "
                               "with `dialer agents passwd`)")
        names = list((await s.execute(select(Campaign.id, Campaign.name)
                                      .order_by(Campaign.id))).all())
        if campaign is None:
            if len(names) != 1:
                raise AccountError(
                    "no campaign in the database: create one first (`dialer campaigns create` "
                    "or `sync`)" if not names else
                    f"name the agent's campaign with --campaign (one of "
                    f"{', '.join(n for _, n in names)})")
            campaign_id, campaign = names[0]
        else:
            match = [i for i, n in names if n == campaign]
            if not match:
                raise AccountError(f"campaign {campaign!r} does not exist (known: "
                                   f"{', '.join(n for _, n in names) or 'none'})")
            campaign_id = match[0]
        agent = await s.scalar(select(Agent).where(Agent.login == login))
        if agent is None:
            agent = Agent(login=login, sip_uri=sip_uri, display_name=display_name,
                          active=True, campaign_id=campaign_id, created_at=now,
                          groups=list(groups or []))
            s.add(agent)
        else:
            agent.sip_uri, agent.campaign_id, agent.active = sip_uri, campaign_id, True
            if display_name:
                agent.display_name = display_name
            if groups is not None:
                agent.groups = list(groups)
        await s.flush()
        row = WebUser(login=login, role="agent", password_hash=password_hash,
                      display_name=display_name or agent.display_name, agent_id=agent.id,
                      active=True, created_at=now, password_changed_at=now)
        s.add(row)
        await s.flush()
        return _account(row, campaign)


@translated
async def ensure_agent_account(
    sessions: Sessions, *, login: str, password_hash: str, now: datetime,
) -> bool:
    """A config agent's web account, made from its `password_hash` when the database has
    none (the database's hash counts after that). True when one was made."""
    async with sessions.begin() as s:
        if await s.scalar(select(WebUser.id).where(WebUser.login == login)) is not None:
            return False
        agent = await s.scalar(select(Agent).where(Agent.login == login))
        if agent is None:
            raise AccountError(f"agent {login!r} has no agents row")
        s.add(WebUser(login=login, role="agent", password_hash=password_hash,
                      display_name=agent.display_name, agent_id=agent.id, active=True,
                      created_at=now, password_changed_at=now))
        return True


@translated
async def set_password(
    sessions: Sessions, *, login: str, password_hash: str, now: datetime,
    role: Literal["agent", "user"] | None = None, keep_session_id: int | None = None,
) -> list[int]:
    """Replace `login`'s password hash and end its sessions (all but `keep_session_id`: the
    one that changed it). `role` "agent" / "user" refuses the other kind of account (the CLI
    has `agents passwd` and `users passwd`). Returns the ended sessions' ids."""
    async with sessions.begin() as s:
        user = await s.scalar(select(WebUser).where(WebUser.login == login))
        if user is None:
            what = "agent account" if role == "agent" else "account"
            raise AccountError(f"no {what} with login {login!r}")
        if role == "agent" and user.role != "agent":
            raise AccountError(f"{login!r} is a {user.role}: use `dialer users passwd`")
        if role == "user" and user.role == "agent":
            raise AccountError(f"{login!r} is an agent: use `dialer agents passwd`")
        user.password_hash, user.password_changed_at = password_hash, now
        q = select(WebSession.id).where(WebSession.user_id == user.id)
        if keep_session_id is not None:
            q = q.where(WebSession.id != keep_session_id)
        ended = list((await s.scalars(q)).all())
        if ended:
            await s.execute(delete(WebSession).where(WebSession.id.in_(ended)))
        return ended


@translated
async def list_users(sessions: Sessions, now: datetime) -> list[tuple[Account, int]]:
    """Every account by login, with its number of live sessions."""
    live = (select(WebSession.user_id, func.count().label("n"))
            .where(WebSession.expires_at > now).group_by(WebSession.user_id).subquery())
    async with sessions() as s:
        rows = (await s.execute(
            select(WebUser, Campaign.name, live.c.n)
            .outerjoin(Agent, Agent.id == WebUser.agent_id)
            .outerjoin(Campaign, Campaign.id == Agent.campaign_id)
            .outerjoin(live, live.c.user_id == WebUser.id)
            .order_by(WebUser.login))).all()
    return [(_account(u, cname), int(n or 0)) for u, cname, n in rows]


@translated
async def web_agents(sessions: Sessions) -> list[WebAgent]:
    """Active agents with a campaign and an active web account (the ones `dialer agents add`
    made): the dialer takes them on besides the config's agents."""
    async with sessions() as s:
        rows = (await s.execute(
            select(Agent, Campaign.name, WebUser.password_hash)
            .join(Campaign, Campaign.id == Agent.campaign_id)
            .join(WebUser, WebUser.agent_id == Agent.id)
            .where(Agent.active.is_(True), WebUser.active.is_(True), WebUser.role == "agent")
            .order_by(Agent.login))).all()
    return [WebAgent(a, cname, h) for a, cname, h in rows]


# ---------------------------------------------------------------- sessions


@translated
async def create_session(
    sessions: Sessions, *, user_id: int, token_hash: str, now: datetime, idle: timedelta,
    client: str = "",
) -> int:
    async with sessions.begin() as s:
        # a sign-in is a good moment to forget the sessions that ended by themselves
        await s.execute(delete(WebSession).where(WebSession.expires_at <= now))
        row = WebSession(token_hash=token_hash, user_id=user_id, created_at=now,
                         last_seen_at=now, expires_at=now + idle, client=client[:120])
        s.add(row)
        await s.flush()
        return row.id


@translated
async def session_for_token(
    sessions: Sessions, token_hash: str, *, now: datetime, idle: timedelta,
    touch_after: timedelta = timedelta(seconds=60),
) -> SessionInfo | None:
    """The live session holding `token_hash`, its use recorded (at most once per
    `touch_after`, so a busy desktop does not write on every request); None when there is
    none, it expired (then it is deleted) or its account is disabled."""
    async with sessions() as s:
        row = (await s.execute(
            select(WebSession, WebUser, Campaign.name)
            .join(WebUser, WebUser.id == WebSession.user_id)
            .outerjoin(Agent, Agent.id == WebUser.agent_id)
            .outerjoin(Campaign, Campaign.id == Agent.campaign_id)
            .where(WebSession.token_hash == token_hash))).first()
    if row is None:
        return None
    ws, user, cname = row
    if ws.expires_at <= now or not user.active:
        async with sessions.begin() as s:
            await s.execute(delete(WebSession).where(WebSession.id == ws.id))
        return None
    expires = ws.expires_at
    if now - ws.last_seen_at >= touch_after:
        expires = now + idle
        async with sessions.begin() as s:
            await s.execute(update(WebSession).where(WebSession.id == ws.id)
                            .values(last_seen_at=now, expires_at=expires))
    return SessionInfo(id=ws.id, user=_account(user, cname), created_at=ws.created_at,
                       expires_at=expires)


@translated
async def delete_session(sessions: Sessions, token_hash: str) -> int | None:
    """End the session holding `token_hash`; its id, or None if there was none."""
    async with sessions.begin() as s:
        sid = await s.scalar(select(WebSession.id).where(WebSession.token_hash == token_hash))
        if sid is not None:
            await s.execute(delete(WebSession).where(WebSession.id == sid))
        return sid


@translated
async def end_sessions(sessions: Sessions, login: str) -> list[int]:
    """End every session of `login` (a disabled account, a password set by an admin)."""
    async with sessions.begin() as s:
        ids = list((await s.scalars(
            select(WebSession.id).join(WebUser, WebUser.id == WebSession.user_id)
            .where(WebUser.login == login))).all())
        if ids:
            await s.execute(delete(WebSession).where(WebSession.id.in_(ids)))
        return ids


@translated
async def sessions_by_role(sessions: Sessions, now: datetime) -> dict[str, int]:
    """Live sessions per role (every role present, 0 when none)."""
    async with sessions() as s:
        rows = (await s.execute(
            select(WebUser.role, func.count()).join(WebSession, WebSession.user_id == WebUser.id)
            .where(WebSession.expires_at > now).group_by(WebUser.role))).all()
    out = dict.fromkeys(ROLES, 0)
    out.update({str(r): int(n) for r, n in rows})
    return out


# ---------------------------------------------------------------- the agent desktop's reads


async def _context(s: AsyncSession, lead: Lead, campaign: Campaign,
                   attempt: Attempt | None) -> AttemptContext:
    """The context of `lead` (in `campaign`), of its call `attempt` when one is given."""
    company_id = lead.company_id or campaign.company_id
    company = await s.get(Company, company_id) if company_id else None
    own = company.name if company is not None and lead.company_id == company.id else None
    return AttemptContext(
        attempt_id=attempt.id if attempt is not None else None, lead_id=lead.id,
        lead_timezone=lead.timezone, phone_e164=lead.phone_e164, campaign=campaign,
        company=company, lead_name=lead.name, lead_company=own,
        ended_at=attempt.ended_at if attempt is not None else None)


@translated
async def attempt_context(
    sessions: Sessions, attempt_id: int, *, agent_id: int, live_call: bool = False,
) -> AttemptContext | None:
    """The lead, company and campaign of attempt `attempt_id` if it is agent `agent_id`'s:
    recorded with that agent, or (`live_call`: the runtime says this agent holds the call
    now) not yet recorded with any agent. None otherwise - another agent's attempt looks
    exactly like one that does not exist."""
    async with sessions() as s:
        row = (await s.execute(
            select(Attempt, Lead, Campaign)
            .join(Lead, Lead.id == Attempt.lead_id)
            .join(Campaign, Campaign.id == Attempt.campaign_id)
            .where(Attempt.id == attempt_id))).first()
        if row is None:
            return None
        attempt, lead, campaign = row
        owner = attempt.agent_id
        if not (owner == agent_id or (owner is None and live_call)):
            return None
        return await _context(s, lead, campaign, attempt)


@translated
async def lead_context(
    sessions: Sessions, lead_id: int, *, agent_id: int, offered: bool = False,
) -> AttemptContext | None:
    """The lead, company and campaign of lead `lead_id` if agent `agent_id` may see it:
    `offered` (the runtime offers it to this agent in preview now), or one of the agent's
    attempts called it. None otherwise, exactly as for a lead that does not exist."""
    async with sessions() as s:
        row = (await s.execute(
            select(Lead, Campaign).join(Campaign, Campaign.id == Lead.campaign_id)
            .where(Lead.id == lead_id))).first()
        if row is None:
            return None
        lead, campaign = row
        if not offered:
            mine = (await s.execute(
                select(Attempt.id).where(Attempt.lead_id == lead_id,
                                         Attempt.agent_id == agent_id).limit(1))).first()
            if mine is None:
                return None
        return await _context(s, lead, campaign, None)


@translated
async def callbacks_due(
    sessions: Sessions, *, agent_id: int, campaign_id: int | None, until: datetime,
) -> list[DueCallback]:
    """Pending callbacks due before `until` (overdue ones too) that this agent should make:
    its own first, then the "anyone" ones of its campaign; each by due time."""
    mine = (Callback.scope == CallbackScope.AGENT) & (Callback.owner_agent_id == agent_id)
    who = mine
    if campaign_id is not None:
        who = or_(mine, (Callback.scope == CallbackScope.CAMPAIGN)
                  & (Callback.campaign_id == campaign_id))
    async with sessions() as s:
        rows = (await s.execute(
            select(Callback, Lead.name, Company.name)
            .join(Lead, Lead.id == Callback.lead_id)
            .outerjoin(Company, Company.id == Lead.company_id)
            .where(Callback.status == "pending", Callback.due_at < until, who)
            .order_by(Callback.due_at, Callback.id))).all()
    out = [DueCallback(callback_id=cb.id, lead_id=cb.lead_id, lead_name=name or "",
                       company=cname, due_at=cb.due_at, timezone=cb.timezone, scope=cb.scope,
                       mine=cb.scope is CallbackScope.AGENT, notes=cb.notes)
           for cb, name, cname in rows]
    out.sort(key=lambda c: (not c.mine, c.due_at, c.callback_id))
    return out
