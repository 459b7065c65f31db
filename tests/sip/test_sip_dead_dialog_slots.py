"""Call slots after dead dialogs (issue #12, docs/trunks.md "Call slots after an outage").

PJSIP reports a hung-up call DISCONNECTED at once but keeps its pjsua slot until the BYE
transaction ends; with the trunk proxy dead nothing answers that BYE. Against real SIPp and a
record-routing Kamailio proxy on loopback:

* calls whose far end and proxy die are ended by the media timeout; the slots pjsua still
  holds for their BYEs are not offered by the pool, so every leg the pool accepts meanwhile is
  placed and bridged (before the fix the pool offered them and agent legs got PJ_ETOOMANY);
  the BYE of such a dead dialog gives up early, and then the slots come back;
* an Originate a node cannot place (PJ_ETOOMANY) goes to another node instead of failing;
* the ctypes access to pjsua degrades to "unknown" on a build without the symbols.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sip_testutil import events_until, requires_sipp, wait_for

from common.vocabulary import AttemptResult
from sip.api import (
    AgentLegFailed,
    Bridge,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallTrying,
    CommandRejected,
    Hangup,
    Originate,
)
from sip.config import PoolConfig, TrunkConfig
from sip.node.slots import DEAD_BYE_TIMEOUT_S, HeldSlots, PjsuaSlots
from sip.pool import NodePool
from sip.pool_nodes import NodeHandle
from sip.sipp import SippProcess
from sip.trunk_health import BreakerConfig
from support.kamailio import KamailioProxy
from support.kamailio import available as kamailio_available

pytestmark = [requires_sipp, pytest.mark.sipp]

#: Timer F: how long pjsua would keep a slot for an unanswered BYE without the short timeout
TIMER_F_S = 32.0


def _orig(call_id: str, target: str, **kw: object) -> Originate:
    return Originate(
        call_id=call_id, target=target, caller_id="15550100000", ring_timeout_s=10, **kw
    )  # type: ignore[arg-type]


async def _bridged_call(pool: NodePool, call_id: str, target: str, agent_uri: str,
                        **kw: object) -> None:
    await pool.submit(_orig(call_id, target, **kw))
    await wait_for(pool, call_id, CallAnswered)
    await pool.submit(Bridge(call_id=call_id, agent_call_id=f"{call_id}-a", agent_uri=agent_uri))
    await wait_for(pool, call_id, CallBridged)


async def _until(cond: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {seconds:.0f} s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.skipif(not kamailio_available(), reason="kamailio not installed")
async def test_slots_held_by_unanswered_byes_are_not_offered(
    callee: SippProcess, agent: SippProcess, tmp_path: Path
) -> None:
    far = SippProcess.callee(max_lifetime_s=120)
    far.start()
    proxy = KamailioProxy(tmp_path / "kamailio", far.port, record_route=True).start()
    trunk = TrunkConfig(name="t", domain=f"127.0.0.1:{proxy.port}")
    cfg = PoolConfig(nodes=1, trunks={"t": trunk}, media_timeout_s=2,
                     breaker=BreakerConfig(enabled=False), node_log_dir=str(tmp_path))
    try:
        async with NodePool(cfg) as pool:
            node = pool.nodes[0]
            pairs = pool.free_call_pairs
            assert pairs >= 1
            # every customer+agent pair of the node is up, through the proxy
            for i in range(pairs):
                await _bridged_call(pool, f"d{i}", f"sip:answer_0_0@{trunk.domain}",
                                    agent.uri(f"a{i}"), trunk="t")
            # the trunk dies with the callees behind it: no RTP, and our BYEs go nowhere
            far.close()
            proxy.stop()
            held_at_end: list[int] = []
            for i in range(pairs):
                end = (await events_until(pool, f"d{i}", within_s=30))[-1]
                assert isinstance(end, CallEnded), end
                assert end.reason == "no media for 2 s", end
                held_at_end.append(node.held)
            assert pool.in_use == 0
            # pjsua still holds the customer legs (their BYEs are unanswered): the pool knows
            assert held_at_end[-1] >= 1, held_at_end
            # every leg the pool accepts now is placed and bridged: none gets PJ_ETOOMANY
            accepted: list[str] = []
            for i in range(pairs):
                cid = f"n{i}"
                await pool.submit(_orig(cid, callee.uri("answer_0_0")))
                ev = await wait_for(pool, cid, (CallAnswered, CommandRejected))  # type: ignore[arg-type]
                if isinstance(ev, CommandRejected):
                    assert ev.retryable and "pool full" in ev.error, ev
                    continue
                accepted.append(cid)
                await pool.submit(Bridge(call_id=cid, agent_call_id=f"{cid}-a",
                                         agent_uri=agent.uri(f"b{i}")))
                got = await wait_for(pool, cid, (CallBridged, AgentLegFailed))  # type: ignore[arg-type]
                assert isinstance(got, CallBridged), f"agent leg of {cid} not placed: {got}"
            assert accepted, f"the pool refused every call: held {held_at_end} now {node.held}"
            for cid in accepted:
                await pool.submit(Hangup(call_id=cid, reason="test over"))
                end = (await events_until(pool, cid))[-1]
                assert isinstance(end, CallEnded) and end.result == AttemptResult.CONNECTED
            # the dead dialogs' BYEs give up after DEAD_BYE_TIMEOUT_S, well before Timer F,
            # and pjsua's slots come back to the pool
            await _until(lambda: node.held == 0, TIMER_F_S - 8, "pjsua to free the dead calls")
            assert DEAD_BYE_TIMEOUT_S < TIMER_F_S - 8
            assert pool.free_call_pairs == pairs
    finally:
        proxy.stop()
        far.close()


async def test_an_originate_a_node_cannot_place_goes_to_another_node(
    callee: SippProcess, agent: SippProcess, tmp_path: Path
) -> None:
    async with NodePool(PoolConfig(nodes=2, node_log_dir=str(tmp_path))) as pool:
        n0, n1 = pool.nodes
        pairs, real = n0.capacity // 2, n1.capacity
        # fill node 0's pjsua slots (node 1 looks full meanwhile, so the calls go to node 0)
        n1.capacity = 0
        for i in range(pairs):
            await _bridged_call(pool, f"f{i}", callee.uri("answer_0_0"), agent.uri(f"a{i}"))
            assert pool.node_of(f"f{i}") is n0
        # the pool now wrongly believes node 0 has room for one more pair (a stale count);
        # node 1 looks no emptier, so node 0 is tried first
        n0.capacity += 2
        n1.capacity = 2
        await pool.submit(_orig("x", callee.uri("answer_0_0")))
        trying = await wait_for(pool, "x", CallTrying, within_s=10)
        assert isinstance(trying, CallTrying) and trying.node == "node-1", trying
        await wait_for(pool, "x", CallAnswered)
        assert n0.in_use == 2 * pairs  # the refused reservation was given back
        n0.capacity, n1.capacity = 2 * pairs, real
        for cid in ["x", *(f"f{i}" for i in range(pairs))]:
            await pool.submit(Hangup(call_id=cid, reason="test over"))
            assert isinstance((await events_until(pool, cid))[-1], CallEnded)


def test_free_slots_leave_out_what_pjsua_holds() -> None:
    n = NodeHandle(index=0, generation=0, capacity=4, alive=True)
    n.calls["c"] = 2
    n.in_use = 2
    n.held = 1
    assert n.free == 1
    n.held = 5
    assert n.free == 0
    assert n.release("c") == 2 and n.in_use == 0


def test_slots_without_the_pjsua_symbols_are_unknown() -> None:
    class NoSymbols:
        pass

    slots = PjsuaSlots(lib=NoSymbols())  # type: ignore[arg-type]
    assert not slots.available and slots.live_calls() is None
    with slots.short_transactions():  # a plain hangup then
        pass


def test_held_slots_count_dead_dialogs_at_once_and_others_after_the_grace() -> None:
    h = HeldSlots(grace_s=0.5)
    h.mark_dead(1)  # hung up as dead while still live
    assert h.count({0, 1, 2}, {0, 1, 2}, now=10.0) == 0  # all three still in use
    # calls 1 and 2 let go of: the dead one counts at once, the other one once it lingers
    assert h.count({0, 1, 2}, {0}, now=10.1) == 1
    assert h.count({0, 1, 2}, {0}, now=10.5) == 1
    assert h.count({0, 1, 2}, {0}, now=10.7) == 2
    # pjsua destroyed call 2; slot 1 is reused by a new live call: nothing held, marks gone
    assert h.count({0, 1}, {0, 1}, now=11.0) == 0
    assert h.count({0, 1}, {0}, now=11.1) == 0  # the new call 1 ends normally: grace again
