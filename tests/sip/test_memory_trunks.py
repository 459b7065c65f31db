"""MemoryPool behaves like NodePool for trunk health, silent callees and CallTrying.node."""

from __future__ import annotations

from common.vocabulary import AttemptResult
from sip.api import CallEnded, CallTrying, CommandRejected, Originate, TrunkHealthChanged
from sip.memory import MemoryPool
from sip.trunk_health import BreakerConfig

FAST = BreakerConfig(
    failure_threshold=2, probe_interval_s=0.2, keepalive_interval_s=0, probe_timeout_s=0.5
)


def _orig(call_id: str, user: str, **kw: object) -> Originate:
    return Originate(
        call_id=call_id, target=f"sip:{user}@callee.test", caller_id="15550100000",
        ring_timeout_s=5, **kw,
    )  # type: ignore[arg-type]


async def _until(pool: MemoryPool, pred: object) -> list[object]:
    out: list[object] = []
    while True:
        ev = await pool.next_event(5)
        assert not (isinstance(ev, TrunkHealthChanged) and ev.previous == ev.state)
        out.append(ev)
        if pred(ev):  # type: ignore[operator]
            return out


async def test_memory_pool_breaker_opens_refuses_and_closes() -> None:
    async with MemoryPool(trunks={"t"}, breaker=FAST, time_scale=0.05) as pool:
        pool.dead_trunks.add("t")
        for cid in ("a", "b"):
            await pool.submit(_orig(cid, "status503_0_0", trunk="t"))
        evs = await _until(pool, lambda e: isinstance(e, TrunkHealthChanged))
        opened = evs[-1]
        assert isinstance(opened, TrunkHealthChanged) and opened.state == "open"
        await pool.submit(_orig("c", "answer_0.1_0.1", trunk="t"))
        rej = (await _until(pool, lambda e: getattr(e, "call_id", "") == "c"))[-1]
        assert isinstance(rej, CommandRejected) and rej.retryable
        assert rej.error == "trunk t unavailable (circuit open)"
        pool.dead_trunks.clear()  # the pretend probe is answered again
        half = (await _until(pool, lambda e: isinstance(e, TrunkHealthChanged)))[-1]
        assert isinstance(half, TrunkHealthChanged) and half.state == "half_open"
        await pool.submit(_orig("d", "answer_0.1_0.1", trunk="t"))
        evs = await _until(pool, lambda e: isinstance(e, CallEnded))
        closed = [e for e in evs if isinstance(e, TrunkHealthChanged)]
        assert [e.state for e in closed] == ["closed"]
        trying = [e for e in evs if isinstance(e, CallTrying)]
        assert trying and trying[0].node == "node-0"


async def test_memory_pool_silent_callee_hits_the_media_timeout() -> None:
    async with MemoryPool(media_timeout_s=2, time_scale=0.05) as pool:
        await pool.submit(_orig("s", "silent_0.1_0"))
        end = (await _until(pool, lambda e: isinstance(e, CallEnded)))[-1]
        assert isinstance(end, CallEnded)
        assert (end.result, end.hangup_by, end.reason) == (
            AttemptResult.ABANDONED, "node", "no media for 2 s",
        )
