"""Beep detection (sip.amd_beep): a sustained 1-2 kHz tone, never speech."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sip.amd_beep import BeepDetector, find_beeps, tone_peak
from sip.assets import machine_greeting, speech_like, tone

RATE = 8000


def _noise(n: int, seed: int = 0, std: float = 40.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, std, n)


def _with_gaps(x: list[int] | np.ndarray, before: float = 0.3, after: float = 0.3) -> np.ndarray:
    y = np.concatenate(
        [np.zeros(int(before * RATE)), np.asarray(x, float), np.zeros(int(after * RATE))]
    )
    return y + _noise(len(y))


def test_finds_a_1khz_tone_with_its_timing() -> None:
    beeps = find_beeps(_with_gaps(tone(0.5, 1000.0, 5000)))
    assert len(beeps) == 1
    b = beeps[0]
    assert b.freq_hz == pytest.approx(1000.0, abs=50)
    assert abs(b.start_ms - 300) <= 20 and abs(b.end_ms - 800) <= 20


@pytest.mark.parametrize("freq", [900.0, 1200.0, 1400.0, 1750.0, 2000.0])
def test_finds_tones_across_the_band(freq: float) -> None:
    assert [round(b.freq_hz / 50) * 50 for b in find_beeps(_with_gaps(tone(0.3, freq, 3000)))] == [
        pytest.approx(freq, abs=50)
    ]


def test_ignores_speech_like_audio_and_low_tones() -> None:
    assert find_beeps(np.array(speech_like(3.0), float)) == []
    assert find_beeps(np.array(machine_greeting(), float)) == []
    assert find_beeps(_with_gaps(tone(1.0, 440.0, 6000))) == []  # ring-back pitch, not a beep


def test_a_click_shorter_than_min_is_no_beep() -> None:
    assert find_beeps(_with_gaps(tone(0.06, 1000.0, 5000))) == []


def test_quiet_frames_are_never_tonal() -> None:
    assert tone_peak(np.array(tone(0.02, 1000.0, 50), float)) is None


def test_streaming_reports_at_the_end_of_the_tone() -> None:
    x = _with_gaps(tone(0.4, 1000.0, 5000), before=0.2, after=0.5)
    det = BeepDetector()
    hits = []
    for i in range(0, len(x) - 159, 160):
        b = det.feed(x[i : i + 160])
        if b is not None:
            hits.append((det.elapsed_ms, b))
    assert len(hits) == 1
    at, b = hits[0]
    assert at == b.end_ms + 20  # told on the first frame after the tone
    assert 560 <= b.end_ms <= 620


def test_a_very_long_tone_is_reported_at_max_ms() -> None:
    det = BeepDetector(max_ms=1000)
    x = np.array(tone(3.0, 1000.0, 5000), float)
    for i in range(0, len(x) - 159, 160):
        b = det.feed(x[i : i + 160])
        if b is not None:
            assert det.elapsed_ms == 1000
            break
    else:
        pytest.fail("no beep")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_espeak_speech_is_no_beep() -> None:
    from sip.amd_corpus import speak

    for voice, text in [
        ("en+f3", "Hi, you've reached Mike. Please leave a message."),
        ("sv+m2", "Hej, du har kommit till Anna och Lars."),
        ("fr+f2", "Bonjour, vous êtes bien chez Marie et Pierre."),
    ]:
        y = speak(text, voice, 170, 60)
        y = y * (3000 / np.sqrt(np.mean(y * y)))
        assert find_beeps(y) == [], voice
