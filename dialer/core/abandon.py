"""Abandon accounting per campaign, with the definitions of docs/compliance.md.

- denominator: calls answered by a live person (connected + abandoned); machine answers
  are excluded;
- numerator: live answers not connected to an agent within the grace time;
- UK option: both sides also count an estimate of AMD false positives (live people that
  AMD called machines and the dialer dropped): ``amd_false_positive_rate`` x machine answers.

Events are stamped with the time the compliance clock started for that call and kept
until they fall out of the longest window asked for, so the rolling 24 h and 30-day rates
and the calendar-day rate can all be read at any time.

Several dialer instances on one campaign (docs/cluster.md): the other instances' answers
are an *external contribution* per window (`set_external`), read from the attempt rows by
the driver; `counts()` adds it, so the governor of every instance sees the campaign whole.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from common.vocabulary import AbandonPolicy, AbandonWindow

_WINDOW_SECONDS = {
    AbandonWindow.ROLLING_24H: 86_400.0,
    AbandonWindow.ROLLING_30D: 30 * 86_400.0,
}


@dataclass(frozen=True, slots=True)
class WindowCounts:
    live: int
    abandoned: int
    machines: int
    #: estimated AMD false positives (0 unless the policy counts them)
    est_false_positives: float

    @property
    def numerator(self) -> float:
        return self.abandoned + self.est_false_positives

    @property
    def denominator(self) -> float:
        return self.live + self.est_false_positives

    @property
    def rate(self) -> float:
        den = self.denominator
        return self.numerator / den if den > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ExternalCounts:
    """Answers of the campaign's other dialer instances over one window."""

    live: int = 0
    abandoned: int = 0
    machines: int = 0

    def __post_init__(self) -> None:
        if min(self.live, self.abandoned, self.machines) < 0 or self.abandoned > self.live:
            raise ValueError(f"external counts need 0 <= abandoned <= live and machines >= 0, "
                             f"got {self.live}, {self.abandoned}, {self.machines}")


class AbandonLedger:
    """Rolling counts of live answers, abandons and machine answers for one campaign."""

    def __init__(self, policy: AbandonPolicy, tz: str = "UTC") -> None:
        self.policy = policy
        self._tz = ZoneInfo(tz)
        self._t: list[float] = []
        # prefix sums: value after including event i
        self._live: list[int] = []
        self._aband: list[int] = []
        self._mach: list[int] = []
        self._base = (0, 0, 0)  # totals of pruned events
        self.total_live = 0
        self.total_abandoned = 0
        self.total_machines = 0
        #: window (an AbandonWindow or a rolling length in s) -> the other instances' counts
        self._external: dict[AbandonWindow | float, ExternalCounts] = {}

    def set_external(self, counts: Mapping[AbandonWindow | float, ExternalCounts]) -> None:
        """Replace the other instances' contribution; `counts()` over a window adds its
        entry (a window without one adds nothing). An empty mapping clears it."""
        self._external = {(k if isinstance(k, AbandonWindow) else float(k)): v
                          for k, v in counts.items()}

    @property
    def external(self) -> Mapping[AbandonWindow | float, ExternalCounts]:
        return dict(self._external)

    def record(self, t: float, *, live: bool, abandoned: bool = False) -> None:
        """Record one answered call at POSIX time ``t`` (when its compliance clock started).

        ``live`` False means a machine answer. An abandoned call is always live.
        """
        if abandoned and not live:
            raise ValueError("an abandoned call is a live answer (live must be True)")
        if self._t and t < self._t[-1]:
            t = self._t[-1]  # keep the series ordered; callers' clocks may jitter
        self.total_live += int(live)
        self.total_abandoned += int(abandoned)
        self.total_machines += int(not live)
        self._t.append(t)
        self._live.append(self.total_live)
        self._aband.append(self.total_abandoned)
        self._mach.append(self.total_machines)

    def window_start(self, now: datetime, window: AbandonWindow | float) -> float:
        """POSIX start of ``window`` ending at ``now`` (a float is a rolling length in s)."""
        if isinstance(window, AbandonWindow):
            if window is AbandonWindow.CALENDAR_DAY:
                local = now.astimezone(self._tz)
                midnight = datetime.combine(local.date(), time(0), tzinfo=self._tz)
                return midnight.timestamp()
            return now.timestamp() - _WINDOW_SECONDS[window]
        if window <= 0:
            raise ValueError(f"window length must be > 0 seconds, got {window}")
        return now.timestamp() - float(window)

    def counts(self, now: datetime, window: AbandonWindow | float | None = None) -> WindowCounts:
        """Counts over ``window`` (default: the policy's regulatory window) up to ``now``,
        this ledger's own events plus the external contribution for that window."""
        key = self.policy.window if window is None else window
        own = self.counts_since(self.window_start(now, key))
        ext = self._external.get(key if isinstance(key, AbandonWindow) else float(key))
        if ext is None:
            return own
        return self._with(own.live + ext.live, own.abandoned + ext.abandoned,
                          own.machines + ext.machines)

    def _with(self, live: int, ab: int, mach: int) -> WindowCounts:
        fp = (
            self.policy.amd_false_positive_rate * mach
            if self.policy.count_amd_false_positives
            else 0.0
        )
        return WindowCounts(live=live, abandoned=ab, machines=mach, est_false_positives=fp)

    def counts_since(self, start: float) -> WindowCounts:
        i = bisect_left(self._t, start)
        if i == 0:
            b_live, b_ab, b_m = self._base
        else:
            b_live, b_ab, b_m = self._live[i - 1], self._aband[i - 1], self._mach[i - 1]
        return self._with(self.total_live - b_live, self.total_abandoned - b_ab,
                          self.total_machines - b_m)

    def rate(self, now: datetime, window: AbandonWindow | float | None = None) -> float:
        return self.counts(now, window).rate

    def prune(self, now: datetime, keep: timedelta = timedelta(days=31)) -> None:
        """Forget events older than ``keep`` (must cover the longest window you read)."""
        cut = bisect_left(self._t, (now - keep).timestamp())
        if cut <= 0:
            return
        self._base = (self._live[cut - 1], self._aband[cut - 1], self._mach[cut - 1])
        del self._t[:cut], self._live[:cut], self._aband[:cut], self._mach[:cut]
