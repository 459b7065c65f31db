"""The node pool: capacity accounting, crash recovery, shutdown, 40 concurrent bridged calls."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
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
    CommandRejected,
    Originate,
)
from sip.config import PoolConfig
from sip.pool import NodePool, PoolError, SetupPacer
from sip.sipp import SippProcess, run_uac

pytestmark = [requires_sipp, pytest.mark.sipp]


def _orig(call_id: str, target: str, **kw: object) -> Originate:
    return Originate(
        call_id=call_id, target=target, caller_id="15550100000", ring_timeout_s=5, **kw
    )  # type: ignore[arg-type]


async def test_capacity_is_measured_and_slots_are_reserved(
    pool: NodePool, callee: SippProcess
) -> None:
    # the PyPI wheel's PJSUA_MAX_CALLS is 4; a raised-limit build would report more
    assert pool.capacity == 4 and pool.free_slots == 4 and pool.in_use == 0
    await pool.submit(_orig("c1", callee.uri("answer_0.1_0")))
    await pool.submit(_orig("c2", callee.uri("answer_0.1_0")))
    assert pool.in_use == 4  # customer + reserved agent slot, twice
    await pool.submit(_orig("c3", callee.uri("answer_0.1_0")))
    rej = await wait_for(pool, "c3", CommandRejected)
    assert isinstance(rej, CommandRejected) and rej.retryable and "pool full" in rej.error
    await pool.submit(_orig("c1", callee.uri("answer_0.1_0")))
    dup = await wait_for(pool, "c1", CommandRejected)
    assert isinstance(dup, CommandRejected) and not dup.retryable
    for cid in ("c1", "c2"):
        await wait_for(pool, cid, CallAnswered)
    await pool.close(drain_deadline_s=0)  # hangs up what is left
    assert pool.in_use == 0


async def test_close_hangs_up_calls_in_progress(callee: SippProcess, tmp_path: Path) -> None:
    seen: list[object] = []
    pool = NodePool(PoolConfig(nodes=1, node_log_dir=str(tmp_path)), on_event=seen.append)
    await pool.start()
    await pool.submit(_orig("d1", callee.uri("answer_0.1_0")))
    for _ in range(200):
        if any(isinstance(e, CallAnswered) for e in seen):
            break
        await asyncio.sleep(0.02)
    await pool.close(drain_deadline_s=0.2)
    ends = [e for e in seen if isinstance(e, CallEnded)]
    assert len(ends) == 1
    assert (ends[0].hangup_by, ends[0].reason) == ("node", "node shutdown")
    with pytest.raises(PoolError):
        await pool.submit(_orig("d2", callee.uri("answer_0.1_0")))


async def test_kill_9_reports_lost_calls_and_restarts(callee: SippProcess, tmp_path: Path) -> None:
    async with NodePool(PoolConfig(nodes=2, node_log_dir=str(tmp_path))) as pool:
        full = pool.capacity
        for cid in ("k1", "k2", "k3"):
            await pool.submit(_orig(cid, callee.uri("answer_0.1_3")))
        for cid in ("k1", "k2", "k3"):
            await wait_for(pool, cid, CallAnswered)
        victim = pool.node_of("k1")
        assert victim is not None
        held = {c for c in ("k1", "k2", "k3") if pool.node_of(c) is victim}
        os.kill(victim.pid, signal.SIGKILL)
        lost: set[str] = set()
        while lost != held:
            ev = await pool.next_event(15)
            if isinstance(ev, CallLost):
                lost.add(ev.call_id)
            assert not (isinstance(ev, CallEnded) and ev.call_id in held)
        assert pool.lost_calls == len(held)
        # a new node takes the dead one's place and measures its capacity again
        for _ in range(500):
            if pool.restarts == 1 and pool.capacity == full:
                break
            await asyncio.sleep(0.02)
        assert pool.restarts == 1 and pool.capacity == full
        fresh = pool.nodes[victim.index]
        assert fresh.pid != victim.pid and fresh.alive
        # the survivors are unaffected and new calls go through
        await pool.submit(_orig("k4", callee.uri("answer_0.1_0.3")))
        end = (await events_until(pool, "k4"))[-1]
        assert isinstance(end, CallEnded) and end.result == AttemptResult.ABANDONED


@pytest.mark.slow
async def test_40_concurrent_bridged_calls(
    callee: SippProcess, agent: SippProcess, tmp_path: Path
) -> None:
    """40 customer legs + 40 agent legs = 80 slots = 20 wheel nodes of 4."""
    n = 40
    async with NodePool(
        PoolConfig(nodes="auto", planned_concurrency=n, node_log_dir=str(tmp_path))
    ) as pool:
        assert len(pool.nodes) == 20 and pool.capacity == 80
        ids = [f"p{i}" for i in range(n)]
        for cid in ids:
            await pool.submit(_orig(cid, callee.uri("answer_0.2_4")))
        bridged: dict[str, CallBridged] = {}
        ended: dict[str, CallEnded] = {}
        peak = 0
        while len(ended) < n:
            ev = await pool.next_event(30)
            assert not isinstance(ev, (CallLost, CommandRejected)), ev
            if isinstance(ev, CallAnswered):
                await pool.submit(
                    Bridge(
                        call_id=ev.call_id,
                        agent_call_id=ev.call_id + "-a",
                        agent_uri=agent.uri("agent"),
                    )
                )
            elif isinstance(ev, CallBridged):
                bridged[ev.call_id] = ev
                peak = max(peak, len(bridged) - len(ended))
            elif isinstance(ev, CallEnded):
                ended[ev.call_id] = ev
        assert set(bridged) == set(ids)
        assert peak == n  # all 40 were bridged at the same time
        assert all(e.result == AttemptResult.CONNECTED for e in ended.values())
        for e in ended.values():
            assert e.media is not None
            assert (
                min(
                    e.media.rx_packets,
                    e.media.tx_packets,
                    e.media.agent_rx_packets,
                    e.media.agent_tx_packets,
                )
                > 0
            ), (e.call_id, e.media)
        # both legs of a call shared a node, and every node carried two calls
        assert pool.in_use == 0


def test_setup_pacer_spaces_setups() -> None:
    p = SetupPacer(40.0)
    # a burst at t=10: each waits one more interval (25 ms) than the previous
    delays = [p.reserve(10.0) for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.025, 0.05, 0.075])
    # an agent leg does not wait but still uses a token
    assert p.reserve(10.0, wait=False) == 0.0
    assert p.reserve(10.0) == pytest.approx(0.125)
    # after a quiet period the budget is back, without accumulating a burst allowance
    assert p.reserve(20.0) == 0.0
    assert p.reserve(20.0) == pytest.approx(0.025)
    with pytest.raises(ValueError):
        SetupPacer(0)


async def test_node_survives_garbage_and_declines_incoming(
    pool: NodePool, callee: SippProcess
) -> None:
    node = pool.nodes[0]
    pid = node.pid
    junk = [
        b"\x00\xff" * 700,
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnope\r\nCSeq: 1 INVITE\r\n"
        b"Call-ID: nope\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 99999999\r\n\r\n",
        b"REGISTER " + b"A" * 60000 + b" SIP/2.0\r\n\r\n",
    ]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for data in junk:
            s.sendto(data, ("127.0.0.1", node.sip_port))
    finally:
        s.close()
    # unsolicited INVITEs (SIPp's uac) are declined, not left ringing in a slot
    r = await asyncio.to_thread(
        run_uac, "127.0.0.1", node.sip_port, calls=3, rate=10, concurrent=3, timeout_s=20
    )
    assert r.returncode != 0  # SIPp counts the declined calls as failed
    assert node.alive and node.pid == pid
    await pool.submit(_orig("g1", callee.uri("answer_0.1_0.2")))
    end = (await events_until(pool, "g1"))[-1]
    assert isinstance(end, CallEnded) and end.result == AttemptResult.ABANDONED
    assert pool.capacity == 4 and pool.in_use == 0


async def test_tcp_transport(tmp_path: Path) -> None:
    with SippProcess.callee(extra_args=("-t", "t1")) as tcp_callee:
        async with NodePool(
            PoolConfig(nodes=1, transports=("udp", "tcp"), node_log_dir=str(tmp_path))
        ) as pool:
            target = tcp_callee.uri("answer_0.1_0.3") + ";transport=tcp"
            await pool.submit(_orig("tcp1", target))
            evs = await events_until(pool, "tcp1")
            assert [type(e).__name__ for e in evs] == [
                "CallTrying",
                "CallRinging",
                "CallAnswered",
                "CallEnded",
            ]
            end = evs[-1]
            assert isinstance(end, CallEnded) and end.hangup_by == "remote"


def _self_signed(key: Path, cert: Path) -> None:
    cmd = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
async def test_tls_transport_serves_our_certificate_and_speaks_sip(tmp_path: Path) -> None:
    """The TLS listener uses the configured certificate and answers SIP over TLS.

    Debian's SIPp has no TLS, so no call here: the test completes a handshake, checks the
    certificate the node presents is ours, and sends an OPTIONS over the TLS connection.
    """
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    await asyncio.to_thread(_self_signed, key, cert)
    cfg = PoolConfig(
        nodes=1,
        transports=("udp", "tls"),
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        node_log_dir=str(tmp_path),
    )
    async with NodePool(cfg) as pool:
        port = pool.nodes[0].sip_port + 1
        ctx = ssl.create_default_context(cafile=str(cert))  # trust exactly our certificate
        ctx.check_hostname = False
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        try:
            presented = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert presented == ssl.PEM_cert_to_DER_cert(cert.read_text())
            local_port = writer.get_extra_info("sockname")[1]
            options = (
                f"OPTIONS sip:127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bK-tls-test\r\n"
                "Max-Forwards: 70\r\n"
                f"To: <sip:127.0.0.1:{port}>\r\n"
                "From: <sip:tls-test@127.0.0.1>;tag=tls-test\r\n"
                "Call-ID: tls-test@127.0.0.1\r\n"
                "CSeq: 1 OPTIONS\r\n"
                f"Contact: <sip:tls-test@127.0.0.1:{local_port};transport=tls>\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            writer.write(options.encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"SIP/2.0 200"), status
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert b"CSeq: 1 OPTIONS" in head
        finally:
            writer.close()
            await writer.wait_closed()
