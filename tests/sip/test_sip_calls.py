"""Call progress against a real SIPp callee network on loopback (no mocked SIP).

Each test dials a user part of the callee scenario's grammar (docs/sip.md) and checks the
events the pool reports. Timing values in events are checked for order and presence only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import get_args

import pytest
from sip_testutil import events_until, requires_sipp, wait_for

from common.vocabulary import AmdVerdict, AttemptResult
from sip.api import (
    AmdDone,
    AmdSettings,
    CallAnswered,
    CallEnded,
    CallRinging,
    CommandRejected,
    DtmfReceived,
    Event,
    Hangup,
    Originate,
    Play,
    PlaybackDone,
    StartRecording,
    TrunkStatus,
    from_wire,
    to_wire,
)
from sip.assets import ensure_default_message, read_wav_pcm16
from sip.config import PoolConfig, TrunkConfig
from sip.pool import NodePool
from sip.sipp import SippProcess

pytestmark = [requires_sipp, pytest.mark.sipp]


def _orig(call_id: str, target: str, ring: float = 5.0, **kw: object) -> Originate:
    return Originate(
        call_id=call_id, target=target, caller_id="15550100000", ring_timeout_s=ring, **kw
    )  # type: ignore[arg-type]


def _kinds(evs: list[object]) -> list[str]:
    return [type(e).__name__ for e in evs]


async def test_answered_then_callee_hangs_up(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("a1", callee.uri("answer_0.3_0.5")))
    evs = await events_until(pool, "a1")
    assert _kinds(evs) == ["CallTrying", "CallRinging", "CallAnswered", "CallEnded"]
    ringing, end = evs[1], evs[-1]
    assert isinstance(ringing, CallRinging) and ringing.sip_code == 180
    assert not ringing.early_media
    assert isinstance(end, CallEnded)
    assert end.result == AttemptResult.ABANDONED  # answered, never bridged
    assert end.hangup_by == "remote" and end.sip_code == 200
    assert end.ring_s is not None and end.ring_s > 0
    assert end.talk_s is not None and end.talk_s > 0
    assert end.media is not None and end.media.rx_packets > 0  # the callee's tone arrived
    monos = [e.mono for e in evs]  # type: ignore[attr-defined]
    assert monos == sorted(monos)
    assert pool.in_use == 0


async def test_hung_up_by_dialer(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("a2", callee.uri("answer_0.1_0")))
    await wait_for(pool, "a2", CallAnswered)
    await pool.submit(Hangup(call_id="a2", reason="agent wrap-up"))
    end = (await events_until(pool, "a2"))[-1]
    assert isinstance(end, CallEnded)
    assert (end.hangup_by, end.reason, end.result) == (
        "local",
        "agent wrap-up",
        AttemptResult.ABANDONED,
    )


async def test_cancel_before_answer_by_dialer(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("a3", callee.uri("noanswer_0_0"), ring=30))
    await wait_for(pool, "a3", CallRinging)
    await pool.submit(Hangup(call_id="a3", reason="campaign stopped"))
    end = (await events_until(pool, "a3"))[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.hangup_by, end.sip_code) == (AttemptResult.CANCELLED, "local", 487)
    assert not end.answered_after_cancel


@pytest.mark.parametrize(
    ("user", "result", "code", "retryable"),
    [
        ("status486_0.2_0", AttemptResult.BUSY, 486, True),
        ("status600_0_0", AttemptResult.BUSY, 600, True),
        ("status404_0_0", AttemptResult.INVALID_NUMBER, 404, False),
        ("status484_0_0", AttemptResult.INVALID_NUMBER, 484, False),
        ("status603_0.2_0", AttemptResult.REJECTED, 603, False),
        ("status403_0_0", AttemptResult.REJECTED, 403, False),
        ("status503_0_0", AttemptResult.FAILED, 503, True),
        ("status480_0.2_0", AttemptResult.NO_ANSWER, 480, True),
    ],
)
async def test_final_responses(
    pool: NodePool,
    callee: SippProcess,
    user: str,
    result: AttemptResult,
    code: int,
    retryable: bool,
) -> None:
    await pool.submit(_orig("f-" + user, callee.uri(user)))
    evs = await events_until(pool, "f-" + user)
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.sip_code, end.retryable, end.hangup_by) == (
        result,
        code,
        retryable,
        "remote",
    )
    assert end.talk_s is None
    # a ring time was given: ringing reported, and ring_s measured from the 180
    if user.split("_")[1] != "0":
        assert any(isinstance(e, CallRinging) for e in evs)
        assert end.ring_s is not None


async def test_no_answer_cancelled_at_ring_timeout(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("n1", callee.uri("noanswer_0_0"), ring=1.0))
    evs = await events_until(pool, "n1")
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.sip_code, end.hangup_by) == (AttemptResult.NO_ANSWER, 487, "node")
    assert end.retryable and not end.answered_after_cancel
    # the ring timeout counts from the 180, never from the INVITE
    ringing = next(e for e in evs if isinstance(e, CallRinging))
    assert end.mono - ringing.mono >= 1.0
    assert end.ring_s is not None and end.ring_s >= 1.0


async def test_setup_timeout_without_ringing(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("s1", callee.uri("trying_0_0"), ring=30, setup_timeout_s=1.0))
    evs = await events_until(pool, "s1")
    assert not any(isinstance(e, CallRinging) for e in evs)
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert (end.result, end.hangup_by, end.retryable) == (AttemptResult.FAILED, "node", True)
    assert "no ringing" in end.reason


async def test_early_media_then_answer(pool: NodePool, callee: SippProcess) -> None:
    await pool.submit(_orig("e1", callee.uri("early_0.3_0.3")))
    evs = await events_until(pool, "e1")
    ringing = next(e for e in evs if isinstance(e, CallRinging))
    assert ringing.early_media and ringing.sip_code == 183
    assert any(isinstance(e, CallAnswered) for e in evs)
    end = evs[-1]
    assert isinstance(end, CallEnded) and end.hangup_by == "remote"


async def test_200_crossing_cancel_is_acked_hung_up_and_reported(
    pool: NodePool, callee: SippProcess
) -> None:
    await pool.submit(_orig("r1", callee.uri("race_0_0"), ring=0.5))
    evs = await events_until(pool, "r1")
    assert not any(isinstance(e, CallAnswered) for e in evs)
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert end.answered_after_cancel
    assert (end.result, end.sip_code, end.hangup_by) == (AttemptResult.NO_ANSWER, 200, "node")
    assert "crossed" in end.reason


async def test_trunk_digest_auth(callee: SippProcess, tmp_path: Path) -> None:
    good = TrunkConfig(
        name="good",
        domain=f"127.0.0.1:{callee.port}",
        username="trunkuser",
        password="trunkpass",
        realm="sipp.test",
    )
    bad = TrunkConfig(
        name="bad",
        domain=f"127.0.0.1:{callee.port}",
        username="trunkuser",
        password="wrong",
        realm="sipp.test",
    )
    async with NodePool(
        PoolConfig(nodes=1, trunks={"good": good, "bad": bad}, node_log_dir=str(tmp_path))
    ) as pool:
        await pool.submit(_orig("t1", callee.uri("auth_0.1_0.2"), trunk="good"))
        evs = await events_until(pool, "t1")
        assert "CallAnswered" in _kinds(evs)
        await pool.submit(_orig("t2", callee.uri("auth_0.1_0.2"), trunk="bad"))
        end = (await events_until(pool, "t2"))[-1]
        assert isinstance(end, CallEnded)
        assert end.sip_code == 403 and end.result == AttemptResult.REJECTED
        # unknown trunk: refused up front, not retryable
        await pool.submit(_orig("t3", callee.uri("answer_0_1"), trunk="nope"))
        rej = (await events_until(pool, "t3"))[-1]
        assert isinstance(rej, CommandRejected) and not rej.retryable


@pytest.mark.parametrize(
    ("user", "verdict"), [("human_0.1_0", AmdVerdict.HUMAN), ("machine_0.1_0", AmdVerdict.MACHINE)]
)
async def test_amd_over_rtp(
    pool: NodePool, callee: SippProcess, user: str, verdict: AmdVerdict
) -> None:
    await pool.submit(_orig("amd-" + user, callee.uri(user), amd=AmdSettings()))
    res = await wait_for(pool, "amd-" + user, AmdDone)
    assert isinstance(res, AmdDone)
    assert res.verdict == verdict, res
    assert 0 < res.took_ms <= AmdSettings().max_analysis_ms
    await pool.submit(Hangup(call_id="amd-" + user))
    end = (await events_until(pool, "amd-" + user))[-1]
    assert isinstance(end, CallEnded)
    expected = AttemptResult.MACHINE if verdict == AmdVerdict.MACHINE else AttemptResult.ABANDONED
    assert end.result == expected


async def test_recorded_message_then_hangup(
    pool: NodePool, callee: SippProcess, tmp_path: Path
) -> None:
    wav = ensure_default_message(tmp_path / "message.wav", "We are sorry. Goodbye.")
    rec = tmp_path / "rec" / "m1.wav"
    await pool.submit(_orig("m1", callee.uri("answer_0.1_0")))
    await wait_for(pool, "m1", CallAnswered)
    await pool.submit(StartRecording(call_id="m1", wav_path=str(rec)))
    await pool.submit(Play(call_id="m1", wav_path=str(wav), hangup_after=True))
    evs = await events_until(pool, "m1", within_s=60)
    assert _kinds(evs)[-2:] == ["PlaybackDone", "CallEnded"]
    end = evs[-1]
    assert isinstance(end, CallEnded)
    assert (end.hangup_by, end.reason, end.result) == (
        "local",
        "message played",
        AttemptResult.ABANDONED,
    )
    assert end.media is not None and end.media.tx_packets > 0
    samples, rate = read_wav_pcm16(rec)
    assert rate == 8000 and len(samples) > 8000  # over a second of conversation recorded
    assert max(abs(s) for s in samples) > 1000  # the message (and the callee's tone) is in it


async def test_play_rejections(pool: NodePool, callee: SippProcess, tmp_path: Path) -> None:
    await pool.submit(Play(call_id="nope", wav_path=str(tmp_path / "x.wav")))
    rej = await wait_for(pool, "nope", CommandRejected)
    assert isinstance(rej, CommandRejected) and not rej.retryable
    await pool.submit(_orig("p1", callee.uri("answer_0.1_0")))
    await wait_for(pool, "p1", CallAnswered)
    await pool.submit(Play(call_id="p1", wav_path=str(tmp_path / "missing.wav")))
    rej = await wait_for(pool, "p1", CommandRejected)
    assert isinstance(rej, CommandRejected) and "no such WAV" in rej.error
    await pool.submit(Hangup(call_id="p1"))
    await events_until(pool, "p1")


async def test_bad_target_host_fails_cleanly(pool: NodePool) -> None:
    # an unresolvable host: PJSIP fails the call inside makeCall (no nameserver is configured,
    # so resolution is synchronous) - reported at once, not a stall
    await pool.submit(_orig("x1", "sip:1@host.invalid"))
    evs = await events_until(pool, "x1", within_s=40)
    # the INVITE never left, so no CallTrying: just the one final event
    assert _kinds(evs) in (["CallEnded"], ["CommandRejected"]), _kinds(evs)
    end = evs[-1]
    if isinstance(end, CallEnded):
        assert end.result == AttemptResult.FAILED and end.retryable
        assert end.sip_code is not None and 500 <= end.sip_code < 600  # PJSIP's local 502
        assert end.ring_s is None and end.talk_s is None and not end.answered_after_cancel
    assert pool.in_use == 0
    # nothing more comes for x1: PJSIP disconnects the call inside makeCall and then also
    # raises from it; the node must not answer that with a second final event
    late = await _late_events(pool, "x1", 0.5)
    assert late == [], _kinds(late)


async def _late_events(pool: NodePool, call_id: str, within_s: float) -> list[object]:
    """Events of ``call_id`` arriving within ``within_s`` (others stay queued for their waiters)."""
    out: list[object] = []
    deadline = asyncio.get_running_loop().time() + within_s
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            out.append(await wait_for(pool, call_id, object, within_s=left))
        except TimeoutError:
            break
    return out


async def test_playback_done_crosses_the_wire() -> None:
    # the node sends PlaybackDone to the pool as a JSON frame: it must be a registered event
    ev = PlaybackDone(call_id="p9")
    assert PlaybackDone in get_args(Event)
    back = from_wire(json.loads(json.dumps(to_wire(ev))))
    assert isinstance(back, PlaybackDone) and back == ev


async def test_trunk_registration_and_its_failure(tmp_path: Path) -> None:
    with SippProcess("registrar") as reg:
        dom = f"127.0.0.1:{reg.port}"
        good = TrunkConfig(
            name="good",
            domain=dom,
            username="trunkuser",
            password="trunkpass",
            realm="sipp.test",
            register=True,
        )
        bad = TrunkConfig(
            name="bad",
            domain=dom,
            username="trunkuser",
            password="nope",
            realm="sipp.test",
            register=True,
        )
        seen: list[object] = []
        pool = NodePool(
            PoolConfig(nodes=1, trunks={"good": good, "bad": bad}, node_log_dir=str(tmp_path)),
            on_event=seen.append,
        )
        await pool.start()
        try:
            for _ in range(250):
                if {"good", "bad"} <= set(pool.trunk_status):
                    break
                await asyncio.sleep(0.02)
            ok, failed = pool.trunk_status["good"], pool.trunk_status["bad"]
            assert ok.registered and ok.sip_code == 200
            assert not failed.registered and failed.sip_code == 403
            assert any(isinstance(e, TrunkStatus) and e.call_id == "trunk:bad" for e in seen)
        finally:
            await pool.close(drain_deadline_s=0)


async def test_trunk_channel_cap_and_default_message(callee: SippProcess, tmp_path: Path) -> None:
    wav = ensure_default_message(tmp_path / "default.wav", "Goodbye.")
    trunk = TrunkConfig(name="capped", domain=f"127.0.0.1:{callee.port}", max_channels=1)
    cfg = PoolConfig(
        nodes=1, trunks={"capped": trunk}, message_wav=str(wav), node_log_dir=str(tmp_path)
    )
    async with NodePool(cfg) as pool:
        await pool.submit(_orig("q1", callee.uri("answer_0.1_0"), trunk="capped"))
        await pool.submit(_orig("q2", callee.uri("answer_0.1_0"), trunk="capped"))
        rej = (await events_until(pool, "q2"))[-1]
        assert (
            isinstance(rej, CommandRejected) and rej.retryable and "trunk capped full" in rej.error
        )
        await wait_for(pool, "q1", CallAnswered)
        # Play without a path: the pool's default message, then hang up
        await pool.submit(Play(call_id="q1"))
        evs = await events_until(pool, "q1", within_s=30)
        assert [type(e).__name__ for e in evs][-2:] == ["PlaybackDone", "CallEnded"]
        # the channel is free again
        await pool.submit(_orig("q3", callee.uri("answer_0.1_0.2"), trunk="capped"))
        end = (await events_until(pool, "q3"))[-1]
        assert isinstance(end, CallEnded)


async def test_key_press_is_reported(pool: NodePool, callee: SippProcess) -> None:
    # the callee presses 9 one second after answering (e.g. the opt-out key of the message)
    await pool.submit(_orig("o1", callee.uri("optout_0.1_0")))
    await wait_for(pool, "o1", CallAnswered)
    key = await wait_for(pool, "o1", DtmfReceived)
    assert isinstance(key, DtmfReceived)
    assert (key.digit, key.method) == ("9", "sip_info")
    await pool.submit(Hangup(call_id="o1", reason="opt-out"))
    end = (await events_until(pool, "o1"))[-1]
    assert isinstance(end, CallEnded) and end.hangup_by == "local"
