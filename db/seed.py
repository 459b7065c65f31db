"""Seeding a campaign with companies and leads in one transaction (the demo, tests, benches).

Plain values in (`CompanySeed`, `LeadSeed`), so callers build no ORM rows and run no SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from db.models import Campaign, Company, Lead
from db.repositories import Sessions, translated


@dataclass(frozen=True, slots=True)
class CompanySeed:
    name: str
    timezone: str
    #: weekday ("mon".."sun") -> [["09:00", "12:00"], ...] (scheduling.calendar's format)
    weekly_hours: Mapping[str, list[list[str]]] | None = None
    holiday_country: str | None = None
    closures: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LeadSeed:
    phone_e164: str
    timezone: str | None = None
    name: str | None = None
    #: name of a company of the same seed
    company: str | None = None
    priority: int = 0
    custom_fields: Mapping[str, object] = field(default_factory=dict)


@translated
async def seed_campaign(
    sessions: Sessions, *, name: str, caller_id: str, leads: Iterable[LeadSeed], now: datetime,
    companies: Iterable[CompanySeed] = (),
) -> int:
    """Create campaign `name` (if missing) with `companies` and one lead per `LeadSeed`, each
    due at `now`. Returns the campaign id."""
    async with sessions.begin() as s:
        company_ids: dict[str, int] = {}
        for c in companies:
            row = Company(name=c.name, timezone=c.timezone,
                          weekly_hours=dict(c.weekly_hours or {}),
                          holiday_country=c.holiday_country, closures=list(c.closures))
            s.add(row)
            await s.flush()
            company_ids[c.name] = row.id
        camp = await s.scalar(select(Campaign).where(Campaign.name == name))
        if camp is None:
            camp = Campaign(name=name, caller_id=caller_id)
            s.add(camp)
            await s.flush()
        for lead in leads:
            s.add(Lead(campaign_id=camp.id, phone_e164=lead.phone_e164, timezone=lead.timezone,
                       name=lead.name, priority=lead.priority,
                       company_id=company_ids[lead.company] if lead.company else None,
                       custom_fields=dict(lead.custom_fields), next_call_at=now))
        return camp.id
