"""The live dialer's one store: every query the runtime and the app run, behind one object.

`SqlStore` wraps an `AsyncSession` factory and implements `dialer.ports.Store`; the runtime
and the app call it and never build SQL themselves (they do not import SQLAlchemy). Reads
return plain frozen dataclasses (`HopperLead`, `LeadCard`, ...) or detached ORM rows that are
read only (`Campaign`, `Agent`); writes take explicit values and an explicit `now`.

Errors: like `db.repositories`, every method raises `RepositoryError` (naming the operation)
for any SQLAlchemy/driver error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from common.vocabulary import (
    DIALABLE_STATUSES,
    AgentState,
    AttemptResult,
    CallbackScope,
    DialMode,
    LeadStatus,
)
from db import dnc, handlers, outcomes, webhook_events
from db import repositories as repo
from db.models import Agent, Attempt, Callback, Campaign, Company, Lead
from db.repositories import Sessions, translated

#: attempt results in the abandon ledger (docs/compliance.md: live answers and machines)
_LEDGER_RESULTS = (AttemptResult.CONNECTED, AttemptResult.ABANDONED, AttemptResult.MACHINE)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished attempt, as the pacing priors read it."""

    result: AttemptResult
    talk_s: float | None
    ended_at: datetime | None
    wrapup_ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class HopperLead:
    """A claimed lead as the hopper needs it, with its pending callback (if any)."""

    id: int
    phone_e164: str
    priority: int
    status: LeadStatus
    next_call_at: datetime | None
    next_contact_at: datetime | None
    has_open_complaint: bool
    attempts: int
    timezone: str | None
    #: login of the agent owning a pending agent-scoped callback
    callback_owner: str | None
    #: due time of a pending callback (any scope)
    callback_due_at: datetime | None
    #: the client company the lead works for (None: a consumer lead)
    company_id: int | None = None


