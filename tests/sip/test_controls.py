"""Call controls at the SIP level (sip.api_controls): hold / resume, DTMF, listen-in.

Real pjsua2 nodes and SIPp phones (sip/scenarios/phone.xml) for the customer, the agent and
the supervisor; each phone's media is a loopback RTP endpoint of the test (sip.rtp_peer), so
every direction of every leg is counted and its level measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sip_testutil import events_until, requires_sipp, wait_for

from common.vocabulary import AttemptResult
from sip.api import Bridge, CallAnswered, CallBridged, CallEnded, CommandRejected, Hangup, Originate
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
from sip.config import PoolConfig, TrunkConfig
from sip.pool import NodePool
from sip.rtp_peer import RtpHub, RtpPeer
from sip.sipp import SippProcess

pytestmark = [requires_sipp, pytest.mark.sipp]

#: levels (mean |sample|) of a leg that hears the test tone vs one that hears silence
HEARS = 1500.0
SILENT = 200.0


@pytest.fixture(scope="module")
def phone() -> Iterator[SippProcess]:
    with SippProcess("phone", max_lifetime_s=300, extra_args=("-trace_logs",)) as p:
        yield p


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    with RtpHub() as h:
        yield h


@pytest.fixture
async def pool2(tmp_path: Path) -> AsyncIterator[NodePool]:
    p = NodePool(PoolConfig(nodes=1, node_log_dir=str(tmp_path)))
    await p.start()
    try:
        yield p
    finally:
        await p.close(drain_deadline_s=0)


async def eventually(cond: Callable[[], bool], seconds: float) -> bool:
    """Poll ``cond`` every 10 ms for up to ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


def phone_log(phone: SippProcess) -> str:
    return "".join(f.read_text(errors="replace") for f in phone.workdir.glob("phone_*_logs.log"))


async def bridged_call(
    pool: NodePool, phone: SippProcess, hub: RtpHub, call_id: str
) -> tuple[RtpPeer, RtpPeer]:
    """A customer call bridged to an agent phone: (customer endpoint, agent endpoint)."""
    cust, agent = hub.peer(), hub.peer()
    await pool.submit(
        Originate(
            call_id=call_id,
            target=phone.uri(f"cust-{cust.port}"),
            caller_id="15550100000",
            ring_timeout_s=5,
        )
    )
    await wait_for(pool, call_id, CallAnswered)
    await pool.submit(
        Bridge(
            call_id=call_id, agent_call_id=f"{call_id}-a", agent_uri=phone.uri(f"ag-{agent.port}")
        )
    )
    await wait_for(pool, call_id, CallBridged)
    return cust, agent


async def rx_during(
    peer: RtpPeer, seconds: float, settle: float = 0.3, *, voiced: bool = False
) -> int:
    """Audio packets (``voiced``: those carrying sound) the endpoint got in ``seconds``."""
    await asyncio.sleep(settle)
    n0 = peer.rx_voiced if voiced else peer.rx_audio
    await asyncio.sleep(seconds)
    return (peer.rx_voiced if voiced else peer.rx_audio) - n0


async def hang_up(pool: NodePool, call_id: str) -> CallEnded:
    await pool.submit(Hangup(call_id=call_id))
    evs = await events_until(pool, call_id)
    end = evs[-1]
    assert isinstance(end, CallEnded), evs
    return end


