"""Start and stop SIPp processes on free loopback ports (tests, benchmark, demo).

Every process has a bounded lifetime (SIPp's own ``-timeout`` plus a kill at interpreter exit)
so a crashed test never leaves SIPp running.

    with SippProcess.callee() as callee, SippProcess.agent() as agent:
        target = callee.uri("answer_1_3")       # sip:answer_1_3@127.0.0.1:<port>
        agent_uri = agent.uri("agent7")
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from importlib import resources
from pathlib import Path

from common.processes import stop_process
from sip.assets import write_callee_audio

_LIVE: weakref.WeakSet[SippProcess] = weakref.WeakSet()


class SippError(RuntimeError):
    """SIPp is missing or failed to start; the message includes its error output."""


def scenario_path(name: str) -> Path:
    """Path of a shipped scenario (``callee`` or ``agent``) inside the installed package."""
    p = Path(str(resources.files("sip") / "scenarios" / f"{name}.xml"))
    if not p.is_file():
        raise SippError(f"no such SIPp scenario shipped: {name}")
    return p


def free_udp_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """A UDP port that is free on ``host`` now, also free on TCP (SIPp may bind both)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        if avoid and port in avoid:
            continue
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((host, port))
        except OSError:
            continue
        finally:
            t.close()
        return port
    raise SippError("no free port found")


def free_media_port(host: str = "127.0.0.1") -> int:
    """An even port p with p..p+3 free (RTP/RTCP pairs for SIPp's -mp)."""
    for _ in range(200):
        base = free_udp_port(host) & ~1
        socks = []
        try:
            for off in range(4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, base + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SippError("no free media port range found")


class SippProcess:
    """One SIPp UAS process (``sipp -sf <scenario> -i 127.0.0.1 -p <port>``)."""

    def __init__(
        self,
        scenario: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        media_port: int = 0,
        rtp_echo: bool = False,
        workdir: str | Path | None = None,
        max_lifetime_s: float = 600,
        trace_errors: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if shutil.which("sipp") is None:
            raise SippError("sipp not found on PATH (Debian package sip-tester)")
        # "builtin:uas" selects one of SIPp's embedded scenarios (-sn)
        self.builtin = (
            str(scenario).split(":", 1)[1] if str(scenario).startswith("builtin:") else None
        )
        if self.builtin is not None:
            self.scenario = Path(self.builtin)
        else:
            self.scenario = (
                Path(scenario)
                if Path(str(scenario)).suffix == ".xml"
                else scenario_path(str(scenario))
            )
        self.host = host
        self._auto_ports = not port and not media_port
        self.port = port or free_udp_port(host)
        self.media_port = media_port or free_media_port(host)
        self.rtp_echo = rtp_echo
        self.max_lifetime_s = max_lifetime_s
        self.extra_args = extra_args
        self.trace_errors = trace_errors
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sipp-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def callee(cls, **kw: object) -> SippProcess:
        """The callee network (dialled-user-part grammar in docs/sip.md).

        ``-aa`` makes SIPp answer out-of-call OPTIONS with 200, as a trunk does: the pool's
        trunk probes (docs/trunks.md) find it alive."""
        kw["extra_args"] = ("-aa", *kw.get("extra_args", ()))  # type: ignore[misc]
        return cls("callee", **kw)  # type: ignore[arg-type]

    @classmethod
    def agent(cls, **kw: object) -> SippProcess:
        """Auto-answering agent phones echoing RTP."""
        kw.setdefault("rtp_echo", True)
        return cls("agent", **kw)  # type: ignore[arg-type]

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.host}:{self.port}"

    @property
    def error_file(self) -> Path:
        return self.workdir / "errors.log"

    def start(self) -> SippProcess:
        write_callee_audio(self.workdir)
        # ports picked here may be taken by someone else before SIPp binds them (other test
        # runs share the machine): retry with fresh ports when we chose them
        attempts = 3 if self._auto_ports else 1
        for attempt in range(attempts):
            try:
                return self._start_once()
            except SippError:
                if attempt == attempts - 1:
                    raise
                self.port = free_udp_port(self.host)
                self.media_port = free_media_port(self.host)
        raise AssertionError("unreachable")

    def _start_once(self) -> SippProcess:
        cmd = [
            "sipp",
            *(["-sn", self.builtin] if self.builtin else ["-sf", str(self.scenario)]),
            "-i", self.host,
            "-p", str(self.port),
            "-mp", str(self.media_port),
            "-nostdin",
            # the callee's timed waits log every 100 ms tick as a "receive timeout": only
            # trace errors on request, the file grows quickly
            *(["-trace_err", "-error_file", str(self.error_file)] if self.trace_errors else []),
            "-timeout", f"{int(self.max_lifetime_s)}s",
            "-timeout_error",
            "-max_recv_loops", "10000",
            "-max_sched_loops", "10000",
            *(["-rtp_echo"] if self.rtp_echo else []),
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _LIVE.add(self)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                if self.proc.stderr is not None:
                    self.proc.stderr.close()
                raise SippError(f"sipp exited rc={self.proc.returncode}: {err[-2000:]}")
            if self._port_bound():
                return self
            time.sleep(0.02)
        self.stop()
        raise SippError(f"sipp did not bind {self.host}:{self.port} within 10 s")

    def _port_bound(self) -> bool:
        """SIPp has bound its SIP port (UDP, or TCP/TLS with ``-t t1``/``-t l1`` etc.)."""
        args = list(self.extra_args)
        tcp = "-t" in args and args[args.index("-t") + 1][:1] in ("t", "l")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        try:
            s.bind((self.host, self.port))
        except OSError:
            return True
        finally:
            s.close()
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def errors(self) -> str:
        """SIPp's error log (unexpected messages, aborted calls)."""
        try:
            return self.error_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        p = self.proc
        if p is not None:
            stop_process(p, 3, group=True)
        if p is not None and p.stderr is not None:
            p.stderr.close()
        _LIVE.discard(self)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SippProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_uac(
    target_host: str,
    target_port: int,
    *,
    scenario: str = "uac",
    calls: int,
    rate: float,
    concurrent: int,
    timeout_s: float = 120,
    extra_args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run SIPp's built-in UAC against a UAS (the SIPp-to-SIPp ceiling in the benchmark)."""
    port = free_udp_port()
    cmd = [
        "sipp",
        "-sn",
        scenario,
        f"{target_host}:{target_port}",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(concurrent),
        "-nostdin",
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        *extra_args,
    ]
    return subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout_s + 10,
        check=False,
    )


@atexit.register
def _kill_all() -> None:
    for p in list(_LIVE):
        p.stop()
