"""What the simulator compares and what one run yields: policies and results.

Kept apart from simulator.py (which re-exports them) so that the simulator file holds the
event loop only. A run's wall-clock time is not part of its result: the simulator reads no
clock, and the callers (bench/pacing.py, dialer/sim/cli.py) time their own runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from common.vocabulary import AttemptResult, DialMode
from dialer.core.pacer import LineLimits, Pacer
from dialer.sim.workload import Workload


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySpec:
    """A way of dialling to compare: a dial mode and the pacer that runs it."""

    name: str
    mode: DialMode
    #: builds a fresh pacer per run (baselines keep state); None: the mode's own pacer
    pacer_factory: Callable[[], Pacer] | None = None
    limits: LineLimits = field(default_factory=LineLimits)
    #: diagnostic (predictive mode): the engine's own pacer told exactly when each busy
    #: agent will be free (`PacerSnapshot.known_free_in`); what it gains over the real
    #: pacer is all that better forecasts of talk and wrap-up could ever win
    agent_oracle: bool = False


@dataclass(slots=True)
class RunResult:
    policy: str
    workload: Workload
    seed: int
    hours: float
    agent_hours: float  # available (logged in, not paused) agent hours
    talk_seconds: float
    wrap_seconds: float
    idle_seconds: float
    dials: int
    connected: int
    live: int
    abandoned: int
    machines: int
    abandon_rate: float
    worst_hour_abandon: float
    #: counters that must stay zero
    early_cancels: int
    abandons_without_message: int
    late_messages: int
    lockout_redials: int
    double_finals: int
    unfinished: int
    final_states: dict[str, AttemptResult] = field(default_factory=dict, repr=False)

    @property
    def occupancy(self) -> float:
        return self.talk_seconds / (self.agent_hours * 3600.0) if self.agent_hours else 0.0

    @property
    def talk_min_per_agent_hour(self) -> float:
        return self.talk_seconds / 60.0 / self.agent_hours if self.agent_hours else 0.0

    @property
    def calls_per_agent_hour(self) -> float:
        return self.connected / self.agent_hours if self.agent_hours else 0.0

    @property
    def dials_per_agent_hour(self) -> float:
        return self.dials / self.agent_hours if self.agent_hours else 0.0

    @property
    def mean_wait(self) -> float:
        """Mean idle seconds of an agent between two calls."""
        return self.idle_seconds / self.connected if self.connected else math.inf



def standard_policies() -> list[PolicySpec]:
    """The engine's own modes as the benchmark runs them (see dialer.sim.baselines)."""
    return [
        PolicySpec(name="progressive", mode=DialMode.PROGRESSIVE),
        PolicySpec(
            name="power2",
            mode=DialMode.POWER,
            limits=LineLimits(power_lines_per_agent=2.0, max_lines_per_agent=5.0),
        ),
        PolicySpec(name="predictive", mode=DialMode.PREDICTIVE),
    ]
