"""The whole DialerApp (store, scheduling jobs, embedded MQTT broker, simulated agents) over
the in-memory SIP pool: the app's wiring of its ports, in seconds and without SIPp."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AttemptResult, AttemptStage, DialMode
from db.models import Attempt
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, simulated_agents
from dialer.app import DialerApp
from dialer.config import AgentConfig, CampaignConfig
from dialer.ports import SipEventHandler
from sip.memory import MemoryPool
from support.leads import loopback_settings, make_numbers, seed_campaign


async def test_dialer_app_runs_a_campaign_over_the_memory_pool(tmp_path: Path) -> None:
    now = SYSTEM_CLOCK.now()
    url = f"sqlite:///{tmp_path / 'app.db'}"
    numbers = make_numbers(now, {"000": 2})
    await seed_campaign(url, "mem", numbers, now)
    settings = loopback_settings(
        "mem", url, tmp_path / "var", 5060,
        [AgentConfig(login="ann", sip_uri="sip:ann@memory.invalid", password="pw")],
        CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                       dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5))
    pools: list[MemoryPool] = []

    def memory_pool(on_event: SipEventHandler) -> MemoryPool:
        pools.append(MemoryPool(on_event=on_event, trunks={"pstn"}))
        return pools[0]

    app = DialerApp(settings, target_for=lambda e164: "sip:answer_0.2_0.5@memory.invalid",
                    pool_factory=memory_pool)
    task = asyncio.create_task(app.run())
    engine = create_engine(url)
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        assert app.broker is not None and app.pool is pools[0]
        rows: list[Attempt] = []
        async with simulated_agents({"ann": "pw"}, app.broker.url, seed=1,
                                    profile=AgentProfile(wrapup_s=(0.1, 0.2),
                                                         auto_resume_s=(0.1, 0.2),
                                                         break_probability=0.0)):
            for _ in range(150):
                await asyncio.sleep(0.1)
                async with session_factory(engine)() as s:
                    rows = list((await s.scalars(select(Attempt))).all())
                if len(rows) == 2 and all(r.disposition for r in rows):
                    break
        app.stop()
        summary = await asyncio.wait_for(task, 30)
    finally:
        if not task.done():
            app.stop()
            await asyncio.wait_for(task, 30)
        await engine.dispose()
    assert sorted(r.phone_e164 for r in rows) == sorted(n for n, _ in numbers)
    assert all(r.result is AttemptResult.CONNECTED and r.stage is AttemptStage.ENDED
               for r in rows)
    assert summary.placed == 2 and summary.results == {"connected": 2}
    assert summary.orphans_closed_at_start == 0 and summary.closed_at_stop == 0
