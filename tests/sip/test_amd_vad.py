"""The VAD analyser (sip.amd_vad): a short greeting then waiting is a person, a greeting that
goes on or a beep is a machine; plus the analyser choice, the fallback and the settings."""

from __future__ import annotations

import logging
import shutil
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sip_testutil import amd_pcm as _pcm
from sip_testutil import run_amd as _run
from sip_testutil import silence as _sil

import sip.amd
from common.vocabulary import AmdVerdict
from sip.amd import AmdAnalyzer, AmdResult, detect, frames, make_analyzer
from sip.amd_vad import VadAmdAnalyzer
from sip.api import AmdSettings, SipApiError, from_wire, to_wire
from sip.assets import human_greeting, machine_greeting, speech_like, tone

RATE = 8000
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


# --- synthetic audio ---------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 40.0, 300.0])
def test_short_hello_then_waiting_is_human_within_2_5_s(noise: float) -> None:
    r = _run(_pcm(human_greeting(), _sil(1.0), noise=noise))
    assert (r.verdict, r.cause) == (AmdVerdict.HUMAN, "silence_after_greeting")
    # hello ends at 0.9 s; decided after vad_silence_ms of waiting
    assert 900 + AmdSettings().vad_silence_ms <= r.took_ms <= 2500


def test_a_call_progress_tone_under_the_hello_is_not_speech() -> None:
    # a 440 Hz ring-back (or a leaking test tone) all through: still "hello" then waiting
    hello = np.concatenate([_sil(0.3), np.array(speech_like(0.6), float), _sil(4.0)])
    ring = np.array(tone(len(hello) / RATE, 440.0, 1500), float)
    r = _run(_pcm(hello + ring))
    assert (r.verdict, r.cause) == (AmdVerdict.HUMAN, "silence_after_greeting")


@pytest.mark.parametrize("noise", [0.0, 40.0, 300.0])
def test_long_continuous_greeting_is_machine_at_the_budget(noise: float) -> None:
    s = AmdSettings()
    r = _run(_pcm(machine_greeting(), noise=noise), s)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "long_greeting")
    assert s.greeting_budget_ms + 300 <= r.took_ms <= s.greeting_budget_ms + 400


def test_receptionist_length_greeting_then_waiting_is_human() -> None:
    # 3.5 s of talk with short pauses, then silence: within the budget
    talk: list[int] = []
    for i in range(7):
        talk += speech_like(0.4, seed=i) + [0] * int(0.1 * RATE)
    r = _run(_pcm(_sil(0.5), talk, _sil(3.0)))
    assert r.verdict == AmdVerdict.HUMAN
    s = AmdSettings(greeting_budget_ms=2500)  # a B2C campaign's shorter budget: machine
    assert _run(_pcm(_sil(0.5), talk, _sil(3.0)), s).verdict == AmdVerdict.MACHINE


def test_short_greeting_then_beep_is_machine_after_the_beep() -> None:
    r = _run(_pcm(_sil(0.4), speech_like(1.5), _sil(0.3), tone(0.5, 1000.0, 5000), _sil(3.0)))
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "beep")
    assert 2700 <= r.took_ms <= 2800  # the beep ends at 2.7 s: a message may start now


def test_beep_wait_holds_a_long_greeting_verdict_until_the_beep() -> None:
    s = AmdSettings(beep_wait_ms=3000, max_analysis_ms=10_000)
    pcm = _pcm(_sil(0.3), speech_like(6.0), _sil(0.4), tone(0.4, 1400.0, 5000), _sil(2.0))
    r = _run(pcm, s)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "beep")
    assert 7000 <= r.took_ms <= 7200
    # no beep: the verdict comes when the greeting ends
    r = _run(_pcm(_sil(0.3), speech_like(6.0), _sil(3.0)), s)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "greeting_end")
    assert 6300 + s.vad_long_silence_ms <= r.took_ms <= 6300 + s.vad_long_silence_ms + 100
    # and never beyond max_analysis_ms
    r = _run(_pcm(_sil(0.3), speech_like(9.0)), AmdSettings(beep_wait_ms=3000))
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "long_greeting")
    assert r.took_ms <= AmdSettings().max_analysis_ms


