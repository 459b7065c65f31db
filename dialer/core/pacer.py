"""Pacers: pure functions from a `PacerSnapshot` to "how many calls to start now".

One implementation per dial mode. Every pacer's answer goes through `clamp_to_limits`, so
none can dial with no working agent or beyond the configured line limits, and through
`over_cap_clamp`: when the abandon window has no abandon to spare (the governor's guard),
at most one line per READY agent, calls already in flight included.

The predictive pacer (docs/pacing.md) is a marginal-risk rule: it starts the n-th new call
only while the probability that this call, if answered by a person, finds no agent within
the grace time stays under the risk level the abandon governor allows. That probability is
computed from a model of the next seconds: agents that will be free (ready now, or busy
with the conditional chance their talk + wrap-up ends in time given how long it has lasted)
against live answers still to come (calls in flight by their age, calls waiting, and the
new calls), over several horizons weighted by when a new call is answered.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.vocabulary import DialMode
from dialer.core.stats import CallDist, PacingModel


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
    #: the governor's guard (`AbandonGovernor.has_spare_abandon`): False when one more
    #: abandon would put the window over the cap, or it is over already. Every dial mode
    #: then keeps calls in flight + waiting + new calls <= ready agents (`over_cap_clamp`)
    spare: bool = True
    #: with a spare abandon: the most new calls the reserve for the calls in flight leaves
    #: room for (`AbandonGovernor.room_for_calls`; None: no such limit)
    room: int | None = None


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
    machines_total: int = 0
    #: set when the engine cancels surplus calls still ringing at this age (predictive,
    #: ``cancel_surplus_calls``): a younger call's answers after it are not counted as
    #: demand, since such a call is kept only if an agent is expected for it
    cancel_after: float | None = None
    #: seconds until each busy agent (talking, wrapping up or being bridged; not going on a
    #: pause) is free, when known exactly. Only a simulator knows this: it is the
    #: "agent oracle" diagnostic that measures what perfect forecasts of talk and wrap-up
    #: times would be worth (docs/pacing.md). A live dialer leaves it None.
    known_free_in: tuple[float, ...] | None = None


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


def over_cap_limit(snap: PacerSnapshot) -> int | None:
    """Most new calls allowed; None: no such limit.

    While the window has no abandon to spare: one line per READY agent, counting the lines
    that already wait for one: unanswered calls not tied to a reserved agent (dialing,
    ringing, AMD listening) and answered calls waiting for an agent. Nothing for agents only
    expected to free, no overdial ratio. With one to spare: the room the governor's reserve
    leaves (``abandon.room``), when a guard keeps one.
    """
    one_each = max(0, snap.agents_ready - len(snap.inflight_ages) - snap.waiting)
    if snap.abandon.spare:
        # the reserve limits the overdial, never the line each ready agent may have
        return None if snap.abandon.room is None else max(snap.abandon.room, one_each)
    return one_each


def over_cap_clamp(snap: PacerSnapshot, n: int) -> int:
    """``n`` bounded by `over_cap_limit` (the hard clamp of docs/pacing.md, every dial mode)."""
    limit = over_cap_limit(snap)
    return n if limit is None else max(0, min(n, limit))


def preview_pacer(snap: PacerSnapshot) -> int:
    """Preview dials only when an agent accepts an offered lead (the engine does that)."""
    return 0


def progressive_pacer(snap: PacerSnapshot) -> int:
    """One line per ready agent: calls in flight and waiting already count as lines."""
    want = snap.agents_ready - len(snap.inflight_ages) - snap.waiting
    return over_cap_clamp(snap, clamp_to_limits(snap, want))


def power_pacer(snap: PacerSnapshot) -> int:
    """A fixed number of lines per ready agent (``limits.power_lines_per_agent``).

    More than one line per agent is a deliberate overdial: while the abandon window has no
    abandon to spare it is cut to one line per ready agent (`over_cap_clamp`).
    """
    want = (
        math.floor(snap.limits.power_lines_per_agent * snap.agents_ready + 1e-9)
        - len(snap.inflight_ages)
        - snap.waiting
    )
    return over_cap_clamp(snap, clamp_to_limits(snap, want))


#: edges (s after dial) of the answer-time bins of a new call the predictive model checks
_HORIZON_EDGES = (0.0, 4.0, 7.0, 10.0, 14.0, 19.0, 26.0, 45.0)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


#: below this many random terms (busy agents + calls in flight) the risk is computed from
#: exact Poisson-binomial distributions; above it a normal approximation is accurate enough
EXACT_TERMS = 48


class RiskCurve(abc.ABC):
    """The predictive model for one snapshot: risk of the marginal call as n grows."""

    weights: tuple[float, ...]
    new_live: tuple[float, ...]  # P(a new call is answered live by t_k)

    @abc.abstractmethod
    def risk(self, n: int) -> float:
        """P(the (n+1)-th new call finds no agent | it is answered by a person)."""


class NormalRiskCurve(RiskCurve):
    """Normal approximation (with continuity correction) of answers minus free agents."""

    def __init__(
        self,
        weights: tuple[float, ...],
        new_live: tuple[float, ...],
        mean0: tuple[float, ...],
        var0: tuple[float, ...],
    ) -> None:
        self.weights = weights
        self.new_live = new_live
        self.mean0 = mean0  # E[answers before t_k] - E[agents free by t_k + grace]
        self.var0 = var0

    def risk(self, n: int) -> float:
        total = 0.0
        for w, m, v, c in zip(self.weights, self.mean0, self.var0, self.new_live, strict=True):
            if w <= 0.0:
                continue
            mean = m + n * c
            var = v + n * c * (1.0 - c) + 1e-9
            total += w * _phi((mean + 0.5) / math.sqrt(var))
        return total


class ExactRiskCurve(RiskCurve):
    """Exact Poisson-binomial answers and free agents, per horizon (small teams)."""

    def __init__(
        self,
        weights: tuple[float, ...],
        new_live: tuple[float, ...],
        demand_pmf: np.ndarray,
        supply_pmf: np.ndarray,
    ) -> None:
        self.weights = weights
        self.new_live = new_live
        self.demand_pmf = demand_pmf  # (K, D): P(answers from others before t_k = d)
        self.supply_pmf = supply_pmf  # (K, S): P(agents free by t_k + grace = s)
        self._w = np.asarray(weights)
        self._c = np.asarray(new_live)[:, None]

    def _risk_of(self, pmf: np.ndarray) -> float:
        s_len = self.supply_pmf.shape[1]
        # tail[:, s] = P(X >= s) for s < s_len (X has no mass beyond its pmf's width)
        tail = np.zeros((pmf.shape[0], s_len))
        tail[:, 0] = 1.0
        m = min(s_len - 1, pmf.shape[1])
        if m > 0:
            tail[:, 1 : m + 1] = 1.0 - np.cumsum(pmf[:, :m], axis=1)
        per_k = (self.supply_pmf * tail).sum(axis=1)
        return float(self._w @ per_k)

    def _add_call(self, pmf: np.ndarray) -> np.ndarray:
        out = np.zeros((pmf.shape[0], pmf.shape[1] + 1))
        out[:, :-1] = pmf * (1.0 - self._c)
        out[:, 1:] += pmf * self._c
        return out

    def risk(self, n: int) -> float:
        pmf = self.demand_pmf
        for _ in range(n):
            pmf = self._add_call(pmf)
        return self._risk_of(pmf)

    def max_calls(self, theta: float, upper: int) -> int:
        """Largest n <= upper such that every call up to the n-th keeps risk <= theta."""
        pmf = self.demand_pmf
        n = 0
        while n < upper and self._risk_of(pmf) <= theta:
            pmf = self._add_call(pmf)
            n += 1
        return n


def _poisson_binomial(base: int, probs: np.ndarray, k_count: int) -> np.ndarray:
    """PMF per row of ``base`` + sum of independent Bernoulli(probs[:, row])."""
    m = probs.shape[0]
    pmf = np.zeros((k_count, base + m + 1))
    pmf[:, base] = 1.0
    width = base + 1
    for i in range(m):
        p = probs[i][:, None]
        head = pmf[:, :width] * p
        pmf[:, :width] *= 1.0 - p
        pmf[:, 1 : width + 1] += head
        width += 1
    return pmf


@functools.lru_cache(maxsize=8)
def _horizons(calls: CallDist) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """Horizon ends t_k, the weight of each answer-time bin, and P(live by t_k) for a new call.

    Cached per published answer-time table (tables are immutable and rebuilt rarely).
    """
    grid_end = float(len(calls.live_cdf) - 1)
    edges = np.minimum(np.asarray(_HORIZON_EDGES), grid_end)
    cdf_at_edges = np.array([calls.live_by(float(e)) for e in edges])
    w = np.diff(cdf_at_edges)
    total_w = float(w.sum())
    t_k = edges[1:]
    t_k.flags.writeable = False
    weights = w / total_w if total_w > 0 else np.full(len(t_k), 1.0 / len(t_k))
    return (
        t_k,
        tuple(float(x) for x in weights),
        tuple(float(x) for x in cdf_at_edges[1:]),
    )


def risk_curve(
    snap: PacerSnapshot, marginal: tuple[tuple[float, ...], tuple[float, ...]] | None = None
) -> RiskCurve:
    """Build the supply/demand model of `predictive_pacer` (exposed for tests and docs).

    ``marginal`` replaces the answer-time profile of the calls the curve adds (weights of
    the horizons given a live answer, and P(live answer by each horizon)); by default it is
    a new call's. `ringing_calls_to_keep` passes the profile of a call already ringing.
    """
    model = snap.model
    calls = model.calls
    t_k, weights_t, new_live = _horizons(calls)
    if marginal is not None:
        weights_t, new_live = marginal
    k_count = len(t_k)
    grace = snap.agent_wait
    wrap_mean = model.wrap.mean

    # supply: busy agents likely to be free by t_k + grace (plus the ready ones)
    parts = []
    if snap.known_free_in is not None:
        if snap.known_free_in:
            # exact free times: a bin's answers may come at its start, so an agent must
            # be free by then (+ grace) to count - no forecast spread hides the bin width
            starts = np.concatenate(([0.0], t_k[:-1]))
            free_in = np.asarray(snap.known_free_in)[:, None]
            parts.append((free_in <= starts[None, :] + grace).astype(float))
    else:
        if snap.talking_elapsed:
            el = np.asarray(snap.talking_elapsed)[:, None]
            hz = np.maximum(t_k[None, :] + grace - wrap_mean, 0.0)
            parts.append(model.talk.done_within_v(el, hz))
        if snap.wrap_elapsed:
            el = np.asarray(snap.wrap_elapsed)[:, None]
            parts.append(model.wrap.done_within_v(el, t_k[None, :] + grace))
    p_free = np.concatenate(parts) if parts else np.zeros((0, k_count))
    # demand: calls in flight answered live by t_k (plus the calls waiting now)
    if snap.inflight_ages:
        ages = np.asarray(snap.inflight_ages)[:, None]
        horizon = np.broadcast_to(t_k[None, :], (ages.shape[0], k_count))
        if snap.cancel_after is not None:
            # a call still ringing at cancel_after is kept only if an agent is expected
            # for it, so its later answers are no demand on the agents counted here
            young = ages < snap.cancel_after
            horizon = np.where(
                young, np.minimum(horizon, np.maximum(snap.cancel_after - ages, 0.0)), horizon
            )
        q_live = calls.live_within_v(ages, horizon)
    else:
        q_live = np.zeros((0, k_count))
    if p_free.shape[0] + q_live.shape[0] <= EXACT_TERMS:
        return ExactRiskCurve(
            weights_t,
            new_live,
            demand_pmf=_poisson_binomial(snap.waiting, q_live, k_count),
            supply_pmf=_poisson_binomial(snap.agents_ready, p_free, k_count),
        )
    supply = snap.agents_ready + p_free.sum(axis=0)
    demand = snap.waiting + q_live.sum(axis=0)
    var = (p_free * (1.0 - p_free)).sum(axis=0) + (q_live * (1.0 - q_live)).sum(axis=0)
    return NormalRiskCurve(
        weights_t,
        new_live,
        mean0=tuple(float(x) for x in demand - supply),
        var0=tuple(float(x) for x in var),
    )


def predictive_pacer(snap: PacerSnapshot) -> int:
    """Largest n whose marginal call's abandon risk stays under ``snap.abandon.risk``.

    With no abandon to spare (``snap.abandon.spare`` False) never more than
    `over_cap_limit`: one line per ready agent, whatever the model expects of busy agents.
    """
    upper = over_cap_clamp(snap, clamp_to_limits(snap, snap.leads_available))
    if upper <= 0:
        return 0
    curve = risk_curve(snap)
    theta = snap.abandon.risk
    if isinstance(curve, ExactRiskCurve):
        return curve.max_calls(theta, upper)
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
    return lo + 1


def ringing_calls_to_keep(snap: PacerSnapshot, ages: tuple[float, ...]) -> int:
    """How many of the ringing calls of ``ages`` (youngest first) to keep; cancel the rest.

    ``snap`` describes the campaign without these calls (their ages are not in
    ``inflight_ages``). A call is kept while its marginal risk - the probability that,
    if a person answers it, no agent is free within the agent wait - stays under the
    governor's ``abandon.risk``: the same test `predictive_pacer` applies to a new call,
    with the answer-time profile of a call that has already rung ``min(ages)`` seconds.
    A call that can no longer be answered costs nothing and is always kept.
    """
    if not ages:
        return 0
    calls = snap.model.calls
    t_k, _, _ = _horizons(calls)
    q = calls.live_within_v(np.asarray([min(ages)]), t_k)
    total = float(q[-1])
    if total <= 1e-9:
        return len(ages)
    weights = np.diff(np.concatenate(([0.0], q))) / total
    curve = risk_curve(snap, (tuple(float(x) for x in weights), tuple(float(x) for x in q)))
    theta = snap.abandon.risk
    if isinstance(curve, ExactRiskCurve):
        return curve.max_calls(theta, len(ages))
    n = 0
    while n < len(ages) and curve.risk(n) <= theta:
        n += 1
    return n


PACERS: dict[DialMode, Pacer] = {
    DialMode.PREVIEW: preview_pacer,
    DialMode.PROGRESSIVE: progressive_pacer,
    DialMode.POWER: power_pacer,
    DialMode.PREDICTIVE: predictive_pacer,
}


def pacer_for(mode: DialMode) -> Pacer:
    return PACERS[mode]
