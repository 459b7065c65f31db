"""Transfers to an agent of another campaign of the same dialer (dialer/campaign_visits.py),
through the whole DialerApp (in-memory SIP pool, real SQLite and PostgreSQL): the fronter's
campaign "mem" dials, its agent ann hands the customer to cal, a closer of campaign "close".
cal visits "mem" for that call (its commands go there, it owes the disposition, "mem"'s pacer
does not count on it) and is back on "close" once free; a paused closer is refused by name;
a group transfer finds the closers of the other campaign."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.clock import SYSTEM_CLOCK
from common.vocabulary import AgentState, AttemptResult, DialMode
from db.models import Agent, AgentStateLog, Attempt, Campaign
from db.session import create_engine, session_factory
from dialer.app import DialerApp
from dialer.bus.errors import ErrorCode
from dialer.bus.messages import (
    DispositionCmd,
    HangupCmd,
    LoginCmd,
    PauseCmd,
    ReadyCmd,
    TransferCmd,
)
from dialer.call_transfer import ready_targets, transfer_groups
from dialer.config import AgentConfig, CampaignConfig, Settings
from dialer.ports import SipEventHandler
from sip.memory import MemoryPool
from support.app_run import Running, agent_cmd, until
from support.leads import loopback_settings, make_numbers, seed_campaign


def _settings(url: str, data: Path) -> Settings:
    mem = CampaignConfig(name="mem", caller_id="+14155550100", trunk="pstn",
                         dial_mode=DialMode.PROGRESSIVE, ring_timeout_s=5, min_ring_s=5,
                         max_wrapup_s=30.0)
    close = mem.model_copy(update={"name": "close"})
    agents = [AgentConfig(login="ann", sip_uri="sip:ann@memory.invalid", campaign="mem"),
              AgentConfig(login="cal", sip_uri="sip:cal@memory.invalid", campaign="close",
                          groups=["closers"]),
              AgentConfig(login="dot", sip_uri="sip:dot@memory.invalid", campaign="close",
                          groups=["closers"])]
    s = loopback_settings("visits", url, data, 5060, agents, mem)
    return s.model_copy(update={"campaigns": [mem, close]})


def _pool(on_event: SipEventHandler) -> MemoryPool:
    return MemoryPool(on_event=on_event, trunks={"pstn"})


async def run_app(url: str, data: Path) -> Running:
    # customers answer at once and talk for a minute: the test ends the calls itself
    return await Running.start(DialerApp(
        _settings(url, data), clock=SYSTEM_CLOCK,
        target_for=lambda e164: "sip:answer_0.2_60@memory.invalid", pool_factory=_pool))


@pytest.fixture
async def stack(db_url: str) -> AsyncIterator[tuple[str, Any]]:
    now = SYSTEM_CLOCK.now()
    await seed_campaign(db_url, "mem", make_numbers(now, {f"{i:03d}": 2 for i in range(3)}),
                        now)
    engine = create_engine(db_url)
    try:
        yield db_url, session_factory(engine)
    finally:
        await engine.dispose()


def _call_of(app: DialerApp, login: str) -> int | None:
    """The attempt id of the live call `login` is on in campaign "mem"."""
    rt = app.runtimes["mem"]
    return next((c.attempt_id for c in rt.calls.values() if c.agent_login == login), None)


def _state(app: DialerApp, campaign: str, login: str) -> AgentState | None:
    board = app.runtimes[campaign].engine.board
    return board.get(login).state if login in board else None


async def cal_finishes(app: DialerApp, attempt_id: int, code: str,
                       home_state: AgentState) -> None:
    """cal, visiting "mem", hangs up and gives the disposition there; then it is back on
    "close" in `home_state`."""
    assert await agent_cmd(app, "cal", HangupCmd(login="cal", attempt_id=attempt_id)) is None
    await until(lambda: _state(app, "mem", "cal") is AgentState.WRAP_UP, 10,
                "cal to wrap the call up")
    assert await agent_cmd(app, "cal", DispositionCmd(
        login="cal", attempt_id=attempt_id, code=code)) is None
    await until(lambda: _state(app, "close", "cal") is home_state, 10,
                f"cal back on campaign close, {home_state.value}")


async def test_a_closer_of_another_campaign_takes_the_call_and_goes_home(
        stack: tuple[str, Any], tmp_path: Path) -> None:
    url, sessions = stack
    run = await run_app(url, tmp_path / "var")
    app = run.app
    mem, close = app.runtimes["mem"], app.runtimes["close"]
    try:
        for who in ("cal", "dot"):
            assert await agent_cmd(app, who, LoginCmd(login=who)) is None
        assert await agent_cmd(app, "cal", ReadyCmd(login="cal")) is None
        assert await agent_cmd(app, "ann", LoginCmd(login="ann")) is None
        assert await agent_cmd(app, "ann", ReadyCmd(login="ann")) is None
        await until(lambda: _call_of(app, "ann") is not None
                    and _state(app, "mem", "ann") is AgentState.TALKING, 20,
                    "ann to talk to a customer")
        aid = _call_of(app, "ann")
        assert aid is not None

        # the picker offers the other campaign's ready closer, and its group
        assert "cal" in ready_targets(mem, "ann")
        assert {"name": "closers", "ready": 1} in transfer_groups(mem, "ann")

        # dot is paused at home: refused by name, nothing moves
        err = await agent_cmd(app, "ann", TransferCmd(login="ann", attempt_id=aid, to="dot"))
        assert err is not None and err.code is ErrorCode.INVALID_STATE
        assert "campaign close" in err.message and "paused" in err.message
        assert _state(app, "close", "dot") is AgentState.PAUSED
        assert app.agent_campaign["dot"] == "close"

        # ---- a blind transfer to cal: cal visits "mem" for this call
        working = mem.engine.board.working
        assert await agent_cmd(app, "ann", TransferCmd(
            login="ann", attempt_id=aid, to="cal", notes="ready to sign")) is None
        assert _state(app, "mem", "cal") is AgentState.TALKING
        assert _state(app, "mem", "ann") is AgentState.READY
        assert "cal" not in close.engine.board and "cal" in mem.agents
        assert app.agent_campaign["cal"] == "mem"
        assert mem.engine.board.working == working  # mem's pacer does not count on cal
        assert mem.engine.board.get("cal").visiting

        # cal's own commands reach "mem": it hangs up and owes the disposition
        await cal_finishes(app, aid, "interested", AgentState.READY)
        assert "cal" not in mem.engine.board and "cal" not in mem.agents
        assert app.agent_campaign["cal"] == "close" and "cal" in close.agents
        await mem.flush()
        async with sessions() as s:
            row = await s.scalar(select(Attempt).where(Attempt.id == aid))
            cal = await s.scalar(select(Agent).where(Agent.login == "cal"))
            assert row is not None and cal is not None
            assert (row.result, row.disposition, row.agent_id) == (
                AttemptResult.CONNECTED, "interested", cal.id)
        await close.flush()
        async with sessions() as s:
            log = (await s.execute(
                select(Campaign.name, AgentStateLog.state)
                .join(Campaign, Campaign.id == AgentStateLog.campaign_id)
                .where(AgentStateLog.agent_id == cal.id)
                .order_by(AgentStateLog.started_at, AgentStateLog.id))).all()
        # its visit is logged under "mem", its return under "close" (each campaign writes
        # its own rows: in time order, not in id order)
        assert [(c, st) for c, st in log][-4:] == [
            ("mem", AgentState.RESERVED), ("mem", AgentState.TALKING),
            ("mem", AgentState.WRAP_UP), ("close", AgentState.READY)]

        # ---- the next call: a group transfer finds the closers of "close"
        await until(lambda: _call_of(app, "ann") not in (None, aid)
                    and _state(app, "mem", "ann") is AgentState.TALKING, 20,
                    "ann's next call")
        aid2 = _call_of(app, "ann")
        assert aid2 is not None
        assert await agent_cmd(app, "ann", TransferCmd(
            login="ann", attempt_id=aid2, group="closers")) is None
        assert _state(app, "mem", "cal") is AgentState.TALKING
        # a pause asked for during the call: back home paused, with its reason
        assert await agent_cmd(app, "cal", PauseCmd(login="cal", reason="coffee")) is None
        await cal_finishes(app, aid2, "no_need", AgentState.PAUSED)
        assert close.engine.board.get("cal").reason == "coffee"
        assert app.agent_campaign["cal"] == "close"
    finally:
        await run.stop()
