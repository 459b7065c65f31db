"""Bridging customer calls to agent phones (SIPp agents echoing RTP) on one node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sip_testutil import events_until, requires_sipp, wait_for

from common.vocabulary import AttemptResult
from sip.api import (
    AgentLegAnswered,
    AgentLegFailed,
    Bridge,
    CallAnswered,
    CallBridged,
    CallEnded,
    CommandRejected,
    Hangup,
    Originate,
)
from sip.assets import read_wav_pcm16
from sip.pool import NodePool
from sip.registrar import KamailioRegistrar, register_contact
from sip.sipp import SippProcess

pytestmark = [requires_sipp, pytest.mark.sipp]


def _orig(call_id: str, target: str) -> Originate:
    return Originate(call_id=call_id, target=target, caller_id="15550100000", ring_timeout_s=5)


async def test_bridge_rtp_flows_both_ways(
    pool: NodePool, callee: SippProcess, agent: SippProcess, tmp_path: Path
) -> None:
    # the callee streams a tone and hangs up after 2 s; the agent echoes what it hears
    rec = tmp_path / "b1.wav"
    await pool.submit(
        Originate(
            call_id="b1",
            target=callee.uri("answer_0.1_2"),
            caller_id="15550100000",
            ring_timeout_s=5,
            record_path=str(rec),
        )
    )
    await wait_for(pool, "b1", CallAnswered)
    await pool.submit(Bridge(call_id="b1", agent_call_id="b1-agent", agent_uri=agent.uri("ag1")))
    evs = await events_until(pool, "b1")
    kinds = [type(e).__name__ for e in evs]
    assert kinds == ["AgentLegAnswered", "CallBridged", "CallEnded"]
    bridged = evs[1]
    assert isinstance(bridged, CallBridged) and bridged.agent_call_id == "b1-agent"
    assert bridged.latency_ms > 0
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.hangup_by) == (AttemptResult.CONNECTED, "remote")
    m = end.media
    assert m is not None
    # ~2 s bridged at 50 packets/s: every direction of both legs carried RTP
    assert m.rx_packets > 25, m  # customer -> node
    assert m.tx_packets > 25, m  # node -> customer (the agent's voice)
    assert m.agent_tx_packets > 25, m  # node -> agent (the customer's voice)
    assert m.agent_rx_packets > 25, m  # agent -> node (echoed back)
    assert pool.in_use == 0
    # the campaign recording (started at answer by Originate.record_path) holds the talk
    samples, rate = read_wav_pcm16(rec)
    assert rate == 8000 and len(samples) > 8000
    assert max(abs(x) for x in samples) > 1000


async def test_agent_no_answer_then_another_agent(
    pool: NodePool, callee: SippProcess, agent: SippProcess
) -> None:
    await pool.submit(_orig("b2", callee.uri("answer_0.1_0")))
    await wait_for(pool, "b2", CallAnswered)
    # an agent phone that rings and never answers
    await pool.submit(
        Bridge(
            call_id="b2",
            agent_call_id="b2-a1",
            agent_uri=callee.uri("noanswer_0_0"),
            answer_timeout_s=0.5,
        )
    )
    failed = await wait_for(pool, "b2", AgentLegFailed)
    assert isinstance(failed, AgentLegFailed)
    assert failed.agent_call_id == "b2-a1" and "did not answer" in failed.reason
    # the customer is still up: the router tries the next agent
    await pool.submit(Bridge(call_id="b2", agent_call_id="b2-a2", agent_uri=agent.uri("ag2")))
    ok = await wait_for(pool, "b2", CallBridged)
    assert isinstance(ok, CallBridged) and ok.agent_call_id == "b2-a2"
    await pool.submit(Hangup(call_id="b2", reason="wrap-up"))
    end = (await events_until(pool, "b2"))[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.hangup_by) == (AttemptResult.CONNECTED, "local")


async def test_agent_busy_is_reported_with_code(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("b3", callee.uri("answer_0.1_0")))
    await wait_for(pool, "b3", CallAnswered)
    await pool.submit(
        Bridge(call_id="b3", agent_call_id="b3-a", agent_uri=callee.uri("status486_0_0"))
    )
    failed = await wait_for(pool, "b3", AgentLegFailed)
    assert isinstance(failed, AgentLegFailed) and failed.sip_code == 486
    await pool.submit(Hangup(call_id="b3"))
    end = (await events_until(pool, "b3"))[-1]
    assert isinstance(end, CallEnded) and end.result == AttemptResult.ABANDONED


async def test_agent_hangs_up_ends_the_call(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("b4", callee.uri("answer_0.1_0")))
    await wait_for(pool, "b4", CallAnswered)
    # this "agent phone" answers at once and hangs up after half a second
    await pool.submit(
        Bridge(call_id="b4", agent_call_id="b4-a", agent_uri=callee.uri("answer_0_0.5"))
    )
    evs = await events_until(pool, "b4")
    assert any(isinstance(e, AgentLegAnswered) for e in evs)
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.hangup_by, end.reason) == (
        AttemptResult.CONNECTED,
        "local",
        "agent hung up",
    )


async def test_bridge_rejections(pool: NodePool, callee: SippProcess, agent: SippProcess) -> None:
    await pool.submit(Bridge(call_id="ghost", agent_call_id="g", agent_uri=agent.uri("a")))
    rej = await wait_for(pool, "ghost", CommandRejected)
    assert isinstance(rej, CommandRejected) and not rej.retryable
    # bridging before the customer answered is refused (the call keeps ringing)
    await pool.submit(
        Originate(
            call_id="b5",
            target=callee.uri("noanswer_0_0"),
            caller_id="15550100000",
            ring_timeout_s=30,
        )
    )
    await pool.submit(Bridge(call_id="b5", agent_call_id="b5-a", agent_uri=agent.uri("a")))
    rej = await wait_for(pool, "b5", CommandRejected)
    assert isinstance(rej, CommandRejected) and "not answered" in rej.error
    await pool.submit(Hangup(call_id="b5"))
    end = (await events_until(pool, "b5"))[-1]
    assert isinstance(end, CallEnded) and end.result == AttemptResult.CANCELLED


@pytest.mark.skipif(not os.path.exists("/usr/sbin/kamailio"), reason="kamailio not installed")
async def test_agent_reached_through_a_registrar(
    pool: NodePool, callee: SippProcess, agent: SippProcess
) -> None:
    with KamailioRegistrar() as reg:
        # the agent's phone registered at the PBX/registrar; the dialer only knows the AOR
        register_contact(reg, "agent7", agent.uri("agent7"))
        await pool.submit(_orig("k1", callee.uri("answer_0.1_0")))
        await wait_for(pool, "k1", CallAnswered)
        await pool.submit(Bridge(call_id="k1", agent_call_id="k1-a", agent_uri=reg.uri("agent7")))
        ok = await wait_for(pool, "k1", CallBridged)
        assert isinstance(ok, CallBridged)
        # an agent who is not registered: the registrar's 404 comes back as a failed agent leg
        await pool.submit(Hangup(call_id="k1"))
        await events_until(pool, "k1")
        await pool.submit(_orig("k2", callee.uri("answer_0.1_0")))
        await wait_for(pool, "k2", CallAnswered)
        await pool.submit(Bridge(call_id="k2", agent_call_id="k2-a", agent_uri=reg.uri("ghost")))
        failed = await wait_for(pool, "k2", AgentLegFailed)
        assert isinstance(failed, AgentLegFailed) and failed.sip_code == 404
        await pool.submit(Hangup(call_id="k2"))
        await events_until(pool, "k2")
