"""Voice-activity AMD: decide from what follows the greeting.

What separates a person from a recording is not how many words they say but what they do
next: a person (or a receptionist giving company, greeting and name) says a short greeting and
then **waits** for the caller, while a recorded greeting **goes on** and usually ends in a
**beep**. Per 20 ms frame of 8 kHz 16-bit PCM:

* voice activity comes from the WebRTC VAD (package ``webrtcvad-wheels``), gated by an
  adaptive noise floor (a frame counts as speech only if it is also clearly above the line's
  hiss), by the talker's own level (speech 14 dB below the voice that answered is someone in
  the background) and with pure-tone frames removed (a beep, a ring-back or SIT tone is not
  speech);
* a beep comes from :mod:`sip.amd_beep`.

Rules (``AmdSettings`` fields, ms; a speech run shorter than 60 ms - a click, a breath - is
ignored):

* a beep at any time -> MACHINE (``beep``), reported when the tone ends;
* after the first speech, ``vad_silence_ms`` of silence -> HUMAN (``silence_after_greeting``);
  after a greeting spanning more than 1.5 s the wait is ``vad_long_silence_ms`` (a recorded
  greeting often pauses before its beep; a person who said one word is decided sooner);
* the decision deadline, ``decide_by_ms`` after answer (2.5 s; 0 = none), checked once:
  a caller still undecided who has paused ``decide_by_pause_ms`` and never said one utterance
  (speech without a 160 ms pause) longer than ``decide_by_utterance_ms`` -> HUMAN
  (``deadline``). A person who answers late or slowly has said "hello, who's calling?" and
  stopped, but the full closing silence would end past 2.5 s; when in doubt a person (a
  machine put through costs an agent a few seconds, a person hung up on is an abandoned
  call). Speech still going on, a long utterance or a tone at the deadline is left to the
  other rules (a receptionist's company greeting is governed by the greeting budget);
* speech still going on ``greeting_budget_ms`` after the first speech -> MACHINE
  (``long_greeting``); with ``beep_wait_ms`` > 0 the verdict waits up to that long for the
  beep (``beep``) or the greeting's end (``greeting_end``) so a message starts after it;
* nobody speaks for ``initial_silence_ms`` -> UNKNOWN (``initial_silence``: a silent line is
  as often a person waiting as a machine, and hanging up on a person is the costly error);
* nothing decided within ``max_analysis_ms`` -> UNKNOWN (``max_time``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from common.vocabulary import AmdVerdict
from sip.amd import AmdResult
from sip.amd_beep import Beep, BeepDetector
from sip.api import AmdSettings

#: a speech run must last this many frames before it counts (60 ms at 20 ms frames)
MIN_RUN_FRAMES = 3
#: a greeting spanning more than this waits ``vad_long_silence_ms`` instead of ``vad_silence_ms``
LONG_GREETING_MS = 1500
#: absolute RMS floor of a speech frame (16-bit PCM), whatever the line noise
MIN_SPEECH_RMS = 100.0
#: a speech frame must be this many times above the line's noise floor
FLOOR_FACTOR = 3.0
#: the noise floor is the quietest (non-tone) frame of the last this many frames (1.5 s)
FLOOR_FRAMES = 75
#: cap of the floor estimate (a call that starts with talk must not silence its own voice)
FLOOR_CAP = 400.0
#: once the talker's level is known (median RMS of their first speech frames), quieter
#: speech than this share of it is someone in the background (room talk, a TV), not them
TALKER_FACTOR = 0.2
TALKER_MIN_FRAMES = 10
TALKER_FRAMES = 100
#: a pause this long (ms) between speech runs ends an utterance (commas and sentence ends do;
#: the gaps between words do not)
UTTERANCE_GAP_MS = 160


def load_vad(aggressiveness: int) -> Any | None:
    """A ``webrtcvad.Vad`` or None when the package cannot be imported."""
    try:
        import webrtcvad
    except ImportError:
        return None
    return webrtcvad.Vad(aggressiveness)


class FrameFeatures:
    """Per-frame front end: gated VAD decision and beep tracking (stateful)."""

    def __init__(self, vad: Any, frame_ms: int = 20, rate: int = 8000) -> None:
        self.vad = vad
        self.rate = rate
        self.frame_ms = frame_ms
        self.frame_bytes = rate * frame_ms // 1000 * 2
        self.beeps = BeepDetector(frame_ms, rate)
        self._recent: deque[float] = deque(maxlen=FLOOR_FRAMES)
        self._voiced: list[float] = []  # RMS of the first speech frames: the talker's level
        self._talker = 0.0

    def feed(self, pcm: bytes | bytearray | memoryview) -> tuple[bool, bool, Beep | None]:
        """(speech, tonal, beep-that-just-ended) for one frame of little-endian 16-bit PCM."""
        raw = bytes(pcm)
        if len(raw) != self.frame_bytes:  # pad/cut to the frame size the VAD accepts
            raw = raw[: self.frame_bytes].ljust(self.frame_bytes, b"\0")
        x = np.frombuffer(raw, dtype="<i2")
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        floor = min(min(self._recent), FLOOR_CAP) if self._recent else 0.0
        beep = self.beeps.feed(x)
        if not self.beeps.pure:  # the floor is the line's noise, not a tone on it
            self._recent.append(rms)
        if self.beeps.tonal:
            return False, True, beep
        gate = max(MIN_SPEECH_RMS, FLOOR_FACTOR * floor, TALKER_FACTOR * self._talker)
        if self.beeps.pure or rms < gate:
            return False, False, beep
        speech = bool(self.vad.is_speech(raw, self.rate))
        if speech and len(self._voiced) < TALKER_FRAMES:
            self._voiced.append(rms)
            if len(self._voiced) >= TALKER_MIN_FRAMES:
                self._talker = float(np.median(self._voiced))
        return speech, False, beep


class VadAmdAnalyzer:
    """The ``"vad"`` analyser; same interface as :class:`sip.amd.AmdAnalyzer`."""

    def __init__(self, settings: AmdSettings, frame_ms: int = 20, vad: Any | None = None) -> None:
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        if vad is None:
            vad = load_vad(settings.vad_aggressiveness)
            if vad is None:
                raise ImportError("webrtcvad is not installed")
        self.s = settings
        self.frame_ms = frame_ms
        self.front = FrameFeatures(vad, frame_ms)
        self.elapsed_ms = 0
        self._run = 0  # current run of speech frames
        self._onset: int | None = None  # ms of the first counted speech
        self._last_voice: int | None = None  # ms at the end of the last counted speech frame
        self._pending_since: int | None = None  # long greeting seen, waiting for the beep
        self._utt_start: int | None = None  # ms at the start of the current utterance
        self._longest_utt = 0  # longest utterance so far (ms of speech without a pause)
        self.result: AmdResult | None = None

    def _done(self, verdict: AmdVerdict, cause: str) -> AmdResult:
        self.result = AmdResult(verdict, cause, self.elapsed_ms)
        return self.result

    def step(self, speech: bool, beep: Beep | None, tonal: bool = False) -> AmdResult | None:
        """Advance one frame given its features; returns the verdict once decided.

        While a tone is going on (``tonal``) no silence-based verdict is given: it may be the
        beep, which decides at its end.
        """
        if self.result is not None:
            return self.result
        s = self.s
        self.elapsed_ms += self.frame_ms
        now = self.elapsed_ms
        if beep is not None:
            return self._done(AmdVerdict.MACHINE, "beep")
        if speech:
            self._run += 1
            if self._run == MIN_RUN_FRAMES and self._onset is None:
                self._onset = now - MIN_RUN_FRAMES * self.frame_ms
            if self._run >= MIN_RUN_FRAMES:
                run_start = now - self._run * self.frame_ms
                # a pause of UTTERANCE_GAP_MS or more between speech runs starts an utterance
                if (
                    self._utt_start is None
                    or self._last_voice is None
                    or run_start - self._last_voice >= UTTERANCE_GAP_MS
                ):
                    self._utt_start = run_start
                self._longest_utt = max(self._longest_utt, now - self._utt_start)
                self._last_voice = now
                assert self._onset is not None
                if self._pending_since is None and now - self._onset >= s.greeting_budget_ms:
                    if s.beep_wait_ms <= 0:
                        return self._done(AmdVerdict.MACHINE, "long_greeting")
                    self._pending_since = now
        else:
            self._run = 0
        waited = False
        if not tonal and self._last_voice is not None and self._onset is not None:
            long = self._last_voice - self._onset > LONG_GREETING_MS
            wait = max(s.vad_long_silence_ms, s.vad_silence_ms) if long else s.vad_silence_ms
            waited = now - self._last_voice >= wait
        if self._pending_since is not None:
            if waited:
                return self._done(AmdVerdict.MACHINE, "greeting_end")
            if now - self._pending_since >= s.beep_wait_ms or now >= s.max_analysis_ms:
                return self._done(AmdVerdict.MACHINE, "long_greeting")
            return None
        if waited:
            return self._done(AmdVerdict.HUMAN, "silence_after_greeting")
        if (
            s.decide_by_ms
            and now - self.frame_ms < s.decide_by_ms <= now  # once, at the deadline
            and not tonal
            and self._last_voice is not None
            and now - self._last_voice >= s.decide_by_pause_ms
            and self._longest_utt <= s.decide_by_utterance_ms
        ):
            # the deadline (from answer): the talker has stopped and never said one long
            # utterance - when in doubt a person (a machine costs an agent a few seconds, a
            # person hung up on is an abandoned call). Checked once, not from then on: later
            # pauses are mostly a recording's sentence ends (measured on the bench corpus:
            # re-checking every frame after the deadline lost ~15 % of the machines and
            # decided hardly any person sooner)
            return self._done(AmdVerdict.HUMAN, "deadline")
        if self._onset is None and now >= s.initial_silence_ms:
            return self._done(AmdVerdict.UNKNOWN, "initial_silence")
        if now >= s.max_analysis_ms:
            return self._done(AmdVerdict.UNKNOWN, "max_time")
        return None

    def feed(self, pcm: bytes | bytearray | memoryview) -> AmdResult | None:
        """Advance one frame of 16-bit little-endian mono PCM (8 kHz)."""
        if self.result is not None:
            return self.result
        speech, tonal, beep = self.front.feed(pcm)
        return self.step(speech, beep, tonal)

    def feed_energy(self, energy: float) -> AmdResult | None:
        """A frame without audio (the node's non-audio frames): counts as silence."""
        return self.step(False, None)

    def timeout(self) -> AmdResult:
        """Force a verdict (no audio arrived within the analysis time)."""
        if self.result is not None:
            return self.result
        if self._pending_since is not None:
            return self._done(AmdVerdict.MACHINE, "long_greeting")
        return self._done(AmdVerdict.UNKNOWN, "no_audio")
