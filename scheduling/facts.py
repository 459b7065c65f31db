"""From database rows to the pure rules, and back: campaign rules, lead facts, next_call_at.

`rules_for_campaign` turns a Campaign (+ its Company) into `CallingRules`; `refresh_callability`
recomputes `Lead.next_call_at` / `Lead.never_reason` (the hopper's cached copy of
`next_callable_at`) for a campaign's leads in batches, reading DNC entries, recent attempts,
refusals and pending callbacks in one query each per batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from common.vocabulary import AttemptResult, RetryPolicy
from db.callability import callability_batch, campaign_and_leads
from db.models import Campaign, Company, Lead, hopper_tier
from db.repositories import Sessions
from scheduling.calendar import CalendarError, CompanyCalendar
from scheduling.callable import CallingRules, LeadFacts, next_callable_at
from scheduling.compliance import compliance_preset, regional_windows
from scheduling.windows import CallingWindow, jurisdiction_for_number

log = logging.getLogger(__name__)

__all__ = ["RefreshStats", "lead_facts", "refresh_callability", "retry_policy_from_json",
           "rules_for_campaign"]

#: disposition codes that mean "the callee refused" (France: no call for 60 days after one)
REFUSAL_CODES: frozenset[str] = frozenset({"refused", "do_not_call"})
#: how far back attempts are read: covers every rolling cap and the refusal cool-off presets
HISTORY = timedelta(days=61)


def retry_policy_from_json(data: Mapping[str, Any] | None) -> RetryPolicy:
    """Campaign.retry_rules JSON -> RetryPolicy; keys not given keep the domain defaults."""
    if not data:
        return RetryPolicy()
    known = {"max_attempts", "max_attempts_per_30_days", "delays_s"}
    unknown = set(data) - known
    if unknown:
        raise CalendarError(
            f"retry_rules: unknown key(s) {sorted(unknown)}; known: {sorted(known)}"
        )
    base = RetryPolicy()
    delays = dict(base.delays)
    for k, v in (data.get("delays_s") or {}).items():
        try:
            delays[AttemptResult(k)] = timedelta(seconds=float(v))
        except ValueError as e:
            raise CalendarError(
                f"retry_rules.delays_s: {k!r}={v!r} (results: {[r.value for r in AttemptResult]})"
            ) from e
    return RetryPolicy(
        max_attempts=int(data.get("max_attempts", base.max_attempts)),
        max_attempts_per_30_days=data.get("max_attempts_per_30_days"),
        delays=delays,
    )


def rules_for_campaign(
    campaign: Campaign,
    company: Company | None,
    *,
    abandon_lockout: timedelta = timedelta(hours=72),
    windows: Mapping[str, CallingWindow] | None = None,
) -> CallingRules:
    """The campaign's CallingRules (its compliance preset: the callee's window, the stricter
    windows of subdivisions such as Florida, the UK's lock-out and machine gap; its retry
    rules; its company calendar). `windows` adds or replaces jurisdictions' windows."""
    calendar = CompanyCalendar.from_company(company) if company is not None else None
    preset = compliance_preset(campaign.calling_window)
    if preset.abandon_lockout is not None:
        abandon_lockout = max(abandon_lockout, preset.abandon_lockout)
    return CallingRules(
        retry=retry_policy_from_json(campaign.retry_rules),
        window=preset.window,
        windows={**regional_windows(preset), **(windows or {})},
        calendar=calendar,
        abandon_lockout=abandon_lockout,
        machine_redial_gap=preset.machine_redial_gap,
    )


def lead_facts(
    lead: Lead,
    *,
    dnc: bool,
    recent_attempts: Sequence[datetime] = (),
    refused_at: datetime | None = None,
    callback_at: datetime | None = None,
    calendar: CompanyCalendar | None = None,
    jurisdiction: str | None = None,
) -> LeadFacts:
    return LeadFacts(
        lead_id=lead.id,
        status=lead.status,
        timezone=lead.timezone,
        phone_e164=lead.phone_e164,
        dnc=dnc,
        attempts=lead.attempts,
        last_attempt_at=lead.last_attempt_at,
        last_result=lead.last_result,
        last_abandoned_at=lead.last_abandoned_at,
        recent_attempts=tuple(recent_attempts),
        callback_at=callback_at,
        next_contact_at=lead.next_contact_at,
        refused_at=refused_at,
        calendar=calendar,
        jurisdiction=jurisdiction,
        needs_outcome=lead.needs_outcome_attempt_id is not None,
    )


