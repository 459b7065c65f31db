"""The fault harness's call center with people at web desktops: `WebStack`.

Everything `FaultStack` runs (a `dialer run` process, SIPp callees behind a Kamailio proxy,
SIPp agent phones, SQLite + the embedded broker or PostgreSQL + Mosquitto), plus the dialer's
web server on a port of its own and agents whose accounts come from the config's
`password_hash` (argon2id): nobody drives them but the browser the test opens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from db.pgserver import TempPostgres
from dialer.passwords import hash_password
from support.faults import FaultStack, StackSpec, free_tcp_port


@dataclass
class WebSpec(StackSpec):
    #: agents at web desktops: login -> password (simulated MQTT agents: `agents`, usually none)
    web_agents: Mapping[str, str] = field(default_factory=lambda: {"web1": "pw-web-1"})
    #: named groups of web agents: login -> group names (the config's `groups`)
    web_groups: Mapping[str, list[str]] = field(default_factory=dict)


class WebStack(FaultStack):
    """`async with WebStack(tmp_path, WebSpec(agents={}, ...)) as st:` then `st.web_url`."""

    spec: WebSpec

    def __init__(self, tmp_path: Path, spec: WebSpec,
                 pg_server: TempPostgres | None = None) -> None:
        super().__init__(tmp_path, spec, pg_server)
        self.web_port = free_tcp_port()

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _write_config(self) -> None:
        super()._write_config()
        assert self.phones is not None
        text = self.config_path.read_text()
        people = "".join(
            f'[[agents]]\nlogin = "{login}"\nsip_uri = "{self.phones.uri(login)}"\n'
            f'password_hash = "{hash_password(pw)}"\n'
            f'groups = {list(self.spec.web_groups.get(login, []))!r}\n\n'
            for login, pw in self.spec.web_agents.items())
        # the agents go before the first campaign table (TOML: arrays of tables may interleave,
        # but keeping them together reads better in a failing test's artefacts)
        text = re.sub(r"(?m)^\[\[campaigns\]\]", lambda m: people + m.group(0), text, count=1)
        web = f'[web]\nhost = "127.0.0.1"\nport = {self.web_port}\n'
        assert "[web]\nenabled = false\n" in text, "the fault stack's [web] table moved"
        text = text.replace("[web]\nenabled = false\n", web)
        self.config_path.write_text(text)
