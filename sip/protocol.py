"""Pool <-> node message protocol: length-prefixed JSON frames over a stream socket.

Frame = 4-byte big-endian length + UTF-8 JSON object with a ``kind`` field. A stream socket
(loopback TCP today) keeps the channel a message protocol, so a node can later run on another
machine. Kinds:

node -> pool: ``hello`` {node_id, pid, capacity, sip_port, pjsip}, ``error`` {error} (start
failed), ``event`` {event} (a :mod:`sip.api` event via ``to_wire``; ``full: true`` on the
``CommandRejected`` of an Originate that found no pjsua slot), ``slots`` {held} (call slots
pjsua still holds for calls already ended, sent when it changes and always before an event
that frees slots), ``bye`` {}.
pool -> node: ``cmd`` {cmd}, ``shutdown`` {deadline_s}.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

MAX_FRAME = 1 << 20
_HDR = struct.Struct("!I")


class ProtocolError(Exception):
    """A peer sent a frame that is not a valid protocol message."""


def encode_frame(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _HDR.pack(len(body)) + body


def _decode_body(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON frame: {exc}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("kind"), str):
        raise ProtocolError("frame is not an object with a 'kind'")
    return msg


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """Read one frame; None at a clean EOF between frames."""
    try:
        hdr = await reader.readexactly(_HDR.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from exc
        return None
    (n,) = _HDR.unpack(hdr)
    if n > MAX_FRAME:
        raise ProtocolError(f"frame length {n} exceeds {MAX_FRAME}")
    try:
        body = await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("connection closed inside a frame") from exc
    return _decode_body(body)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise ProtocolError("connection closed inside a frame")
            return None
        buf += chunk
    return bytes(buf)


def recv_frame_blocking(sock: socket.socket) -> dict[str, Any] | None:
    """Blocking read of one frame (node side); None at EOF."""
    hdr = _recv_exact(sock, _HDR.size)
    if hdr is None:
        return None
    (n,) = _HDR.unpack(hdr)
    if n > MAX_FRAME:
        raise ProtocolError(f"frame length {n} exceeds {MAX_FRAME}")
    body = _recv_exact(sock, n)
    if body is None:
        raise ProtocolError("connection closed inside a frame")
    return _decode_body(body)
