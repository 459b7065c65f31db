"""The CRM API's reads and writes (dialer/web/api_v1): campaigns, leads with their calls,
GDPR erasure, attempts by cursor, DNC entries, callbacks. Every write takes the `Actor` and
writes its audit row in its own transaction (db/audit.py).

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`;
`NotFound` and `Conflict` say what the API answers 404 and 409 to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from common.vocabulary import DIALABLE_STATUSES, CallbackScope, LeadStatus
from db import audit, webhook_events
from db.audit import Actor
from db.models import Agent, Attempt, Callback, Campaign, DncEntry, Lead, hopper_tier
from db.repositories import RepositoryError, Sessions, transaction, translated

__all__ = [
    "ERASED_REASON",
    "AttemptFilter",
    "Conflict",
    "NotFound",
    "attempts_page",
    "campaign_stats",
    "cancel_callback",
    "create_callback",
    "create_campaign",
    "delete_dnc",
    "erase_lead",
    "get_campaign",
    "get_lead",
    "lead_attempts",
    "lead_by_external_id",
    "list_callbacks",
    "list_dnc",
    "update_campaign",
    "update_lead",
]

#: never_reason of an erased lead
ERASED_REASON = "erased on request (GDPR)"


class NotFound(LookupError):
    """What the request names does not exist (the API answers 404)."""


class Conflict(Exception):
    """The request clashes with what is stored (the API answers 409)."""


# ---------------------------------------------------------------- campaigns


@translated
async def get_campaign(sessions: Sessions, name: str) -> Campaign:
    async with sessions() as s:
        c = await s.scalar(select(Campaign).where(Campaign.name == name))
    if c is None:
        raise NotFound(f"no campaign named {name!r}")
    return c


async def create_campaign(sessions: Sessions, values: Mapping[str, Any], *, actor: Actor,
                          now: datetime) -> Campaign:
    """A new campaign from column values (`name` among them); Conflict if the name is taken."""
    try:
        async with transaction(sessions, "create campaign") as s:
            if await s.scalar(select(Campaign.id).where(Campaign.name == values["name"])):
                raise Conflict(f"a campaign named {values['name']!r} exists already")
            c = Campaign(**values, created_at=now)
            s.add(c)
            await s.flush()
            audit.add_entry(s, actor, "campaign.create", f"campaign:{c.name}",
                            {"fields": sorted(values)}, now=now)
    except RepositoryError as e:
        if isinstance(e.__cause__, IntegrityError):
            raise Conflict(f"a campaign named {values['name']!r} exists already") from None
        raise
    return c


async def update_campaign(sessions: Sessions, name: str, values: Mapping[str, Any], *,
                          actor: Actor, now: datetime) -> Campaign:
    async with transaction(sessions, "update campaign") as s:
        c = await s.scalar(select(Campaign).where(Campaign.name == name))
        if c is None:
            raise NotFound(f"no campaign named {name!r}")
        changed = sorted(k for k, v in values.items() if getattr(c, k) != v)
        for k in changed:
            setattr(c, k, values[k])
        if changed:
            audit.add_entry(s, actor, "campaign.update", f"campaign:{name}",
                            {"fields": changed}, now=now)
    return c


@translated
async def campaign_stats(sessions: Sessions, campaign_id: int, *, since: datetime,
                         now: datetime) -> dict[str, Any]:
    """Leads by status, how many are due now, and attempts since `since` by result."""
    async with sessions() as s:
        by_status = {str(st.value if hasattr(st, "value") else st): int(n)
                     for st, n in await s.execute(
                         select(Lead.status, func.count()).where(Lead.campaign_id == campaign_id)
                         .group_by(Lead.status))}
        due = await s.scalar(select(func.count()).select_from(Lead).where(
            Lead.campaign_id == campaign_id, Lead.status.in_(list(DIALABLE_STATUSES)),
            Lead.next_call_at.is_not(None), Lead.next_call_at <= now))
        results: dict[str, int] = {}
        for r, n in await s.execute(
                select(Attempt.result, func.count()).where(
                    Attempt.campaign_id == campaign_id, Attempt.created_at >= since)
                .group_by(Attempt.result)):
            results[str(r.value) if r is not None else "open"] = int(n)
        talk = await s.scalar(select(func.coalesce(func.sum(Attempt.talk_s), 0.0)).where(
            Attempt.campaign_id == campaign_id, Attempt.created_at >= since))
    return {"leads": sum(by_status.values()), "leads_by_status": by_status,
            "due_now": int(due or 0), "attempts": sum(results.values()),
            "attempts_by_result": results, "talk_s": float(talk or 0.0)}


# ---------------------------------------------------------------- leads


@translated
async def get_lead(sessions: Sessions, lead_id: int) -> tuple[Lead, str]:
    """The lead and its campaign's name."""
    async with sessions() as s:
        row = (await s.execute(select(Lead, Campaign.name).join(
            Campaign, Campaign.id == Lead.campaign_id).where(Lead.id == lead_id))).first()
    if row is None:
        raise NotFound(f"no lead {lead_id}")
    return row[0], row[1]


