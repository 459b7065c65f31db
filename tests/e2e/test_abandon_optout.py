"""Compliance on the real call path: an answered person with no free agent hears the message
within the grace time and is counted abandoned; a key pressed during that message puts the
number on the DNC list at once; the same key pressed while talking to an agent does not.

Power mode dials three lines for one agent and every callee answers after 1 s, so two of
three answered people find no agent. Each callee presses 9 one second after answering
(SIPp `optout` behaviour): during the message for those two, during the agent conversation
for the third.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from common.vocabulary import AttemptResult, AttemptStage, LeadStatus
from db.models import Attempt, DncEntry, Lead
from db.session import create_engine, session_factory
from dialer.agentsim import AgentProfile, simulated_agents
from dialer.app import DialerApp
from dialer.config import AgentConfig, CampaignConfig
from sip.sipp import SippProcess
from support.leads import loopback_settings, make_numbers, seed_campaign

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


async def test_abandon_message_and_optout_key(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'optout.db'}"
    numbers = make_numbers(now, {"000": 3})
    await seed_campaign(url, "optout", numbers, now)
    with SippProcess.callee(max_lifetime_s=200) as callee, \
            SippProcess.agent(max_lifetime_s=200) as phones:
        settings = loopback_settings(
            "optout", url, tmp_path / "var", callee.port,
            [AgentConfig(login="solo", sip_uri=phones.uri("solo"), password="pw")],
            CampaignConfig(name="optout", caller_id="+14155550100", trunk="pstn",
                           dial_mode="power", lines_per_agent=3.0, abandon_grace_s=0.5,
                           ring_timeout_s=8, min_ring_s=5),
            nodes=2, dial_plan="support.leads:optout_user")
        app = DialerApp(settings)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.ready.wait(), 60)
        engine = create_engine(url)
        sessions = session_factory(engine)
        try:
            assert app.broker is not None
            async with simulated_agents({"solo": "pw"}, app.broker.url, seed=1,
                                        profile=AgentProfile(break_probability=0.0)):
                rows: list[Attempt] = []
                for _ in range(120):
                    await asyncio.sleep(0.5)
                    async with sessions() as s:
                        rows = list((await s.scalars(select(Attempt))).all())
                    ended = [r for r in rows if r.result is AttemptResult.ABANDONED]
                    bridged = [r for r in rows if r.bridged_at is not None]
                    if len(ended) >= 2 and bridged:
                        break
                app.stop()
                await asyncio.wait_for(task, 60)
            async with sessions() as s:
                rows = list((await s.scalars(select(Attempt))).all())
                dnc = set((await s.scalars(select(DncEntry.phone_e164))).all())
                status = dict((await s.execute(select(Lead.phone_e164, Lead.status))).all())
        finally:
            if not task.done():
                app.stop()
                await asyncio.wait_for(task, 60)
            await engine.dispose()

    abandoned = [r for r in rows if r.result is AttemptResult.ABANDONED]
    talked = [r for r in rows if r.bridged_at is not None]
    assert len(abandoned) >= 2 and talked, [(r.result, r.bridged_at) for r in rows]
    assert all(r.stage is AttemptStage.ENDED for r in rows)
    for r in abandoned:
        # the message started within the 2-second rule, counted from the answer
        assert r.answered_at is not None and r.message_started_at is not None
        assert (r.message_started_at - r.answered_at).total_seconds() <= 2.0
        # the key during the message: opted out, on the DNC list, lead stopped for good
        assert r.opted_out
        assert r.phone_e164 in dnc
        assert status[r.phone_e164] is LeadStatus.DNC
    for r in talked:  # the same key while talking to the agent is not an opt-out
        assert not r.opted_out
        assert r.phone_e164 not in dnc
