"""The C allocator's arenas of a long-running dialer process.

glibc's malloc gives each thread that contends for the heap an arena of its own, up to
8 x cores, and memory freed in one is not reused by another: a process whose threads (the
SQLite and DNS worker threads, the MQTT and web servers) allocate and free in turn holds more
and more half-empty arenas. Measured with ``bench/soak.py`` (10 agents, SQLite): the dialer's
RSS grew ~0.5 MB a minute after warm-up with glibc's default, about half that with two arenas
(``MALLOC_ARENA_MAX=2``), while Python's own allocations stayed nearly flat; the figures are
in docs/capacity.md. So ``dialer run`` and ``dialer demo`` cap the arenas at two, the usual
setting for Python services, unless the operator set ``MALLOC_ARENA_MAX`` (glibc read it at
start; their choice stands). The dialer process's allocations are not hot enough for arena
contention to show (its asyncio loop is one thread). The SIP node processes keep glibc's
default: their media threads are the busy ones and their memory was measured flat.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: glibc's mallopt() parameter for the arena limit (malloc.h: ``#define M_ARENA_MAX -8``)
M_ARENA_MAX = -8
#: arenas the dialer process keeps
DIALER_ARENAS = 2


def limit_malloc_arenas(arenas: int = DIALER_ARENAS) -> bool:
    """Cap glibc's malloc arenas of this process; True when the cap was set.

    Call before the process starts its threads (arenas made already stay). Does nothing
    (False) when ``MALLOC_ARENA_MAX`` is set, off Linux, or on a C library without glibc's
    ``mallopt`` (musl's accepts nothing).
    """
    if arenas < 1:
        raise ValueError(f"arenas must be >= 1, not {arenas}")
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, done)
    return done
