"""Nothing lost through a stop: the whole DialerApp over the in-memory SIP pool, the embedded
MQTT broker and a desktop speaking the agent protocol (dialer.bus.client.AgentClient).

* a stop waits for the agent's disposition, which is acknowledged once it is committed;
* a stop that outlasts the agent's wrap-up leaves the call "needs outcome": the lead is not
  called again; the next start restores the agent paused to finish that outcome (no login
  needed), its `state` lists the open call, and the late disposition frees the lead and makes
  the agent ready (a second lead is dialed and bridged to it);
* a re-sent disposition is answered `already_disposed`; the state names its attempt;
* one session per login: a stale session cannot log the live one out.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptResult, DialMode
from db.models import Attempt, Lead
from db.session import create_engine, session_factory
from dialer.app import DialerApp, RunSummary
from dialer.bus.client import AgentClient
from dialer.bus.errors import ErrorCode, ProtocolError
from dialer.bus.messages import (
    CallEndedEvt,
    DialerMessage,
    DispositionCmd,
    GetStateCmd,
    LoginCmd,
    LogoutCmd,
    ReadyCmd,
    ScreenPopEvt,
    StateEvt,
)
from dialer.config import AgentConfig, CampaignConfig, Settings
from dialer.dispositions import OUTCOME_PAUSE
from dialer.ports import SipEventHandler
from sip.memory import MemoryPool
from support.leads import loopback_settings, make_numbers, seed_campaign

LOGIN, PASSWORD = "ann", "pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(tmp_path: Path, url: str, mqtt_port: int, wrapup_deadline_s: float) -> Settings:
    s = loopback_settings(
        "keep", url, tmp_path / "var", 5060,
        [AgentConfig(login=LOGIN, sip_uri="sip:ann@memory.invalid", password=PASSWORD)],
        CampaignConfig(name="keep", caller_id="+14155550100", trunk="pstn",
                       dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5))
    return s.model_copy(update={
        "mqtt": s.mqtt.model_copy(update={"embedded_port": mqtt_port}),
        "dialer": s.dialer.model_copy(update={"wrapup_deadline_s": wrapup_deadline_s}),
    })


@contextlib.asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[tuple[DialerApp, asyncio.Task[RunSummary]]]:
    def memory_pool(on_event: SipEventHandler) -> MemoryPool:
        return MemoryPool(on_event=on_event, trunks={"pstn"})

    # every callee answers after 0.2 s and talks for 0.3 s
    app = DialerApp(settings, target_for=lambda e164: "sip:answer_0.2_0.3@memory.invalid",
                    pool_factory=memory_pool)
    task = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        yield app, task
    finally:
        if not task.done():
            app.stop()
            await asyncio.wait_for(task, 60)


async def _event(agent: AgentClient, want: Callable[[DialerMessage], bool],
                 seconds: float = 20.0) -> DialerMessage:
    async with asyncio.timeout(seconds):
        while True:
            ev = await agent.next_event(wait_s=seconds)
            if want(ev):
                return ev


async def _attempts(url: str) -> list[Attempt]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.scalars(select(Attempt).order_by(Attempt.id))).all())
    finally:
        await engine.dispose()


async def _lead(url: str, lead_id: int) -> Lead:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            lead = await s.get(Lead, lead_id)
            assert lead is not None
            return lead
    finally:
        await engine.dispose()


def _disposition(attempt_id: int, session: str | None = None) -> DispositionCmd:
    return DispositionCmd(login=LOGIN, attempt_id=attempt_id, code="no_need",
                          session=session)


async def test_a_stop_waits_for_the_disposition_and_acks_it_once_saved(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    await seed_campaign(url, "keep", make_numbers(SYSTEM_CLOCK.now(), {"000": 1}),
                        SYSTEM_CLOCK.now())
    settings = _settings(tmp_path, url, _free_port(), wrapup_deadline_s=30)
    async with _running(settings) as (app, task):
        assert app.broker is not None
        async with AgentClient(LOGIN, PASSWORD, app.broker.url) as agent:
            await agent.request(LoginCmd(login=LOGIN, session="desk-0001"))
            state = await _event(agent, lambda e: isinstance(e, StateEvt)
                                 and e.dispositions is not None)  # the reply, with the catalog
            assert isinstance(state, StateEvt) and state.state.value == "paused"
            assert state.needs_outcome == []
            await agent.request(ReadyCmd(login=LOGIN, session="desk-0001"))
            pop = await _event(agent, lambda e: isinstance(e, ScreenPopEvt))
            assert isinstance(pop, ScreenPopEvt)
            talking = await _event(agent, lambda e: isinstance(e, StateEvt)
                                   and e.state.value == "talking")
            assert isinstance(talking, StateEvt) and talking.attempt_id == pop.attempt_id
            await _event(agent, lambda e: isinstance(e, CallEndedEvt))
            app.stop()  # SIGTERM while the agent is in wrap-up
            await asyncio.sleep(1.0)
            assert not task.done(), "the dialer must wait for the agent's disposition"
            await agent.request(_disposition(pop.attempt_id, "desk-0001"))
            # the ack came after the commit: the row has it now, while the dialer still runs
            (row,) = await _attempts(url)
            assert row.disposition == "no_need"
        summary = await asyncio.wait_for(task, 30)
    assert summary.held_for_outcome == 0


async def test_a_lost_disposition_holds_the_lead_until_recorded_after_the_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    numbers = make_numbers(SYSTEM_CLOCK.now(), {"000": 2})
    await seed_campaign(url, "keep", numbers, SYSTEM_CLOCK.now())
    port = _free_port()
    # run 1: the agent takes a call and never gives its disposition; the stop gives up
    async with _running(_settings(tmp_path, url, port, wrapup_deadline_s=0.5)) as (app, task):
        assert app.broker is not None
        async with AgentClient(LOGIN, PASSWORD, app.broker.url) as agent:
            await agent.request(LoginCmd(login=LOGIN))
            await agent.request(ReadyCmd(login=LOGIN))
            pop = await _event(agent, lambda e: isinstance(e, ScreenPopEvt))
            assert isinstance(pop, ScreenPopEvt)
            await _event(agent, lambda e: isinstance(e, CallEndedEvt))
            app.stop()
            summary = await asyncio.wait_for(task, 30)
    assert summary.held_for_outcome == 1
    first = pop.attempt_id
    (row,) = await _attempts(url)
    assert row.id == first and row.result is AttemptResult.CONNECTED and row.disposition is None
    held = await _lead(url, row.lead_id)
    assert held.needs_outcome_attempt_id == first and held.next_call_at is None

    # run 2: nobody logs in; the agent, stopped in wrap-up, is restored paused to finish that
    # call's outcome; once given, the dialer makes it ready and dials the other lead for it
    async with _running(_settings(tmp_path, url, port, wrapup_deadline_s=5)) as (app, task):
        assert app.broker is not None
        async with AgentClient(LOGIN, PASSWORD, app.broker.url) as agent:
            for _ in range(50):  # the restore runs as the campaign starts: ask until done
                await agent.request(GetStateCmd(login=LOGIN))
                state = await _event(agent, lambda e: isinstance(e, StateEvt)
                                     and e.needs_outcome is not None)
                assert isinstance(state, StateEvt)
                if state.state is not AgentState.LOGGED_OUT:
                    break
                await asyncio.sleep(0.1)
            assert state.needs_outcome == [first]
            assert state.state is AgentState.PAUSED and state.reason == OUTCOME_PAUSE
            await asyncio.sleep(1.0)
            assert len(await _attempts(url)) == 1, "no call for an agent owing an outcome"
            await agent.request(_disposition(first))  # the lost outcome, recorded late
            with pytest.raises(ProtocolError) as again:
                await agent.request(_disposition(first))
            assert again.value.code is ErrorCode.ALREADY_DISPOSED
            for _ in range(100):
                rows = await _attempts(url)
                if len(rows) == 2 and rows[1].bridged_at is not None:
                    break
                await asyncio.sleep(0.1)
            assert len(rows) == 2, "dialing resumed without a login"
            assert rows[1].lead_id != row.lead_id, "the held lead was called again"
            assert rows[1].bridged_at is not None
            await _event(agent, lambda e: isinstance(e, CallEndedEvt)
                         and e.attempt_id == rows[1].id)
            await agent.request(_disposition(rows[1].id))
    late = (await _attempts(url))[0]
    assert late.disposition == "no_need"
    freed = await _lead(url, row.lead_id)
    assert freed.needs_outcome_attempt_id is None and freed.attempts == 1


async def test_a_stale_session_cannot_log_out_the_live_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    await seed_campaign(url, "keep", [], SYSTEM_CLOCK.now())
    async with _running(_settings(tmp_path, url, _free_port(), 1)) as (app, _task):
        assert app.broker is not None
        async with AgentClient(LOGIN, PASSWORD, app.broker.url) as old, \
                AgentClient(LOGIN, PASSWORD, app.broker.url) as new:
            await old.request(LoginCmd(login=LOGIN, session="tab-old-1"))
            with pytest.raises(ProtocolError) as refused:
                await new.request(LoginCmd(login=LOGIN, session="tab-new-1"))
            assert refused.value.code is ErrorCode.SESSION_ACTIVE
            await new.request(LoginCmd(login=LOGIN, session="tab-new-1", takeover=True))
            await new.request(ReadyCmd(login=LOGIN, session="tab-new-1"))
            with pytest.raises(ProtocolError) as stale:
                await old.request(LogoutCmd(login=LOGIN, session="tab-old-1"))
            assert stale.value.code is ErrorCode.STALE_SESSION
            await new.request(GetStateCmd(login=LOGIN, session="tab-new-1"))
            # both sessions read the login's one evt topic: the replies to both logins
            # (paused), then the one to get_state (ready)
            replies = [await _event(new, lambda e: isinstance(e, StateEvt)
                                    and e.dispositions is not None) for _ in range(3)]
            assert [r.state.value for r in replies if isinstance(r, StateEvt)] == \
                ["paused", "paused", "ready"]
