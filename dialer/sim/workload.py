"""Workloads and the lead tape of the simulator.

A `Workload` describes the callees and agents of one what-if question. The `LeadTape`
draws, for a seed, every lead's attempt outcomes once: what happens on attempt k of lead i
is a function of (seed, i, k) only, so every policy run on the same seed meets the same
people in the same order, and differences between policies are theirs, not the dice's.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

import numpy as np


class Outcome(enum.IntEnum):
    HUMAN = 0
    MACHINE = 1
    BUSY = 2
    FAILED = 3
    NO_ANSWER = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """Callee and agent behaviour for one simulated campaign."""

    agents: int = 20
    #: P(a dial is answered at all, by a person or a machine)
    answer_rate: float = 0.3
    #: share of answers that are answering machines
    machine_share: float = 0.2
    busy_rate: float = 0.08
    fail_rate: float = 0.02
    mean_talk: float = 180.0
    #: coefficient of variation of talk time (lognormal)
    talk_cv: float = 0.8
    mean_wrap: float = 15.0
    wrap_cv: float = 0.4
    #: mean seconds from dial to a person's or machine's answer (lognormal, < timeout)
    mean_ring: float = 9.0
    ring_cv: float = 0.5
    ring_timeout: float = 25.0
    #: length of the recorded abandon message and of a machine message
    message_seconds: float = 8.0
    machine_message_seconds: float = 20.0
    hours: float = 8.0
    #: every agent takes a break of break_minutes every break_every_hours (staggered)
    break_every_hours: float = 2.0
    break_minutes: float = 10.0
    #: share of connected calls that end in an agreed callback later the same day
    callback_share: float = 0.03
    #: P(an agent's phone does not take a bridged call)
    bridge_fail_rate: float = 0.0
    #: seconds for a bridge to complete
    bridge_seconds: float = 0.3

    def __post_init__(self) -> None:
        probs = {
            "answer_rate": self.answer_rate,
            "machine_share": self.machine_share,
            "busy_rate": self.busy_rate,
            "fail_rate": self.fail_rate,
            "callback_share": self.callback_share,
            "bridge_fail_rate": self.bridge_fail_rate,
        }
        for name, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"workload {name} must be in [0, 1], got {p}")
        if self.answer_rate + self.busy_rate + self.fail_rate > 1.0:
            raise ValueError(
                "workload answer_rate + busy_rate + fail_rate must be <= 1, got "
                f"{self.answer_rate + self.busy_rate + self.fail_rate:.3f}"
            )
        if self.agents < 1:
            raise ValueError(f"workload agents must be >= 1, got {self.agents}")
        for name in ("mean_talk", "mean_wrap", "mean_ring", "ring_timeout", "hours"):
            if getattr(self, name) <= 0:
                raise ValueError(f"workload {name} must be > 0, got {getattr(self, name)}")
        if self.mean_ring >= self.ring_timeout:
            raise ValueError("workload mean_ring must be below ring_timeout")
        if self.break_minutes < 0 or self.break_every_hours <= 0:
            raise ValueError("workload break_minutes must be >= 0, break_every_hours > 0")

    @property
    def live_rate(self) -> float:
        return self.answer_rate * (1.0 - self.machine_share)

    def label(self) -> str:
        return f"a{self.agents}/ans{round(self.answer_rate * 100)}%/talk{round(self.mean_talk)}s"


@dataclass(frozen=True, slots=True)
class Draw:
    """What one attempt of one lead does."""

    outcome: Outcome
    #: seconds from dial to the answer or the SIP result (timeout for no answer)
    ring: float
    talk: float
    wrap: float
    #: 0..1, picks the agent's disposition
    disp_u: float


def _lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    sigma2 = math.log(1.0 + cv * cv)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


class LeadTape:
    """Deterministic per-seed draws: first attempts in vectorised chunks, retries on demand."""

    CHUNK = 4096

    def __init__(self, workload: Workload, seed: int) -> None:
        self.w = workload
        self.seed = seed
        self._chunks: dict[int, tuple[np.ndarray, ...]] = {}
        w = workload
        self._cum = (
            w.live_rate,
            w.answer_rate,
            w.answer_rate + w.busy_rate,
            w.answer_rate + w.busy_rate + w.fail_rate,
        )
        self._talk = _lognormal_params(w.mean_talk, w.talk_cv)
        self._wrap = _lognormal_params(w.mean_wrap, w.wrap_cv)
        self._ring = _lognormal_params(w.mean_ring, w.ring_cv)

    def _outcome(self, u: float) -> Outcome:
        c = self._cum
        if u < c[0]:
            return Outcome.HUMAN
        if u < c[1]:
            return Outcome.MACHINE
        if u < c[2]:
            return Outcome.BUSY
        if u < c[3]:
            return Outcome.FAILED
        return Outcome.NO_ANSWER

    def _ring_for(self, outcome: Outcome, ring: float) -> float:
        w = self.w
        if outcome is Outcome.NO_ANSWER:
            return w.ring_timeout
        if outcome is Outcome.BUSY:
            return min(ring * 0.3, w.ring_timeout)
        if outcome is Outcome.FAILED:
            return min(ring * 0.1, w.ring_timeout)
        return min(ring, w.ring_timeout - 0.5)

    def _chunk(self, k: int) -> tuple[np.ndarray, ...]:
        ch = self._chunks.get(k)
        if ch is None:
            rng = np.random.default_rng([self.seed, k])
            n = self.CHUNK
            u = rng.random(n)
            ring = rng.lognormal(*self._ring, n)
            talk = np.maximum(5.0, rng.lognormal(*self._talk, n))
            wrap = np.maximum(1.0, rng.lognormal(*self._wrap, n))
            disp = rng.random(n)
            ch = (u, ring, talk, wrap, disp)
            self._chunks[k] = ch
        return ch

    def draw(self, lead: int, attempt: int) -> Draw:
        """Outcome of attempt ``attempt`` (0 = first) of lead number ``lead``."""
        if attempt == 0:
            u, ring, talk, wrap, disp = self._chunk(lead // self.CHUNK)
            i = lead % self.CHUNK
            o = self._outcome(float(u[i]))
            return Draw(
                o, self._ring_for(o, float(ring[i])), float(talk[i]), float(wrap[i]), float(disp[i])
            )
        r = random.Random(f"{self.seed}:{lead}:{attempt}")
        o = self._outcome(r.random())
        ring = r.lognormvariate(*self._ring)
        talk = max(5.0, r.lognormvariate(*self._talk))
        wrap = max(1.0, r.lognormvariate(*self._wrap))
        return Draw(o, self._ring_for(o, ring), talk, wrap, r.random())
