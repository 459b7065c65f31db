"""Manual dial, runtime side: the agent's `manual_dial` command (docs/call-controls.md).

Turns the campaign's settings and the lead into the inputs of the pure rules in
dialer/core/manual.py (state, number, DNC, the callee's window), claims the lead for this
dialer so no hopper or other instance dials it at the same time, and hands the engine the
call (dialer/core/manual_call.py: the agent is reserved for it). The number is never logged
and never put in a refusal.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

import phonenumbers

from common.vocabulary import AgentState
from dialer.core.manual import ManualReason, Refusal, check_manual_dial, parse_number
from dialer.core.tickets import LeadTicket
from scheduling.compliance import window_for_number
from scheduling.windows import candidate_zones

if TYPE_CHECKING:
    from dialer.runtime import CampaignRuntime

log = logging.getLogger(__name__)


class CampaignRules(Protocol):
    """What the rules read of a campaign (its config, or its database row)."""

    @property
    def calling_window(self) -> str: ...
    @property
    def default_region(self) -> str: ...

#: refusals that come before the DNC check (no lookup needed)
_BEFORE_DNC = frozenset({ManualReason.NOT_ALLOWED_IN_STATE, ManualReason.NO_LEAD,
                         ManualReason.INVALID_NUMBER})


def region_for(campaign: CampaignRules, lead_country: str | None) -> str:
    """Where a number typed without a country code is read: the lead's country, else the
    campaign's default region."""
    return (lead_country or campaign.default_region).upper()


def verdict(campaign: CampaignRules, *, raw_number: str, state: AgentState, has_lead: bool,
            lead_country: str | None, lead_zone: str | None, is_dnc: bool | None,
            now: datetime) -> str | Refusal:
    """The E.164 number to dial or the refusal, with the campaign's preset window for the
    number (a stricter regional one where it has one) and the number's zones. The lead's own
    zone counts only when the number is the lead's: a one-off number is judged by itself."""
    region = region_for(campaign, lead_country)
    first = check_manual_dial(raw_number=raw_number, region=region, state=state,
                              has_lead=has_lead, is_dnc=is_dnc)
    if isinstance(first, Refusal):
        return first
    window = window_for_number(campaign.calling_window, first)
    zones = candidate_zones(lead_zone, first)
    return check_manual_dial(raw_number=first, region=region, state=state, has_lead=has_lead,
                             is_dnc=is_dnc, window=window, zones=zones, now=now)


class DncLookup(Protocol):
    """The part of the store a manual dial needs (dialer.ports.Store has it)."""

    async def is_dnc(self, phone_e164: str) -> bool: ...


async def check(store: DncLookup, campaign: CampaignRules, *, raw_number: str,
                state: AgentState, has_lead: bool, lead_country: str | None,
                lead_zone: str | None, now: datetime) -> str | Refusal:
    """`verdict` with the DNC list looked up: parse first (a bad number needs no lookup),
    then ask the store about the E.164 form."""
    first = verdict(campaign, raw_number=raw_number, state=state, has_lead=has_lead,
                    lead_country=lead_country, lead_zone=lead_zone, is_dnc=None, now=now)
    if isinstance(first, Refusal) and first.code in _BEFORE_DNC:
        return first
    number = parse_number(raw_number, region_for(campaign, lead_country))
    if isinstance(number, Refusal):
        return number
    listed = await store.is_dnc(number)
    return verdict(campaign, raw_number=number, state=state, has_lead=has_lead,
                   lead_country=lead_country, lead_zone=lead_zone, is_dnc=listed, now=now)


class ManualDialRefused(Exception):
    """A manual dial refused before anything was placed; `code` first in the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


async def manual_dial(rt: CampaignRuntime, login: str, *, lead_id: int, number: str,
                      attach: Literal["one_off", "new_number"] = "one_off") -> None:
    """Check, claim and place an agent's manual call to lead `lead_id` (see the module doc);
    raises ManualDialRefused (or the engine's IllegalTransitionError) when it may not."""
    board = rt.engine.board
    state = board.get(login).state if login in board else AgentState.LOGGED_OUT
    (lead,) = await rt.store.hopper_leads([lead_id]) or (None,)
    country = None
    if lead is not None:
        country = phonenumbers.region_code_for_number(phonenumbers.parse(lead.phone_e164))
    region = region_for(rt.campaign, country)
    parsed = parse_number(number, region)
    # the lead's own zone speaks for its own number only: a one-off number is judged alone
    zone = lead.timezone if lead is not None and parsed == lead.phone_e164 else None
    got = await check(rt.store, rt.campaign, raw_number=number, state=state,
                      has_lead=lead is not None, lead_country=country, lead_zone=zone,
                      now=rt.clock.now())
    if isinstance(got, Refusal):
        raise ManualDialRefused(got.code.value, got.message)
    now = rt.clock.now()
    claimed = await rt.store.claim_lead(
        lead_id=lead_id, campaign_id=rt.campaign.id, now=now, holder=rt.dialer_id,
        ttl=rt.claim_ttl, phone_e164=got if attach == "new_number" else None)
    if claimed is None:
        raise ManualDialRefused("lead_busy", "the lead is being dialed or held by the dialer "
                                "(in a hopper or on another call); try again in a moment")
    rt._claimed.add(lead_id)
    ticket = LeadTicket(
        lead_id=str(lead_id), phone_e164=got, priority=claimed.priority, due_at=now,
        status=claimed.status, has_open_complaint=claimed.has_open_complaint,
        attempts=claimed.attempts, timezone=claimed.timezone,
        company_lead=claimed.company_id is not None)
    try:
        rt._input(rt.engine.manual_dial, login, ticket)
    except Exception:
        rt._claimed.discard(lead_id)
        rt._write(rt.store.release_claims, holder=rt.dialer_id, lead_ids=[lead_id])
        raise
    log.info("campaign %s: agent %s placed a manual call to lead %s (%s)", rt.name, login,
             lead_id, attach)


async def call_back_now(rt: CampaignRuntime, login: str, *, lead_id: int) -> None:
    """"Call back now": the lead's own number dialed for this agent at once (the same checks
    and mechanics as `manual_dial`), when the lead is this agent's: an agent-owned callback of
    this agent that is due, or the lead of this agent's last call with it (a call that dropped
    and has been given its outcome). Refused `not_yours` or `not_due` otherwise."""
    (lead,) = await rt.store.hopper_leads([lead_id]) or (None,)
    if lead is None:
        raise ManualDialRefused(ManualReason.NO_LEAD.value, "no such lead")
    now = rt.clock.now()
    if lead.callback_owner is not None:
        if lead.callback_owner != login:
            raise ManualDialRefused("not_yours", "this callback belongs to another agent")
        if lead.callback_due_at is not None and lead.callback_due_at > now:
            raise ManualDialRefused("not_due", "the agreed callback time has not come yet "
                                    f"(due {lead.callback_due_at.isoformat(timespec='minutes')})")
    else:
        last = await rt.store.lead_history(lead_id, limit=1)
        if not last or last[0].agent != login:
            raise ManualDialRefused("not_yours", "the lead's last call was not this agent's "
                                    "and it has no callback of this agent")
    await manual_dial(rt, login, lead_id=lead_id, number=lead.phone_e164)
