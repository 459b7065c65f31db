"""Helpers shared by the telephony tests (imported by module name: tests/sip is on sys.path)."""

from __future__ import annotations

import shutil
import weakref

import pytest

from sip.api import CallEnded, CallLost, CommandRejected
from sip.pool import NodePool

requires_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")

FINAL = (CallEnded, CallLost)

#: events read while waiting for another call, kept for whoever waits for them next
_backlog: weakref.WeakKeyDictionary[NodePool, list[object]] = weakref.WeakKeyDictionary()


async def _next_for(pool: NodePool, call_id: str, within_s: float) -> object:
    backlog = _backlog.setdefault(pool, [])
    for i, ev in enumerate(backlog):
        if getattr(ev, "call_id", None) == call_id:
            return backlog.pop(i)
    while True:
        ev = await pool.next_event(within_s)
        if getattr(ev, "call_id", None) == call_id:
            return ev
        backlog.append(ev)


async def events_until(
    pool: NodePool, call_id: str, *, final: tuple[type, ...] = FINAL, within_s: float = 15
) -> list[object]:
    """Collect the events of one call up to (and including) its final event."""
    out: list[object] = []
    while True:
        ev = await _next_for(pool, call_id, within_s)
        out.append(ev)
        if isinstance(ev, final):
            return out
        if isinstance(ev, CommandRejected) and ev.command == "Originate":
            return out


async def wait_for(pool: NodePool, call_id: str, kind: type, within_s: float = 15) -> object:
    """Wait for the first event of ``kind`` for ``call_id``; fails on the call's final event.

    Events of the call before it are dropped; other calls' events stay queued for them.
    """
    while True:
        ev = await _next_for(pool, call_id, within_s)
        if isinstance(ev, kind):
            return ev
        if isinstance(ev, FINAL) and kind not in FINAL:
            raise AssertionError(f"call {call_id} ended before {kind.__name__}: {ev}")
