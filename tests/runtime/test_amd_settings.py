"""AMD settings per campaign, through the whole DialerApp over the in-memory SIP pool: a
campaign can keep AMD off for leads of client companies (receptionists are what AMD most
often takes for machines), and the attempt row keeps why AMD decided as it did. The
campaign's keys go from the config through the campaign row (SQLite and PostgreSQL) to the
`AmdSettings` of its calls, and a bad value is refused naming the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AmdVerdict, AttemptResult, DialMode
from db import repositories as repo
from db.models import Attempt, Company, Lead
from db.session import create_engine, session_factory
from db.store import SqlStore
from dialer.agentsim import AgentProfile, simulated_agents
from dialer.app import DialerApp
from dialer.config import AgentConfig, CampaignConfig
from dialer.core.tickets import LeadTicket
from dialer.engine_setup import amd_settings
from dialer.ports import SipEventHandler
from sip.memory import MemoryPool
from support.leads import loopback_settings, make_numbers, seed_campaign


def test_amd_settings_follow_the_campaign() -> None:
    from datetime import UTC, datetime

    from db.models import Campaign

    c = Campaign(name="c", caller_id="+14155550100", amd_enabled=True, amd_max_ms=7000,
                 amd_method="energy", amd_greeting_budget_ms=3000, amd_decide_by_ms=4000,
                 amd_company_numbers=False)
    due = datetime(2026, 12, 4, tzinfo=UTC)
    person = LeadTicket(lead_id="1", phone_e164="+14155550101", due_at=due)
    office = LeadTicket(lead_id="2", phone_e164="+14155550102", due_at=due, company_lead=True)
    got = amd_settings(c, person)
    assert got is not None
    assert (got.max_analysis_ms, got.method, got.greeting_budget_ms, got.decide_by_ms) \
        == (7000, "energy", 3000, 4000)
    assert amd_settings(c, office) is None
    c.amd_company_numbers = True
    assert amd_settings(c, office) is not None
    c.amd_enabled = False
    assert amd_settings(c, person) is None


async def test_amd_keys_go_from_the_config_through_the_row_to_the_call(
        db_engine: AsyncEngine) -> None:
    from datetime import UTC, datetime

    sessions = session_factory(db_engine)
    store = SqlStore(sessions)
    lead = LeadTicket(lead_id="1", phone_e164="+14155550101",
                      due_at=datetime(2026, 12, 4, tzinfo=UTC))
    # a campaign the config never set the deadline for runs today's default
    await repo.upsert_campaign(sessions, CampaignConfig(name="c", caller_id="+14155550100",
                                                        amd_enabled=True))
    (row,) = await store.campaigns()
    got = amd_settings(row, lead)
    assert got is not None and (row.amd_decide_by_ms, got.decide_by_ms) == (2500, 2500)
    for decide_by in (3500, 0, 1000):  # a later deadline, none, the earliest allowed
        cfg = CampaignConfig(name="c", caller_id="+14155550100", amd_enabled=True,
                             amd_max_ms=5500, amd_greeting_budget_ms=3500,
                             amd_decide_by_ms=decide_by)
        await repo.upsert_campaign(sessions, cfg)
        (row,) = await store.campaigns()
        got = amd_settings(row, lead)
        assert got is not None
        assert (row.amd_decide_by_ms, got.decide_by_ms, got.greeting_budget_ms,
                got.max_analysis_ms) == (decide_by, decide_by, 3500, 5500)


@pytest.mark.parametrize(("values", "expected"), [
    ({"amd_decide_by_ms": 500}, "expected 0 (no deadline) or 1000-30000 ms after answer"),
    ({"amd_decide_by_ms": 30001}, "expected 0 (no deadline) or 1000-30000 ms after answer"),
    ({"amd_decide_by_ms": -1}, "expected 0 (no deadline) or 1000-30000 ms after answer"),
    ({"amd_decide_by_ms": "soon"}, "valid integer"),
    ({"amd_decide_by_ms": 7000}, "amd_decide_by_ms: 7000 is after amd_max_ms (6500)"),
])
def test_a_bad_deadline_is_refused_naming_the_key(values: dict[str, object],
                                                  expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        CampaignConfig(name="c", caller_id="+14155550100", **values)  # type: ignore[arg-type]
    (err,) = info.value.errors()
    assert "amd_decide_by_ms" in (".".join(map(str, err["loc"])) + err["msg"])
    assert expected in err["msg"]


def test_a_deadline_after_the_analysis_is_kept_for_the_energy_analyser() -> None:
    # the energy analyser has no deadline: the key is kept for a switch back to vad only
    cfg = CampaignConfig(name="c", caller_id="+14155550100", amd_method="energy",
                         amd_max_ms=3000, amd_decide_by_ms=7000)
    assert cfg.amd_decide_by_ms == 7000


async def test_company_leads_skip_amd_and_the_cause_is_kept(tmp_path: Path) -> None:
    now = SYSTEM_CLOCK.now()
    url = f"sqlite:///{tmp_path / 'amd.db'}"
    numbers = make_numbers(now, {"000": 2})
    await seed_campaign(url, "amd", numbers, now)
    engine = create_engine(url)
    office_number = numbers[0][0]
    async with session_factory(engine).begin() as s:
        company = Company(name="Acme", timezone="UTC",
                          weekly_hours={d: ["00:00-24:00"] for d in
                                        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
        s.add(company)
        await s.flush()
        await s.execute(update(Lead).where(Lead.phone_e164 == office_number)
                        .values(company_id=company.id))
    settings = loopback_settings(
        "amd", url, tmp_path / "var", 5060,
        [AgentConfig(login="ann", sip_uri="sip:ann@memory.invalid", password="pw")],
        CampaignConfig(name="amd", caller_id="+14155550100", trunk="pstn",
                       dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5,
                       amd_enabled=True, amd_company_numbers=False, calling_window="none"))
    pools: list[MemoryPool] = []

    def memory_pool(on_event: SipEventHandler) -> MemoryPool:
        pools.append(MemoryPool(on_event=on_event, trunks={"pstn"}))
        return pools[0]

    # every callee is an answering machine: only the company's lead may reach the agent
    app = DialerApp(settings, target_for=lambda e164: "sip:machine_0.2_3@memory.invalid",
                    pool_factory=memory_pool)
    task = asyncio.create_task(app.run())
    rows: list[Attempt] = []
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        assert app.broker is not None
        async with simulated_agents({"ann": "pw"}, app.broker.url, seed=1,
                                    profile=AgentProfile(wrapup_s=(0.1, 0.2),
                                                         auto_resume_s=(0.1, 0.2),
                                                         break_probability=0.0)):
            for _ in range(150):
                await asyncio.sleep(0.1)
                async with session_factory(engine)() as s:
                    rows = list((await s.scalars(select(Attempt))).all())
                if len(rows) == 2 and all(r.result for r in rows) \
                        and all(r.disposition for r in rows
                                if r.result is AttemptResult.CONNECTED):
                    break
        app.stop()
        await asyncio.wait_for(task, 30)
    finally:
        if not task.done():
            app.stop()
            await asyncio.wait_for(task, 30)
        await engine.dispose()
    by_number = {r.phone_e164: r for r in rows}
    office, person = by_number[office_number], by_number[numbers[1][0]]
    assert (office.amd_verdict, office.amd_cause) == (AmdVerdict.NOT_RUN, None)
    assert office.result is AttemptResult.CONNECTED
    assert (person.amd_verdict, person.amd_cause) == (AmdVerdict.MACHINE, "long_greeting")
    assert person.result is AttemptResult.MACHINE and person.amd_ms is not None