@translated
async def lead_by_external_id(sessions: Sessions, campaign: str,
                              external_id: str) -> Lead | None:
    async with sessions() as s:
        return await s.scalar(select(Lead).join(Campaign, Campaign.id == Lead.campaign_id)
                              .where(Campaign.name == campaign,
                                     Lead.external_id == external_id))


@translated
async def lead_attempts(sessions: Sessions, lead_id: int, limit: int = 100) -> list[Attempt]:
    async with sessions() as s:
        return list(await s.scalars(select(Attempt).where(Attempt.lead_id == lead_id)
                                    .order_by(Attempt.created_at.desc(), Attempt.id.desc())
                                    .limit(limit)))


async def update_lead(sessions: Sessions, lead_id: int, values: Mapping[str, Any], *,
                      actor: Actor, now: datetime) -> Lead:
    """Change a lead's fields (already validated); a status change moves it in or out of
    dialing as an import would."""
    try:
        async with transaction(sessions, "update lead") as s:
            lead = await s.get(Lead, lead_id)
            if lead is None:
                raise NotFound(f"no lead {lead_id}")
            if lead.never_reason == ERASED_REASON:
                raise Conflict(f"lead {lead_id} was erased")
            changed = sorted(k for k, v in values.items() if getattr(lead, k) != v)
            was = lead.status in DIALABLE_STATUSES
            for k in changed:
                setattr(lead, k, values[k])
            if "status" in changed:
                dialable = lead.status in DIALABLE_STATUSES
                if dialable and not was:
                    lead.next_call_at, lead.never_reason = now, None
                elif was and not dialable:
                    lead.next_call_at = None
                    lead.never_reason = f"status set to {lead.status.value}"
                lead.hopper_tier = hopper_tier(callback_due=lead.hopper_tier == 0,
                                               status=lead.status,
                                               open_complaint=lead.has_open_complaint)
            if changed:
                lead.updated_at = now
                audit.add_entry(s, actor, "lead.update", f"lead:{lead_id}",
                                {"fields": changed}, now=now)
    except RepositoryError as e:
        if isinstance(e.__cause__, IntegrityError):
            raise Conflict("another lead of the campaign has that number or external_id") \
                from None
        raise
    return lead


async def erase_lead(sessions: Sessions, lead_id: int, *, actor: Actor,
                     now: datetime) -> tuple[int, list[str]]:
    """GDPR erasure: the lead keeps its id, campaign, status history and call timings, but
    no name, number, custom fields, external id or notes; its calls likewise lose the
    number, notes and recording path; its pending callbacks are cancelled and their notes
    cleared. The lead is never called again. DNC entries are left as they are (a suppression
    list is kept so the person is not called again), and outcome webhook events of the lead
    not delivered yet are dropped. Returns the calls anonymised and the recording files
    they pointed at (the caller deletes the files: they are not the database's)."""
    async with transaction(sessions, "erase lead") as s:
        lead = await s.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        if lead.claimed_until is not None and lead.claimed_until > now:
            raise Conflict(f"lead {lead_id} is being dialled now; try again in a few "
                           "minutes")
        placeholder = f"erased-{lead_id}"[:20]
        lead.phone_e164 = placeholder
        lead.name = ""
        lead.custom_fields = {}
        lead.external_id = None
        lead.timezone = None
        lead.next_contact_at = None
        lead.next_call_at = None
        lead.never_reason = ERASED_REASON
        lead.status = LeadStatus.DONE
        lead.updated_at = now
        recordings = [p for p in (await s.scalars(select(Attempt.recording_path).where(
            Attempt.lead_id == lead_id, Attempt.recording_path.is_not(None)))).all() if p]
        n = (await s.execute(update(Attempt).where(Attempt.lead_id == lead_id).values(
            phone_e164="erased", notes=None, recording_path=None, sip_reason=None)
            .execution_options(synchronize_session=False))).rowcount
        await s.execute(update(Callback).where(Callback.lead_id == lead_id).values(
            notes=None).execution_options(synchronize_session=False))
        await s.execute(update(Callback).where(Callback.lead_id == lead_id,
                                               Callback.status == "pending")
                        .values(status="cancelled").execution_options(
                            synchronize_session=False))
        # outcome webhooks not delivered yet (or dead) would carry the person's notes
        events = await webhook_events.forget_lead(s, lead_id)
        audit.add_entry(s, actor, "lead.erase", f"lead:{lead_id}",
                        {"attempts": n, "webhook_events": events,
                         "recordings": len(recordings)}, now=now)
    return int(n or 0), recordings


# ---------------------------------------------------------------- attempts


@dataclass(frozen=True, slots=True)
class AttemptFilter:
    campaign_id: int | None = None
    lead_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    results: Sequence[str] = ()


