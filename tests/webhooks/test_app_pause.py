"""`dialer run`'s wiring of the webhooks (DialerApp over the in-memory SIP pool): the worker
runs inside the app, and `campaign.paused` is posted when the trunk's breaker opens and when
the calendar closes the campaign, not again on a failed trial call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import DialMode
from db import webhooks as wh
from db.models import Campaign
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.config import AgentConfig, CampaignConfig, WebhooksSection
from dialer.ports import SipEventHandler
from sip.api import TrunkHealthChanged
from sip.memory import MemoryPool
from support.leads import loopback_settings, make_numbers, seed_campaign

from .receiver import Receiver, verify_signature


def breaker(state: str, previous: str) -> TrunkHealthChanged:
    return TrunkHealthChanged(call_id="trunk:pstn", trunk="pstn", state=state,
                              previous=previous, reason="test", failures=5)


async def test_campaign_paused_by_the_trunk_breaker_and_the_calendar(tmp_path: Path) -> None:
    now = SYSTEM_CLOCK.now()
    url = f"sqlite:///{tmp_path / 'app.db'}"
    await seed_campaign(url, "mem", make_numbers(now, {"000": 1}), now)
    settings = loopback_settings(
        "mem", url, tmp_path / "var", 5060,
        [AgentConfig(login="ann", sip_uri="sip:ann@memory.invalid", password="pw")],
        CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                       dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5))
    settings = settings.model_copy(update={"webhooks": WebhooksSection(poll_interval_s=0.05)})

    def memory_pool(on_event: SipEventHandler) -> MemoryPool:
        return MemoryPool(on_event=on_event, trunks={"pstn"})

    engine = create_engine(url)
    sessions = session_factory(engine)
    async with Receiver() as r:
        _, secret = await wh.create_subscription(sessions, r.url, ["campaign.paused"],
                                                 created_by="t", now=now)
        app = DialerApp(settings, target_for=lambda e164: "sip:answer_0.2_0.5@memory.invalid",
                        pool_factory=memory_pool)
        task = asyncio.create_task(app.run())
        try:
            await asyncio.wait_for(app.ready.wait(), 30)
            async with sessions() as s:
                cid = await s.scalar(select(Campaign.id).where(Campaign.name == "mem"))
            app._on_sip_event(breaker("open", "closed"))
            app._on_sip_event(breaker("half_open", "open"))
            app._on_sip_event(breaker("open", "half_open"))  # the trial failed: no new event
            app._on_sip_event(breaker("closed", "half_open"))
            assert cid is not None
            await app._close(cid)
            await app._close(cid)  # already closed: nothing more
            for _ in range(150):
                if len(r.accepted()) >= 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        finally:
            app.stop()
            await asyncio.wait_for(task, 30)
            await engine.dispose()
    got = [(q.event, q.json["data"]["reason"], q.json["data"]["campaign"]) for q in r.accepted()]
    assert got == [("campaign.paused", "trunk_down", "mem"),
                   ("campaign.paused", "calendar_closed", "mem")]
    assert all(verify_signature(secret, q.headers, q.body) for q in r.requests)
