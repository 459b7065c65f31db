"""A real Mosquitto (Debian's `mosquitto`) on a loopback port, with passwords and an ACL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def dialer_acl(
    *, dialer: str = "dialer", supervisors: Iterable[str] = ("supervisor",),
    prefix: str = "dialer",
) -> str:
    """The broker rules of docs/agent-protocol.md as a Mosquitto `acl_file`.

    The dialer user reads and writes the whole tree; each supervisor reads the supervisor
    stream; every other user (an agent, whose login is its MQTT user name) may only publish
    its own commands and read its own events. The embedded broker enforces the same rules.
    """
    lines = [f"user {dialer}", f"topic readwrite {prefix}/#", ""]
    for name in supervisors:
        lines += [f"user {name}", f"topic read {prefix}/supervisor/#", ""]
    lines += [f"pattern write {prefix}/agents/%u/cmd", f"pattern read {prefix}/agents/%u/evt"]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoServer:
    """A Mosquitto process on a loopback port with its own config, passwords and ACL."""

    def __init__(self, directory: Path, acl: str, users: dict[str, str]) -> None:
        self.dir = directory
        self.acl = acl
        self.users = users
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MosquittoServer:
        passwd = self.dir / "passwd"
        for i, (user, password) in enumerate(self.users.items()):
            args = [MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []), str(passwd), user,
                    password]
            subprocess.run(args, check=True, capture_output=True, timeout=30)
        (self.dir / "acl").write_text(self.acl)
        for attempt in range(5):  # another process may grab the port between probe and bind
            self.port = free_port()
            conf = self.dir / "mosquitto.conf"
            conf.write_text(
                "per_listener_settings false\n"
                "allow_anonymous false\n"
                f"password_file {passwd}\n"
                f"acl_file {self.dir / 'acl'}\n"
                f"listener {self.port} 127.0.0.1\n"
                "persistence false\n"
                # without it Mosquitto Nagles small packets: +40 ms per hop
                "set_tcp_nodelay true\n"
                "log_dest stderr\n"
                "log_type error\nlog_type warning\n"
                # running as root, stay root so the 0700 pytest temp dir stays readable
                + ("user root\n" if os.geteuid() == 0 else "")
            )
            log_path = self.dir / "mosquitto.log"
            with log_path.open("ab") as log_file:
                self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                             stdout=subprocess.DEVNULL, stderr=log_file)
            if self._wait_listening():
                return self
            self.stop()
            if attempt == 4:
                raise RuntimeError(f"mosquitto did not start listening: {log_path.read_text()}")
        return self

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
