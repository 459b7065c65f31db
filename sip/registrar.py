"""A throw-away Kamailio registrar + proxy on loopback (tests and demo).

Agents' phones often register with the user's PBX or registrar instead of being reachable
directly; the dialer then calls ``sip:<agent>@<registrar>`` and the registrar forwards the
INVITE to the registered contact. :class:`KamailioRegistrar` runs Debian's Kamailio with a
minimal in-memory registrar config (no database, no authentication), and
:func:`register_contact` registers a contact for an address-of-record with a plain UDP
REGISTER (a third-party registration, as a provisioning system would do).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from common.processes import stop_process
from sip.sipp import free_udp_port

_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
)

_CONFIG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
auto_aliases=no
listen=udp:{host}:{port}
alias="{host}:{port}"
mpath="{mpath}"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    record_route();
    if (!t_relay()) {{
        sl_reply_error();
    }}
}}
"""


class RegistrarError(RuntimeError):
    """Kamailio is missing, failed to start, or refused a registration."""


def _module_dir() -> str:
    for d in _MODULE_DIRS:
        if os.path.isfile(os.path.join(d, "registrar.so")):
            return d
    raise RegistrarError(f"Kamailio modules not found in {_MODULE_DIRS}")


class KamailioRegistrar:
    """Kamailio as registrar + stateful proxy on ``host:port`` (UDP), with a bounded life."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, max_lifetime_s: float = 600):
        self.binary = shutil.which("kamailio") or (
            "/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None
        )
        if self.binary is None:
            raise RegistrarError("kamailio not found (Debian package kamailio)")
        self.host = host
        self.port = port or free_udp_port(host)
        self.max_lifetime_s = max_lifetime_s
        self._tmp = tempfile.TemporaryDirectory(prefix="kamailio-")
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.host}:{self.port}"

    def start(self) -> KamailioRegistrar:
        cfg = Path(self._tmp.name) / "kamailio.cfg"
        cfg.write_text(_CONFIG.format(host=self.host, port=self.port, mpath=_module_dir()))
        log = open(Path(self._tmp.name) / "kamailio.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.binary,
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-m",
                "32",
                "-M",
                "8",
                "-Y",
                self._tmp.name,
                "-P",
                str(Path(self._tmp.name) / "k.pid"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self._started = time.monotonic()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistrarError(
                    f"kamailio exited rc={self.proc.returncode}: {self.log_text()[-2000:]}"
                )
            try:
                self._options_ping()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RegistrarError("kamailio did not answer within 10 s")

    def log_text(self) -> str:
        p = Path(self._tmp.name) / "kamailio.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def _options_ping(self) -> None:
        # any SIP answer means the listener is up (Kamailio 404s an OPTIONS to nobody)
        code = _request(self.host, self.port, "OPTIONS", "ping", "", timeout=0.3)
        if code is None:
            raise OSError("no answer")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5, group=True)

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> KamailioRegistrar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _request(
    host: str, port: int, method: str, user: str, extra: str, timeout: float = 2.0
) -> int | None:
    """Send one SIP request over UDP and return the final status code (None: no answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(timeout)
    lport = s.getsockname()[1]
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    msg = (
        f"{method} sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{lport};branch={branch}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{host}:{port}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{user}@{host}:{port}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@{host}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    )
    try:
        s.sendto(msg.encode(), (host, port))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            data, _ = s.recvfrom(65535)
            parts = data.split(b" ", 2)
            if len(parts) >= 2 and parts[0] == b"SIP/2.0" and parts[1].isdigit():
                code = int(parts[1])
                if code >= 200:
                    return code
        return None
    except TimeoutError:
        return None
    finally:
        s.close()


def register_contact(
    registrar: KamailioRegistrar, user: str, contact: str, expires_s: int = 300
) -> None:
    """Bind ``sip:<user>@registrar`` to ``contact`` (e.g. an agent phone's SIP URI)."""
    code = _request(
        registrar.host,
        registrar.port,
        "REGISTER",
        user,
        f"Contact: <{contact}>\r\nExpires: {expires_s}\r\n",
    )
    if code != 200:
        raise RegistrarError(f"REGISTER {user} -> {contact} answered {code}")
