"""Beep detection for AMD: a sustained pure tone between ~0.9 and ~2.1 kHz.

Voicemail systems mark the start of recording with a beep: one steady sinusoid, typically
1000-1500 Hz (some 440-950 Hz or up to 2 kHz), lasting 0.1-1 s. Speech is never that pure:
its energy is spread over a glottal pitch and many harmonics, and the strongest harmonic
moves from frame to frame. Per 20 ms frame (160 samples at 8 kHz, 50 Hz FFT bins, Hann
window) a frame is *tonal* when the strongest bin lies in the band, the bin and its two
neighbours hold most of the frame's power, and the frame is loud enough; a *beep* is a run
of tonal frames whose peak stays within one bin for at least ``min_ms``.

:class:`BeepDetector` is fed frames one by one and reports a beep when the tone **ends**
(so a message played at that moment starts after the beep) or when it has lasted ``max_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: tone band of interest (Hz)
BEEP_LOW_HZ = 850.0
BEEP_HIGH_HZ = 2150.0
#: share of frame power in the peak bin +-1 for a tonal frame (speech stays well below)
TONALITY = 0.75
#: RMS below which a frame is not looked at (hiss-level)
MIN_RMS = 150.0
#: a pure tone outside the beep band is taken for a call-progress tone after this long
PURE_MIN_MS = 300


@dataclass(frozen=True, slots=True)
class Beep:
    start_ms: int
    end_ms: int
    freq_hz: float


def tone_peak(samples: np.ndarray, rate: int = 8000) -> float | None:
    """Frequency of the frame's dominant pure tone in the beep band, or None."""
    hz = pure_tone(samples, rate)
    return hz if hz is not None and BEEP_LOW_HZ <= hz <= BEEP_HIGH_HZ else None


def pure_tone(samples: np.ndarray, rate: int = 8000) -> float | None:
    """Frequency of the frame's dominant pure tone (any pitch from 250 Hz), or None.

    Outside the beep band these are call-progress tones (ring-back, SIT, busy) or a leaking
    test tone: never speech either.
    """
    x = samples.astype(np.float64)
    if x.size < 32:
        return None
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x * x)))
    if rms < MIN_RMS:
        return None
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    spec[0] = 0.0
    total = float(spec.sum())
    if total <= 0.0:
        return None
    k = int(np.argmax(spec))
    hz = k * rate / x.size
    if hz < 250.0:
        return None
    if float(spec[max(k - 1, 0) : k + 2].sum()) < TONALITY * total:
        return None
    return hz


class BeepDetector:
    """Streaming detector over fixed-length frames (see the module docstring)."""

    def __init__(
        self, frame_ms: int = 20, rate: int = 8000, min_ms: int = 100, max_ms: int = 1500
    ) -> None:
        self.frame_ms = frame_ms
        self.rate = rate
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.bin_hz = 1000.0 / frame_ms
        self._run_ms = 0
        self._run_start = 0
        self._freq: float | None = None
        self.elapsed_ms = 0
        #: the last frame was part of a beep-band tone run (callers exclude it from speech)
        self.tonal = False
        #: the last frame belongs to a steady pure tone of any pitch lasting at least
        #: ``PURE_MIN_MS`` (a call-progress tone: not speech; a sung or hummed vowel is not
        #: that steady)
        self.pure = False
        self._pure_ms = 0
        self._pure_freq = 0.0

    def feed(self, samples: np.ndarray) -> Beep | None:
        """Advance one frame; returns the beep when one has just ended (or lasted max_ms)."""
        t0 = self.elapsed_ms
        self.elapsed_ms += self.frame_ms
        pure = pure_tone(samples, self.rate)
        if pure is not None and self._pure_ms and abs(pure - self._pure_freq) <= self.bin_hz:
            self._pure_ms += self.frame_ms
        else:
            self._pure_ms = self.frame_ms if pure is not None else 0
            self._pure_freq = pure or 0.0
        self.pure = self._pure_ms >= PURE_MIN_MS
        hz = pure if pure is not None and BEEP_LOW_HZ <= pure <= BEEP_HIGH_HZ else None
        same = (
            hz is not None and self._freq is not None and abs(hz - self._freq) <= self.bin_hz * 1.01
        )
        if hz is not None and (same or self._run_ms == 0):
            if self._run_ms == 0:
                self._run_start = t0
                self._freq = hz
            self._run_ms += self.frame_ms
            self.tonal = True
            if self._run_ms >= self.max_ms:
                return self._end(self.elapsed_ms)
            return None
        # the run (if any) ended with the previous frame
        beep = self._end(t0) if self._run_ms >= self.min_ms else None
        self._run_ms = 0
        self._freq = None
        if hz is not None:  # a new tone at another pitch starts here
            self._run_start = t0
            self._freq = hz
            self._run_ms = self.frame_ms
        self.tonal = hz is not None
        return beep

    def _end(self, end_ms: int) -> Beep:
        b = Beep(self._run_start, end_ms, float(self._freq or 0.0))
        self._run_ms = 0
        self._freq = None
        return b


def find_beeps(pcm: np.ndarray, rate: int = 8000, frame_ms: int = 20) -> list[Beep]:
    """All beeps in a whole signal (offline use and tests)."""
    n = rate * frame_ms // 1000
    det = BeepDetector(frame_ms, rate)
    out = []
    for i in range(0, len(pcm) - n + 1, n):
        b = det.feed(pcm[i : i + n])
        if b is not None:
            out.append(b)
    if det._run_ms >= det.min_ms:
        out.append(det._end(det.elapsed_ms))
    return out
