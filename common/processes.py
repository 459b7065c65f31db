"""Stopping a child process: ask politely, wait, then kill.

SIPp, Kamailio, the test PostgreSQL and Prometheus are all stopped the same way; one helper
keeps the escalation (and its timeouts) in one place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop_process(
    proc: subprocess.Popen[Any],
    timeout: float,
    *,
    sig: int = signal.SIGTERM,
    group: bool = False,
    kill_timeout: float | None = None,
) -> int | None:
    """Send ``sig``, wait up to ``timeout`` s, then SIGKILL and wait up to ``kill_timeout``.

    ``group`` signals the whole process group (the child was started with
    ``start_new_session=True``), so helpers it forked (runuser's postgres, SIPp's children)
    go too. ``kill_timeout`` defaults to ``timeout``. Returns the exit code, or None if the
    process still had not exited after SIGKILL. A process that already exited is left alone.
    """
    if proc.poll() is not None:
        return proc.returncode
    _signal(proc, sig, group)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    _signal(proc, signal.SIGKILL, group)
    try:
        return proc.wait(timeout if kill_timeout is None else kill_timeout)
    except subprocess.TimeoutExpired:
        return None


def _signal(proc: subprocess.Popen[Any], sig: int, group: bool) -> None:
    # the process may exit between poll() and here: that is the outcome we want anyway
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
