"""Trunk health, dead calls and lost calls against real SIPp processes on loopback.

* the circuit breaker opens on a trunk answering 503 and on a trunk where nothing listens,
  refuses Originates while open, and closes again through an OPTIONS probe and a trial call;
* an answered callee that sends no RTP, and a bridged agent phone that sends none, are hung
  up by the node's media timeout;
* a ring timeout ends the call on time even when the trunk is slow to send its 487;
* a node killed with calls up gives each exactly one final event: CallLost with the facts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from sip_testutil import events_until, requires_sipp, wait_for

from common.vocabulary import AttemptResult
from sip.api import (
    Bridge,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallLost,
    CallRinging,
    CallTrying,
    CommandRejected,
    Originate,
    TrunkHealthChanged,
)
from sip.config import PoolConfig, TrunkConfig
from sip.pool import NodePool
from sip.pool_calls import CallBook, is_final
from sip.sipp import SippProcess, free_udp_port
from sip.trunk_health import BreakerConfig

pytestmark = [requires_sipp, pytest.mark.sipp]

FAST = BreakerConfig(
    failure_threshold=2, probe_interval_s=0.3, keepalive_interval_s=0, probe_timeout_s=0.5
)


def _orig(call_id: str, target: str, ring: float = 5.0, **kw: object) -> Originate:
    return Originate(
        call_id=call_id, target=target, caller_id="15550100000", ring_timeout_s=ring, **kw
    )  # type: ignore[arg-type]


async def _health(pool: NodePool, state: str, within_s: float = 10) -> TrunkHealthChanged:
    """The next transition of trunk t (the start-up snapshot, previous == state, is skipped)."""
    while True:
        ev = await wait_for(pool, "trunk:t", TrunkHealthChanged, within_s)
        assert isinstance(ev, TrunkHealthChanged)
        if ev.previous != ev.state:
            break
    assert ev.state == state, ev
    return ev


async def test_503s_open_the_breaker_and_a_probe_plus_trial_close_it(
    callee: SippProcess, tmp_path: Path
) -> None:
    trunk = TrunkConfig(name="t", domain=f"127.0.0.1:{callee.port}")
    cfg = PoolConfig(nodes=1, trunks={"t": trunk}, breaker=FAST, node_log_dir=str(tmp_path))
    async with NodePool(cfg) as pool:
        # two calls refused by the trunk with 503 (no ringing): two consecutive trunk failures
        for cid in ("f1", "f2"):
            await pool.submit(_orig(cid, callee.uri("status503_0_0"), trunk="t"))
            end = (await events_until(pool, cid))[-1]
            assert isinstance(end, CallEnded) and end.sip_code == 503
        opened = await _health(pool, "open")
        assert opened.previous == "closed" and opened.failures == 2 and "503" in opened.reason
        # the SIPp callee answers OPTIONS (-aa): half-open after one probe period ...
        await pool.submit(_orig("f3", callee.uri("answer_0.1_0.2"), trunk="t"))
        rej = (await events_until(pool, "f3"))[-1]
        assert isinstance(rej, CommandRejected) and rej.command == "Originate"
        assert rej.retryable and rej.error == "trunk t unavailable (circuit open)"
        half = await _health(pool, "half_open")
        assert "OPTIONS" in half.reason and "200" in half.reason
        # ... where one trial call goes through, and its ringing closes the breaker
        await pool.submit(_orig("f4", callee.uri("answer_0.1_0.2"), trunk="t"))
        await pool.submit(_orig("f5", callee.uri("answer_0.1_0.2"), trunk="t"))
        rej = (await events_until(pool, "f5"))[-1]
        assert isinstance(rej, CommandRejected) and "circuit half_open" in rej.error
        closed = await _health(pool, "closed")
        assert closed.previous == "half_open"
        end = (await events_until(pool, "f4"))[-1]
        assert isinstance(end, CallEnded) and end.result == AttemptResult.ABANDONED
        assert pool.trunks.state("t").value == "closed"


async def test_a_trunk_where_nothing_listens_opens_by_probe(tmp_path: Path) -> None:
    dead = TrunkConfig(name="t", domain=f"127.0.0.1:{free_udp_port()}")
    breaker = BreakerConfig(keepalive_interval_s=0.2, probe_interval_s=0.3, probe_timeout_s=0.5)
    cfg = PoolConfig(nodes=1, trunks={"t": dead}, breaker=breaker, node_log_dir=str(tmp_path))
    async with NodePool(cfg) as pool:
        opened = await _health(pool, "open")
        assert "OPTIONS probe failed" in opened.reason
        await pool.submit(_orig("d1", f"sip:1@{dead.domain}", trunk="t"))
        rej = (await events_until(pool, "d1"))[-1]
        assert isinstance(rej, CommandRejected) and rej.retryable
        assert rej.error == "trunk t unavailable (circuit open)"
        assert pool.in_use == 0


async def test_silent_callee_is_hung_up_by_the_media_timeout(
    callee: SippProcess, tmp_path: Path
) -> None:
    cfg = PoolConfig(nodes=1, media_timeout_s=2, node_log_dir=str(tmp_path))
    async with NodePool(cfg) as pool:
        await pool.submit(_orig("m1", callee.uri("silent_0.1_0")))
        evs = await events_until(pool, "m1")
        end = evs[-1]
        assert isinstance(end, CallEnded)
        assert (end.result, end.hangup_by, end.reason) == (
            AttemptResult.ABANDONED,
            "node",
            "no media for 2 s",
        )
        assert end.talk_s is not None and end.talk_s >= 2.0
        assert end.media is not None and end.media.rx_packets == 0


async def test_silent_agent_leg_ends_the_bridged_call(
    callee: SippProcess, tmp_path: Path
) -> None:
    cfg = PoolConfig(nodes=1, media_timeout_s=2, node_log_dir=str(tmp_path))
    async with NodePool(cfg) as pool:
        await pool.submit(_orig("m2", callee.uri("answer_0.1_0")))
        await wait_for(pool, "m2", CallAnswered)
        # an "agent phone" that answers and then sends nothing (its BYE will never come)
        await pool.submit(
            Bridge(call_id="m2", agent_call_id="m2-a", agent_uri=callee.uri("silent_0_0"))
        )
        await wait_for(pool, "m2", CallBridged)
        end = (await events_until(pool, "m2"))[-1]
        assert isinstance(end, CallEnded)
        assert end.result == AttemptResult.CONNECTED
        assert (end.hangup_by, end.reason) == ("node", "agent leg: no media for 2 s")
        assert end.media is not None and end.media.rx_packets > 0


async def test_ring_timeout_is_kept_when_the_trunk_is_slow_to_send_487(
    pool: NodePool, callee: SippProcess
) -> None:
    # the callee answers our CANCEL at once but sends the INVITE's 487 only 3 s later
    await pool.submit(_orig("r1", callee.uri("slowcancel_0_0"), ring=1.0))
    ringing = await wait_for(pool, "r1", CallRinging)
    assert isinstance(ringing, CallRinging)
    end = (await events_until(pool, "r1"))[-1]
    received = time.monotonic()
    assert isinstance(end, CallEnded) and end.result == AttemptResult.NO_ANSWER
    assert end.ring_s is not None and 1.0 <= end.ring_s < 1.5
    # reported within ~1 s of the ring timeout, not after the trunk's late 487
    assert received - ringing.mono < 1.0 + 1.5


async def test_killed_node_gives_one_call_lost_per_call_with_its_facts(
    callee: SippProcess, agent: SippProcess, tmp_path: Path
) -> None:
    seen: list[object] = []
    pool = NodePool(PoolConfig(nodes=1, node_log_dir=str(tmp_path)), on_event=seen.append)
    await pool.start()
    try:
        await pool.submit(_orig("k1", callee.uri("answer_0.1_0")))
        await pool.submit(_orig("k2", callee.uri("noanswer_0_0"), ring=30))
        for _ in range(250):
            if any(isinstance(e, CallAnswered) and e.call_id == "k1" for e in seen) and any(
                isinstance(e, CallRinging) and e.call_id == "k2" for e in seen
            ):
                break
            await asyncio.sleep(0.02)
        await pool.submit(Bridge(call_id="k1", agent_call_id="k1-a", agent_uri=agent.uri("a")))
        for _ in range(250):
            if any(isinstance(e, CallBridged) for e in seen):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # some talk time
        node = pool.node_of("k1")
        assert node is not None
        os.kill(node.pid, signal.SIGKILL)
        for _ in range(500):
            if pool.restarts == 1 and pool.nodes[0].alive:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # anything late would show up now
    finally:
        await pool.close(drain_deadline_s=0)
    trying = [e for e in seen if isinstance(e, CallTrying)]
    assert {e.node for e in trying} == {"node-0"}
    finals = [e for e in seen if is_final(e)]
    assert sorted(e.call_id for e in finals) == ["k1", "k2"]  # exactly one each
    lost = {e.call_id: e for e in finals}
    k1, k2 = lost["k1"], lost["k2"]
    assert isinstance(k1, CallLost) and isinstance(k2, CallLost)
    assert k1.answered and k1.bridged and k1.node == "node-0"
    assert k1.talk_s is not None and k1.talk_s >= 0.5 and k1.ring_s is not None
    assert not k2.answered and not k2.bridged and k2.talk_s is None
    assert k2.ring_s is not None and k2.ring_s > 0
    assert pool.lost_calls == 2


def test_call_book_drops_a_second_final_event() -> None:
    book = CallBook()
    book.placed("c", "node-3")
    assert book.note(CallRinging(call_id="c", early_media=False, sip_code=180, mono=10.0))
    assert book.note(CallAnswered(call_id="c", mono=12.0))
    lost = book.lost("c", "sip node 3 exited rc=-9", now=20.0)
    assert lost is not None
    assert (lost.answered, lost.ring_s, lost.talk_s, lost.node) == (True, 2.0, 8.0, "node-3")
    assert book.lost("c", "again", now=21.0) is None  # a second loss report
    late = CallEnded(
        call_id="c", result=AttemptResult.CONNECTED, sip_code=200, reason="x",
        hangup_by="remote", ring_s=2.0, talk_s=9.0, retryable=False,
    )  # fmt: skip
    assert not book.note(late)  # the node's CallEnded read after the loss
    book.placed("c", "node-1")  # the id used again for a new call: a fresh start
    assert book.note(late)
