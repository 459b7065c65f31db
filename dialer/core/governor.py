"""Abandon governor: how much marginal abandon risk the predictive pacer may take now.

Two layers:
- a stochastic-approximation controller (Robbins-Monro on log risk) that moves the risk
  level until the observed share of live answers that were abandoned equals the target
  (``cap x target_ratio``): every connected call nudges it up by ``eta x target``, every
  abandoned one down by ``eta x (1 - target)``, so the drift is zero exactly at the target.
  It moves slowly on purpose: a steady risk level buys more occupancy per abandon than
  one that swings (the occupancy gained per unit of risk falls as risk grows);
- a guard on the regulatory window (docs/compliance.md: "the pacer throttles before" the rate
  passes the cap). Risk is taken only while **one more abandon would still keep the
  window within the cap**: with L live answers and A abandons in the window, the next
  live answer abandoned would make A + 1 of L + 1, and the window may hold
  max(cap x (L + 1), ``credit_abandons``) abandons. The credit lets a young campaign's
  very first abandon happen (one abandon of the first live answer is 100 %); after it,
  a 3 % campaign takes risk again once it has 66 live answers. Without that spare abandon
  the risk falls to ``min_risk`` and `has_spare_abandon` is False: the engine's pacers
  then dial at most one line per READY agent, calls already in flight included
  (`dialer.core.pacer.over_cap_clamp`: a hard limit, not a risk level, so no forecast of
  agents about to free and no overdial ratio), until connected calls have rebuilt the
  headroom. The engine feeds the controller no connected call while that clamp is on
  (such a call took no risk, so it is no evidence that more risk would be fine).
  ``soft_headroom``
  (off by default) scales the risk down while fewer spare abandons than that remain.
  Calls already ringing when the headroom runs out can still be abandoned, so a window
  can end a fraction of an abandon over the cap only if two of them are, at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from common.vocabulary import AbandonWindow
from dialer.core.abandon import WindowCounts


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernorSettings:
    initial_risk: float = 0.03
    min_risk: float = 0.0001
    max_risk: float = 0.6
    eta: float = 0.2
    #: abandons the window may hold while cap x live answers is smaller (module docstring)
    credit_abandons: float = 1.0
    #: with fewer spare abandons than this the risk is scaled down linearly (0: off)
    soft_headroom: float = 0.0
    #: the guard keeps the window under cap x (1 - guard_margin): room for the calls already
    #: in flight when the headroom runs out (a short window, e.g. the UK's 24 h, holds few
    #: enough live answers that two such abandons move it by a tenth of a point)
    guard_margin: float = 0.0
    #: the guard also keeps the last 60 minutes under hour_cap_ratio x cap (with the same
    #: credit): a regulator reads a campaign over its window, people feel a bad hour (0: off)
    hour_cap_ratio: float = 2.0
    #: keep room in the window for the abandons the calls already placed could still
    #: produce (answered calls waiting for an agent, plus the ringing calls expected to go
    #: live beyond the ready agents): matters when the window holds few answers, as a
    #: 24-hour window does each morning (settings_for_window turns it on there)
    reserve_inflight: bool = False
    #: with reserve_inflight: the ringing calls' live answers are counted this many standard
    #: deviations above their mean (a burst of answers, not the average, breaks a window)
    exposure_z: float = 3.0
    #: the hour guard keeps room for the calls already placed too, at any window, counting
    #: their live answers this many standard deviations above the mean (an hour of a small
    #: campaign holds ~40-80 answers, so a burst of three is what breaks it; 0: no room kept)
    hour_exposure_z: float = 3.0
    #: the hour guard aims this far below hour_cap_ratio x cap: it reads the last hour, but
    #: an abandon stays in every hour that follows it for 60 minutes, and a small team's
    #: answers per hour drop when agents go on breaks (bench/compliance.py, 5 agents)
    hour_guard_margin: float = 0.2
    #: the hour guard also holds for the hours that end within this many seconds from now
    #: (0: only the last 60 minutes). An abandon stays in every hour that ends within 60
    #: minutes of it, while the answers before it leave those hours one by one: a small team
    #: whose answers slow down (breaks, a thin list) sees an hour that was fine when the call
    #: was placed end over 2 x cap (bench/compliance.py, 5 agents: 4 abandons in 57 answers)
    hour_lookahead_s: float = 3000.0
    #: the projection assumes the answers still to come in those hours arrive at this share
    #: of the last hour's rate (a pessimistic forecast, not the pacer's)
    hour_future_rate: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.min_risk <= self.initial_risk <= self.max_risk < 1.0:
            raise ValueError(
                "governor risks must satisfy 0 < min_risk <= initial_risk <= max_risk < 1, "
                f"got {self.min_risk}, {self.initial_risk}, {self.max_risk}"
            )
        if self.soft_headroom < 0:
            raise ValueError(f"soft_headroom must be >= 0, got {self.soft_headroom}")
        if self.hour_cap_ratio < 0:
            raise ValueError(f"hour_cap_ratio must be >= 0, got {self.hour_cap_ratio}")
        if not 0.0 <= self.guard_margin < 1.0 or not 0.0 <= self.hour_guard_margin < 1.0:
            raise ValueError("guard_margin and hour_guard_margin must be in [0, 1), got "
                             f"{self.guard_margin} and {self.hour_guard_margin}")
        if self.exposure_z < 0 or self.hour_exposure_z < 0:
            raise ValueError("exposure_z and hour_exposure_z must be >= 0, got "
                             f"{self.exposure_z} and {self.hour_exposure_z}")
        if not 0.0 <= self.hour_lookahead_s < 3600.0 or not 0.0 <= self.hour_future_rate <= 1.0:
            raise ValueError("hour_lookahead_s must be in [0, 3600) and hour_future_rate in "
                             f"[0, 1], got {self.hour_lookahead_s} and {self.hour_future_rate}")
        if self.credit_abandons < 0:
            raise ValueError(f"credit_abandons must be >= 0, got {self.credit_abandons}")
        if not 0.0 < self.eta <= 1.0:
            raise ValueError(f"governor eta must be in (0, 1], got {self.eta}")


#: the most new calls `room_for_calls` ever allows (no limit in practice)
_MAX_ROOM = 100_000


@dataclass(frozen=True, slots=True)
class InflightRisk:
    """The calls already placed, as the reserve sees them: answered calls waiting for an
    agent, the ringing calls' chances of going live within the horizon (their sum and the
    variance of the number that do: independent Bernoullis) and the agents ready for them."""

    waiting: int
    mean: float
    var: float
    ready: int

    def exposure(self, z: float, new: int = 0, p_new: float = 0.0) -> float:
        """Abandons these calls (and ``new`` more) may produce, counting their live answers
        ``z`` standard deviations above the mean."""
        mean = self.mean + new * p_new
        var = self.var + new * p_new * (1.0 - p_new)
        return self.waiting + max(0.0, mean + z * math.sqrt(var) - self.ready)


#: step between the future hours `HourOutlook` looks at
HOUR_OUTLOOK_STEP_S = 300.0


@dataclass(frozen=True, slots=True)
class HourOutlook:
    """The last 60 minutes and the hours that end soon after now, as the hour guard sees
    them: for an hour ending ``ahead`` seconds from now, the counts of the part that has
    already happened (the last ``3600 - ahead`` seconds) plus the live answers expected in
    the rest (``live_per_s x ahead``, no abandons: the calls placed later are guarded
    then). ``windows[0]`` is the last hour itself."""

    windows: tuple[tuple[float, WindowCounts], ...]
    live_per_s: float = 0.0

    @property
    def hour(self) -> WindowCounts:
        return self.windows[0][1]

    @classmethod
    def of(cls, hour: WindowCounts) -> HourOutlook:
        """The last hour alone (no look ahead)."""
        return cls(((0.0, hour),))


def hour_outlook_spans(settings: GovernorSettings) -> tuple[float, ...]:
    """The rolling spans (s) `HourOutlook` reads: the last hour, then the part of it each
    hour ending 5, 10, ... minutes (up to ``hour_lookahead_s``) from now keeps."""
    steps = int(settings.hour_lookahead_s // HOUR_OUTLOOK_STEP_S)
    return tuple(3600.0 - k * HOUR_OUTLOOK_STEP_S for k in range(steps + 1))


def _outlook(hour: WindowCounts | HourOutlook | None) -> HourOutlook | None:
    return HourOutlook.of(hour) if isinstance(hour, WindowCounts) else hour


#: abandon windows short enough that a campaign meets them fresh every day (after a night or
#: a weekend the window holds only today's first answers)
SHORT_WINDOWS = frozenset({AbandonWindow.ROLLING_24H, AbandonWindow.CALENDAR_DAY})


def settings_for_window(window: AbandonWindow,
                        base: GovernorSettings | None = None) -> GovernorSettings:
    """The guard a window needs. A short window (24 h, a day) gets no credit abandon (each
    morning's window starts nearly empty, so the credit would let its first abandon stand
    at 5-15 % for hours) and a 5 % guard margin for the calls in flight when the headroom
    runs out. bench/compliance.py measured both: without them a UK campaign's worst 24 h
    window reached 3.05 % (margin) and 14 % (credit, on a Monday morning); with them 2.97 %."""
    base = base or GovernorSettings()
    if window in SHORT_WINDOWS:
        return replace(base, credit_abandons=0.0, guard_margin=max(base.guard_margin, 0.05),
                       reserve_inflight=True)
    return base


class AbandonGovernor:
    def __init__(self, target: float, cap: float, settings: GovernorSettings | None = None) -> None:
        if not 0.0 < target <= cap < 1.0:
            raise ValueError(f"need 0 < abandon target <= cap < 1, got {target} and {cap}")
        self.target = target
        self.cap = cap
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

    def spare_abandons(self, counts: WindowCounts) -> float:
        """Abandons the window could still take after one more (< 0: none to spare).

        Negative when one more abandon would put the window over the cap, and when the
        window is over the cap already (a restart that seeded the ledger from old rows,
        a fault, calls abandoned after the headroom ran out).
        """
        cap = self.cap * (1.0 - self.settings.guard_margin)
        allowed = max(cap * (counts.denominator + 1), self.settings.credit_abandons)
        return allowed - counts.numerator - 1

    def _hour_allowance(self, outlook: HourOutlook) -> float:
        """Abandons the tightest of the outlook's hours could still take after one more."""
        ratio = self.settings.hour_cap_ratio * (1.0 - self.settings.hour_guard_margin)
        return min(
            max(self.cap * ratio * (w.denominator + outlook.live_per_s * ahead + 1),
                self.settings.credit_abandons) - w.numerator - 1
            for ahead, w in outlook.windows
        )

    def hour_budget(self, hour: WindowCounts | HourOutlook | None) -> float | None:
        """Abandons the last hour (and the hours ending soon, see `HourOutlook`) could still
        take after one more, once the last hour holds enough live answers for its cap to
        allow an abandon of its own (before that the credit decides, as at the start of a
        shift). None: no hour guard, or not yet."""
        outlook = _outlook(hour)
        ratio = self.settings.hour_cap_ratio * (1.0 - self.settings.hour_guard_margin)
        if outlook is None or ratio <= 0.0 or self.cap * ratio * outlook.hour.denominator < 1.0:
            return None
        return self._hour_allowance(outlook)

    @staticmethod
    def room_for_calls(budget: float, inflight: InflightRisk, p_new: float, z: float) -> int:
        """The most new calls (each going live within the horizon with ``p_new``) that keep
        the calls in flight's exposure (``InflightRisk.exposure`` with ``z``) within
        ``budget`` abandons; 0 when there is no room even now."""
        if inflight.exposure(z) > budget:
            return 0
        if p_new <= 0.0:
            return _MAX_ROOM

        def fits(n: int) -> bool:
            return inflight.exposure(z, n, p_new) <= budget
        lo, hi = 0, 1
        while fits(hi):
            lo, hi = hi, hi * 2
            if hi > _MAX_ROOM:
                return _MAX_ROOM
        while hi - lo > 1:  # fits(lo), not fits(hi)
            mid = (lo + hi) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def hour_spare(self, hour: WindowCounts | HourOutlook | None,
                   exposure: float = 0.0) -> bool:
        """Whether one more abandon keeps the last hour (and the hours ending soon, see
        `HourOutlook`) under hour_cap_ratio x cap, with room for the abandons the calls
        already placed may produce (``exposure``, counted with ``hour_exposure_z``: an hour
        holds few answers at any campaign size)."""
        outlook = _outlook(hour)
        ratio = self.settings.hour_cap_ratio * (1.0 - self.settings.hour_guard_margin)
        if outlook is None or ratio <= 0.0:
            return True
        return self._hour_allowance(outlook) >= exposure

    def has_spare_abandon(self, counts: WindowCounts,
                          hour: WindowCounts | HourOutlook | None = None,
                          exposure: float = 0.0, hour_exposure: float = 0.0) -> bool:
        """The guard. False: no abandon risk at all, and the engine's pacers dial at most one
        line per ready agent (`dialer.core.pacer.over_cap_clamp`, docs/pacing.md). `hour`:
        the last 60 minutes' counts, for the hour guard; `exposure`: abandons the calls
        already placed may still produce (used with `reserve_inflight`); `hour_exposure`: the
        same counted for the hour guard (with `hour_exposure_z`)."""
        reserve = exposure if self.settings.reserve_inflight else 0.0
        return self.spare_abandons(counts) >= reserve and self.hour_spare(hour, hour_exposure)

    def allowed_risk(self, counts: WindowCounts, hour: WindowCounts | HourOutlook | None = None,
                     exposure: float = 0.0, hour_exposure: float = 0.0) -> float:
        """Risk for the next call given the regulatory window's (and the last hour's) counts."""
        s = self.settings
        theta = self.risk_level
        spare = self.spare_abandons(counts)  # abandons to spare after one more
        if s.reserve_inflight:
            spare -= exposure
        if spare < 0.0 or not self.hour_spare(hour, hour_exposure):
            return s.min_risk
        if spare < s.soft_headroom:
            return s.min_risk + (theta - s.min_risk) * (1.0 + spare) / (1.0 + s.soft_headroom)
        return theta
