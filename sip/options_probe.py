"""A small SIP OPTIONS sender: is anything SIP answering at a trunk's address? (docs/trunks.md)

pjsua2 offers no out-of-dialog request API, so the pool probes trunks itself: one OPTIONS
request (Via/From/To/Call-ID/CSeq/Max-Forwards, RFC 3261 section 11) to the trunk's outbound
proxy, or its domain when it has none. Any SIP response line (200, but also 401/403/404/405/
501...) means a SIP element is alive there; no response within the timeout, a refused
connection or an ICMP port-unreachable means dead. UDP retransmits like a SIP client
(500 ms doubling); TCP and TLS send once on a fresh connection (TLS is not verified: the
question is only whether something answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
from dataclasses import dataclass

from sip.config import TrunkConfig

_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})([^\r\n]*)")
_CALL_ID = re.compile(rb"^(?:Call-ID|i)\s*:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
#: the SIP T1 timer: first UDP retransmission interval
T1_S = 0.5


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    host: str
    port: int
    transport: str  # "udp" | "tcp" | "tls"

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    alive: bool
    #: e.g. "200 OK" or "no response within 2s" (no personal data: an address at most)
    detail: str
    status: int | None = None


def probe_target(trunk: TrunkConfig) -> ProbeTarget:
    """Where a trunk's requests go first: its outbound proxy, else its domain."""
    default_port = 5061 if trunk.transport == "tls" else 5060
    if trunk.outbound_proxy:
        hostport = re.sub(r"^sips?:", "", trunk.outbound_proxy, flags=re.IGNORECASE)
        hostport = hostport.split(";", 1)[0].split("@")[-1]
    else:
        hostport = trunk.domain
    host, port = _split_hostport(hostport, default_port)
    return ProbeTarget(host, port, trunk.transport)


def _split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):  # [v6]:port
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host, int(port)
    return hostport, default_port


def build_options(
    target: ProbeTarget, local_host: str, local_port: int, call_id: str, branch: str, tag: str
) -> bytes:
    """A valid out-of-dialog OPTIONS request (RFC 3261 8.1.1 mandatory headers)."""
    proto = target.transport.upper()
    host = f"[{target.host}]" if ":" in target.host else target.host
    local = f"[{local_host}]" if ":" in local_host else local_host
    lines = [
        f"OPTIONS sip:{host}:{target.port} SIP/2.0",
        f"Via: SIP/2.0/{proto} {local}:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:dialer-probe@{local}>;tag={tag}",
        f"To: <sip:{host}:{target.port}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:dialer-probe@{local}:{local_port}>",
        "Accept: application/sdp",
        "User-Agent: dialer-trunk-probe",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def parse_status(data: bytes, call_id: str | None = None) -> tuple[int, str] | None:
    """(code, reason) of a SIP response (matching ``call_id`` when given), else None."""
    m = _STATUS.match(data)
    if m is None:
        return None
    if call_id is not None:
        cid = _CALL_ID.search(data)
        if cid is not None and cid.group(1).decode(errors="replace") != call_id:
            return None
    return int(m.group(1)), m.group(2).decode(errors="replace").strip()


def _ids() -> tuple[str, str, str]:
    return (
        f"{secrets.token_hex(8)}@dialer-probe",
        f"z9hG4bK{secrets.token_hex(8)}",
        secrets.token_hex(4),
    )


class _UdpProbe(asyncio.DatagramProtocol):
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.done: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        st = parse_status(data, self.call_id)
        if st is not None and not self.done.done():
            self.done.set_result(ProbeResult(True, f"{st[0]} {st[1]}".strip(), st[0]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on the connected socket: nothing listens there
        if not self.done.done():
            self.done.set_result(
                ProbeResult(
                    False,
                    f"{type(exc).__name__}: {exc.strerror}"
                    if isinstance(exc, OSError)
                    else str(exc),
                )
            )


async def probe(
    target: ProbeTarget, timeout_s: float = 2.0, *, bind_address: str | None = None
) -> ProbeResult:
    """Send one OPTIONS to ``target``; alive on any SIP response within ``timeout_s``.

    ``bind_address``: send from this local address (the nodes' one, so the trunk sees the
    probe come from where its calls come from); None or a wildcard: the system chooses.
    """
    local = None if bind_address in (None, "", "0.0.0.0", "::") else bind_address
    try:
        if target.transport == "udp":
            return await _probe_udp(target, timeout_s, local)
        return await asyncio.wait_for(_probe_stream(target, local), timeout_s)
    except TimeoutError:
        return ProbeResult(False, f"no response within {timeout_s:g}s")
    except OSError as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {exc.strerror or exc}")


async def _probe_udp(target: ProbeTarget, timeout_s: float, local: str | None) -> ProbeResult:
    loop = asyncio.get_running_loop()
    call_id, branch, tag = _ids()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _UdpProbe(call_id),
        remote_addr=(target.host, target.port),
        local_addr=(local, 0) if local else None,
    )
    try:
        sock = transport.get_extra_info("socket")
        local_host, local_port = sock.getsockname()[:2] if sock is not None else ("0.0.0.0", 0)
        msg = build_options(target, local_host, local_port, call_id, branch, tag)
        deadline = loop.time() + timeout_s
        interval = T1_S
        while True:
            transport.sendto(msg)
            left = deadline - loop.time()
            if left <= 0:
                return ProbeResult(False, f"no response within {timeout_s:g}s")
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(proto.done), min(interval, left))
            interval = min(interval * 2, 4.0)
    finally:
        transport.close()


async def _probe_stream(target: ProbeTarget, local: str | None) -> ProbeResult:
    ctx = None
    if target.transport == "tls":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        target.host, target.port, ssl=ctx, local_addr=(local, 0) if local else None
    )
    try:
        call_id, branch, tag = _ids()
        sock = writer.get_extra_info("socket")
        local_host, local_port = sock.getsockname()[:2] if sock is not None else ("0.0.0.0", 0)
        writer.write(build_options(target, local_host, local_port, call_id, branch, tag))
        await writer.drain()
        data = await reader.readuntil(b"\r\n\r\n")
        st = parse_status(data, call_id)
        if st is None:
            return ProbeResult(False, "not a SIP response")
        return ProbeResult(True, f"{st[0]} {st[1]}".strip(), st[0])
    except asyncio.IncompleteReadError:
        return ProbeResult(False, "connection closed without a response")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


__all__ = [
    "ProbeResult",
    "ProbeTarget",
    "build_options",
    "parse_status",
    "probe",
    "probe_target",
]
