"""The C allocator's arenas of a long-running dialer process.

glibc's malloc gives each thread that contends for the heap an arena of its own, up to
8 x cores, and memory freed in one is not reused by another: a process whose threads (the
SQLite and DNS worker threads, the MQTT and web servers) allocate and free in turn holds more
and more half-empty arenas. Measured with ``bench/soak.py`` (10 agents, SQLite): the dialer's
RSS grew ~0.5 MB a minute after warm-up with glibc's default, about half that with two arenas
(``MALLOC_ARENA_MAX=2``), while Python's own allocations stayed nearly flat; the figures are
in docs/capacity.md. So ``dialer run`` and ``dialer demo`` cap the arenas at two, the usual
setting for Python services, and fix the mmap threshold (`fix_mmap_threshold`), unless the
operator set ``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` (glibc read them at start;
their choice stands). The dialer process's allocations are not hot enough for arena
contention to show (its asyncio loop is one thread). The SIP node processes keep glibc's
defaults: their RSS moved by under 0.3 MB in 10 minutes of a soak.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: glibc's mallopt() parameters (malloc.h: ``#define M_ARENA_MAX -8``, ``M_MMAP_THRESHOLD -3``)
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
#: arenas the dialer process keeps
DIALER_ARENAS = 2
#: allocations from this size up get their own mapping, returned to the system when freed
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `size` bytes; True when set.

    glibc starts at 128 KiB but raises the threshold to the size of every large block freed
    (up to 32 MiB), after which large short-lived buffers come from the heap. asyncio reads
    every socket with a 256 KiB buffer shrunk to what arrived: once those come from the heap,
    each read leaves a free hole that small long-lived objects then pin. On PostgreSQL (every
    query a socket read) the soak's heap grew ~0.6 MB a minute in free holes while the memory
    in use stayed flat; with the threshold fixed it stayed flat (docs/capacity.md). A fixed
    threshold also switches the dynamic raising off. ``MALLOC_MMAP_THRESHOLD_`` set by the
    operator wins.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, not {size}")
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    return _mallopt(M_MMAP_THRESHOLD, size)


def tune_malloc() -> dict[str, bool]:
    """Both settings of this module for a long-running dialer process (before its threads)."""
    return {"arenas": limit_malloc_arenas(), "mmap_threshold": fix_mmap_threshold()}


def _mallopt(param: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(param, value))
    log.debug("mallopt(%d, %d): %s", param, value, done)
    return done


def limit_malloc_arenas(arenas: int = DIALER_ARENAS) -> bool:
    """Cap glibc's malloc arenas of this process; True when the cap was set.

    Call before the process starts its threads (arenas made already stay). Does nothing
    (False) when ``MALLOC_ARENA_MAX`` is set, off Linux, or on a C library without glibc's
    ``mallopt`` (musl's accepts nothing).
    """
    if arenas < 1:
        raise ValueError(f"arenas must be >= 1, not {arenas}")
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return _mallopt(M_ARENA_MAX, arenas)
