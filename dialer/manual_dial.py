"""Manual dial and "call back now", runtime side: turns a campaign's settings and the agent's
current lead into the inputs of the pure rules in dialer/core/manual.py.

So far this module only prepares the verdict (region, the number's own calling window and
zones); placing the call (engine reservation of the agent, the attempt row, the trunk call)
is not built yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from common.vocabulary import AgentState
from dialer.config import CampaignConfig
from dialer.core.manual import ManualReason, Refusal, check_manual_dial, parse_number
from scheduling.compliance import window_for_number
from scheduling.windows import candidate_zones

#: refusals that come before the DNC check (no lookup needed)
_BEFORE_DNC = frozenset({ManualReason.NOT_ALLOWED_IN_STATE, ManualReason.NO_LEAD,
                         ManualReason.INVALID_NUMBER})


def region_for(campaign: CampaignConfig, lead_country: str | None) -> str:
    """Where a number typed without a country code is read: the lead's country, else the
    campaign's default region."""
    return (lead_country or campaign.default_region).upper()


def verdict(campaign: CampaignConfig, *, raw_number: str, state: AgentState, has_lead: bool,
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


async def check(store: DncLookup, campaign: CampaignConfig, *, raw_number: str,
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
