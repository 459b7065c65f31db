"""Answering-machine detection over 20 ms PCM frames: the analyser factory and the classic
energy/cadence method.

:func:`make_analyzer` picks the analyser ``AmdSettings.method`` names: ``"vad"`` (default,
:class:`sip.amd_vad.VadAmdAnalyzer`: voice activity after the greeting plus beep detection)
or ``"energy"`` (:class:`AmdAnalyzer` below). When the VAD package cannot be imported it logs a
WARNING and falls back to the energy analyser. Both have the same interface (``feed``,
``feed_energy``, ``timeout``, ``s``, ``result``, ``elapsed_ms``).

Pure analysis (no pjsua2): :class:`AmdAnalyzer` is fed 16-bit mono PCM frames and returns a
verdict once it is sure. The rules are those of Asterisk's ``app_amd``, which generations of
dialers tuned against real lines:

* a long **initial silence** (nobody speaks) -> machine (``initial_silence``);
* a **greeting** longer than ``greeting_ms`` of voice -> machine (``long_greeting``);
* ``max_words`` or more words -> machine (``max_words``);
* a short greeting followed by ``after_greeting_silence_ms`` of silence -> human ("hello?"
  then waiting for an answer: ``silence_after_greeting``);
* nothing decisive within ``max_analysis_ms`` -> unknown (``max_time``).

The pjsua2 glue (an AudioMediaPort subclass in :mod:`sip.node.objects`) runs ``feed`` on the media
clock thread and only queues the result; it never calls pjsua2 from there.
"""

from __future__ import annotations

import array
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from common.vocabulary import AmdVerdict
from sip.api import AmdSettings

FRAME_MS = 20

log = logging.getLogger("sip.amd")


@dataclass(frozen=True, slots=True)
class AmdResult:
    verdict: AmdVerdict
    cause: str
    took_ms: int


def frame_energy(pcm: bytes | bytearray | memoryview) -> float:
    """Mean absolute sample value of little-endian signed 16-bit PCM."""
    samples = array.array("h")
    samples.frombytes(bytes(pcm[: len(pcm) - (len(pcm) % 2)]))
    if sys.byteorder != "little":
        samples.byteswap()
    if not samples:
        return 0.0
    return sum(map(abs, samples)) / len(samples)


class Analyzer(Protocol):
    """What the node's AMD port drives (both analysers implement it)."""

    s: AmdSettings
    elapsed_ms: int
    result: AmdResult | None

    def feed(self, pcm: bytes | bytearray | memoryview) -> AmdResult | None: ...

    def feed_energy(self, energy: float) -> AmdResult | None: ...

    def timeout(self) -> AmdResult: ...


class AmdAnalyzer:
    """The ``"energy"`` analyser (app_amd rules; also the fallback).

    State machine over 20 ms frames; call :meth:`feed` until it returns a result.
    """

    def __init__(self, settings: AmdSettings, frame_ms: int = FRAME_MS) -> None:
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        self.s = settings
        self.frame_ms = frame_ms
        self.elapsed_ms = 0
        self._silence_ms = 0  # current run of silence
        self._voice_ms = 0  # current run of voice
        self._greeting_voice_ms = 0  # voice since the greeting started (incl. short gaps)
        self._words = 0
        self._in_word = False
        self._heard_voice = False
        self.result: AmdResult | None = None

    def _done(self, verdict: AmdVerdict, cause: str) -> AmdResult:
        self.result = AmdResult(verdict, cause, self.elapsed_ms)
        return self.result

    def feed_energy(self, energy: float) -> AmdResult | None:
        """Advance one frame given its energy; returns the verdict once decided."""
        if self.result is not None:
            return self.result
        s = self.s
        self.elapsed_ms += self.frame_ms
        if energy < s.silence_threshold:
            self._silence_ms += self.frame_ms
            if self._voice_ms and self._silence_ms >= s.between_words_silence_ms:
                self._in_word = False
                self._voice_ms = 0
            if not self._heard_voice and self._silence_ms >= s.initial_silence_ms:
                return self._done(AmdVerdict.MACHINE, "initial_silence")
            if self._heard_voice and self._silence_ms >= s.after_greeting_silence_ms:
                return self._done(AmdVerdict.HUMAN, "silence_after_greeting")
        else:
            self._silence_ms = 0
            self._voice_ms += self.frame_ms
            self._greeting_voice_ms += self.frame_ms
            if self._voice_ms >= s.min_word_ms and not self._in_word:
                self._in_word = True
                self._heard_voice = True
                self._words += 1
                if self._words >= s.max_words:
                    return self._done(AmdVerdict.MACHINE, "max_words")
            if self._greeting_voice_ms >= s.greeting_ms:
                return self._done(AmdVerdict.MACHINE, "long_greeting")
        if self.elapsed_ms >= s.max_analysis_ms:
            return self._done(AmdVerdict.UNKNOWN, "max_time")
        return None

    def feed(self, pcm: bytes | bytearray | memoryview) -> AmdResult | None:
        """Advance one 20 ms frame of 16-bit little-endian mono PCM."""
        return self.feed_energy(frame_energy(pcm))

    def timeout(self) -> AmdResult:
        """Force a verdict (no audio arrived within the analysis time)."""
        if self.result is None:
            return self._done(AmdVerdict.UNKNOWN, "no_audio")
        return self.result


def frames(pcm: bytes, clock_rate: int = 8000, frame_ms: int = FRAME_MS) -> Iterator[bytes]:
    """Split 16-bit mono PCM into whole frames (the tail shorter than a frame is dropped)."""
    n = clock_rate * frame_ms // 1000 * 2
    for i in range(0, len(pcm) - n + 1, n):
        yield pcm[i : i + n]


def analyse(pcm_frames: Iterable[bytes], settings: AmdSettings) -> AmdResult:
    """Run the analyzer over a whole stream (offline use, tests, tuning)."""
    a = AmdAnalyzer(settings)
    for fr in pcm_frames:
        r = a.feed(fr)
        if r is not None:
            return r
    return (
        a.timeout()
        if a.elapsed_ms < settings.max_analysis_ms
        else a._done(AmdVerdict.UNKNOWN, "max_time")
    )


#: the energy analyser under its method name
EnergyAmdAnalyzer = AmdAnalyzer
_warned_fallback = False


def make_analyzer(settings: AmdSettings, frame_ms: int = FRAME_MS) -> Analyzer:
    """The analyser ``settings.method`` selects; the energy one if the VAD cannot load."""
    global _warned_fallback
    if settings.method == "vad":
        from sip.amd_vad import VadAmdAnalyzer, load_vad

        vad = load_vad(settings.vad_aggressiveness)
        if vad is not None:
            return VadAmdAnalyzer(settings, frame_ms, vad=vad)
        if not _warned_fallback:
            _warned_fallback = True
            log.warning(
                "AMD: webrtcvad (package webrtcvad-wheels) cannot be imported; "
                "falling back to the energy/cadence analyser"
            )
    return AmdAnalyzer(settings, frame_ms)


def detect(pcm_frames: Iterable[bytes], settings: AmdSettings) -> AmdResult:
    """Like :func:`analyse` but with the analyser ``settings.method`` selects."""
    a = make_analyzer(settings)
    for fr in pcm_frames:
        r = a.feed(fr)
        if r is not None:
            return r
    return a.timeout()
