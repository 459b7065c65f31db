"""sip.memory.MemoryPool on its own: the callee dial plan of docs/sip.md, the node's final-event
rules and its refusals, without the runtime (which tests/runtime/test_runtime_contract.py
runs over it and over the real pool)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.clock import ManualClock
from common.vocabulary import AmdVerdict, AttemptResult
from sip import api
from sip.memory import Behaviour, MemoryPool

HOST = "memory.invalid"


def originate(call_id: str, user: str, **kw: object) -> api.Originate:
    return api.Originate(call_id=call_id, target=f"sip:{user}@{HOST}", caller_id="+14155550100",
                         ring_timeout_s=kw.pop("ring_timeout_s", 5.0), **kw)  # type: ignore[arg-type]


async def events_until_end(pool: MemoryPool, call_id: str) -> list[api.Event]:
    out: list[api.Event] = []
    while True:
        ev = await pool.next_event(10)
        if ev.call_id != call_id:
            continue
        out.append(ev)
        if isinstance(ev, api.CallEnded | api.CommandRejected | api.CallLost):
            return out


def test_the_dial_plan_grammar_is_the_callee_scenarios() -> None:
    assert Behaviour.of("sip:answer_2_5@h") == Behaviour("answer", None, 2.0, 5.0)
    assert Behaviour.of("sip:status486_1_0@h:5060") == Behaviour("status", 486, 1.0, 0.0)
    assert Behaviour.of("sip:human_0.25_3@h") == Behaviour("human", None, 0.2, 3.0)  # 0.1 s
    odd = Behaviour.of("sip:status999_0_0@h")
    assert odd is not None and odd.final_code == 500  # a code the scenario cannot send
    assert Behaviour.of("sip:agent7@h") is None  # an agent phone, not a callee


@pytest.mark.parametrize(("user", "result", "code"), [
    ("status486_0.1_0", AttemptResult.BUSY, 486),
    ("status404_0_0", AttemptResult.INVALID_NUMBER, 404),
    ("status603_0.1_0", AttemptResult.REJECTED, 603),
    ("status503_0_0", AttemptResult.FAILED, 503),
    ("status480_0.1_0", AttemptResult.NO_ANSWER, 480),
])
async def test_refusals_are_classified_as_by_the_node(
    user: str, result: AttemptResult, code: int,
) -> None:
    async with MemoryPool() as pool:
        await pool.submit(originate("c1", user))
        evs = await events_until_end(pool, "c1")
    assert isinstance(evs[0], api.CallTrying)
    end = evs[-1]
    assert isinstance(end, api.CallEnded)
    assert (end.result, end.sip_code, end.hangup_by) == (result, code, "remote")
    # a 180 precedes the final response unless the ring time is 0
    assert any(isinstance(e, api.CallRinging) for e in evs) == (not user.endswith("_0_0"))


async def test_ring_timeout_and_cancel_before_answer() -> None:
    async with MemoryPool() as pool:
        await pool.submit(originate("c1", "noanswer_0_0", ring_timeout_s=0.3))
        end = (await events_until_end(pool, "c1"))[-1]
        assert isinstance(end, api.CallEnded)
        assert (end.result, end.sip_code, end.hangup_by) == (AttemptResult.NO_ANSWER, 487,
                                                             "node")
        await pool.submit(originate("c2", "answer_3_5"))
        assert isinstance(await pool.next_event(5), api.CallTrying)
        assert isinstance(await pool.next_event(5), api.CallRinging)
        await pool.submit(api.Hangup(call_id="c2", reason="surplus"))
        end = await pool.next_event(5)
        assert isinstance(end, api.CallEnded)
        assert (end.result, end.hangup_by, end.reason) == (AttemptResult.CANCELLED, "local",
                                                           "surplus")
        assert pool.in_use == 0


async def test_answered_call_bridge_message_and_final_results() -> None:
    async with MemoryPool(message_wav="/nonexistent.wav") as pool:
        await pool.submit(originate("talk", "answer_0.1_0"))
        await pool.submit(originate("msg", "optout_0.1_0"))
        seen: dict[str, list[api.Event]] = {"talk": [], "msg": []}
        while not all(any(isinstance(e, api.CallEnded) for e in v) for v in seen.values()):
            ev = await pool.next_event(10)
            seen[ev.call_id].append(ev)
            if isinstance(ev, api.CallAnswered) and ev.call_id == "talk":
                await pool.submit(api.Bridge(call_id="talk", agent_call_id="talk-a",
                                             agent_uri=f"sip:agent1@{HOST}"))
            elif isinstance(ev, api.CallAnswered):
                await pool.submit(api.Play(call_id="msg"))  # unreadable file: 2 s
            elif isinstance(ev, api.CallBridged):
                await pool.submit(api.Hangup(call_id="talk"))
        talk_end, msg_end = seen["talk"][-1], seen["msg"][-1]
        assert isinstance(talk_end, api.CallEnded) and isinstance(msg_end, api.CallEnded)
        assert (talk_end.result, talk_end.hangup_by) == (AttemptResult.CONNECTED, "local")
        # the opt-out callee pressed 9 during the message; it then ended the call
        keys = [e for e in seen["msg"] if isinstance(e, api.DtmfReceived)]
        assert [k.digit for k in keys] == ["9"]
        assert (msg_end.result, msg_end.reason) == (AttemptResult.ABANDONED, "message played")
        assert any(isinstance(e, api.PlaybackDone) for e in seen["msg"])


async def test_agent_phone_behaviours_and_amd() -> None:
    amd = api.AmdSettings(max_analysis_ms=3000)
    async with MemoryPool() as pool:
        await pool.submit(originate("m", "machine_0_0", amd=amd))
        evs: list[api.Event] = []
        while not any(isinstance(e, api.AmdDone) for e in evs):
            evs.append(await pool.next_event(10))
        verdict = next(e for e in evs if isinstance(e, api.AmdDone))
        assert verdict.verdict is AmdVerdict.MACHINE
        # a busy agent phone: the leg fails, the customer stays up for another agent
        await pool.submit(api.Bridge(call_id="m", agent_call_id="m-a",
                                     agent_uri=f"sip:status486_0_0@{HOST}"))
        failed = await pool.next_event(5)
        assert isinstance(failed, api.AgentLegFailed) and failed.sip_code == 486
        await pool.close(drain_deadline_s=0)
        end = await pool.next_event(5)
        assert isinstance(end, api.CallEnded)
        assert (end.result, end.hangup_by) == (AttemptResult.MACHINE, "node")


async def test_refused_commands_and_the_injected_clock() -> None:
    clock = ManualClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    async with MemoryPool(capacity=2, clock=clock, trunks={"pstn"}) as pool:
        await pool.submit(originate("t", "answer_1_1", trunk="other"))
        rejected = await pool.next_event(5)
        assert isinstance(rejected, api.CommandRejected)
        assert (rejected.command, rejected.retryable) == ("Originate", False)
        assert rejected.wall == clock.now()  # stamps come from the given clock
        await pool.submit(originate("a", "answer_1_1", trunk="pstn"))
        await pool.submit(originate("b", "answer_1_1"))  # both slots taken by "a"
        full = [await pool.next_event(5) for _ in range(2)]
        assert any(isinstance(e, api.CommandRejected) and e.retryable for e in full)
        await pool.submit(api.Play(call_id="a", wav_path="x.wav"))  # not answered yet
        assert any(isinstance(e, api.CommandRejected) and e.command == "Play"
                   for e in [await pool.next_event(5) for _ in range(2)])
