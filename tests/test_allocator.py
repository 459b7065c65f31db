"""The dialer process caps glibc's malloc arenas (dialer/allocator.py), unless told otherwise."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.allocator import fix_mmap_threshold, limit_malloc_arenas, tune_malloc

ROOT = Path(__file__).resolve().parent.parent
glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)


def _probe(code: str, tuned: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run `code` in a fresh interpreter (no inherited MALLOC_* settings) twice: with
    argv[1] == `tuned` (the snippet applies the setting) and == "default"."""
    return {
        mode: subprocess.run(
            [sys.executable, "-c", code, mode, str(ROOT)],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60,
            check=True,
        )
        for mode in (tuned, "default")
    }


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
from dialer.allocator import fix_mmap_threshold, limit_malloc_arenas, tune_malloc
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
    arenas = {mode: out.stderr.count("Arena ") for mode, out in _probe(code, "cap").items()}
    assert 1 <= arenas["cap"] <= 2, arenas
    assert arenas["default"] > arenas["cap"], arenas


@glibc
def test_the_mmap_threshold_is_fixed_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert fix_mmap_threshold() is True
    assert tune_malloc() == {"arenas": True, "mmap_threshold": True}


def test_the_operators_threshold_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
    with pytest.raises(ValueError, match="size must be >= 1"):
        fix_mmap_threshold(0)


@glibc
def test_large_freed_blocks_no_longer_move_the_threshold() -> None:
    # glibc raises its threshold to a freed 4 MiB block; a 256 KiB buffer then comes from the
    # heap (mallinfo2's arena grows). With the threshold fixed it is its own mapping (hblkhd).
    code = """
import ctypes, sys
sys.path.insert(0, sys.argv[2])
from dialer.allocator import fix_mmap_threshold
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MI
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.malloc.argtypes = [ctypes.c_size_t]
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblkhd
p = libc.malloc(256 << 10)
print(libc.mallinfo2().hblkhd - before >= 256 << 10)
libc.free(p)
"""
    got = {mode: out.stdout.strip() for mode, out in _probe(code, "fixed").items()}
    assert got == {"fixed": "True", "default": "False"}, got
