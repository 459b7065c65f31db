"""Pacers: pure functions from a `PacerSnapshot` to "how many calls to start now".

One implementation per dial mode. Every pacer's answer goes through `clamp_to_limits`, so
none can dial with no working agent or beyond the configured line limits.

The predictive pacer (docs/pacing.md) is a marginal-risk rule: it starts the n-th new call
only while the probability that this call, if answered by a person, finds no agent within
the grace time stays under the risk level the abandon governor allows. That probability is
computed from a model of the next seconds: agents that will be free (ready now, or busy
with the conditional chance their talk + wrap-up ends in time given how long it has lasted)
against live answers still to come (calls in flight by their age, calls waiting, and the
new calls), over several horizons weighted by when a new call is answered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dialer.core.stats import PacingModel
from dialer.domain import DialMode


@dataclass(frozen=True, slots=True, kw_only=True)
class LineLimits:
    """Hard limits every pacer respects."""

    #: total simultaneous calls of the campaign (trunk / node capacity); None = no limit
    max_lines: int | None = None
    #: total calls per working (logged-in, not paused) agent
    max_lines_per_agent: float = 5.0
    #: power mode: lines per ready agent
    power_lines_per_agent: float = 2.0

    def __post_init__(self) -> None:
        if self.max_lines is not None and self.max_lines < 0:
            raise ValueError(f"max_lines must be >= 0 or None, got {self.max_lines}")
        if self.max_lines_per_agent < 1.0:
            raise ValueError(f"max_lines_per_agent must be >= 1.0, got {self.max_lines_per_agent}")
        if not 1.0 <= self.power_lines_per_agent <= self.max_lines_per_agent:
            raise ValueError(
                "power_lines_per_agent must be between 1.0 and max_lines_per_agent, "
                f"got {self.power_lines_per_agent}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonBudget:
    """Where the campaign stands against its abandon cap (regulatory window)."""

    cap: float
    target: float
    window_live: float
    window_abandoned: float
    #: marginal abandon risk the governor allows for the next call (predictive)
    risk: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PacerSnapshot:
    """Everything a pacer may look at. Times are seconds; ``t`` is POSIX time."""

    mode: DialMode
    t: float
    agents_logged_in: int
    #: logged in and not paused
    agents_working: int
    #: READY and not reserved
    agents_ready: int
    #: seconds since talk began, per talking agent (an agent being bridged counts as 0)
    talking_elapsed: tuple[float, ...]
    #: seconds since wrap-up began, per agent in wrap-up
    wrap_elapsed: tuple[float, ...]
    #: ages (s since dial) of unanswered calls that are not tied to a reserved agent
    inflight_ages: tuple[float, ...]
    #: unanswered calls tied to a reserved agent (preview, agent-owned callback)
    reserved_calls: int
    #: answered live calls waiting for an agent
    waiting: int
    #: every call the campaign holds (dialing, ringing, waiting, talking, message)
    lines_in_use: int
    #: leads the hopper could hand out now
    leads_available: int
    limits: LineLimits
    model: PacingModel
    abandon: AbandonBudget
    #: how long an answered call may wait for an agent before the abandon message
    agent_wait: float
    #: running totals since the engine started (baselines derive rates from them)
    dials_total: int = 0
    live_total: int = 0
    abandoned_total: int = 0


Pacer = Callable[[PacerSnapshot], int]


def clamp_to_limits(snap: PacerSnapshot, n: int) -> int:
    """Bound a pacer's wish by agents, leads and the line limits."""
    if snap.agents_working <= 0 or snap.agents_logged_in <= 0 or n <= 0:
        return 0
    n = min(n, snap.leads_available)
    lim = snap.limits
    if lim.max_lines is not None:
        n = min(n, lim.max_lines - snap.lines_in_use)
    per_agent_cap = math.floor(lim.max_lines_per_agent * snap.agents_working + 1e-9)
    n = min(n, per_agent_cap - snap.lines_in_use)
    return max(0, n)


def preview_pacer(snap: PacerSnapshot) -> int:
    """Preview dials only when an agent accepts an offered lead (the engine does that)."""
    return 0


def progressive_pacer(snap: PacerSnapshot) -> int:
    """One line per ready agent: calls in flight and waiting already count as lines."""
    want = snap.agents_ready - len(snap.inflight_ages) - snap.waiting
    return clamp_to_limits(snap, want)


def power_pacer(snap: PacerSnapshot) -> int:
    """A fixed number of lines per ready agent (``limits.power_lines_per_agent``)."""
    want = (
        math.floor(snap.limits.power_lines_per_agent * snap.agents_ready + 1e-9)
        - len(snap.inflight_ages)
        - snap.waiting
    )
    return clamp_to_limits(snap, want)