async def test_hold_stops_customer_audio_to_agent_and_resume_restarts_it(
    pool2: NodePool, phone: SippProcess, hub: RtpHub
) -> None:
    cust, agent = await bridged_call(pool2, phone, hub, "h1")
    cust.talk(True)
    talking = await rx_during(agent, 1.0, voiced=True)
    assert talking >= 40, talking  # ~50 packets/s of the customer's voice reach the agent

    t0 = time.monotonic()
    await pool2.submit(Hold(call_id="h1"))
    held = await wait_for(pool2, "h1", CallHeld)
    assert isinstance(held, CallHeld) and held.on_hold and held.took_ms < 1000
    assert time.monotonic() - t0 < 2
    cust_rx0 = cust.rx_audio
    agent.reset_window()
    on_hold = await rx_during(agent, 1.0, voiced=True)
    # nothing of the customer reaches the agent on hold (the node keeps sending the agent
    # silence packets: it runs without VAD so that no leg's RTP stops)
    assert on_hold == 0, on_hold
    assert agent.window.level < SILENT, agent.window
    # the customer keeps receiving RTP (silence) while held: the line stays alive
    assert cust.rx_audio - cust_rx0 >= 40
    cust.reset_window()
    await asyncio.sleep(0.5)
    assert cust.window.level < SILENT  # no agent audio leaks to a held customer
    # a second hold is refused; so is a resume of a call not on hold (later)
    await pool2.submit(Hold(call_id="h1"))
    rej = await wait_for(pool2, "h1", CommandRejected)
    assert isinstance(rej, CommandRejected) and rej.command == "Hold"

    await pool2.submit(Resume(call_id="h1"))
    resumed = await wait_for(pool2, "h1", CallHeld)
    assert isinstance(resumed, CallHeld) and not resumed.on_hold
    after = await rx_during(agent, 1.0, voiced=True)
    assert after >= 40, after
    agent.reset_window()
    await asyncio.sleep(0.5)
    assert agent.window.level > HEARS  # the customer's tone again
    await pool2.submit(Resume(call_id="h1"))
    rej = await wait_for(pool2, "h1", CommandRejected)
    assert isinstance(rej, CommandRejected) and rej.command == "Resume"

    end = await hang_up(pool2, "h1")
    assert end.result is AttemptResult.CONNECTED
    log = phone_log(phone)
    assert "reinvite sendonly" in log and "reinvite sendrecv" in log, log[-2000:]


async def test_hold_with_music(
    pool2: NodePool, phone: SippProcess, hub: RtpHub, tmp_path: Path
) -> None:
    from sip.assets import write_callee_audio

    write_callee_audio(tmp_path)
    music = tmp_path / "talk.wav"
    cust, _agent = await bridged_call(pool2, phone, hub, "h2")
    await pool2.submit(Hold(call_id="h2", music_wav=str(music)))
    await wait_for(pool2, "h2", CallHeld)
    cust.reset_window()
    await asyncio.sleep(1.0)
    assert cust.window.packets >= 40 and cust.window.level > SILENT, cust.window
    await hang_up(pool2, "h2")


async def test_dtmf_rfc2833_and_sip_info(
    pool2: NodePool, phone: SippProcess, hub: RtpHub
) -> None:
    cust, _agent = await bridged_call(pool2, phone, hub, "d1")
    await pool2.submit(SendDtmf(call_id="d1", digits="123#*9AD", duration_ms=80))
    sent = await wait_for(pool2, "d1", DtmfSent)
    assert isinstance(sent, DtmfSent) and (sent.method, sent.count) == ("rfc2833", 8)
    await eventually(lambda: len(cust.digits) >= 8, 5)
    assert "".join(cust.digits) == "123#*9AD"

    await pool2.submit(SendDtmf(call_id="d1", digits="4#7", method="sip_info"))
    sent = await wait_for(pool2, "d1", DtmfSent)
    assert isinstance(sent, DtmfSent) and sent.method == "sip_info"
    await eventually(lambda: phone_log(phone).count("info ") >= 3, 5)
    infos = [ln.split("info ", 1)[1].strip() for ln in phone_log(phone).splitlines()
             if "info " in ln]
    assert infos[-3:] == ["4", "#", "7"], infos
    await hang_up(pool2, "d1")


def test_dtmf_digits_are_validated() -> None:
    from sip.api import SipApiError

    for bad in ("", "12x", "1" * 33, "a"):
        with pytest.raises(SipApiError):
            SendDtmf(call_id="x", digits=bad)
    assert "123" not in repr(SendDtmf(call_id="x", digits="123"))


async def _levels(
    talker: RtpPeer, listeners: list[RtpPeer], everyone: list[RtpPeer]
) -> list[float]:
    for p in everyone:
        p.talk(p is talker)
    await asyncio.sleep(0.4)
    for p in listeners:
        p.reset_window()
    await asyncio.sleep(0.8)
    talker.talk(False)
    return [p.window.level for p in listeners]