def test_after_a_longer_greeting_the_wait_is_longer_to_hear_the_beep() -> None:
    # the mechanism, with two different waits (the tuned defaults happen to be equal)
    s = AmdSettings(vad_silence_ms=600, vad_long_silence_ms=1000)
    greeting = speech_like(2.5)
    # a pause of 0.8 s before the beep: longer than the short wait, shorter than the long one
    pcm = _pcm(_sil(0.3), greeting, _sil(0.8), tone(0.3, 1000.0, 5000), _sil(3.0))
    assert _run(pcm, s).cause == "beep"
    r = _run(_pcm(_sil(0.3), greeting, _sil(3.0)), s)  # nobody beeps: a receptionist
    assert r.verdict == AmdVerdict.HUMAN
    assert 2800 + s.vad_long_silence_ms <= r.took_ms <= 2800 + s.vad_long_silence_ms + 100


def test_silence_and_line_noise_alone_are_unknown() -> None:
    s = AmdSettings()
    r = _run(_pcm(_sil(6.0), noise=120.0), s)
    assert (r.verdict, r.cause, r.took_ms) == (AmdVerdict.UNKNOWN, "initial_silence", 2500)


def test_max_analysis_gives_unknown() -> None:
    # talk in bursts with pauses shorter than the wait, never reaching the budget
    talk: list[int] = []
    for i in range(10):
        talk += speech_like(0.2, seed=i) + [0] * int(0.4 * RATE)
    s = AmdSettings(max_analysis_ms=2000, greeting_budget_ms=5000)
    assert _run(_pcm(talk), s) == AmdResult(AmdVerdict.UNKNOWN, "max_time", 2000)


def test_non_audio_frames_count_as_silence() -> None:
    a = make_analyzer(AmdSettings())
    assert isinstance(a, VadAmdAnalyzer)
    for fr in frames(_pcm(_sil(0.2), speech_like(0.6))):
        assert a.feed(fr) is None
    res = None
    for _ in range(100):
        res = a.feed_energy(0.0)
        if res is not None:
            break
    assert res is not None and res.verdict == AmdVerdict.HUMAN
    assert a.timeout() is res


def test_timeout_without_audio_is_unknown() -> None:
    assert make_analyzer(AmdSettings()).timeout().verdict == AmdVerdict.UNKNOWN


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), max_size=400),
    st.integers(200, 6000),
    st.integers(0, 3000),
)
def test_always_decides_within_max_analysis(
    flags: list[tuple[bool, bool]], max_ms: int, wait: int
) -> None:
    s = AmdSettings(max_analysis_ms=max_ms, greeting_budget_ms=1000, beep_wait_ms=wait)
    a = VadAmdAnalyzer(s, vad=object())
    res = None
    for speech, tonal in flags:
        res = a.step(speech, None, tonal)
        if res is not None:
            break
    if len(flags) * 20 >= max_ms:
        assert res is not None
    if res is not None:
        assert res.took_ms < max_ms + 20  # decided at the first frame boundary
        assert res.verdict in (AmdVerdict.HUMAN, AmdVerdict.MACHINE, AmdVerdict.UNKNOWN)


# --- espeak-ng speech (a few short clips made into tmp_path by espeak-ng) ------------------


def _spoken(text: str, voice: str, pickup: float = 0.5, after: float = 3.0) -> bytes:
    from sip.amd_corpus import speak

    y = speak(text, voice, 165, 50)
    y = y * (2000 / np.sqrt(np.mean(y * y)))
    return _pcm(_sil(pickup), y, _sil(after), noise=50.0, seed=len(text))


@needs_espeak
@pytest.mark.parametrize(
    ("voice", "text"),
    [
        ("sv+f3", "Ja, det är Anna."),
        ("en+m3", "Hello, this is Mike."),
        ("de+m1", "Ja?"),
        ("ru+f2", "Алло, слушаю."),
        ("lv+m2", "Jā, te Anna."),
        ("fr+f1", "Allô, bonjour."),
    ],
)
def test_espeak_short_greeting_is_human_within_2_5_s(voice: str, text: str) -> None:
    r = _run(_spoken(text, voice))
    assert r.verdict == AmdVerdict.HUMAN, r
    assert r.took_ms <= 2500, r