#: edges (s after dial) of the answer-time bins of a new call the predictive model checks
_HORIZON_EDGES = (0.0, 4.0, 7.0, 10.0, 14.0, 19.0, 26.0, 45.0)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True, slots=True)
class RiskCurve:
    """The predictive model for one snapshot: risk of the marginal call as n grows."""

    weights: tuple[float, ...]
    mean0: tuple[float, ...]  # E[answers before t_k] - E[agents free by t_k + grace]
    var0: tuple[float, ...]
    new_live: tuple[float, ...]  # P(a new call is answered live by t_k)

    def risk(self, n: int) -> float:
        """P(the (n+1)-th new call finds no agent | it is answered by a person)."""
        total = 0.0
        for w, m, v, c in zip(self.weights, self.mean0, self.var0, self.new_live, strict=True):
            if w <= 0.0:
                continue
            mean = m + n * c
            var = v + n * c * (1.0 - c) + 0.25
            total += w * _phi((mean + 0.5) / math.sqrt(var))
        return total


def risk_curve(snap: PacerSnapshot) -> RiskCurve:
    """Build the supply/demand model of `predictive_pacer` (exposed for tests and docs)."""
    model = snap.model
    calls = model.calls
    edges = np.asarray(_HORIZON_EDGES)
    grid_end = float(len(calls.live_cdf) - 1)
    edges = np.minimum(edges, grid_end)
    cdf_at_edges = np.array([calls.live_by(float(e)) for e in edges])
    w = np.diff(cdf_at_edges)
    total_w = float(w.sum())
    t_k = edges[1:]
    weights = w / total_w if total_w > 0 else np.full(len(t_k), 1.0 / len(t_k))
    grace = snap.agent_wait
    wrap_mean = model.wrap.mean

    # supply: ready agents + busy agents likely to be free by t_k + grace
    supply = np.full(len(t_k), float(snap.agents_ready))
    s_var = np.zeros(len(t_k))
    if snap.talking_elapsed:
        el = np.asarray(snap.talking_elapsed)[:, None]
        hz = np.maximum(t_k[None, :] + grace - wrap_mean, 0.0)
        p = model.talk.done_within_v(el, hz)
        supply += p.sum(axis=0)
        s_var += (p * (1.0 - p)).sum(axis=0)
    if snap.wrap_elapsed:
        el = np.asarray(snap.wrap_elapsed)[:, None]
        p = model.wrap.done_within_v(el, t_k[None, :] + grace)
        supply += p.sum(axis=0)
        s_var += (p * (1.0 - p)).sum(axis=0)
    # demand: calls waiting now + calls in flight answered live by t_k
    demand = np.full(len(t_k), float(snap.waiting))
    d_var = np.zeros(len(t_k))
    if snap.inflight_ages:
        ages = np.asarray(snap.inflight_ages)[:, None]
        q = calls.live_within_v(ages, t_k[None, :])
        demand += q.sum(axis=0)
        d_var += (q * (1.0 - q)).sum(axis=0)
    new_live = cdf_at_edges[1:]
    return RiskCurve(
        weights=tuple(float(x) for x in weights),
        mean0=tuple(float(x) for x in demand - supply),
        var0=tuple(float(x) for x in s_var + d_var),
        new_live=tuple(float(x) for x in new_live),
    )


def predictive_pacer(snap: PacerSnapshot) -> int:
    """Largest n whose marginal call's abandon risk stays under ``snap.abandon.risk``."""
    upper = clamp_to_limits(snap, snap.leads_available)
    if upper <= 0:
        return 0
    curve = risk_curve(snap)
    theta = snap.abandon.risk
    if curve.risk(0) > theta:
        return 0
    # risk grows with n: binary search the last n whose marginal call is still acceptable
    lo, hi = 0, upper  # risk(lo) <= theta is known; answer is lo + 1 calls
    if curve.risk(hi - 1) <= theta:
        return upper
    hi -= 1  # risk(hi) > theta
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if curve.risk(mid) <= theta:
            lo = mid
        else:
            hi = mid
    return clamp_to_limits(snap, lo + 1)


PACERS: dict[DialMode, Pacer] = {
    DialMode.PREVIEW: preview_pacer,
    DialMode.PROGRESSIVE: progressive_pacer,
    DialMode.POWER: power_pacer,
    DialMode.PREDICTIVE: predictive_pacer,
}


def pacer_for(mode: DialMode) -> Pacer:
    return PACERS[mode]