@pytest.mark.parametrize("mode", ["monitor", "whisper", "barge"])
async def test_listen_modes(pool2: NodePool, phone: SippProcess, hub: RtpHub, mode: str) -> None:
    call_id = f"l-{mode}"
    cust, agent = await bridged_call(pool2, phone, hub, call_id)
    sup = hub.peer()
    in_use = pool2.in_use
    await pool2.submit(
        Listen(call_id=call_id, listen_call_id=f"{call_id}-s", supervisor_uri=phone.uri(
            f"sup-{sup.port}"), mode=mode)  # type: ignore[arg-type]
    )
    started = await wait_for(pool2, call_id, ListenStarted)
    assert isinstance(started, ListenStarted) and started.mode == mode
    assert pool2.in_use == in_use + 1  # the listen leg holds a slot of the call's node
    await eventually(lambda: sup.first_rx_mono is not None, 3)
    assert sup.first_rx_mono is not None  # the supervisor's phone gets RTP
    everyone = [cust, agent, sup]
    # the supervisor hears both sides in every mode
    assert (await _levels(cust, [sup], everyone))[0] > HEARS
    assert (await _levels(agent, [sup], everyone))[0] > HEARS
    # who hears the supervisor
    heard_by_agent, heard_by_cust = await _levels(sup, [agent, cust], everyone)
    expect = {"monitor": (False, False), "whisper": (True, False), "barge": (True, True)}[mode]
    assert (heard_by_agent > HEARS, heard_by_cust > HEARS) == expect, (
        heard_by_agent, heard_by_cust)
    assert heard_by_agent > HEARS or heard_by_agent < SILENT
    assert heard_by_cust > HEARS or heard_by_cust < SILENT
    # RTP per direction at the supervisor's phone: it received and sent all along
    assert sup.rx_audio >= 100 and sup.tx >= 100, (sup.rx_audio, sup.tx)

    await pool2.submit(StopListen(call_id=call_id, listen_call_id=f"{call_id}-s"))
    ended = await wait_for(pool2, call_id, ListenEnded)
    assert isinstance(ended, ListenEnded) and ended.answered and ended.reason == "stopped"
    assert ended.rx_packets >= 100 and ended.tx_packets >= 100, ended
    assert pool2.in_use == in_use  # its slot is back
    await hang_up(pool2, call_id)
    assert pool2.in_use == 0


async def test_listen_mode_change_and_end_with_the_call(
    pool2: NodePool, phone: SippProcess, hub: RtpHub
) -> None:
    cust, agent = await bridged_call(pool2, phone, hub, "lm")
    sup = hub.peer()
    uri = phone.uri(f"sup-{sup.port}")
    await pool2.submit(Listen(call_id="lm", listen_call_id="lm-s", supervisor_uri=uri))
    await wait_for(pool2, "lm", ListenStarted)
    everyone = [cust, agent, sup]
    assert (await _levels(sup, [cust], everyone))[0] < SILENT
    await pool2.submit(
        Listen(call_id="lm", listen_call_id="lm-s", supervisor_uri=uri, mode="barge"))
    changed = await wait_for(pool2, "lm", ListenStarted)
    assert isinstance(changed, ListenStarted) and changed.mode == "barge"
    assert (await _levels(sup, [cust], everyone))[0] > HEARS
    # the call ends: the supervisor's leg goes with it and every slot comes back
    await pool2.submit(Hangup(call_id="lm"))
    evs = await events_until(pool2, "lm")
    assert isinstance(evs[-1], CallEnded)
    ended = await wait_for(pool2, "lm", ListenEnded, within_s=5) if not any(
        isinstance(e, ListenEnded) for e in evs) else next(
        e for e in evs if isinstance(e, ListenEnded))
    assert isinstance(ended, ListenEnded) and ended.reason == "call ended"
    await asyncio.sleep(0.2)
    assert pool2.in_use == 0


