"""Abandon governor: how much marginal abandon risk the predictive pacer may take now.

Two layers:
- a stochastic-approximation controller (Robbins-Monro on log risk) that moves the risk
  level until the observed share of live answers that were abandoned equals the target
  (``cap x target_ratio``): every connected call nudges it up by ``eta x target``, every
  abandoned one down by ``eta x (1 - target)``, so the drift is zero exactly at the target;
- a budget guard over the regulatory window: the pacer may only spend abandons it has
  earned (``target x live answers - abandons``). With no slack left it is held at the
  minimum risk, which makes the predictive pacer behave like a progressive dialer until
  enough connected calls have rebuilt the budget. This is what keeps a small team and the
  first minutes of a campaign safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dialer.core.abandon import WindowCounts


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernorSettings:
    initial_risk: float = 0.05
    min_risk: float = 0.002
    max_risk: float = 0.6
    eta: float = 0.08

    def __post_init__(self) -> None:
        if not 0.0 < self.min_risk <= self.initial_risk <= self.max_risk < 1.0:
            raise ValueError(
                "governor risks must satisfy 0 < min_risk <= initial_risk <= max_risk < 1, "
                f"got {self.min_risk}, {self.initial_risk}, {self.max_risk}"
            )
        if not 0.0 < self.eta <= 1.0:
            raise ValueError(f"governor eta must be in (0, 1], got {self.eta}")


class AbandonGovernor:
    def __init__(self, target: float, settings: GovernorSettings | None = None) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"abandon target must be in (0, 1), got {target}")
        self.target = target
        self.settings = settings or GovernorSettings()
        self._log_risk = math.log(self.settings.initial_risk)

    @property
    def risk_level(self) -> float:
        return math.exp(self._log_risk)

    def observe(self, abandoned: bool) -> None:
        """Feed one live answer's outcome (connected or abandoned)."""
        s = self.settings
        step = -s.eta * (1.0 - self.target) if abandoned else s.eta * self.target
        self._log_risk = min(math.log(s.max_risk), max(math.log(s.min_risk), self._log_risk + step))

    def allowed_risk(self, counts: WindowCounts) -> float:
        """Risk for the next call given the regulatory window's counts."""
        s = self.settings
        slack = self.target * counts.denominator - counts.numerator
        theta = self.risk_level
        if slack <= 0.0:
            return s.min_risk
        if slack < 1.0:
            # less than one abandon left to spend: interpolate toward the minimum
            return s.min_risk + (theta - s.min_risk) * slack
        return theta
