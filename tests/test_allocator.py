"""The dialer process caps glibc's malloc arenas (dialer/allocator.py), unless told otherwise."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.allocator import limit_malloc_arenas

ROOT = Path(__file__).resolve().parent.parent
glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)


@glibc
def test_the_cap_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(2) is True


def test_the_operators_setting_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="arenas must be >= 1"):
        limit_malloc_arenas(0)


@glibc
def test_threads_share_the_capped_arenas() -> None:
    # glibc's malloc_stats() prints one "Arena N:" block per arena to stderr: eight threads
    # allocating at once make up to eight arenas by default, two with the cap
    code = """
import ctypes, sys, threading
sys.path.insert(0, sys.argv[2])
from dialer.allocator import limit_malloc_arenas
if sys.argv[1] == "cap":
    assert limit_malloc_arenas(2)
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(2000):
        bufs = [ctypes.create_string_buffer(200_000) for _ in range(4)]
        del bufs
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""
    arenas = {}
    for mode in ("cap", "default"):
        env = {"PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            [sys.executable, "-c", code, mode, str(ROOT)],
            capture_output=True, text=True, env=env, timeout=60, check=True,
        )
        arenas[mode] = out.stderr.count("Arena ")
    assert 1 <= arenas["cap"] <= 2, arenas
    assert arenas["default"] > arenas["cap"], arenas