async def test_listen_refused_when_node_full_or_not_bridged(
    pool2: NodePool, phone: SippProcess, hub: RtpHub
) -> None:
    # one node of 4 slots: two bridged calls fill it
    await bridged_call(pool2, phone, hub, "f1")
    await bridged_call(pool2, phone, hub, "f2")
    sup = hub.peer()
    await pool2.submit(Listen(call_id="f1", listen_call_id="f1-s",
                              supervisor_uri=phone.uri(f"sup-{sup.port}")))
    rej = await wait_for(pool2, "f1", CommandRejected)
    assert isinstance(rej, CommandRejected) and rej.command == "Listen"
    assert rej.retryable and "node full" in rej.error
    await hang_up(pool2, "f2")
    await hang_up(pool2, "f1")
    # an answered call with no agent yet cannot be listened to
    cust = hub.peer()
    await pool2.submit(Originate(call_id="f3", target=phone.uri(f"c-{cust.port}"),
                                 caller_id="15550100000", ring_timeout_s=5))
    await wait_for(pool2, "f3", CallAnswered)
    await pool2.submit(Listen(call_id="f3", listen_call_id="f3-s",
                              supervisor_uri=phone.uri(f"sup-{sup.port}")))
    rej = await wait_for(pool2, "f3", CommandRejected)
    assert isinstance(rej, CommandRejected) and "not bridged" in rej.error
    await asyncio.sleep(0.1)
    assert pool2.in_use == 2  # f3 and its agent slot; the refused leg's is back
    await hang_up(pool2, "f3")
    await pool2.submit(StopListen(call_id="gone", listen_call_id="x"))
    rej = await wait_for(pool2, "gone", CommandRejected)
    assert isinstance(rej, CommandRejected) and rej.command == "StopListen"


async def test_trunk_set_to_sip_info_sends_the_keypad_by_info(
    phone: SippProcess, hub: RtpHub, tmp_path: Path
) -> None:
    """TrunkConfig.dtmf_method: a carrier that needs SIP INFO gets INFO for method "auto"."""
    trunk = TrunkConfig(name="info", domain=f"127.0.0.1:{phone.port}", dtmf_method="sip_info")
    async with NodePool(PoolConfig(nodes=1, node_log_dir=str(tmp_path),
                                   trunks={"info": trunk})) as pool:
        cust, agent = hub.peer(), hub.peer()
        await pool.submit(Originate(call_id="t1", target=phone.uri(f"cust-{cust.port}"),
                                    caller_id="15550100000", ring_timeout_s=5, trunk="info"))
        await wait_for(pool, "t1", CallAnswered)
        await pool.submit(Bridge(call_id="t1", agent_call_id="t1-a",
                                 agent_uri=phone.uri(f"ag-{agent.port}")))
        await wait_for(pool, "t1", CallBridged)
        before = phone_log(phone).count("info ")
        await pool.submit(SendDtmf(call_id="t1", digits="0*"))
        sent = await wait_for(pool, "t1", DtmfSent)
        assert isinstance(sent, DtmfSent) and sent.method == "sip_info"
        await eventually(lambda: phone_log(phone).count("info ") >= before + 2, 5)
        infos = [ln.split("info ", 1)[1].strip() for ln in phone_log(phone).splitlines()
                 if "info " in ln]
        assert infos[-2:] == ["0", "*"]
        assert cust.digits == []  # nothing in-band
        await hang_up(pool, "t1")
    with pytest.raises(ValueError):
        TrunkConfig(name="bad", domain="x", dtmf_method="inband")


async def test_transfer_moves_the_customer_to_another_agent(
    pool2: NodePool, phone: SippProcess, hub: RtpHub, callee: SippProcess
) -> None:
    cust, first = await bridged_call(pool2, phone, hub, "x1")
    second = hub.peer()
    cust.talk(True)
    assert await rx_during(first, 0.6, voiced=True) >= 25
    # a phone that is busy: the transfer fails and the call stays with the first agent
    await pool2.submit(TransferAgent(call_id="x1", agent_call_id="x1-busy",
                                     agent_uri=callee.uri("status486_0_0")))
    failed = await wait_for(pool2, "x1", TransferFailed)
    assert isinstance(failed, TransferFailed) and failed.sip_code == 486
    assert pool2.in_use == 2  # the failed leg's slot is back
    assert await rx_during(first, 0.6, voiced=True) >= 25
    # to the second agent: the customer's voice now reaches it, and no longer the first
    await pool2.submit(TransferAgent(call_id="x1", agent_call_id="x1-b",
                                     agent_uri=phone.uri(f"ag-{second.port}")))
    done = await wait_for(pool2, "x1", AgentTransferred)
    assert isinstance(done, AgentTransferred)
    assert (done.agent_call_id, done.previous_agent_call_id) == ("x1-b", "x1-a")
    assert done.took_ms < 1000
    first.hang_up()  # its phone got the BYE
    assert await rx_during(second, 0.8, voiced=True) >= 30
    assert await rx_during(first, 0.8) == 0  # the first agent's leg is gone
    cust.talk(False)
    second.talk(True)
    cust.reset_window()
    await asyncio.sleep(0.6)
    assert cust.window.level > HEARS  # the customer hears the second agent
    second.talk(False)
    await asyncio.sleep(0.3)
    assert pool2.in_use == 2  # customer + the new agent
    end = await hang_up(pool2, "x1")
    assert end.result is AttemptResult.CONNECTED
    assert pool2.in_use == 0