@dataclass(slots=True)
class RefreshStats:
    leads: int = 0
    callable_now: int = 0
    never: int = 0
    #: for leads callable only later: which rule holds each back (Gate value -> count)
    held_back: dict[str, int] = field(default_factory=dict)


async def refresh_callability(
    sessions: Sessions,
    *,
    campaign_id: int,
    now: datetime,
    lead_ids: Sequence[int] | None = None,
    abandon_lockout: timedelta = timedelta(hours=72),
    windows: Mapping[str, CallingWindow] | None = None,
    batch: int = 500,
) -> RefreshStats:
    """Recompute next_call_at / never_reason / hopper_tier for a campaign's leads.

    `windows` maps a jurisdiction (the number's region, e.g. "CA") to its window; leads of
    other regions use the campaign's preset.
    """
    stats = RefreshStats()
    scope = await campaign_and_leads(sessions, campaign_id, lead_ids)
    if scope is None:
        raise LookupError(f"campaign {campaign_id} does not exist")
    rules = rules_for_campaign(scope.campaign, scope.company, abandon_lockout=abandon_lockout,
                               windows=windows)
    ids = scope.lead_ids
    calendars: dict[int, CompanyCalendar | None] = {}
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        async with callability_batch(sessions) as b:
            leads = await b.leads(chunk)
            dnc = await b.dnc_among([lead.phone_e164 for lead in leads])
            history: dict[int, list[datetime]] = defaultdict(list)
            refused: dict[int, datetime] = {}
            for lead_id, created, disposition in await b.attempts_since(chunk, now - HISTORY):
                history[lead_id].append(created)
                if disposition in REFUSAL_CODES and (
                    lead_id not in refused or created > refused[lead_id]
                ):
                    refused[lead_id] = created
            callbacks = await b.earliest_pending_callbacks(chunk)
            for cid in {lead.company_id for lead in leads if lead.company_id} - set(calendars):
                comp = await b.company(cid)
                try:
                    calendars[cid] = CompanyCalendar.from_company(comp) if comp else None
                except CalendarError as e:
                    # fail closed: a lead whose company hours are unknown is not dialed
                    log.error("company %s: unusable calendar, its leads are held: %s", cid, e)
                    calendars[cid] = CompanyCalendar(timezone="UTC", weekly=((),) * 7,
                                                     name=f"broken-{cid}", horizon_days=1)
            updates = []
            for lead in leads:
                cal = calendars.get(lead.company_id) if lead.company_id else None
                facts = lead_facts(
                    lead,
                    dnc=lead.phone_e164 in dnc,
                    recent_attempts=history.get(lead.id, ()),
                    refused_at=refused.get(lead.id),
                    callback_at=callbacks.get(lead.id),
                    calendar=cal,
                    jurisdiction=jurisdiction_for_number(lead.phone_e164)
                    if rules.windows else None,
                )
                res = next_callable_at(facts, now, rules)
                updates.append({
                    "id": lead.id,
                    "next_call_at": res.at,
                    "never_reason": res.reason.value if res.reason else None,
                    "hopper_tier": hopper_tier(
                        callback_due=lead.id in callbacks, status=lead.status,
                        open_complaint=lead.has_open_complaint,
                    ),
                })
                stats.leads += 1
                if res.at is None:
                    stats.never += 1
                elif res.at <= now:
                    stats.callable_now += 1
                elif res.gate is not None:
                    stats.held_back[res.gate.value] = stats.held_back.get(res.gate.value, 0) + 1
            await b.set_callability(updates)
    # a whole-campaign refresh is worth an INFO line; the per-call ones are not
    log.log(logging.INFO if lead_ids is None else logging.DEBUG,
            "campaign %s: callability refreshed for %d leads (%d now, %d never)",
            campaign_id, stats.leads, stats.callable_now, stats.never)
    return stats
