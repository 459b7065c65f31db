"""The agent's call controls and the supervisors' listen-in through a live campaign runtime.

A CampaignRuntime dials a lead, bridges it to the agent, and the agent's commands go through
the agent-protocol handler (dialer.agent_commands, what the MQTT bus and the WebSocket call):
`hold`, `resume`, `dtmf`; the supervisor console's facade (dialer.call_controls.ListenIn)
joins a supervisor's phone. Run over both SIP backends: ``memory`` (sip.memory.MemoryPool)
and ``sipp`` - a real pjsua2 node with SIPp phones (sip/scenarios/phone.xml) for the
customer, the agent and the supervisor, whose RTP the test counts per direction (sip.rtp_peer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.vocabulary import AttemptResult, CallbackScope
from dialer.bus.errors import ErrorCode
from dialer.bus.messages import (
    DtmfCmd,
    HangupCmd,
    HoldCmd,
    ResumeCmd,
    SupervisorListenEvent,
)
from dialer.call_controls import ListenError, ListenIn, is_on_hold
from support.live_runtime import Live, voiced_in
from support.live_runtime import live_call as shared_live_call


@contextlib.asynccontextmanager
async def live_call(backend: str, tmp_path: Path, sqlite_template: Path,
                    request: pytest.FixtureRequest, *, memory_capacity: int = 64,
                    ) -> AsyncIterator[tuple[Live, int]]:
    """One lead dialed by a progressive campaign and bridged to agent a1; a supervisor's phone."""
    async with shared_live_call(backend, tmp_path, sqlite_template, request, name="controls",
                                roles=("sup",), memory_capacity=memory_capacity) as live:
        yield live, live.attempt_id


async def test_hold_resume_dtmf_through_the_agent_protocol(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request) as (live, attempt_id):
        rt, cmds = live.rt, live.commands
        if live.peer('cust') is not None:
            live.talk('cust', True)
            assert (await voiced_in(live.peer('a1'), 0.8) or 0) >= 30
        # hold: acked once the customer's phone took the hold
        assert await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id)) is None
        assert is_on_hold(rt, attempt_id)
        if live.peer('a1') is not None:
            assert await voiced_in(live.peer('a1'), 0.8) == 0  # the customer is not heard
        again = await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id))
        assert again is not None and again.code is ErrorCode.INVALID_STATE
        await asyncio.sleep(0.5)
        assert await cmds.handle(rt, "a1", ResumeCmd(login="a1", attempt_id=attempt_id)) is None
        assert not is_on_hold(rt, attempt_id)
        if live.peer('a1') is not None:
            assert (await voiced_in(live.peer('a1'), 0.8) or 0) >= 30
        # another agent's attempt id, and a resume of a call not held, are refused
        not_held = await cmds.handle(rt, "a1", ResumeCmd(login="a1", attempt_id=attempt_id))
        assert not_held is not None and not_held.code is ErrorCode.INVALID_STATE
        unknown = await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id + 99))
        assert unknown is not None and unknown.code is ErrorCode.UNKNOWN_ATTEMPT
        # keypad
        assert await cmds.handle(rt, "a1", DtmfCmd(login="a1", attempt_id=attempt_id,
                                                   digits="5#")) is None
        if live.peer('cust') is not None:
            await live.until("the digits", lambda: "".join(live.peers['cust'].digits) == "5#", 5)
        # on hold when the call ends: the hold time counts until the end
        assert await cmds.handle(rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id)) is None
        await asyncio.sleep(0.3)
        assert await cmds.handle(rt, "a1", HangupCmd(login="a1", attempt_id=attempt_id)) is None
        await live.until("call_ended", lambda: bool(live.bus.of("a1", "call_ended")))
        rt.agent_disposition("a1", attempt_id, "contract", "", None, CallbackScope.CAMPAIGN)
        await rt.flush()

        async def hold_written() -> bool:
            row = await live.attempt()
            return row.holds == 2 and row.hold_s is not None
        await live.until("hold time on the attempt", hold_written)
        row = await live.attempt()
        assert row.result is AttemptResult.CONNECTED
        assert row.holds == 2 and 0.7 <= (row.hold_s or 0) < 30, row.hold_s


async def test_listen_in_facade(
    backend: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    async with live_call(backend, tmp_path, sqlite_template, request) as (live, attempt_id):
        listen_in = ListenIn({"controls": live.rt})
        with pytest.raises(ListenError) as e:
            await listen_in.listen(attempt_id + 99, live.uris['sup'])
        assert e.value.reason == "no_such_call"
        with pytest.raises(ListenError) as e:
            await listen_in.listen(attempt_id, live.uris['sup'], "shout")
        assert e.value.reason == "invalid"
        s = await listen_in.listen(attempt_id, live.uris['sup'], "monitor")
        assert s.attempt_id == attempt_id and s.agent == "a1" and s.mode == "monitor"
        assert [x.session_id for x in listen_in.sessions()] == [s.session_id]
        if live.peer('sup') is not None:
            live.talk('cust', True)
            assert (await voiced_in(live.peer('sup'), 0.8) or 0) >= 30  # hears the customer
            live.talk('cust', False)
            live.talk('sup', True)
            assert await voiced_in(live.peer('cust'), 0.8) == 0  # monitor: nobody hears it
        s2 = await listen_in.change_mode(s.session_id, "barge")
        assert s2.mode == "barge"
        if live.peer('sup') is not None:
            assert (await voiced_in(live.peer('cust'), 0.8) or 0) >= 30  # barge: the customer hears
            live.talk('sup', False)
        await listen_in.stop_listen(s.session_id)
        assert listen_in.sessions() == []
        with pytest.raises(ListenError):
            await listen_in.stop_listen(s.session_id)
        # the call goes on after the supervisor left; a new session, ended by the call's end
        s3 = await listen_in.listen(attempt_id, live.uris['sup'], "whisper")
        assert s3.session_id != s.session_id
        assert await live.commands.handle(
            live.rt, "a1", HangupCmd(login="a1", attempt_id=attempt_id)) is None
        await live.until("the session's end", lambda: listen_in.sessions() == [])
        await live.until("the supervisor stream's listen events", lambda: len(
            [e for e in live.bus.supervised if isinstance(e, SupervisorListenEvent)]) == 5)
        listens = [(e.session_id, e.mode, e.active, e.reason) for e in live.bus.supervised
                   if isinstance(e, SupervisorListenEvent)]
        assert listens[:3] == [(s.session_id, "monitor", True, None),
                               (s.session_id, "barge", True, None),
                               (s.session_id, "barge", False, "stopped")]
        assert listens[3] == (s3.session_id, "whisper", True, None)
        assert listens[4][:3] == (s3.session_id, "whisper", False)


async def test_listen_in_refused_when_the_calls_node_is_full(
    tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> None:
    """A node with room for the call and its agent only: `node_full`, and the call goes on."""
    async with live_call("memory", tmp_path, sqlite_template, request,
                         memory_capacity=2) as (live, attempt_id):
        listen_in = ListenIn({"controls": live.rt})
        with pytest.raises(ListenError) as e:
            await listen_in.listen(attempt_id, live.uris['sup'])
        assert e.value.reason == "node_full"
        assert listen_in.sessions() == []
        assert await live.commands.handle(
            live.rt, "a1", HoldCmd(login="a1", attempt_id=attempt_id)) is None
