"""A loopback Kamailio SIP proxy in front of a SIPp callee: the "trunk" a test can cut.

The dialer's trunk points at the proxy (``sip:127.0.0.1:<proxy port>``); the proxy relays every
new request to the callee's port, statefully (``t_relay``), so replies come back through it.
By default it does not record-route: the dialer's in-dialog requests (ACK for a 2xx, BYE) go
straight to the callee; the SIPp callee sends its own in-dialog requests (BYE, INFO) to the
peer it heard from, the proxy, which relays them by Request-URI to the dialer's node. So
stopping the proxy cuts new calls, CANCELs and the callee's hang-ups, as a dead trunk does.
With ``record_route=True`` it stays in the dialog as a carrier's SBC does: the dialer's BYE
goes through it too, so a BYE sent during an outage gets no answer at all.

    with KamailioProxy(target_port=callee.port) as proxy:
        trunk_uri = proxy.uri          # sip:127.0.0.1:<port>
        proxy.stop(); ...; proxy.start()   # an outage, on the same port

The config is written at run time into ``workdir`` (a test's tmp_path).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from common.processes import stop_process
from sip.sipp import free_udp_port

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
)

_CONFIG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:{host}:{port}
alias="{host}:{port}"
mpath="{mpath}"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
{rr_load}
# an unanswered INVITE branch gives up after 30 s (the dialer CANCELs long before)
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 30000)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (has_totag()) {{
        # in-dialog requests go where their Request-URI says (a SIPp UAS sends its BYE to
        # the peer it heard from, us, addressed to the dialer node's Contact)
        {rr_loose}
        t_relay();
        exit;
    }}
    {rr_record}
    $du = "sip:{target_host}:{target_port}";
    if (!t_relay()) {{
        sl_reply_error();
    }}
}}
"""


class KamailioError(RuntimeError):
    """Kamailio is missing or did not start; the message carries its log."""


def _module_dir() -> str:
    for d in _MODULE_DIRS:
        if os.path.isfile(os.path.join(d, "tm.so")):
            return d
    raise KamailioError(f"Kamailio modules not found in {_MODULE_DIRS}")


def _rr_parts(record_route: bool) -> dict[str, str]:
    """The config lines that keep the proxy in the dialog (Record-Route / loose routing)."""
    if not record_route:
        return {"rr_load": "", "rr_loose": "", "rr_record": ""}
    return {"rr_load": 'loadmodule "rr.so"', "rr_loose": "loose_route();",
            "rr_record": "record_route();"}


def available() -> bool:
    return os.path.exists(KAMAILIO)


class KamailioProxy:
    """A stateful forwarding proxy ``host:port`` -> ``target_host:target_port`` (UDP)."""

    def __init__(self, workdir: Path, target_port: int, *, target_host: str = "127.0.0.1",
                 host: str = "127.0.0.1", port: int = 0, record_route: bool = False) -> None:
        if not available():
            raise KamailioError("kamailio not found (Debian package kamailio)")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_udp_port(host)
        self.target_host = target_host
        self.target_port = target_port
        self.record_route = record_route
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "kamailio.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout_s: float = 10.0) -> KamailioProxy:
        """Start (or start again, on the same port) and wait until it answers OPTIONS."""
        if self.alive():
            return self
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text(_CONFIG.format(host=self.host, port=self.port, mpath=_module_dir(),
                                      target_host=self.target_host,
                                      target_port=self.target_port,
                                      **_rr_parts(self.record_route)))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [KAMAILIO, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "8",
                 "-Y", str(self.dir), "-P", str(self.dir / "kamailio.pid")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise KamailioError(
                    f"kamailio exited rc={self.proc.returncode}: {self.log_text()[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise KamailioError(f"kamailio did not answer within {timeout_s} s: "
                            f"{self.log_text()[-2000:]}")

    def ping(self, timeout: float = 0.3) -> bool:
        """True when the proxy answers an OPTIONS addressed to itself."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((self.host, 0))
            s.settimeout(timeout)
            lport = s.getsockname()[1]
            msg = (f"OPTIONS sip:{self.host}:{self.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {self.host}:{lport};branch=z9hG4bK{uuid.uuid4().hex[:16]}\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:ping@{self.host}>;tag={uuid.uuid4().hex[:8]}\r\n"
                   f"To: <sip:{self.host}:{self.port}>\r\n"
                   f"Call-ID: {uuid.uuid4().hex}@{self.host}\r\n"
                   "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), (self.host, self.port))
            data, _ = s.recvfrom(65535)
            return data.startswith(b"SIP/2.0 ")
        except OSError:
            return False
        finally:
            s.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> set[int]:
        """The main process and its forked children (for leak checks)."""
        if self.proc is None:
            return set()
        out = {self.proc.pid}
        try:
            import psutil

            out |= {c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)}
        except Exception:  # gone already
            pass
        return out

    def stop(self) -> None:
        """Stop the whole process group (an outage); `start()` brings it back."""
        if self.proc is not None:
            stop_process(self.proc, 5, group=True)
        self.proc = None

    def __enter__(self) -> KamailioProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
