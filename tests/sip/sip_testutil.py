"""Helpers shared by the telephony tests (imported by module name: tests/sip is on sys.path)."""

from __future__ import annotations

import shutil
import weakref

import numpy as np
import pytest

from sip.amd import AmdResult, detect, frames
from sip.api import AmdSettings, CallEnded, CallLost, CommandRejected
from sip.pool import NodePool

requires_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")

FINAL = (CallEnded, CallLost)

#: the sample rate of the AMD port's audio (8 kHz 16-bit mono)
AMD_RATE = 8000


def amd_pcm(*parts: list[int] | np.ndarray, noise: float = 40.0, seed: int = 0) -> bytes:
    """The parts end to end plus Gaussian line hiss, as the AMD port's 16-bit PCM."""
    x = np.concatenate([np.asarray(p, float) for p in parts])
    x = x + np.random.default_rng(seed).normal(0, noise, len(x))
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * AMD_RATE))


def run_amd(pcm: bytes, s: AmdSettings | None = None) -> AmdResult:
    """The analyser the settings name, fed the PCM frame by frame."""
    return detect(frames(pcm), s or AmdSettings())

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