@dataclass(frozen=True, slots=True)
class LeadCard:
    """What an agent sees of a lead (screen pop, preview)."""

    id: int
    name: str | None
    phone_e164: str
    company: str | None
    custom_fields: dict[str, Any]
    status: LeadStatus


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A finished earlier attempt on a lead (screen pop history)."""

    attempt_id: int
    at: datetime
    result: AttemptResult
    disposition: str | None
    notes: str | None
    agent: str | None


class SqlStore:
    """`dialer.ports.Store` over SQLAlchemy (SQLite or PostgreSQL); see the module doc."""

    def __init__(self, sessions: Sessions) -> None:
        #: the session factory, for the parts that take one directly (scheduling jobs)
        self.sessions = sessions

    # ------------------------------------------------------------------ start-up (app)
    async def close_orphaned_attempts(self, *, dialer_id: str, now: datetime) -> int:
        hooks = webhook_events.orphaned_attempts_hooks(dialer_id)
        sessions = webhook_events.reporting(self.sessions, *hooks)
        return await repo.close_orphaned_attempts(sessions, dialer_id=dialer_id, now=now)

    async def hold_orphaned_outcomes(self, *, dialer_id: str) -> int:
        """At start: connected attempts a previous run left without a disposition hold their
        leads as "needs outcome" (never redialed on a guess)."""
        ids = await outcomes.unheld_connected_attempts(self.sessions, dialer_id=dialer_id)
        return await outcomes.hold_for_outcome(self.sessions, ids)

    async def hold_for_outcome(self, attempt_ids: Sequence[int]) -> int:
        return await outcomes.hold_for_outcome(self.sessions, attempt_ids)

    async def open_outcomes(
        self, *, campaign_id: int | None = None, agent_id: int | None = None,
    ) -> list[outcomes.OpenOutcome]:
        return await outcomes.open_outcomes(self.sessions, campaign_id=campaign_id,
                                            agent_id=agent_id)

    async def attempt_outcome(self, attempt_id: int) -> outcomes.AttemptOutcome | None:
        return await outcomes.attempt_outcome(self.sessions, attempt_id)

    async def release_outcome(self, attempt_id: int) -> None:
        await outcomes.release_outcome(self.sessions, attempt_id)

    async def last_agent_states(self, campaign_id: int) -> list[outcomes.LastAgentState]:
        return await outcomes.last_agent_states(self.sessions, campaign_id)

    async def upsert_campaign(self, cfg: object) -> Campaign:
        """Create or update a campaign from a `dialer.config.CampaignConfig`."""
        return await repo.upsert_campaign(self.sessions, cfg)

    async def upsert_agent(self, login: str, sip_uri: str, display_name: str,
                           groups: list[str] | None = None) -> Agent:
        return await repo.upsert_agent(self.sessions, login, sip_uri, display_name, groups)

    async def seed_agent_campaign(self, login: str, campaign: str) -> str | None:
        return await repo.seed_agent_campaign(self.sessions, login, campaign)

    @translated
    async def campaigns(self) -> list[Campaign]:
        async with self.sessions() as s:
            return list((await s.scalars(select(Campaign).order_by(Campaign.id))).all())

    @translated
    async def agent_login(self, agent_id: int) -> str | None:
        async with self.sessions() as s:
            return await s.scalar(select(Agent.login).where(Agent.id == agent_id))

    @translated
    async def callable_counts(self, campaign_ids: Iterable[int], now: datetime) -> dict[int, int]:
        """Leads per campaign callable now: dialable status and due (the hopper's query)."""
        ids = list(campaign_ids)
        out = dict.fromkeys(ids, 0)
        if not ids:
            return out
        async with self.sessions() as s:
            rows = await s.execute(
                select(Lead.campaign_id, func.count()).where(
                    Lead.campaign_id.in_(ids), Lead.status.in_(DIALABLE_STATUSES),
                    Lead.next_call_at <= now,
                ).group_by(Lead.campaign_id))
            for cid, n in rows.all():
                out[int(cid)] = int(n)
        return out

    @translated
    async def recent_outcomes(self, campaign_id: int, since: datetime) -> list[Outcome]:
        """Finished attempts (skips excluded) created since `since`."""
        async with self.sessions() as s:
            rows = (await s.execute(
                select(Attempt.result, Attempt.talk_s, Attempt.ended_at, Attempt.wrapup_ended_at)
                .where(Attempt.campaign_id == campaign_id, Attempt.created_at >= since,
                       Attempt.result.is_not(None), Attempt.result != AttemptResult.SKIPPED)
            )).all()
        return [Outcome(r[0], r[1], r[2], r[3]) for r in rows if r[0] is not None]

    @translated
    async def answered_outcomes(
        self, campaign_id: int, since: datetime
    ) -> list[tuple[datetime, AttemptResult]]:
        """(answered_at, result) of live answers, abandons and machines since `since`,
        oldest first: what the abandon ledger is seeded with."""
        async with self.sessions() as s:
            rows = (await s.execute(
                select(Attempt.answered_at, Attempt.result)
                .where(Attempt.campaign_id == campaign_id, Attempt.answered_at >= since,
                       Attempt.result.in_(_LEDGER_RESULTS))
            )).all()
        return sorted(((r[0], r[1]) for r in rows if r[0] is not None and r[1] is not None),
                      key=lambda r: r[0])

    # ------------------------------------------------------------------ hopper
    async def claim_leads(
        self, *, campaign_id: int, now: datetime, limit: int, holder: str, ttl: timedelta,
    ) -> list[int]:
        """Claim up to `limit` due leads (see `repositories.claim_leads`); their ids, best
        first."""
        rows = await repo.claim_leads(self.sessions, campaign_id=campaign_id, now=now,
                                      limit=limit, holder=holder, ttl=ttl)
        return [r.id for r in rows]

    @translated
    async def hopper_leads(self, lead_ids: Sequence[int]) -> list[HopperLead]:
        """The leads `lead_ids` as they are now, in the order given (missing ids skipped)."""
        if not lead_ids:
            return []
        ids = list(lead_ids)
        async with self.sessions() as s:
            leads = {r.id: r for r in (await s.scalars(select(Lead).where(Lead.id.in_(ids))))}
            owners = dict((await s.execute(
                select(Callback.lead_id, Agent.login)
                .join(Agent, Agent.id == Callback.owner_agent_id)
                .where(Callback.lead_id.in_(ids), Callback.status == "pending",
                       Callback.scope == CallbackScope.AGENT))).all())
            due = dict((await s.execute(
                select(Callback.lead_id, Callback.due_at)
                .where(Callback.lead_id.in_(ids), Callback.status == "pending"))).all())
        return [HopperLead(
            id=lead.id, phone_e164=lead.phone_e164, priority=lead.priority, status=lead.status,
            next_call_at=lead.next_call_at, next_contact_at=lead.next_contact_at,
            has_open_complaint=lead.has_open_complaint, attempts=lead.attempts,
            timezone=lead.timezone, callback_owner=owners.get(lead.id),
            callback_due_at=due.get(lead.id), company_id=lead.company_id,
        ) for i in ids if (lead := leads.get(i)) is not None]

    async def renew_claims(
        self, *, holder: str, lead_ids: Sequence[int], now: datetime, ttl: timedelta
    ) -> int:
        return await repo.renew_claims(self.sessions, holder=holder, lead_ids=lead_ids, now=now,
                                       ttl=ttl)

    async def release_claims(self, *, holder: str, lead_ids: Sequence[int]) -> int:
        return await repo.release_claims(self.sessions, holder=holder, lead_ids=lead_ids)

    async def claim_lead(
        self, *, lead_id: int, campaign_id: int, now: datetime, holder: str, ttl: timedelta,
        phone_e164: str | None = None,
    ) -> HopperLead | None:
        """One lead claimed for a manual call (see `repositories.claim_lead`), as the hopper
        sees a lead; None when it is held elsewhere or not of this campaign."""
        row = await repo.claim_lead(self.sessions, lead_id=lead_id, campaign_id=campaign_id,
                                    now=now, holder=holder, ttl=ttl, phone_e164=phone_e164)
        if row is None:
            return None
        return HopperLead(
            id=row.id, phone_e164=row.phone_e164, priority=row.priority, status=row.status,
            next_call_at=row.next_call_at, next_contact_at=row.next_contact_at,
            has_open_complaint=row.has_open_complaint, attempts=row.attempts,
            timezone=row.timezone, callback_owner=None, callback_due_at=None,
            company_id=row.company_id)

    # ------------------------------------------------------------------ attempts
    async def create_attempt(
        self, *, now: datetime, campaign_id: int, lead_id: int, phone_e164: str,
        dial_mode: DialMode, dialer_id: str, trunk: str | None, agent_id: int | None,
    ) -> int:
        """Write the attempt row; the caller sends the INVITE only after this returns."""
        return await repo.create_attempt(
            self.sessions, now=now, campaign_id=campaign_id, lead_id=lead_id,
            phone_e164=phone_e164, dial_mode=dial_mode, dialer_id=dialer_id, trunk=trunk,
            agent_id=agent_id)

    async def update_attempt(self, attempt_id: int, **fields: object) -> None:
        # a disposition reports `disposition.saved` in its own transaction (db/webhook_events)
        hooks = webhook_events.disposition_hooks(attempt_id)
        sessions = webhook_events.reporting(self.sessions, *hooks) \
            if fields.get("disposition") is not None else self.sessions
        await repo.update_attempt(sessions, attempt_id, **fields)

    async def finish_attempt(
        self, attempt_id: int, *, result: AttemptResult, ended_at: datetime, **fields: object,
    ) -> bool:
        hooks = webhook_events.finished_attempt_hooks(attempt_id)
        sessions = webhook_events.reporting(self.sessions, *hooks)
        return await repo.finish_attempt(sessions, attempt_id, result=result,
                                         ended_at=ended_at, **fields)

    # ------------------------------------------------------------------ leads and agents
    async def update_lead(
        self, lead_id: int, *, now: datetime, callback_pending: bool = False, **fields: object,
    ) -> None:
        hooks = webhook_events.lead_status_hooks(lead_id, now)
        sessions = webhook_events.reporting(self.sessions, *hooks)
        await repo.update_lead(sessions, lead_id, now=now,
                               callback_pending=callback_pending, **fields)

    @translated
    async def add_callback(
        self, *, campaign_id: int, lead_id: int, scope: CallbackScope,
        owner_agent_id: int | None, due_at: datetime, attempt_id: int | None,
        notes: str | None, created_at: datetime,
    ) -> None:
        async with self.sessions.begin() as s:
            s.add(Callback(campaign_id=campaign_id, lead_id=lead_id, scope=scope,
                           owner_agent_id=owner_agent_id, due_at=due_at, attempt_id=attempt_id,
                           notes=notes, created_at=created_at))

    @translated
    async def lead_phone(self, lead_id: int) -> str | None:
        async with self.sessions() as s:
            return await s.scalar(select(Lead.phone_e164).where(Lead.id == lead_id))

    async def add_dnc(
        self, phone_e164: str, *, now: datetime, reason: str, attempt_id: int | None,
    ) -> None:
        """Put a number on the internal DNC list (db.dnc: stops its leads at once)."""
        await dnc.add(self.sessions, phone_e164, now=now, reason=reason, attempt_id=attempt_id)

    async def is_dnc(self, phone_e164: str) -> bool:
        """Whether an E.164 number is on any DNC list (a manual dial checks it)."""
        return await dnc.is_listed(self.sessions, phone_e164)

    async def log_agent_state(
        self, *, agent_id: int, campaign_id: int | None, state: AgentState,
        reason: str | None, at: datetime,
    ) -> None:
        await repo.log_agent_state(self.sessions, agent_id=agent_id, campaign_id=campaign_id,
                                   state=state, reason=reason, at=at)

    @translated
    async def lead_card(self, lead_id: int) -> LeadCard | None:
        async with self.sessions() as s:
            lead = await s.get(Lead, lead_id)
            if lead is None:
                return None
            company = await s.get(Company, lead.company_id) if lead.company_id else None
        return LeadCard(id=lead.id, name=lead.name, phone_e164=lead.phone_e164,
                        company=company.name if company else None,
                        custom_fields=dict(lead.custom_fields or {}), status=lead.status)

    @translated
    async def lead_history(
        self, lead_id: int, *, exclude_attempt_id: int | None = None, limit: int = 20,
    ) -> list[HistoryEntry]:
        """The lead's finished attempts, newest first."""
        q = (select(Attempt, Agent.login).outerjoin(Agent, Agent.id == Attempt.agent_id)
             .where(Attempt.lead_id == lead_id, Attempt.result.is_not(None))
             .order_by(Attempt.created_at.desc()).limit(limit))
        if exclude_attempt_id is not None:
            q = q.where(Attempt.id != exclude_attempt_id)
        async with self.sessions() as s:
            rows = (await s.execute(q)).all()
        return [HistoryEntry(attempt_id=a.id, at=a.created_at, result=a.result,
                             disposition=a.disposition, notes=a.notes, agent=login)
                for a, login in rows if a.result is not None]

    # ------------------------------------------------------------------ transfers
    async def hand_over(self, attempt_id: int, agent_id: int | None, at: datetime,
                        how: str) -> None:
        """``agent_id`` (None: an outside number) holds the call from ``at`` (db.handlers)."""
        await handlers.hand_over(self.sessions, attempt_id, agent_id, at, how)

    async def close_handlers(self, attempt_id: int, at: datetime) -> None:
        await handlers.close_handlers(self.sessions, attempt_id, at)

    async def handlers_of(self, attempt_id: int) -> list[handlers.Handler]:
        return await handlers.handlers_of(self.sessions, attempt_id)
