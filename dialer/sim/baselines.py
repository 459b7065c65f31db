"""Comparison baselines for the pacing benchmark, built from the anchors' documentation.

They plug into the real engine as pacers (so routing, the 2-second rule and accounting are
identical for every policy); only "how many calls to start now" differs. They live here,
not in dialer.core, because nobody should dial with them: they exist to be beaten fairly.

- `VicidialAdaptivePacer`: VICIdial's adaptive dial level (ADAPT_TAPERED by default, also
  ADAPT_HARD_LIMIT and ADAPT_AVERAGE), from its documented behaviour (shared
  docs/pacing.md): 15 s of samples of ready agents R, waiting calls Q and agents A; every
  15 s level *= 1 + ((R - Q) + diff_target) / A, clamped to 1.0..3.0 (its default maximum);
  halved when more than half of the last minute's live answers dropped; when the day's
  drop rate exceeds the target, HARD_LIMIT sets 1.0, AVERAGE halves, TAPERED tolerates the
  overshoot in the first half of the shift and then scales the level by the share of the
  second half still left. Lines kept up: round(level x (ready + talking agents)) minus the
  calls already up (ringing, waiting, talking).
- `IssabelPacer`: Issabel call center's predictor: free agents plus busy agents judged
  "about to be free" (the unconditional exponential CDF of handle time at elapsed + the
  expected answer delay is over a threshold), minus calls waiting and in flight; with
  overcommit, divided by the recent answer-seizure ratio.
- `clairvoyant_bound`: knows the tape; every live lead answers exactly when an agent frees,
  nothing is ever abandoned. Occupancy is limited only by talk + wrap-up (and breaks).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from dialer.core.pacer import PacerSnapshot, clamp_to_limits
from dialer.sim.workload import LeadTape, Outcome, Workload


class AdaptMode(enum.StrEnum):
    HARD_LIMIT = "ADAPT_HARD_LIMIT"
    TAPERED = "ADAPT_TAPERED"
    AVERAGE = "ADAPT_AVERAGE"


class VicidialAdaptivePacer:
    """VICIdial-style adaptive dial level (stateful: one instance per run)."""

    def __init__(
        self,
        *,
        mode: AdaptMode = AdaptMode.TAPERED,
        drop_target: float = 0.03,
        shift_seconds: float = 8 * 3600.0,
        max_level: float = 3.0,
        diff_target: float = 0.0,
        intensity: float = 0.0,
        period: float = 15.0,
        start_level: float = 1.0,
    ) -> None:
        self.mode = mode
        self.drop_target = drop_target
        self.shift = shift_seconds
        self.max_level = max_level
        self.diff_target = diff_target
        self.intensity = intensity
        self.period = period
        self.level = start_level
        self._t0: float | None = None
        self._last_adapt: float | None = None
        self._samples: list[tuple[int, int, int]] = []
        #: (t, live_total, abandoned_total) history for the last minute's drop share
        self._hist: deque[tuple[float, int, int]] = deque()

    def __call__(self, snap: PacerSnapshot) -> int:
        t = snap.t
        if self._t0 is None:
            self._t0 = t
            self._last_adapt = t
        talking = len(snap.talking_elapsed)
        self._samples.append((snap.agents_ready, snap.waiting, snap.agents_working))
        self._hist.append((t, snap.live_total, snap.abandoned_total))
        while self._hist and self._hist[0][0] < t - 60.0:
            self._hist.popleft()
        assert self._last_adapt is not None
        if t - self._last_adapt >= self.period and self._samples:
            self._adapt(t, snap)
            self._last_adapt = t
        goal = round(self.level * (snap.agents_ready + talking))
        up = len(snap.inflight_ages) + snap.waiting + talking
        return clamp_to_limits(snap, goal - up)

    def _adapt(self, t: float, snap: PacerSnapshot) -> None:
        n = len(self._samples)
        r = sum(s[0] for s in self._samples) / n
        q = sum(s[1] for s in self._samples) / n
        a = max(1.0, sum(s[2] for s in self._samples) / n)
        self._samples.clear()
        factor = 1.0 + ((r - q) + self.diff_target) / a
        # intensity -40..40 nudges the adjustment (0: VICIdial's default, no change)
        factor = 1.0 + (factor - 1.0) * (1.0 + self.intensity / 40.0)
        self.level = min(self.max_level, max(1.0, self.level * factor))
        # more than half of the last minute's live answers dropped: halve
        _, live_old, ab_old = self._hist[0]
        live_min = snap.live_total - live_old
        ab_min = snap.abandoned_total - ab_old
        if live_min > 0 and ab_min / live_min > 0.5:
            self.level = max(1.0, self.level / 2.0)
        # the day's drop rate against the target
        day = snap.abandoned_total / snap.live_total if snap.live_total else 0.0
        if day > self.drop_target:
            if self.mode is AdaptMode.HARD_LIMIT:
                self.level = 1.0
            elif self.mode is AdaptMode.AVERAGE:
                self.level = max(1.0, self.level / 2.0)
            else:
                assert self._t0 is not None
                elapsed = t - self._t0
                half = self.shift / 2.0
                if elapsed >= half:
                    left = max(0.0, self.shift - elapsed) / half
                    self.level = max(1.0, self.level * left)


class IssabelPacer:
    """Issabel-style "agents about to be free" predictor (stateless)."""

    def __init__(self, *, threshold: float = 0.97, overcommit: bool = True) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self.overcommit = overcommit

    def __call__(self, snap: PacerSnapshot) -> int:
        model = snap.model
        mean_handle = model.talk.mean + model.wrap.mean
        calls = model.calls
        p_live = max(calls.p_live, 1e-3)
        # expected delay from dial to a live answer
        ans_delay = 0.0
        prev = 0.0
        for k in range(1, len(calls.live_cdf)):
            ans_delay += k * (calls.live_cdf[k] - prev)
            prev = calls.live_cdf[k]
        ans_delay /= p_live
        about = 0
        for el in snap.talking_elapsed:
            if 1.0 - math.exp(-(el + ans_delay) / mean_handle) >= self.threshold:
                about += 1
        for el in snap.wrap_elapsed:
            if 1.0 - math.exp(-(el + model.talk.mean + ans_delay) / mean_handle) >= self.threshold:
                about += 1
        need = snap.agents_ready + about - snap.waiting
        if self.overcommit and snap.dials_total >= 20:
            # answer-seizure ratio so far: answered (by a person or a machine) / dialled
            asr = (snap.live_total + snap.machines_total) / snap.dials_total
            want = math.floor(need / max(asr, 0.05))
        else:
            want = need
        return clamp_to_limits(snap, want - len(snap.inflight_ages))


@dataclass(frozen=True, slots=True)
class BoundResult:
    occupancy: float
    talk_seconds: float
    agent_hours: float
    connected: int
    dials: int


def clairvoyant_bound(workload: Workload, seed: int) -> BoundResult:
    """Occupancy of a dialer that knows the tape and never makes an agent wait.

    Every agent takes the next live lead of the tape the instant it finishes wrap-up,
    over the same available time the simulated agents have (shift minus breaks); dials
    that reach no person cost it nothing. Talk is counted up to the end of the shift.
    """
    tape = LeadTape(workload, seed)
    shift = workload.hours * 3600.0
    breaks = workload.break_minutes * 60.0
    n_breaks = 0
    if breaks > 0:
        period = workload.break_every_hours * 3600.0
        k = 0
        while (k + 0.5) * period < shift:
            n_breaks += 1
            k += 1
    available = max(0.0, shift - n_breaks * breaks)
    lead = 0
    dials = 0
    talk_total = 0.0
    connected = 0
    for _agent in range(workload.agents):
        t = 0.0
        while t < available:
            d = tape.draw(lead, 0)
            lead += 1
            dials += 1
            if d.outcome is not Outcome.HUMAN:
                continue
            connected += 1
            talk = min(d.talk, available - t)
            talk_total += talk
            t += d.talk + d.wrap
    agent_hours = workload.agents * available / 3600.0
    occ = talk_total / (agent_hours * 3600.0) if agent_hours else 0.0
    return BoundResult(occ, talk_total, agent_hours, connected, dials)
