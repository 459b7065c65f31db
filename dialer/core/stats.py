"""Online estimates the pacer needs: ring/answer-time, talk and wrap-up distributions.

Each estimator keeps a sliding window of recent observations (so it follows a campaign
whose answer rate drifts over the day) plus a weak prior so the first minutes are sane, and
publishes an immutable table on a 1-second grid. Pacers read those frozen tables from the
snapshot; nothing here looks at a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from common.vocabulary import AttemptResult

#: results that say the network failed, not the callee: a 5xx, timeout or transport error
#: (FAILED), a SIP node that died with the call (LOST), a hang-up the engine did not ask
#: for as surplus (CANCELLED: shutdown, operator; the engine reports its own surplus
#: cancels as NO_ANSWER). They say nothing about how people answer, so `CallEstimator`
#: leaves them out: a trunk outage must not teach the pacer that answers are rare. Busy,
#: no answer, invalid number and rejected are the callee's outcomes and are learnt.
NETWORK_RESULTS: frozenset[AttemptResult] = frozenset(
    {AttemptResult.FAILED, AttemptResult.LOST, AttemptResult.CANCELLED, AttemptResult.SKIPPED}
)


@dataclass(frozen=True, slots=True, eq=False)
class DurationDist:
    """Empirical CDF of a duration on a 1-second grid, with an exponential tail."""

    cdf: tuple[float, ...]  # cdf[k] = P(X <= k seconds), k = 0..len-1
    mean: float
    n: int  # real observations behind it (prior excluded)
    cdf_arr: np.ndarray  # the same table as an array, for vectorised reads

    def F_v(self, x: np.ndarray) -> np.ndarray:
        """Vectorised `F`."""
        last = len(self.cdf) - 1
        y = np.interp(x, _GRID[: last + 1], self.cdf_arr)
        over = x > last
        if over.any():
            tail = 1.0 - self.cdf[last]
            y = np.where(over, 1.0 - tail * np.exp(-(x - last) / max(self.mean, 1.0)), y)
        return y

    def done_within_v(self, elapsed: np.ndarray, horizon: np.ndarray) -> np.ndarray:
        """Vectorised `done_within` (broadcasting ``elapsed`` against ``horizon``)."""
        f0 = self.F_v(elapsed)
        surv = 1.0 - f0
        f1 = self.F_v(elapsed + horizon)
        safe = np.maximum(surv, 1e-9)
        p = (f1 - f0) / safe
        tail = 1.0 - np.exp(-np.maximum(horizon, 0.0) / max(self.mean, 1.0))
        p = np.where(surv < 1e-9, tail, p)
        return np.clip(p, 0.0, 1.0)

    def F(self, x: float) -> float:
        if x <= 0.0:
            return 0.0
        last = len(self.cdf) - 1
        if x >= last:
            # exponential tail beyond the grid with the distribution's mean
            tail = 1.0 - self.cdf[last]
            return 1.0 - tail * math.exp(-(x - last) / max(self.mean, 1.0))
        k = int(x)
        lo = self.cdf[k]
        return lo + (self.cdf[k + 1] - lo) * (x - k)

    def done_within(self, elapsed: float, horizon: float) -> float:
        """P(X <= elapsed + horizon | X > elapsed): the conditional chance it ends soon."""
        f0 = self.F(elapsed)
        surv = 1.0 - f0
        if surv < 1e-9:
            return 1.0 - math.exp(-horizon / max(self.mean, 1.0))
        return min(1.0, max(0.0, (self.F(elapsed + horizon) - f0) / surv))


class DurationEstimator:
    """Sliding-window estimator behind a `DurationDist`."""

    def __init__(
        self,
        *,
        prior_mean: float,
        prior_weight: float = 10.0,
        window: int = 400,
        grid_seconds: int = 1800,
        rebuild_every: int = 25,
    ) -> None:
        if prior_mean <= 0:
            raise ValueError(f"prior_mean must be > 0 seconds, got {prior_mean}")
        self._prior_mean = prior_mean
        self._prior_weight = prior_weight
        self._samples: deque[float] = deque(maxlen=window)
        self._grid = grid_seconds
        self._rebuild_every = rebuild_every
        self._pending = 0
        self.dist = self._build()

    def add(self, seconds: float) -> bool:
        """Add one observation; returns True when the published table was rebuilt."""
        self._samples.append(max(0.0, seconds))
        self._pending += 1
        if self._pending >= self._rebuild_every or len(self._samples) < self._rebuild_every:
            self.dist = self._build()
            self._pending = 0
            return True
        return False

    def _build(self) -> DurationDist:
        g = self._grid
        hist = [0.0] * (g + 1)
        m = self._prior_mean
        w = self._prior_weight
        # prior: gamma(2) shaped pseudo-observations with the configured mean
        scale = m / 2.0
        prev = 0.0
        for k in range(1, g + 1):
            x = k / scale
            cdf = 1.0 - math.exp(-x) * (1.0 + x)
            hist[k] += w * (cdf - prev)
            prev = cdf
        hist[g] += w * (1.0 - prev)
        total = w
        s = m * w
        for x in self._samples:
            k = min(g, max(0, math.ceil(x)))
            hist[k] += 1.0
            total += 1.0
            s += x
        acc = 0.0
        cdf_list = []
        for h in hist:
            acc += h
            cdf_list.append(acc / total)
        return DurationDist(
            cdf=tuple(cdf_list),
            mean=s / total,
            n=len(self._samples),
            cdf_arr=_frozen(cdf_list),
        )


# eq=False: identity equality and hashing (tables hold arrays; pacers cache per table)
@dataclass(frozen=True, slots=True, eq=False)
class CallDist:
    """How unanswered calls resolve, by age since dial (1-second grid).

    ``live_cdf[k]``: P(the call is answered by someone who needs an agent within k s);
    ``end_cdf[k]``: P(the call has resolved at all - any result - within k s).
    """

    live_cdf: tuple[float, ...]
    end_cdf: tuple[float, ...]
    n: int
    live_arr: np.ndarray
    end_arr: np.ndarray

    def live_within_v(self, ages: np.ndarray, horizon: np.ndarray) -> np.ndarray:
        """Vectorised `live_within` (broadcasting ``ages`` against ``horizon``)."""
        grid = _GRID[: len(self.live_cdf)]
        surv = 1.0 - np.interp(ages, grid, self.end_arr)
        lo = np.interp(ages, grid, self.live_arr)
        hi = np.interp(ages + horizon, grid, self.live_arr)
        p = (hi - lo) / np.maximum(surv, 1e-9)
        p = np.where(surv < 1e-9, 0.0, p)
        return np.clip(p, 0.0, 1.0)

    @property
    def p_live(self) -> float:
        return self.live_cdf[-1]

    def _at(self, table: tuple[float, ...], x: float) -> float:
        if x <= 0.0:
            return 0.0
        last = len(table) - 1
        if x >= last:
            return table[last]
        k = int(x)
        lo = table[k]
        return lo + (table[k + 1] - lo) * (x - k)

    def live_by(self, horizon: float) -> float:
        """P(a call dialled now is answered live within ``horizon`` s)."""
        return self._at(self.live_cdf, horizon)

    def live_within(self, age: float, horizon: float) -> float:
        """P(live answer in (age, age + horizon] | still unresolved at ``age``)."""
        surv = 1.0 - self._at(self.end_cdf, age)
        if surv < 1e-9:
            return 0.0
        p = (self._at(self.live_cdf, age + horizon) - self._at(self.live_cdf, age)) / surv
        return min(1.0, max(0.0, p))


class CallEstimator:
    """Sliding window of (resolution time, needed an agent) for recent unanswered calls."""

    def __init__(
        self,
        *,
        grid_seconds: int,
        prior_live_rate: float = 0.2,
        prior_live_seconds: float = 10.0,
        prior_weight: float = 20.0,
        window: int = 3000,
        rebuild_every: int = 100,
    ) -> None:
        if not 0.0 < prior_live_rate < 1.0:
            raise ValueError(f"prior_live_rate must be in (0, 1), got {prior_live_rate}")
        self._grid = max(2, grid_seconds)
        self._prior = (prior_live_rate, prior_live_seconds, prior_weight)
        self._samples: deque[tuple[float, bool]] = deque(maxlen=window)
        self._seen = 0  # calls ever observed (the window forgets, confidence does not)
        self._rebuild_every = rebuild_every
        self._pending = 0
        self.dist = self._build()

    def add(
        self, seconds: float, needs_agent: bool, *, result: AttemptResult | None = None
    ) -> bool:
        """Learn one resolved call; returns True when the published table was rebuilt.

        ``result`` is the call's final result when known: one of `NETWORK_RESULTS` is not a
        sample of the callee's behaviour and is ignored (returns False, nothing changes).
        """
        if result in NETWORK_RESULTS:
            return False
        self._samples.append((max(0.0, seconds), needs_agent))
        self._seen += 1
        self._pending += 1
        if self._pending >= self._rebuild_every or len(self._samples) < 50:
            self.dist = self._build()
            self._pending = 0
            return True
        return False

    def _build(self) -> CallDist:
        g = self._grid
        live = [0.0] * (g + 1)
        end = [0.0] * (g + 1)
        rate, secs, w = self._prior
        # prior: live answers spread evenly over [secs/2, 3 secs/2], the rest at the grid end
        lo, hi = max(1, int(secs / 2)), min(g, max(2, int(secs * 1.5)))
        span = hi - lo + 1
        for k in range(lo, hi + 1):
            live[k] += w * rate / span
            end[k] += w * rate / span
        end[g] += w * (1.0 - rate)
        total = w
        for x, needs in self._samples:
            k = min(g, max(0, math.ceil(x)))
            end[k] += 1.0
            if needs:
                live[k] += 1.0
            total += 1.0
        # Early on the live rate is uncertain and an underestimate is what hurts (a burst of
        # calls for a whole team at once). Use an upper confidence bound on it, scaling the
        # live-answer table: z = 2.5 over everything ever seen, so the margin fades as
        # 1/sqrt(calls) and the abandon governor absorbs what remains.
        p_hat = sum(live) / total
        seen = self._seen + w
        p_up = min(1.0, p_hat + 2.5 * math.sqrt(max(p_hat * (1.0 - p_hat), 1e-4) / seen))
        scale = p_up / p_hat if p_hat > 0 else 1.0
        lc, ec = [], []
        a = b = 0.0
        for k in range(g + 1):
            a += live[k]
            b += end[k]
            lc.append(a * scale / total)
            ec.append(b / total)
        return CallDist(
            live_cdf=tuple(lc),
            end_cdf=tuple(ec),
            n=len(self._samples),
            live_arr=_frozen(lc),
            end_arr=_frozen(ec),
        )


@dataclass(frozen=True, slots=True)
class PacingModel:
    """The frozen estimates a pacer reads from its snapshot."""

    calls: CallDist
    talk: DurationDist
    wrap: DurationDist


_GRID = np.arange(0, 4000, dtype=float)
_GRID.flags.writeable = False


def _frozen(values: list[float]) -> np.ndarray:
    if len(values) > len(_GRID):
        raise ValueError(f"distribution grid too long ({len(values)} > {len(_GRID)} s)")
    arr = np.asarray(values, dtype=float)
    arr.flags.writeable = False
    return arr
