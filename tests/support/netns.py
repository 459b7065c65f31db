"""Network namespaces as hosts: a private test network on one machine (tests/cluster).

    with NetLab(subnet="10.231.7.0/24") as lab:          # skips unless root with `ip`
        db = lab.add_host("data")                        # namespace + veth on the lab bridge
        proc = lab.popen(db, ["mosquitto", "-c", conf])  # runs inside that namespace
        lab.run(db, ["ip", "-4", "addr"])                # and waits

Each host is a namespace with `lo` up and one veth whose peer is on the lab's bridge; the
bridge has the subnet's `.1` (the test process itself, which runs the simulated agents, is a
host of the lab that way), hosts get `.10`, `.11`, ... No route to anything else is added:
traffic stays between the namespaces and the bridge. `close()` (also on failure, and at
interpreter exit) kills every process started through the lab and deletes the namespaces,
the veths and the bridge. Names carry the test process's pid, so parallel runs do not clash.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IP = shutil.which("ip") or "/usr/sbin/ip"


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if not Path(IP).exists():
        return "the `ip` command (iproute2) is not installed"
    probe = f"dlprobe{os.getpid() % 100000}"
    r = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` failed here: {r.stderr.strip()[:200]}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True)
    return None


def free_subnet(third_octet_from: int = 20) -> str:
    """A 10.231.X.0/24 no interface of this machine uses (X from the pid, then upward)."""
    used = subprocess.run([IP, "-4", "-o", "addr"], capture_output=True, text=True).stdout
    start = third_octet_from + os.getpid() % 200
    for k in range(230):
        x = (start + k) % 230 + 20
        if f"10.231.{x}." not in used:
            return f"10.231.{x}.0/24"
    raise RuntimeError("no free 10.231.X.0/24 subnet")


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    ip: str


class NetLab:
    """A bridge, namespaces and veth pairs of one test; see the module docstring."""

    def __init__(self, subnet: str | None = None) -> None:
        self.net = ipaddress.ip_network(subnet or free_subnet())
        tag = os.getpid() % 100000
        self.tag = tag
        self.bridge = f"dlbr{tag}"
        self.gateway = str(self.net.network_address + 1)
        self.hosts: dict[str, Host] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self._made_bridge = False
        self._closed = False

    def _ip(self, *args: str, netns: str | None = None) -> None:
        argv = [IP, *(["-n", netns] if netns else []), *args]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")

    def __enter__(self) -> NetLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> NetLab:
        atexit.register(self.close)
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        self._ip("addr", "add", f"{self.gateway}/{self.net.prefixlen}", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name: str) -> Host:
        n = len(self.hosts)
        ns = f"dl{self.tag}-{name}"[:30]
        ip = str(self.net.network_address + 10 + n)
        outside, inside = f"dlv{self.tag}o{n}", f"dlv{self.tag}i{n}"
        self._ip("netns", "add", ns)
        self.hosts[name] = host = Host(name, ns, ip)
        self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._ip("link", "set", inside, "netns", ns)
        self._ip("link", "set", outside, "master", self.bridge)
        self._ip("link", "set", outside, "up")
        self._ip("link", "set", "lo", "up", netns=ns)
        self._ip("link", "set", inside, "name", "eth0", netns=ns)
        self._ip("addr", "add", f"{ip}/{self.net.prefixlen}", "dev", "eth0", netns=ns)
        self._ip("link", "set", "eth0", "up", netns=ns)
        return host

    def argv(self, host: Host, argv: list[str]) -> list[str]:
        return [IP, "netns", "exec", host.netns, *argv]

    def popen(self, host: Host, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside `host` (its own session: `close()` kills its whole group)."""
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.argv(host, argv), **kw)
        self._procs.append(proc)
        return proc

    def run(self, host: Host, argv: list[str], timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(host, argv), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def kill(self, proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
        """Signal a process started here and its group (kill -9 by default)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for p in self._procs:
            if p.poll() is None:
                self.kill(p, signal.SIGTERM)
        for p in self._procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(p)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        for h in self.hosts.values():
            # anything else still in the namespace (a child that left the group) goes too
            r = subprocess.run([IP, "netns", "pids", h.netns], capture_output=True, text=True)
            for pid in r.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run([IP, "netns", "del", h.netns], capture_output=True)
        for n in range(len(self.hosts)):
            subprocess.run([IP, "link", "del", f"dlv{self.tag}o{n}"], capture_output=True)
        if self._made_bridge:
            subprocess.run([IP, "link", "del", self.bridge], capture_output=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this lab still present (empty after `close()`)."""
        ns = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
        links = subprocess.run([IP, "-o", "link"], capture_output=True, text=True).stdout
        out = [h.netns for h in self.hosts.values() if h.netns in ns]
        if f"{self.bridge}:" in links or f"{self.bridge}@" in links:
            out.append(self.bridge)
        return out