@translated
async def attempts_page(sessions: Sessions, f: AttemptFilter, *,
                        after: tuple[datetime, int] | None, limit: int) -> list[Attempt]:
    """Attempts in (created_at, id) order after the cursor position `after`."""
    q = select(Attempt)
    if f.campaign_id is not None:
        q = q.where(Attempt.campaign_id == f.campaign_id)
    if f.lead_id is not None:
        q = q.where(Attempt.lead_id == f.lead_id)
    if f.since is not None:
        q = q.where(Attempt.created_at >= f.since)
    if f.until is not None:
        q = q.where(Attempt.created_at < f.until)
    if f.results:
        q = q.where(Attempt.result.in_(list(f.results)))
    if after is not None:
        at, aid = after
        q = q.where(or_(Attempt.created_at > at, and_(Attempt.created_at == at,
                                                      Attempt.id > aid)))
    q = q.order_by(Attempt.created_at, Attempt.id).limit(limit)
    async with sessions() as s:
        return list(await s.scalars(q))


# ---------------------------------------------------------------- DNC


@translated
async def list_dnc(sessions: Sessions, *, after_id: int, limit: int,
                   source: str | None = None, phone: str | None = None) -> list[DncEntry]:
    q = select(DncEntry).where(DncEntry.id > after_id)
    if phone:
        q = q.where(DncEntry.phone_e164 == phone)
    if source:
        q = q.where(DncEntry.source == source)
    async with sessions() as s:
        return list(await s.scalars(q.order_by(DncEntry.id).limit(limit)))


async def delete_dnc(sessions: Sessions, entry_id: int, *, actor: Actor, now: datetime) -> None:
    """Remove a DNC entry. The leads it stopped stay stopped (their status says dnc): a
    person who asked not to be called is not called again because an entry went away."""
    async with transaction(sessions, "delete DNC entry") as s:
        entry = await s.get(DncEntry, entry_id)
        if entry is None:
            raise NotFound(f"no DNC entry {entry_id}")
        source = entry.source
        await s.execute(delete(DncEntry).where(DncEntry.id == entry_id))
        audit.add_entry(s, actor, "dnc.delete", f"dnc:{entry_id}", {"source": source}, now=now)


# ---------------------------------------------------------------- callbacks


@translated
async def list_callbacks(sessions: Sessions, *, campaign_id: int | None, status: str | None,
                         lead_id: int | None, after_id: int,
                         limit: int) -> list[tuple[Callback, str | None]]:
    q = select(Callback, Agent.login).outerjoin(Agent, Agent.id == Callback.owner_agent_id) \
        .where(Callback.id > after_id)
    if campaign_id is not None:
        q = q.where(Callback.campaign_id == campaign_id)
    if status:
        q = q.where(Callback.status == status)
    if lead_id is not None:
        q = q.where(Callback.lead_id == lead_id)
    async with sessions() as s:
        return [(c, login) for c, login in await s.execute(q.order_by(Callback.id).limit(limit))]


async def create_callback(sessions: Sessions, *, lead_id: int, due_at: datetime,
                          agent_login: str | None, notes: str | None, actor: Actor,
                          now: datetime) -> Callback:
    """A callback for a lead: due at `due_at`, for one agent or (None) anyone of the
    campaign. The lead goes to the front of the queue when it falls due."""
    async with transaction(sessions, "create callback") as s:
        lead = await s.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        if lead.never_reason == ERASED_REASON or lead.status not in DIALABLE_STATUSES:
            raise Conflict(f"lead {lead_id} is not callable (status {lead.status.value})")
        agent_id = None
        if agent_login is not None:
            agent_id = await s.scalar(select(Agent.id).where(Agent.login == agent_login))
            if agent_id is None:
                raise NotFound(f"no agent {agent_login!r}")
        cb = Callback(campaign_id=lead.campaign_id, lead_id=lead_id,
                      scope=CallbackScope.AGENT if agent_id else CallbackScope.CAMPAIGN,
                      owner_agent_id=agent_id, due_at=due_at,
                      timezone=lead.timezone or "UTC", notes=notes, created_at=now)
        s.add(cb)
        lead.next_contact_at = due_at
        lead.next_call_at = due_at
        lead.updated_at = now
        await s.flush()
        audit.add_entry(s, actor, "callback.create", f"callback:{cb.id}",
                        {"lead_id": lead_id, "due_at": due_at.isoformat(),
                         "agent": agent_login}, now=now)
    return cb


async def cancel_callback(sessions: Sessions, callback_id: int, *, actor: Actor,
                          now: datetime) -> Callback:
    async with transaction(sessions, "cancel callback") as s:
        cb = await s.get(Callback, callback_id)
        if cb is None:
            raise NotFound(f"no callback {callback_id}")
        if cb.status != "pending":
            raise Conflict(f"callback {callback_id} is {cb.status}, not pending")
        cb.status = "cancelled"
        audit.add_entry(s, actor, "callback.cancel", f"callback:{callback_id}", {}, now=now)
    return cb