async def test_the_new_agent_hanging_up_ends_the_call(
    pool2: NodePool, phone: SippProcess, hub: RtpHub, callee: SippProcess
) -> None:
    """After the swap the new leg is the call's agent leg: its hang-up ends the call."""
    await bridged_call(pool2, phone, hub, "x2")
    await pool2.submit(TransferAgent(call_id="x2", agent_call_id="x2-b",
                                     agent_uri=callee.uri("answer_0_1")))
    await wait_for(pool2, "x2", AgentTransferred)
    evs = await events_until(pool2, "x2")
    end = evs[-1]
    assert isinstance(end, CallEnded) and end.reason == "agent hung up", evs


async def test_warm_transfer_consult_then_complete_or_cancel(
    pool2: NodePool, phone: SippProcess, hub: RtpHub
) -> None:
    cust, first = await bridged_call(pool2, phone, hub, "w1")
    second = hub.peer()
    everyone = [cust, first, second]
    await pool2.submit(TransferAgent(call_id="w1", agent_call_id="w1-b", consult=True,
                                     agent_uri=phone.uri(f"ag-{second.port}")))
    held = await wait_for(pool2, "w1", CallHeld)
    assert isinstance(held, CallHeld) and held.on_hold  # the customer waits on hold
    consult = await wait_for(pool2, "w1", ConsultStarted)
    assert isinstance(consult, ConsultStarted) and consult.agent_call_id == "w1-b"
    # the two agents hear each other; the customer hears neither
    to_second, to_cust = await _levels(first, [second, cust], everyone)
    assert to_second > HEARS and to_cust < SILENT, (to_second, to_cust)
    assert (await _levels(second, [first], everyone))[0] > HEARS
    assert max(await _levels(cust, [first, second], everyone)) < SILENT  # nor they it
    assert pool2.in_use == 3
    # cancel: the new agent's leg goes, the call stays (on hold) with the first agent
    await pool2.submit(CancelTransfer(call_id="w1"))
    failed = await wait_for(pool2, "w1", TransferFailed)
    assert isinstance(failed, TransferFailed) and failed.reason == "cancelled"
    assert pool2.in_use == 2
    second.hang_up()  # its phone got the BYE: it stops sending too
    assert await rx_during(second, 0.6) == 0
    # again, and complete: the customer comes off hold talking to the new agent
    third = hub.peer()
    await pool2.submit(TransferAgent(call_id="w1", agent_call_id="w1-c", consult=True,
                                     agent_uri=phone.uri(f"ag-{third.port}")))
    await wait_for(pool2, "w1", ConsultStarted)
    await pool2.submit(CompleteTransfer(call_id="w1"))
    done = await wait_for(pool2, "w1", AgentTransferred)
    assert isinstance(done, AgentTransferred) and done.previous_agent_call_id == "w1-a"
    first.hang_up()  # its phone got the BYE
    resumed = await wait_for(pool2, "w1", CallHeld)
    assert isinstance(resumed, CallHeld) and not resumed.on_hold
    everyone = [cust, third]
    assert (await _levels(cust, [third], everyone))[0] > HEARS
    assert (await _levels(third, [cust], everyone))[0] > HEARS
    assert await rx_during(first, 0.6) == 0  # the first agent's leg is gone
    await hang_up(pool2, "w1")
    assert pool2.in_use == 0
