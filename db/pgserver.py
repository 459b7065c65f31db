"""A throw-away PostgreSQL server on a loopback port, for tests, benchmarks and the e2e suite.

Uses Debian's `postgresql` binaries. PostgreSQL refuses to run as root, so as root the server
runs as the `postgres` system user (created by the Debian package) via `runuser`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from common.processes import stop_process


class PostgresUnavailable(RuntimeError):
    pass


def find_pg_bin() -> Path:
    env = os.environ.get("DIALER_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    if shutil.which("initdb"):
        return Path(shutil.which("initdb") or "").parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found: install the Debian package 'postgresql' "
        "(scripts/setup does it) or set DIALER_PG_BIN to the folder holding initdb"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """Start with `with TempPostgres() as pg: pg.url`; the data directory is removed on exit."""

    def __init__(self, *, port: int | None = None, database: str = "dialer") -> None:
        self.port = port or free_port()
        self.database = database
        self.bin = find_pg_bin()
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_root else list(args)

    def start(self, timeout_s: float = 30.0) -> TempPostgres:
        self._dir = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
        data = self._dir / "data"
        if self._as_root:
            shutil.chown(self._dir, "postgres", "postgres")
        subprocess.run(
            self._cmd(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
                      "--auth=trust", "--encoding=UTF8", "--no-sync"),
            check=True, capture_output=True,
        )
        self._log = open(self._dir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        log = self._log
        self._proc = subprocess.Popen(
            self._cmd(str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                      "-c", "listen_addresses=127.0.0.1",
                      "-c", f"unix_socket_directories={self._dir}",
                      "-c", "fsync=off", "-c", "synchronous_commit=off",
                      "-c", "full_page_writes=off", "-c", "max_connections=200"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PostgresUnavailable(
                    f"postgres exited: {(self._dir / 'server.log').read_text()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise PostgresUnavailable("postgres did not become ready in time")
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             self.database],
            check=True, capture_output=True,
        )
        return self

    def create_database(self, name: str, template: str | None = None) -> str:
        extra = ["-T", template] if template else []
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             *extra, name],
            check=True, capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self._proc is not None:
            # SIGINT = PostgreSQL's "fast" shutdown; signal the group so runuser's child gets it.
            stop_process(self._proc, 10, sig=signal.SIGINT, group=True, kill_timeout=5)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._dir)
            self._dir = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
