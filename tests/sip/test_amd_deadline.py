"""The VAD analyser's decision deadline (AmdSettings.decide_by_ms): a person who answered late
or slowly and has stopped talking is HUMAN by 2.5 s after answer, while a long greeting or a
beep still makes a machine; plus the deadline settings' validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sip_testutil import amd_pcm as _pcm
from sip_testutil import run_amd as _run
from sip_testutil import silence as _sil

from common.vocabulary import AmdVerdict
from sip.amd import AmdResult
from sip.amd_vad import VadAmdAnalyzer
from sip.api import AmdSettings, SipApiError, from_wire, to_wire
from sip.assets import speech_like, tone

RATE = 8000
FRAME_MS = 20
DEADLINE_MS = AmdSettings().decide_by_ms


def _late_slow_hello(noise: float = 40.0) -> bytes:
    # picked up at 0.8 s, "hello," (0.5 s), a comma, "who's calling?" (0.7 s): the talk ends
    # at 2.2 s, so waiting the full closing silence (600 ms) would decide at ~2.8 s
    hello, who = speech_like(0.5, seed=1), speech_like(0.7, seed=2)
    return _pcm(_sil(0.8), hello, _sil(0.2), who, _sil(3.0), noise=noise)


def test_the_deadline_is_on_by_default_at_2_5_s() -> None:
    s = AmdSettings()
    assert s.decide_by_ms == 2500
    assert s.decide_by_pause_ms < s.vad_silence_ms  # shorter than the usual closing silence


@pytest.mark.parametrize("noise", [0.0, 40.0, 300.0])
def test_a_late_slow_person_is_human_by_the_deadline(noise: float) -> None:
    r = _run(_late_slow_hello(noise))
    assert (r.verdict, r.cause) == (AmdVerdict.HUMAN, "deadline")
    assert r.took_ms <= 2500


def test_without_the_deadline_the_same_person_waits_for_the_closing_silence() -> None:
    r = _run(_late_slow_hello(), AmdSettings(decide_by_ms=0))
    assert (r.verdict, r.cause) == (AmdVerdict.HUMAN, "silence_after_greeting")
    assert r.took_ms > 2500  # why the deadline exists


def test_a_long_utterance_stopping_before_the_deadline_is_not_taken_for_a_person() -> None:
    # one 1.7 s utterance ending at 2.2 s (longer than decide_by_utterance_ms), then a beep
    s = AmdSettings()
    assert s.decide_by_utterance_ms < 1700
    r = _run(_pcm(_sil(0.5), speech_like(1.7), _sil(0.4), tone(0.5, 1000.0, 5000), _sil(3.0)), s)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "beep")


def test_a_beep_going_on_at_the_deadline_still_makes_a_machine() -> None:
    # a short greeting ending at 1.7 s, a pause, the beep from 2.1 to 2.9 s: at the deadline
    # the tone is on (no silence-based verdict during a tone), the beep decides at its end
    pcm = _pcm(_sil(0.5), speech_like(1.2), _sil(0.4), tone(0.8, 1400.0, 5000), _sil(3.0))
    r = _run(pcm)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "beep")
    assert 2900 <= r.took_ms <= 3000


def test_a_greeting_still_going_on_at_the_deadline_is_left_to_the_budget() -> None:
    s = AmdSettings()
    r = _run(_pcm(_sil(0.3), speech_like(6.0), _sil(1.0)), s)
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "long_greeting")
    assert r.took_ms >= s.greeting_budget_ms


def test_a_receptionist_talking_through_the_deadline_is_governed_by_the_budget() -> None:
    # 3.5 s of talk with short pauses (company, greeting, name), then waiting
    talk: list[int] = []
    for i in range(7):
        talk += speech_like(0.4, seed=i) + [0] * int(0.1 * RATE)
    r = _run(_pcm(_sil(0.5), talk, _sil(3.0)))
    assert (r.verdict, r.cause) == (AmdVerdict.HUMAN, "silence_after_greeting")
    assert r.took_ms > 2500  # decided after the greeting, not at the deadline


def test_a_silent_line_is_not_decided_by_the_deadline() -> None:
    r = _run(_pcm(_sil(6.0), noise=120.0))
    assert r.cause == "initial_silence"


# --- property tests on the analyser's frame logic (no VAD: speech flags directly) ----------


def _step_all(flags: list[bool], s: AmdSettings) -> AmdResult:
    a = VadAmdAnalyzer(s, vad=object())
    for speech in flags:
        r = a.step(speech, None)
        if r is not None:
            return r
    for _ in range(s.max_analysis_ms // FRAME_MS + 1):  # then silence to the end
        r = a.step(False, None)
        if r is not None:
            return r
    return a.timeout()


#: (utterance frames, pause frames after it): utterances of 60 ms up to the deadline's
#: utterance limit, pauses that split utterances (>= 160 ms) but are shorter than the
#: closing silence
_MAX_TALK = AmdSettings().decide_by_utterance_ms // FRAME_MS
_MAX_PAUSE = AmdSettings().vad_silence_ms // FRAME_MS - 5
_UTTERANCES = st.lists(
    st.tuples(st.integers(3, _MAX_TALK), st.integers(8, _MAX_PAUSE)), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 75), _UTTERANCES)
def test_any_short_answer_that_stops_in_time_is_human_by_the_deadline(
    pickup: int, utterances: list[tuple[int, int]]
) -> None:
    """Whatever the pick-up delay and however the answer is cut by commas, a caller who has
    said utterances no longer than the limit and paused for decide_by_pause_ms by the
    deadline is decided HUMAN by then."""
    s = AmdSettings()
    last_talk = (s.decide_by_ms - s.decide_by_pause_ms) // FRAME_MS  # frames
    flags = [False] * pickup
    for talk, pause in utterances:
        if len(flags) + talk > last_talk:
            break
        flags += [True] * talk + [False] * pause
    if not any(flags):
        flags = flags[: last_talk - 3] + [True] * 3
    flags = flags[:last_talk]
    r = _step_all(flags, s)
    assert r.verdict == AmdVerdict.HUMAN, r
    assert r.took_ms <= s.decide_by_ms, r


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 45), st.integers(0, 40), st.integers(0, 20))
def test_one_long_utterance_is_never_human_at_the_deadline(
    pickup: int, extra: int, pause: int
) -> None:
    """An utterance longer than decide_by_utterance_ms (a recording reading its first
    sentence) is never turned into HUMAN by the deadline: it goes on to the greeting budget
    (machine) or ends in the full closing silence."""
    s = AmdSettings()
    talk = s.decide_by_utterance_ms // FRAME_MS + 1 + extra
    flags = [False] * pickup + [True] * talk + [False] * pause
    flags += [True] * (s.greeting_budget_ms // FRAME_MS + 10)  # then it goes on talking
    r = _step_all(flags, s)
    assert r.cause != "deadline"
    assert (r.verdict, r.cause) == (AmdVerdict.MACHINE, "long_greeting")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=400), st.sampled_from([0, 1000, 2500, 4000]))
def test_the_deadline_only_ever_turns_undecided_calls_into_humans(
    flags: list[bool], deadline: int
) -> None:
    """With or without the deadline the analyser gives the same verdict unless the deadline
    decided HUMAN first: it can never make a machine of anyone."""
    with_dl = _step_all(flags, AmdSettings(decide_by_ms=deadline))
    without = _step_all(flags, AmdSettings(decide_by_ms=0))
    if with_dl.cause == "deadline":
        assert with_dl.verdict == AmdVerdict.HUMAN
        assert with_dl.took_ms == (deadline + FRAME_MS - 1) // FRAME_MS * FRAME_MS
        assert with_dl.took_ms <= without.took_ms
    else:
        assert with_dl == without


# --- settings ---------------------------------------------------------------------------


def test_deadline_settings_round_trip_and_can_be_off() -> None:
    s = AmdSettings(decide_by_ms=3000, decide_by_pause_ms=300, decide_by_utterance_ms=1500)
    assert from_wire(to_wire(s)) == s
    assert AmdSettings(decide_by_ms=0).decide_by_ms == 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"decide_by_ms": 500}, r"decide_by_ms must be 0 \(no deadline\) or in \[1000, 30000\]"),
        ({"decide_by_ms": 40_000}, "decide_by_ms"),
        ({"decide_by_ms": -1}, "decide_by_ms must be a non-negative int"),
        ({"decide_by_ms": 2500.0}, "decide_by_ms"),
        ({"decide_by_ms": True}, "decide_by_ms"),
        ({"decide_by_pause_ms": 10}, r"decide_by_pause_ms must be in \[20, 5000\]"),
        ({"decide_by_pause_ms": 0}, "decide_by_pause_ms"),
        ({"decide_by_utterance_ms": 100}, r"decide_by_utterance_ms must be in \[200, 20000\]"),
        ({"decide_by_utterance_ms": "1300"}, "decide_by_utterance_ms"),
    ],
)
def test_deadline_settings_validation(kw: dict[str, object], match: str) -> None:
    with pytest.raises(SipApiError, match=match):
        AmdSettings(**kw)  # type: ignore[arg-type]
