from __future__ import annotations

from dialer.core import TieBreak, choose_agent
from dialer.core.agents import AgentRecord


def rec(agent_id: str, ready_since: float, calls: int = 0, talk: float = 0.0) -> AgentRecord:
    return AgentRecord(agent_id=agent_id, ready_since=ready_since, calls_handled=calls,
                       talk_seconds_total=talk)


def test_longest_waiting_agent_wins() -> None:
    agents = [rec("a", 10.0), rec("b", 5.0), rec("c", 7.0)]
    got = choose_agent(agents, TieBreak.FEWEST_CALLS)
    assert got is not None and got.agent_id == "b"


def test_ties_are_broken_as_configured() -> None:
    agents = [rec("a", 1.0, calls=5, talk=10.0), rec("b", 1.0, calls=2, talk=90.0)]
    assert choose_agent(agents, TieBreak.FEWEST_CALLS).agent_id == "b"  # type: ignore[union-attr]
    assert choose_agent(agents, TieBreak.LEAST_TALK_TIME).agent_id == "a"  # type: ignore[union-attr]
    assert choose_agent(agents, TieBreak.AGENT_ID).agent_id == "a"  # type: ignore[union-attr]


def test_nobody_ready() -> None:
    assert choose_agent([], TieBreak.AGENT_ID) is None
