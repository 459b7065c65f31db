"""An agent who never sends a disposition is made ready again after the campaign's
max_wrap-up time, and the attempt is closed with the dialer's `wrapup_timeout` code, which no
agent may send itself. Real SIPp call, real MQTT agent client, SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from common.vocabulary import WRAPUP_TIMEOUT, AgentState, AttemptResult
from db.models import Attempt
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.bus.client import AgentClient
from dialer.bus.errors import ProtocolError
from dialer.bus.messages import (
    CallEndedEvt,
    DispositionCmd,
    LoginCmd,
    ReadyCmd,
    ScreenPopEvt,
    StateEvt,
)
from dialer.config import AgentConfig, CampaignConfig
from sip.sipp import SippProcess
from support.leads import loopback_settings, make_numbers, seed_campaign

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


async def next_of(client: AgentClient, kind: type, seconds: float = 30.0) -> object:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        ev = await client.next_event(max(0.1, deadline - asyncio.get_running_loop().time()))
        if isinstance(ev, kind):
            return ev


async def test_missing_disposition_is_closed_by_the_dialer(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'wrap.db'}"
    await seed_campaign(url, "wrap", make_numbers(now, {"000": 1}), now)  # answers, talks 6 s
    with SippProcess.callee(max_lifetime_s=120) as callee, \
            SippProcess.agent(max_lifetime_s=120) as phones:
        settings = loopback_settings(
            "wrap", url, tmp_path / "var", callee.port,
            [AgentConfig(login="slow", sip_uri=phones.uri("slow"), password="pw")],
            CampaignConfig(name="wrap", caller_id="+14155550100", trunk="pstn",
                           dial_mode="progressive", max_wrapup_s=3.0))
        app = DialerApp(settings)
        task = asyncio.create_task(app.run())
        try:
            await asyncio.wait_for(app.ready.wait(), 60)
            assert app.broker is not None
            async with AgentClient("slow", "pw", app.broker.url) as agent:
                await agent.request(LoginCmd(login="slow"))
                await agent.request(ReadyCmd(login="slow"))
                pop = await next_of(agent, ScreenPopEvt)
                assert isinstance(pop, ScreenPopEvt)
                assert WRAPUP_TIMEOUT not in {d.code for d in pop.dispositions}
                await next_of(agent, CallEndedEvt)
                with pytest.raises(ProtocolError):  # the dialer's own code, refused
                    await agent.request(DispositionCmd(login="slow", attempt_id=pop.attempt_id,
                                                       code=WRAPUP_TIMEOUT))
                # ... and then the agent simply gives no disposition
                while True:
                    state = await next_of(agent, StateEvt, 20)
                    assert isinstance(state, StateEvt)
                    if state.state is AgentState.READY:
                        break
            engine = create_engine(url)
            try:
                for _ in range(40):  # the record is written right after the state change
                    async with session_factory(engine)() as s:
                        row = (await s.scalars(select(Attempt))).one()
                    if row.disposition is not None:
                        break
                    await asyncio.sleep(0.25)
            finally:
                await engine.dispose()
            assert row.result is AttemptResult.CONNECTED
            assert row.disposition == WRAPUP_TIMEOUT
        finally:
            app.stop()
            await asyncio.wait_for(task, 60)
