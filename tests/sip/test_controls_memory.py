"""The call controls in sip.memory.MemoryPool: the same events and refusals as the nodes
(tests/sip/test_controls.py), so tests without SIP see what the real pool does."""

from __future__ import annotations

from sip import api
from sip.api_controls import (
    AgentTransferred,
    CallHeld,
    CancelTransfer,
    CompleteTransfer,
    ConsultStarted,
    DtmfSent,
    Hold,
    Listen,
    ListenEnded,
    ListenStarted,
    Resume,
    SendDtmf,
    StopListen,
    TransferAgent,
    TransferFailed,
)
from sip.memory import MemoryPool

HOST = "memory.invalid"


async def next_of(pool: MemoryPool, call_id: str) -> object:
    while True:
        ev = await pool.next_event(10)
        if ev.call_id == call_id:
            return ev


async def bridged(pool: MemoryPool, call_id: str) -> None:
    await pool.submit(api.Originate(call_id=call_id, target=f"sip:answer_0_0@{HOST}",
                                    caller_id="+14155550100", ring_timeout_s=5))
    while not isinstance(await next_of(pool, call_id), api.CallAnswered):
        pass
    await pool.submit(api.Bridge(call_id=call_id, agent_call_id=f"{call_id}-a",
                                 agent_uri=f"sip:a1@{HOST}"))
    while not isinstance(await next_of(pool, call_id), api.CallBridged):
        pass


async def test_memory_pool_call_controls() -> None:
    async with MemoryPool(capacity=4, time_scale=0.01) as pool:
        await pool.submit(api.Originate(call_id="u", target=f"sip:answer_0_0@{HOST}",
                                        caller_id="+14155550100", ring_timeout_s=5))
        while not isinstance(await next_of(pool, "u"), api.CallAnswered):
            pass
        await pool.submit(Hold(call_id="u"))  # answered, no agent yet
        rej = await next_of(pool, "u")
        assert isinstance(rej, api.CommandRejected) and "not bridged" in rej.error
        await pool.submit(api.Hangup(call_id="u"))
        assert isinstance(await next_of(pool, "u"), api.CallEnded)

        await bridged(pool, "m")
        await pool.submit(Hold(call_id="m"))
        held = await next_of(pool, "m")
        assert isinstance(held, CallHeld) and held.on_hold
        await pool.submit(Hold(call_id="m"))
        assert isinstance(await next_of(pool, "m"), api.CommandRejected)
        await pool.submit(Resume(call_id="m"))
        resumed = await next_of(pool, "m")
        assert isinstance(resumed, CallHeld) and not resumed.on_hold
        await pool.submit(SendDtmf(call_id="m", digits="12#"))
        sent = await next_of(pool, "m")
        assert isinstance(sent, DtmfSent) and (sent.count, sent.method) == (3, "rfc2833")
        await pool.submit(Listen(call_id="m", listen_call_id="s1", supervisor_uri=f"sip:s@{HOST}"))
        started = await next_of(pool, "m")
        assert isinstance(started, ListenStarted) and started.mode == "monitor"
        assert pool.in_use == 3
        await pool.submit(Listen(call_id="m", listen_call_id="s2", supervisor_uri=f"sip:s@{HOST}"))
        assert isinstance(await next_of(pool, "m"), ListenStarted)
        await pool.submit(Listen(call_id="m", listen_call_id="s3", supervisor_uri=f"sip:s@{HOST}"))
        full = await next_of(pool, "m")
        assert isinstance(full, api.CommandRejected) and full.retryable
        assert "node full" in full.error
        await pool.submit(StopListen(call_id="m", listen_call_id="s2"))
        ended = await next_of(pool, "m")
        assert isinstance(ended, ListenEnded) and ended.reason == "stopped"
        assert pool.in_use == 3
        await pool.submit(TransferAgent(call_id="m", agent_call_id="m-b",
                                        agent_uri=f"sip:a2@{HOST}"))
        moved = await next_of(pool, "m")
        assert isinstance(moved, AgentTransferred)
        assert (moved.agent_call_id, moved.previous_agent_call_id) == ("m-b", "m-a")
        # a warm transfer: on hold while the agents consult, then cancelled / completed
        await pool.submit(TransferAgent(call_id="m", agent_call_id="m-c", consult=True,
                                        agent_uri=f"sip:a3@{HOST}"))
        assert isinstance(await next_of(pool, "m"), CallHeld)
        assert isinstance(await next_of(pool, "m"), ConsultStarted)
        await pool.submit(CancelTransfer(call_id="m"))
        cancelled = await next_of(pool, "m")
        assert isinstance(cancelled, TransferFailed) and cancelled.reason == "cancelled"
        await pool.submit(TransferAgent(call_id="m", agent_call_id="m-d", consult=True,
                                        agent_uri=f"sip:a3@{HOST}"))
        assert isinstance(await next_of(pool, "m"), ConsultStarted)  # still on hold
        await pool.submit(CompleteTransfer(call_id="m"))
        moved = await next_of(pool, "m")
        assert isinstance(moved, AgentTransferred) and moved.agent_call_id == "m-d"
        back = await next_of(pool, "m")
        assert isinstance(back, CallHeld) and not back.on_hold
        await pool.submit(CompleteTransfer(call_id="m"))
        assert isinstance(await next_of(pool, "m"), api.CommandRejected)
        await pool.submit(api.Hangup(call_id="m"))
        assert isinstance(await next_of(pool, "m"), api.CallEnded)
        last = await next_of(pool, "m")
        assert isinstance(last, ListenEnded) and last.reason == "call ended"
        assert pool.in_use == 0
