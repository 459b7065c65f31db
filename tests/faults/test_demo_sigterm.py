"""`dialer demo` on SIGTERM (field report, issue 12): it used to die at once, log nothing and
leave its two SIPp processes running. Now it logs that it is stopping, stops the dialer, the
simulated agents and SIPp, and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.sipp, pytest.mark.timeout(120)]

DIALER = str(Path(sys.executable).with_name("dialer"))


def test_demo_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "demo.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [DIALER, "demo", "--minutes", "3", "--agents", "2", "--no-live",
             "--metrics-port", "0", "--web-port", "0"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    seen: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"demo exited early:\n{log_path.read_text()[-3000:]}"
            for p in psutil.Process(proc.pid).children(recursive=True):
                try:
                    seen[p.pid] = p.create_time()
                except psutil.Error:
                    pass
            text = log_path.read_text(errors="replace")
            if "dialer demo running" in text and len(_sipps(seen)) >= 2:
                break
            time.sleep(0.25)
        else:
            pytest.fail(f"the demo did not start in 60 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(4)  # calls and agents at work
        sipps = _sipps(seen)
        assert len(sipps) >= 2, "expected the callee and agent-phone SIPp processes"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not exit within 60 s of SIGTERM:\n"
                        f"{log_path.read_text()[-3000:]}")
        took = time.monotonic() - t0
        text = log_path.read_text(errors="replace")
        assert rc == 0, f"exit code {rc} after SIGTERM:\n{text[-3000:]}"
        assert "SIGTERM received: stopping" in text, text[-3000:]
        assert "demo: stopped early by SIGTERM" in text, text[-3000:]
        left = [pid for pid in sipps if _alive(pid, seen[pid])]
        assert not left, f"SIPp still running after the demo exited ({took:.1f} s): {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid, created in seen.items():  # never leave a child behind, even on failure
            if _alive(pid, created):
                try:
                    psutil.Process(pid).kill()
                except psutil.Error:
                    pass


def _sipps(seen: dict[int, float]) -> list[int]:
    out = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.name() == "sipp":
                out.append(pid)
        except psutil.Error:
            pass
    return out


def _alive(pid: int, created: float) -> bool:
    try:
        p = psutil.Process(pid)
        return p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