@needs_espeak
def test_espeak_receptionist_is_human() -> None:
    text = "Acme Insurance, good morning, this is Emma."
    r = _run(_spoken(text, "en-us+f2"))
    assert r.verdict == AmdVerdict.HUMAN, r


@needs_espeak
def test_espeak_voicemail_greeting_is_machine() -> None:
    text = (
        "Hi, you've reached Mike and Sarah. We can't come to the phone right now. "
        "Please leave your name, number and a short message after the tone."
    )
    r = _run(_spoken(text, "en+m2"))
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "long_greeting"), r


@needs_espeak
def test_espeak_short_voicemail_with_beep_is_machine(tmp_path: object) -> None:
    from sip.amd_corpus import speak

    y = speak("Hej, det är Anna. Lämna ett meddelande.", "sv+f1", 170, 55)
    y = y * (2000 / np.sqrt(np.mean(y * y)))
    r = _run(_pcm(_sil(0.4), y, _sil(0.3), tone(0.4, 1000.0, 4000), _sil(3.0), noise=50.0))
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "beep"), r


# --- analyser choice, fallback, settings ----------------------------------------------------


def test_method_energy_selects_the_classic_analyser() -> None:
    a = make_analyzer(AmdSettings(method="energy"))
    assert type(a) is AmdAnalyzer
    r = detect(frames(_pcm(human_greeting(), noise=0.0)), AmdSettings(method="energy"))
    assert (r.verdict, r.cause) == (AmdVerdict.HUMAN, "silence_after_greeting")
    r = detect(frames(_pcm(machine_greeting(), noise=0.0)), AmdSettings(method="energy"))
    assert r.verdict == AmdVerdict.MACHINE


def test_missing_vad_package_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "webrtcvad", None)  # import fails
    monkeypatch.setattr(sip.amd, "_warned_fallback", False)
    with caplog.at_level(logging.WARNING, logger="sip.amd"):
        a = make_analyzer(AmdSettings())
    assert type(a) is AmdAnalyzer
    assert any(
        "falling back" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    r = detect(frames(_pcm(human_greeting(), noise=0.0)), AmdSettings())
    assert r.verdict == AmdVerdict.HUMAN  # the fallback still works
    with pytest.raises(ImportError):
        VadAmdAnalyzer(AmdSettings())


def test_settings_defaults_and_wire_round_trip() -> None:
    s = AmdSettings()
    assert s.method == "vad"
    assert s.vad_silence_ms < 1000 and s.greeting_budget_ms >= 4000  # receptionists fit
    assert s.max_analysis_ms >= s.greeting_budget_ms + 1000
    t = AmdSettings(method="energy", greeting_budget_ms=3000, vad_aggressiveness=0, beep_wait_ms=0)
    assert from_wire(to_wire(t)) == t
    AmdSettings(vad_silence_ms=1500)  # a longer short wait alone is fine (the larger applies)
    # the dialer's current call: still valid (long greetings then end UNKNOWN at 3.5 s)
    assert AmdSettings(max_analysis_ms=3500).method == "vad"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"method": "neural"}, "method"),
        ({"vad_aggressiveness": 4}, "vad_aggressiveness"),
        ({"vad_aggressiveness": -1}, "vad_aggressiveness"),
        ({"beep_wait_ms": -5}, "beep_wait_ms"),
        ({"greeting_budget_ms": 500}, "greeting_budget_ms"),
        ({"greeting_budget_ms": 25_000}, "greeting_budget_ms"),
        ({"vad_silence_ms": 100}, "vad_silence_ms"),
        ({"vad_silence_ms": True}, "vad_silence_ms"),
        ({"vad_long_silence_ms": 6000}, "vad_long_silence_ms"),
        ({"greeting_budget_ms": 4000.0}, "greeting_budget_ms"),
    ],
)
def test_settings_validation(kw: dict[str, object], match: str) -> None:
    with pytest.raises(SipApiError, match=match):
        AmdSettings(**kw)  # type: ignore[arg-type]
