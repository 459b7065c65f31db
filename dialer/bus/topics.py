"""Topic layout of the agent protocol and MQTT topic-filter arithmetic.

One place builds and parses topics so the dialer, the embedded broker's ACL, the simulated
agents and the docs cannot drift apart (docs/agent-protocol.md, "Topic layout").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: an agent login is also its MQTT user name and a topic level: no `/`, `+`, `#` or spaces
LOGIN_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_LOGIN_RE = re.compile(LOGIN_PATTERN)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def check_login(login: str) -> str:
    """Return `login` if it is usable as an MQTT user and topic level, else raise ValueError."""
    if not _LOGIN_RE.fullmatch(login):
        raise ValueError(
            f"agent login {login!r} is not valid: expected 1-64 characters from "
            "A-Z a-z 0-9 _ . -"
        )
    return login


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics under one prefix (config `mqtt.topic_prefix`, default `dialer`)."""

    prefix: str = "dialer"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ValueError(
                f"MQTT topic prefix {self.prefix!r} is not valid: expected levels of "
                "A-Z a-z 0-9 _ . - separated by '/', without wildcards or a leading '/'"
            )

    def cmd(self, login: str) -> str:
        """Agent -> dialer commands of one agent."""
        return f"{self.prefix}/agents/{check_login(login)}/cmd"

    def evt(self, login: str) -> str:
        """Dialer -> agent events for one agent."""
        return f"{self.prefix}/agents/{check_login(login)}/evt"

    @property
    def all_cmd(self) -> str:
        """What the dialer subscribes to."""
        return f"{self.prefix}/agents/+/cmd"

    @property
    def all_evt(self) -> str:
        """Every agent's events: what a cluster member subscribes to as well, to carry the
        events of an agent another member serves to its desktop's WebSocket here."""
        return f"{self.prefix}/agents/+/evt"

    def peer(self, member: str) -> str:
        """Dialer instance -> dialer instance, for the member `member` (`[dialer] id`):
        the cluster's requests between members (dialer/cluster_lend.py). Only the dialer's
        own MQTT user may read or write it (the ACL gives agents their two topics only).
        An id that is not a plain topic level is written in hex."""
        level = member if _LOGIN_RE.fullmatch(member) else "x" + member.encode().hex()
        return f"{self.prefix}/cluster/{level}"

    @property
    def supervisor(self) -> str:
        """Dialer -> supervisors: calls and agent state changes."""
        return f"{self.prefix}/supervisor/events"

    def login_of_cmd(self, topic: str) -> str | None:
        """The login in a `<prefix>/agents/<login>/cmd` topic, or None for any other topic."""
        return self._login_of(topic, "/cmd")

    def login_of_evt(self, topic: str) -> str | None:
        """The login in a `<prefix>/agents/<login>/evt` topic, or None for any other topic."""
        return self._login_of(topic, "/evt")

    def _login_of(self, topic: str, tail: str) -> str | None:
        head = f"{self.prefix}/agents/"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        login = topic[len(head) : -len(tail)]
        return login if _LOGIN_RE.fullmatch(login) else None


def topic_matches(topic: str, topic_filter: str) -> bool:
    """MQTT 3.1.1 section 4.7: does the topic name `topic` match `topic_filter`?"""
    t_levels = topic.split("/")
    f_levels = topic_filter.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            # `a/#` also matches `a` (the parent level); `$` topics never match a leading wildcard
            return not (i == 0 and topic.startswith("$"))
        if i >= len(t_levels):
            return False
        if f == "+":
            if i == 0 and topic.startswith("$"):
                return False
            continue
        if f != t_levels[i]:
            return False
    return len(t_levels) == len(f_levels)


def filter_within(inner: str, outer: str) -> bool:
    """Is every topic matched by the filter `inner` also matched by the filter `outer`?

    Used to admit a SUBSCRIBE only when the whole requested filter lies inside what the user
    may read, so a wildcard subscription cannot reach beyond it.
    """
    i_levels = inner.split("/")
    o_levels = outer.split("/")
    for idx, o in enumerate(o_levels):
        if o == "#":
            return True
        if idx >= len(i_levels):
            return False
        i = i_levels[idx]
        if i == "#":
            return False  # inner reaches any depth, outer does not
        if o == "+":
            continue
        if i == "+" or i != o:
            return False
    # outer exhausted: inner must be exhausted too (outer's `a/#` case returned above)
    return len(i_levels) == len(o_levels)
