"""A real HTTP receiver on 127.0.0.1 for the webhook tests: it records every request, can
answer an error status, answer late (past the worker's timeout) or be down (its port closed,
so connections are refused), and checks signatures with the recipe of docs/webhooks.md."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any


def verify_signature(secret: str, headers: dict[str, str], body: bytes,
                     tolerance_s: int = 300) -> bool:
    """docs/webhooks.md, "Verifying a delivery", as a receiver writes it."""
    ts = headers["x-dialer-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return (hmac.compare_digest(expected, headers["x-dialer-signature"])
            and abs(time.time() - int(ts)) <= tolerance_s)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    @property
    def delivery(self) -> str:
        return self.headers["x-dialer-delivery"]

    @property
    def event(self) -> str:
        return self.headers["x-dialer-event"]

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """`async with Receiver() as r:` ... `r.url`; set `status`, `delay_s`, or stop()/start()."""

    port: int = 0
    #: the status answered (a 2xx records the delivery as accepted)
    status: int = 200
    #: answer this late (a worker's timeout shorter than this sees a timeout)
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/dialer"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Down: the port is closed and every open connection dropped."""
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    def accepted(self) -> list[Received]:
        """2xx-answered requests, each delivery id once (the receiver's dedupe), in arrival
        order."""
        seen: set[str] = set()
        out = []
        for r in self.requests:
            if 200 <= r.status < 300 and r.delivery not in seen:
                seen.add(r.delivery)
                out.append(r)
        return out

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in
                       (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.status
            self.requests.append(Received(headers, body, time.monotonic(), status))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n"
                         f"\r\nok".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
