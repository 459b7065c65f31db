"""AMD analysis over synthetic PCM (the same greetings the SIPp callee streams)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from common.vocabulary import AmdVerdict
from sip.amd import FRAME_MS, AmdAnalyzer, analyse, frames
from sip.api import AmdSettings
from sip.assets import human_greeting, machine_greeting, silence, speech_like


def _pcm(samples: list[int]) -> bytes:
    import struct

    return struct.pack(f"<{len(samples)}h", *samples)


def test_short_hello_then_silence_is_human() -> None:
    r = analyse(frames(_pcm(human_greeting())), AmdSettings())
    assert r.verdict == AmdVerdict.HUMAN
    assert r.cause == "silence_after_greeting"
    # decided after hello (0.3 s + 0.6 s) plus the 800 ms of silence, not at the end of data
    assert 1500 <= r.took_ms <= 2000


def test_long_greeting_is_machine() -> None:
    r = analyse(frames(_pcm(machine_greeting())), AmdSettings())
    assert r.verdict == AmdVerdict.MACHINE
    assert r.cause in {"max_words", "long_greeting"}


def test_one_long_word_is_machine_by_greeting_length() -> None:
    s = AmdSettings(max_words=99)
    r = analyse(frames(_pcm(speech_like(3.0))), s)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "long_greeting")
    assert r.took_ms == s.greeting_ms


def test_dead_air_is_machine_by_initial_silence() -> None:
    s = AmdSettings()
    r = analyse(frames(_pcm(silence(4.0))), s)
    assert (r.verdict, r.cause, r.took_ms) == (AmdVerdict.MACHINE, "initial_silence", 2500)


def test_max_analysis_time_gives_unknown() -> None:
    # words separated by pauses long enough to split words but shorter than the
    # after-greeting silence, with greeting and word limits out of reach
    s = AmdSettings(max_analysis_ms=1000, max_words=50, greeting_ms=5000)
    pcm: list[int] = []
    for i in range(10):
        pcm += speech_like(0.15, seed=i) + silence(0.2)
    r = analyse(frames(_pcm(pcm)), s)
    assert (r.verdict, r.cause, r.took_ms) == (AmdVerdict.UNKNOWN, "max_time", 1000)


def test_no_frames_is_unknown() -> None:
    a = AmdAnalyzer(AmdSettings())
    assert a.timeout().verdict == AmdVerdict.UNKNOWN


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 20000, allow_nan=False), min_size=0, max_size=400), st.integers(200, 5000)
)
def test_always_decides_within_max_analysis(energies: list[float], max_ms: int) -> None:
    s = AmdSettings(max_analysis_ms=max_ms)
    a = AmdAnalyzer(s)
    res = None
    for e in energies:
        res = a.feed_energy(e)
        if res is not None:
            break
    if len(energies) * FRAME_MS >= max_ms:
        assert res is not None
    if res is not None:
        assert res.took_ms < max_ms + FRAME_MS  # decided at the first frame boundary
        assert res.verdict in (AmdVerdict.HUMAN, AmdVerdict.MACHINE, AmdVerdict.UNKNOWN)
