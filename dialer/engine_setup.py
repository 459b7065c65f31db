"""The engine's configuration for one campaign: its row turned into an `EngineConfig`, and
the pacing priors the pacer starts from (the campaign's own recent figures when it has them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.vocabulary import (
    WRAPUP_TIMEOUT,
    AbandonPolicy,
    AttemptResult,
    DispositionSpec,
    LeadStatus,
    disposition_catalog,
)
from db.models import Campaign
from dialer.core.config import EngineConfig
from dialer.core.governor import settings_for_window
from dialer.core.pacer import LineLimits
from dialer.core.tickets import LeadTicket
from dialer.ports import Store
from scheduling.compliance import compliance_preset, effective_abandon
from scheduling.facts import retry_policy_from_json
from sip import api as sip

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PacingPriors:
    """What the pacer assumes before the campaign has statistics of its own in this run.

    A fresh campaign starts cautiously: assuming half the dials reach a person keeps the first
    minutes near progressive dialing (overdialing on a guess is how abandons happen);
    `pacing_priors` replaces these with the campaign's own recent figures when it has them.
    """

    live_rate: float = 0.5
    talk_s: float = 180.0
    wrap_s: float = 15.0


async def pacing_priors(store: Store, campaign_id: int, now: datetime) -> PacingPriors:
    """The campaign's answer rate and handle times over the last 7 days, where there are
    enough attempts to trust them (>= 50 finished, >= 20 connected)."""
    rows = await store.recent_outcomes(campaign_id, now - timedelta(days=7))
    base = PacingPriors()
    if len(rows) < 50:
        return base
    live = sum(1 for r in rows if r.result in (AttemptResult.CONNECTED, AttemptResult.ABANDONED))
    talks = [r.talk_s for r in rows if r.result is AttemptResult.CONNECTED and r.talk_s]
    wraps = [(r.wrapup_ended_at - r.ended_at).total_seconds() for r in rows
             if r.result is AttemptResult.CONNECTED and r.ended_at and r.wrapup_ended_at
             and r.wrapup_ended_at > r.ended_at]
    return PacingPriors(
        live_rate=min(0.95, max(0.02, live / len(rows))),
        talk_s=sum(talks) / len(talks) if len(talks) >= 20 else base.talk_s,
        wrap_s=sum(wraps) / len(wraps) if len(wraps) >= 20 else base.wrap_s,
    )


def engine_config(
    campaign: Campaign, *, max_lines: int | None, priors: PacingPriors | None = None
) -> EngineConfig:
    """The engine's view of a campaign row."""
    priors = priors or PacingPriors()
    specs = campaign.dispositions or []
    catalog = (
        {s["code"]: DispositionSpec(**_spec_kwargs(s)) for s in specs}
        if specs else disposition_catalog()
    )
    # the dialer's own code for a wrap-up that timed out is in every catalog
    catalog.setdefault(WRAPUP_TIMEOUT, disposition_catalog()[WRAPUP_TIMEOUT])
    # the preset bounds the campaign's abandon settings even when its row says otherwise
    # (written by SQL or an older version): never run looser than the jurisdiction allows
    ab = effective_abandon(
        compliance_preset(campaign.calling_window), cap=campaign.abandon_cap,
        window=campaign.abandon_window, grace_s=campaign.abandon_grace_s,
        amd_false_positive_rate=campaign.amd_false_positive_rate)
    if ab.clamped:
        log.warning("campaign %s: settings looser than its %s preset were tightened: %s",
                    campaign.name, campaign.calling_window, "; ".join(ab.clamped))
    return EngineConfig(
        campaign_id=campaign.name,
        mode=campaign.dial_mode,
        abandon=AbandonPolicy(
            cap=ab.cap, window=ab.window, grace_seconds=ab.grace_s,
            clock_start=campaign.abandon_clock_start,
            count_amd_false_positives=ab.count_amd_false_positives,
            amd_false_positive_rate=ab.amd_false_positive_rate,
        ),
        governor=settings_for_window(ab.window),
        retry=retry_policy_from_json(campaign.retry_rules),
        machine_policy=campaign.machine_policy,
        dispositions=catalog,
        # start the message inside the grace: leave 0.2 s for the node to begin playing
        agent_wait_seconds=max(0.1, ab.grace_s - 0.2),
        limits=LineLimits(
            max_lines=max_lines,
            max_lines_per_agent=max(campaign.max_dial_level, campaign.lines_per_agent, 1.0),
            power_lines_per_agent=campaign.lines_per_agent,
        ),
        ring_timeout_seconds=campaign.ring_timeout_s,
        # never cancel an unanswered call before the campaign's minimum ring (compliance)
        min_ring_seconds=campaign.min_ring_s,
        expected_live_rate=priors.live_rate,
        expected_talk_seconds=max(1.0, priors.talk_s),
        expected_wrap_seconds=max(1.0, priors.wrap_s),
        callback_grace=timedelta(seconds=campaign.callback_grace_s),
        timezone=campaign.timezone,
        # the engine closes a wrap-up without disposition after this (0: never)
        max_wrapup_seconds=campaign.max_wrapup_s,
    )


def amd_settings(campaign: Campaign, lead: LeadTicket) -> sip.AmdSettings | None:
    """The AMD a call to `lead` runs: None when the campaign has AMD off, or when the lead
    works for a client company and the campaign keeps AMD off for company numbers."""
    if not campaign.amd_enabled or (lead.company_lead and not campaign.amd_company_numbers):
        return None
    return sip.AmdSettings(max_analysis_ms=campaign.amd_max_ms, method=campaign.amd_method,
                           greeting_budget_ms=campaign.amd_greeting_budget_ms,
                           decide_by_ms=campaign.amd_decide_by_ms)


def _spec_kwargs(s: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog entry of the campaign row (JSON) as DispositionSpec keyword arguments."""
    out = dict(s)
    if out.get("new_status"):
        out["new_status"] = LeadStatus(out["new_status"])
    if out.get("default_next_contact") is not None:
        out["default_next_contact"] = timedelta(seconds=float(out["default_next_contact"]))
    return out
