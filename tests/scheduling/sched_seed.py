"""A hand-made campaign day in Riga (UTC+2 in November) shared by the DB and CLI tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from common.vocabulary import AttemptResult, CallbackScope, DialMode, LeadStatus
from db.models import Agent, Attempt, Callback, Campaign, Company, DncEntry, Lead
from db.session import session_factory

DAY = date(2026, 11, 23)  # a Monday


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


async def seed(engine: AsyncEngine) -> dict[str, int]:
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        company = Company(
            name="Riga office", timezone="Europe/Riga",
            weekly_hours={d: [["09:00", "12:00"], ["13:00", "18:00"]]
                          for d in ("mon", "tue", "wed", "thu", "fri")},
            holiday_country="LV",
        )
        s.add(company)
        await s.flush()
        camp = Campaign(name="riga", caller_id="+37167000000", timezone="Europe/Riga",
                        company_id=company.id, active=False, callback_grace_s=900)
        alice = Agent(login="alice", sip_uri="sip:alice@127.0.0.1")
        bob = Agent(login="bob", sip_uri="sip:bob@127.0.0.1")
        s.add_all([camp, alice, bob])
        await s.flush()
        ids = {"campaign": camp.id, "alice": alice.id, "bob": bob.id, "company": company.id}

        def lead(n: int, **kw: object) -> Lead:
            row = Lead(campaign_id=camp.id, phone_e164=f"+3712000{n:04d}", **kw)
            s.add(row)
            return row

        due = utc(2026, 11, 23, 9)
        leads = {
            "cb_alice": lead(1, status=LeadStatus.HOT, next_call_at=due),
            "cb_campaign": lead(2, next_call_at=due),
            "hot": lead(3, status=LeadStatus.HOT, next_call_at=due, priority=1),
            "complaint": lead(4, status=LeadStatus.SERVED, has_open_complaint=True,
                              next_call_at=due),
            "rest_hi": lead(5, next_call_at=due, priority=5),
            "rest_lo": lead(6, next_call_at=utc(2026, 11, 23, 8)),
            "owned_bob": lead(7, next_call_at=due, owner_agent_id=bob.id),
            "tomorrow": lead(8, next_call_at=utc(2026, 11, 23, 22, 30)),  # 00:30 local on the 24th
            "never": lead(9, next_call_at=None, never_reason="max_attempts"),
            "dnc": lead(10, next_call_at=due),
            "done": lead(11, status=LeadStatus.DONE, next_call_at=due),
        }
        s.add(DncEntry(phone_e164="+37120000010", source="internal"))
        await s.flush()
        ids.update({k: v.id for k, v in leads.items()})
        s.add(Callback(campaign_id=camp.id, lead_id=leads["cb_alice"].id,
                       scope=CallbackScope.AGENT, owner_agent_id=alice.id,
                       due_at=utc(2026, 11, 23, 12), timezone="Europe/Riga"))
        s.add(Callback(campaign_id=camp.id, lead_id=leads["cb_campaign"].id,
                       scope=CallbackScope.CAMPAIGN, due_at=utc(2026, 11, 23, 8),
                       timezone="Europe/Riga"))
    return ids


async def day_of_attempts(engine: AsyncEngine, ids: dict[str, int]) -> None:
    sessions = session_factory(engine)
    cid = ids["campaign"]
    async with sessions.begin() as s:
        def att(lead: str, at: datetime, result: AttemptResult, agent: str | None = None,
                disposition: str | None = None, talk: float | None = None) -> Attempt:
            row = Attempt(campaign_id=cid, lead_id=ids[lead], phone_e164="+37120000000",
                          dial_mode=DialMode.PREDICTIVE, created_at=at, result=result,
                          agent_id=ids[agent] if agent else None, disposition=disposition,
                          talk_s=talk)
            s.add(row)
            return row

        # alice: 4 calls, 3 reached (one "not_reached" disposition), 1 meeting, 1 contract
        att("cb_alice", utc(2026, 11, 23, 7, 5), AttemptResult.CONNECTED, "alice",
            "meeting_set", 240.0)
        att("hot", utc(2026, 11, 23, 8), AttemptResult.CONNECTED, "alice", "contract", 300.5)
        att("complaint", utc(2026, 11, 23, 9), AttemptResult.CONNECTED, "alice",
            "not_reached", 20.0)
        cb_att = att("rest_hi", utc(2026, 11, 23, 10), AttemptResult.CONNECTED, "alice",
                     "callback", 95.0)
        # bob: 1 call at 23:59 local (21:59 UTC) still counts for the 23rd
        att("owned_bob", utc(2026, 11, 23, 21, 59), AttemptResult.CONNECTED, "bob",
            "no_need", 60.0)
        # the dialer's own: no answer, busy, abandoned (no agent)
        att("rest_lo", utc(2026, 11, 23, 11), AttemptResult.NO_ANSWER)
        att("rest_lo", utc(2026, 11, 23, 12), AttemptResult.BUSY)
        att("rest_lo", utc(2026, 11, 23, 13), AttemptResult.ABANDONED)
        # outside the local day: 23:30 UTC on the 22nd = 01:30 on the 23rd counts; 22:00 UTC
        # on the 23rd = 00:00 on the 24th does not
        att("hot", utc(2026, 11, 22, 23, 30), AttemptResult.NO_ANSWER)
        att("hot", utc(2026, 11, 23, 22, 0), AttemptResult.CONNECTED, "bob", "contract", 10.0)
        await s.flush()
        s.add(Callback(campaign_id=cid, lead_id=ids["rest_hi"], scope=CallbackScope.AGENT,
                       owner_agent_id=ids["alice"], due_at=utc(2026, 11, 25, 9),
                       attempt_id=cb_att.id))
