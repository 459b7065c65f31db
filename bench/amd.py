"""Offline benchmark of answering-machine detection over an espeak-ng corpus made at run time.

The corpus (:mod:`sip.amd_corpus`, fixed seed): per language (en, en-us, sv, ru, lv, da, de,
fr) people answering with 1-6 words then silence, receptionists giving company + greeting +
name (2-4 s) then silence, and voicemail greetings of 2-10 s with and without a beep; voices,
rates, pitch, pick-up delay (0.2-0.9 s), levels, line hiss and background noise vary. 8 kHz
16-bit, as the node's AMD port hears it.

The VAD analyser's thresholds (WebRTC VAD aggressiveness, the silence meaning "the caller
waits", the greeting budget) are tuned on one half of the clips of the tuning languages
(en, en-us, sv, ru, de) and scored on the other half plus every clip of the held-out languages
(lv, da, fr), which the tuning never sees. The classic energy analyser (app_amd defaults) is
scored on the same clips for comparison.

Prints the tuned settings, a confusion table, per-split lines and ends with one line:
``amd: human_ok=<x> machine_ok=<x> false_machine=<x> unknown=<x> decide_p50_ms=<x> n=<x>
human_within_2500ms=<x> person_p95_ms=<x> person_p99_ms=<x> reception_within_budget=<x>``
(the VAD analyser on the score set; ``false_machine`` is the share of people and
receptionists called machine, ``machine_ok`` the share of machines called machine,
``human_within_2500ms`` the share of people - residential answers, not receptionists -
decided HUMAN within 2.5 s of answer, ``person_p95_ms``/``person_p99_ms`` their decision-time
quantiles (a person not decided HUMAN counts as never), ``reception_within_budget`` the share
of receptionists decided HUMAN within the greeting budget plus the closing wait).

The decision deadline (``AmdSettings.decide_by_ms``, 2.5 s after answer) is tuned after the
other thresholds, on the same tuning half: its pause and utterance limit are the ones
deciding most people by the deadline while losing at most ``MAX_DEADLINE_MACHINE_LOSS`` of
the machines caught without it. The score set is printed with and without the deadline.

Usage: ``.venv/bin/python bench/amd.py [--quick] [--seed 17] [--per-kind 6]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# first, always: bench/sip.py would otherwise shadow the sip package when the
# project is already on PYTHONPATH (after bench/, which Python puts first)
sys.path.insert(0, str(ROOT))

from common.vocabulary import AmdVerdict  # noqa: E402
from sip.amd import AmdResult, analyse, frames  # noqa: E402
from sip.amd_beep import Beep  # noqa: E402
from sip.amd_corpus import Clip, espeak_available, make_clip  # noqa: E402
from sip.amd_vad import FrameFeatures, VadAmdAnalyzer, load_vad  # noqa: E402
from sip.api import AmdSettings  # noqa: E402

TUNE_LANGS = ("en", "en-us", "sv", "ru", "de")
HELD_OUT_LANGS = ("lv", "da", "fr")
KINDS = ("person", "receptionist", "machine_beep", "machine_nobeep")
#: clips per language per kind (people count double: most answers are people)
KIND_WEIGHT = {"person": 2, "receptionist": 1, "machine_beep": 1, "machine_nobeep": 1}
AGGRESSIVENESS = (1, 2, 3)
SILENCE_MS = (500, 600, 700, 800, 900, 1000)
LONG_SILENCE_MS = (0, 1000, 1200, 1400, 1600)  # 0: the same as SILENCE_MS
BUDGET_MS = (3500, 3750, 4000, 4250, 4500, 5000)
#: the analysis bound used with a budget: pick-up delay + budget + the wait to decide
PICKUP_MARGIN_MS = 1000
TARGET_FALSE_MACHINE = 0.02  # tuned below the 0.03 goal, to leave a margin for unseen clips
HUMAN_DECIDE_MS = 2500
#: a person whose last word ended this long before the deadline has visibly stopped talking
#: by then (the deadline's pause rule needs a pause); later ones are still talking at 2.5 s
STOPPED_BY_MS = 300
#: the decision deadline's rule (AmdSettings.decide_by_*) is tuned after the rest: the pause
#: meaning "stopped talking" and the longest utterance still taken for a person
DEADLINE_PAUSE_MS = (120, 160, 200, 240, 300, 400)
DEADLINE_UTTERANCE_MS = (800, 900, 1000, 1100, 1200, 1300, 1400, 1600, 1800, 2000, 20_000)
#: the deadline may cost at most this share of the machines caught without it (tune half):
#: a machine taken for a person costs an agent a few seconds, but machine_ok must stay >= 0.85
MAX_DEADLINE_MACHINE_LOSS = 0.02

Frame = tuple[bool, bool, Beep | None]


@dataclass(slots=True)
class Item:
    clip: Clip
    split: str  # tune | test | held_out
    feats: dict[int, list[Frame]]


def build_corpus(per_kind: int, seed: int) -> list[Item]:
    jobs: list[tuple[str, str, int]] = []
    for li, lang in enumerate(TUNE_LANGS + HELD_OUT_LANGS):
        for ki, kind in enumerate(KINDS):
            for i in range(per_kind * KIND_WEIGHT[kind]):
                jobs.append((kind, lang, seed * 1_000_003 + li * 10_007 + ki * 1009 + i))

    def one(job: tuple[str, str, int]) -> tuple[Clip, int]:
        kind, lang, s = job
        return make_clip(kind, lang, np.random.default_rng(s)), s

    with ThreadPoolExecutor(max_workers=2) as ex:
        made = list(ex.map(one, jobs))
    items = []
    counts: Counter[tuple[str, str]] = Counter()
    for clip, _ in made:
        n = counts[(clip.lang, clip.kind)]
        counts[(clip.lang, clip.kind)] += 1
        split = "held_out" if clip.lang in HELD_OUT_LANGS else "tune" if n % 2 == 0 else "test"
        items.append(Item(clip, split, {}))
    return items


def features(items: Sequence[Item]) -> None:
    for it in items:
        for ag in AGGRESSIVENESS:
            front = FrameFeatures(load_vad(ag))
            it.feats[ag] = [front.feed(fr) for fr in frames(it.clip.pcm)]


def run_vad(feats: list[Frame], s: AmdSettings) -> AmdResult:
    a = VadAmdAnalyzer(s, vad=object())
    for speech, tonal, beep in feats:
        r = a.step(speech, beep, tonal)
        if r is not None:
            return r
    return a.timeout()


@dataclass(slots=True)
class Score:
    n: int
    human_ok: float
    machine_ok: float
    false_machine: float
    unknown: float
    decide_p50_ms: float
    person_p50_ms: float
    person_within: float  # share of people decided HUMAN within HUMAN_DECIDE_MS
    table: dict[str, Counter[str]]
    person_p95_ms: float = 0.0
    person_p99_ms: float = 0.0
    #: receptionists decided HUMAN within the greeting budget (ms after answer)
    reception_within: float = 0.0
    #: people whose last word ended STOPPED_BY_MS or more before the deadline, and the
    #: share of them decided HUMAN by the deadline (the others were still talking)
    person_done: float = 0.0
    person_done_within: float = 0.0
    #: decision time after the person's last word (people decided HUMAN), 95th percentile
    after_last_word_p95_ms: float = 0.0

    def line(self) -> str:
        return (
            f"human_ok={self.human_ok:.3f} machine_ok={self.machine_ok:.3f} "
            f"false_machine={self.false_machine:.3f} unknown={self.unknown:.3f} "
            f"decide_p50_ms={self.decide_p50_ms:.0f} n={self.n} "
            f"human_within_{HUMAN_DECIDE_MS}ms={self.person_within:.3f} "
            f"person_p95_ms={self.person_p95_ms:.0f} person_p99_ms={self.person_p99_ms:.0f} "
            f"reception_within_budget={self.reception_within:.3f} "
            f"person_done={self.person_done:.3f} done_within_{HUMAN_DECIDE_MS}ms="
            f"{self.person_done_within:.3f} after_last_word_p95_ms="
            f"{self.after_last_word_p95_ms:.0f}"
        )


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile by the nearest rank (a decision time some clip actually had)."""
    if not xs:
        return 0.0
    s = sorted(xs)
    return float(s[min(len(s) - 1, max(0, int(np.ceil(q * len(s))) - 1))])


def score(
    items: Sequence[Item], results: Sequence[AmdResult], budget_ms: int | None = None
) -> Score:
    table: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    humans = machines = h_ok = m_ok = f_m = unk = 0
    took: list[int] = []
    person_took: list[int] = []
    person_fast = persons = done = done_fast = 0
    after_word: list[int] = []
    reception_ok = receptions = 0
    if budget_ms is None:
        d = AmdSettings()
        budget_ms = reception_budget(d)
    for it, r in zip(items, results, strict=True):
        v = r.verdict
        table[it.clip.kind][v.value] += 1
        took.append(r.took_ms)
        unk += v == AmdVerdict.UNKNOWN
        if it.clip.is_machine:
            machines += 1
            m_ok += v == AmdVerdict.MACHINE
        else:
            humans += 1
            h_ok += v == AmdVerdict.HUMAN
            f_m += v == AmdVerdict.MACHINE
        if it.clip.kind == "person":
            persons += 1
            # not decided HUMAN (machine, unknown) counts as late: the person is not served
            person_took.append(r.took_ms if v == AmdVerdict.HUMAN else math.inf)
            person_fast += v == AmdVerdict.HUMAN and r.took_ms <= HUMAN_DECIDE_MS
            last_word_ms = round((it.clip.pickup_s + it.clip.speech_s) * 1000)
            if last_word_ms <= HUMAN_DECIDE_MS - STOPPED_BY_MS:
                done += 1
                done_fast += v == AmdVerdict.HUMAN and r.took_ms <= HUMAN_DECIDE_MS
            if v == AmdVerdict.HUMAN:
                after_word.append(r.took_ms - last_word_ms)
        if it.clip.kind == "receptionist":
            receptions += 1
            reception_ok += v == AmdVerdict.HUMAN and r.took_ms <= budget_ms
    n = len(items)
    return Score(
        n=n,
        human_ok=h_ok / max(humans, 1),
        machine_ok=m_ok / max(machines, 1),
        false_machine=f_m / max(humans, 1),
        unknown=unk / max(n, 1),
        decide_p50_ms=statistics.median(took) if took else 0.0,
        person_p50_ms=statistics.median(person_took) if person_took else 0.0,
        person_within=person_fast / max(persons, 1),
        table=table,
        person_p95_ms=quantile(person_took, 0.95),
        person_p99_ms=quantile(person_took, 0.99),
        reception_within=reception_ok / max(receptions, 1),
        person_done=done / max(persons, 1),
        person_done_within=done_fast / max(done, 1),
        after_last_word_p95_ms=quantile(after_word, 0.95),
    )


def reception_budget(s: AmdSettings) -> int:
    """A receptionist's decision-time budget, ms after answer: a greeting of up to the
    campaign's greeting budget, then the wait that ends a long greeting."""
    return s.greeting_budget_ms + max(s.vad_silence_ms, s.vad_long_silence_ms)


def settings_for(
    ag: int, silence: int, long_silence: int, budget: int, **deadline: int
) -> AmdSettings:
    long_silence = max(silence, long_silence)
    return AmdSettings(
        method="vad",
        vad_aggressiveness=ag,
        vad_silence_ms=silence,
        vad_long_silence_ms=long_silence,
        greeting_budget_ms=budget,
        max_analysis_ms=budget + long_silence + PICKUP_MARGIN_MS,
        # the base grid is tuned without the deadline (0 = off); tune_deadline adds it
        decide_by_ms=deadline.get("decide_by_ms", 0),
        decide_by_pause_ms=deadline.get("decide_by_pause_ms", 240),
        decide_by_utterance_ms=deadline.get("decide_by_utterance_ms", 1100),
    )


def tune(items: Sequence[Item]) -> tuple[AmdSettings, Score]:
    best: tuple[tuple[float, ...], AmdSettings, Score] | None = None
    grid = itertools.product(AGGRESSIVENESS, SILENCE_MS, LONG_SILENCE_MS, BUDGET_MS)
    for ag, sil, lsil, bud in grid:
        if lsil and lsil <= sil:
            continue
        s = settings_for(ag, sil, lsil, bud)
        sc = score(items, [run_vad(it.feats[ag], s) for it in items])
        ok = sc.false_machine <= TARGET_FALSE_MACHINE
        # feasible first; then most machines caught; then people decided sooner; then the
        # longer budget, the shorter long wait and the longer wait (safe, quick for people)
        key = (
            float(ok),
            sc.machine_ok - (0 if ok else sc.false_machine * 10),
            -sc.person_p50_ms,
            bud,
            -s.vad_long_silence_ms,
            sil,
        )
        if best is None or key > best[0]:
            best = (key, s, sc)
    assert best is not None
    return best[1], best[2]


def tune_deadline(items: Sequence[Item], base: AmdSettings) -> tuple[AmdSettings, Score]:
    """The deadline's pause and utterance limit, on the tuning half only: most people decided
    HUMAN by HUMAN_DECIDE_MS while losing at most MAX_DEADLINE_MACHINE_LOSS of the machines
    ``base`` catches and keeping false_machine within the target."""
    ag = base.vad_aggressiveness
    ref = score(items, [run_vad(it.feats[ag], base) for it in items])
    best: tuple[tuple[float, ...], AmdSettings, Score] | None = None
    for pause, utt in itertools.product(DEADLINE_PAUSE_MS, DEADLINE_UTTERANCE_MS):
        s = settings_for(
            ag,
            base.vad_silence_ms,
            base.vad_long_silence_ms,
            base.greeting_budget_ms,
            decide_by_ms=HUMAN_DECIDE_MS,
            decide_by_pause_ms=pause,
            decide_by_utterance_ms=utt,
        )
        sc = score(items, [run_vad(it.feats[ag], s) for it in items])
        ok = (
            ref.machine_ok - sc.machine_ok <= MAX_DEADLINE_MACHINE_LOSS
            and sc.false_machine <= TARGET_FALSE_MACHINE
        )
        # feasible first; then most people in time; then most machines; then the longer
        # pause and the shorter utterance limit (the safer rule at a tie)
        key = (float(ok), sc.person_within, sc.machine_ok, pause, -utt)
        if best is None or key > best[0]:
            best = (key, s, sc)
    assert best is not None
    return best[1], best[2]


def print_times(label: str, sc: Score) -> None:
    print(
        f"  {label}: people decided HUMAN within {HUMAN_DECIDE_MS} ms {sc.person_within:.3f}, "
        f"p50 {sc.person_p50_ms:.0f} ms, p95 {sc.person_p95_ms:.0f} ms, "
        f"p99 {sc.person_p99_ms:.0f} ms (a person not decided HUMAN counts as never)"
    )


def print_like_receptionists(items: Sequence[Item], budget_ms: int) -> None:
    """Per language, the recordings no rule on the audio can tell from a receptionist - no
    beep and speech ending within the greeting budget (a receptionist says 2-4 s and waits,
    so does such a recording) - and the machine_ok they leave reachable."""
    parts = []
    for lang in TUNE_LANGS + HELD_OUT_LANGS:
        ms = [it for it in items if it.clip.lang == lang and it.clip.is_machine]
        like = sum(it.clip.kind == "machine_nobeep" and it.clip.speech_s * 1000 < budget_ms
                   for it in ms)
        parts.append(f"{lang} {like}/{len(ms)} (<= {1 - like / max(len(ms), 1):.3f})")
    print(f"  recordings without a beep shorter than the {budget_ms} ms budget (like a "
          f"receptionist; machine_ok reachable): " + ", ".join(parts))


def print_table(title: str, sc: Score) -> None:
    print(f"\n{title}")
    print(f"  {'truth':<16}{'human':>8}{'machine':>9}{'unknown':>9}")
    for kind in KINDS:
        c = sc.table[kind]
        print(f"  {kind:<16}{c['human']:>8}{c['machine']:>9}{c['unknown']:>9}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller corpus (under ~2 minutes)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--errors", action="store_true", help="list the misjudged clips")
    ap.add_argument(
        "--per-kind",
        type=int,
        default=None,
        help="clips per language and kind (people x2); default 60, quick 5",
    )
    args = ap.parse_args(argv)
    if not espeak_available():
        print("amd: espeak-ng is not installed", file=sys.stderr)
        return 2
    if load_vad(3) is None:
        print("amd: webrtcvad is not installed (pip install webrtcvad-wheels)", file=sys.stderr)
        return 2
    # 60 per language and kind: with 20 (40 machines per language) one clip moved a
    # language's machine_ok 2.5 points, and the tuning half (250 clips) chose thresholds
    # that the larger halves did not (docs/sip.md, "How much of this is the corpus' size")
    per_kind = args.per_kind or (5 if args.quick else 60)
    t0 = time.monotonic()
    items = build_corpus(per_kind, args.seed)
    t1 = time.monotonic()
    features(items)
    t2 = time.monotonic()
    tune_set = [it for it in items if it.split == "tune"]
    test_set = [it for it in items if it.split == "test"]
    held = [it for it in items if it.split == "held_out"]
    score_set = test_set + held
    base, base_tune_sc = tune(tune_set)
    best, tune_sc = tune_deadline(tune_set, base)
    t3 = time.monotonic()
    print(
        f"corpus: {len(items)} clips ({per_kind}/language/kind, people x2, seed {args.seed}) "
        f"made in {t1 - t0:.1f}s, features {t2 - t1:.1f}s, tuning {t3 - t2:.1f}s"
    )
    print(
        f"tuned on {len(tune_set)} clips ({', '.join(TUNE_LANGS)}): "
        f"vad_aggressiveness={best.vad_aggressiveness} vad_silence_ms={best.vad_silence_ms} "
        f"vad_long_silence_ms={best.vad_long_silence_ms} "
        f"greeting_budget_ms={best.greeting_budget_ms} max_analysis_ms={best.max_analysis_ms}"
    )
    print(
        f"  then the deadline ({HUMAN_DECIDE_MS} ms after answer): "
        f"decide_by_pause_ms={best.decide_by_pause_ms} "
        f"decide_by_utterance_ms={best.decide_by_utterance_ms} "
        f"(machine loss allowed {MAX_DEADLINE_MACHINE_LOSS})"
    )
    print(f"  tune half, no deadline:  {base_tune_sc.line()}")
    print(f"  tune half, deadline:     {tune_sc.line()}")
    d = AmdSettings()
    dflt = d
    ag = best.vad_aggressiveness
    res = {id(it): run_vad(it.feats[ag], best) for it in items}
    res_nodl = {id(it): run_vad(it.feats[ag], base) for it in items}
    res_d = {id(it): run_vad(it.feats[d.vad_aggressiveness], dflt) for it in items}
    energy = {
        id(it): analyse(frames(it.clip.pcm), AmdSettings(method="energy")) for it in score_set
    }
    budget_ms = reception_budget(best)

    def sc(group: Sequence[Item], r: dict[int, AmdResult]) -> Score:
        return score(group, [r[id(it)] for it in group], budget_ms)

    final = sc(score_set, res)
    print(f"  test half:  {sc(test_set, res).line()}")
    print(f"  held out ({', '.join(HELD_OUT_LANGS)}): {sc(held, res).line()}")
    for lang in TUNE_LANGS + HELD_OUT_LANGS:
        g = [it for it in score_set if it.clip.lang == lang]
        print(f"    {lang:<6} {sc(g, res).line()}")
    print_like_receptionists(score_set, best.greeting_budget_ms)
    print_table("VAD analyser, tuned, on the score set (test half + held-out languages):", final)
    nodl = sc(score_set, res_nodl)
    print_times("with the deadline", final)
    print_times("same settings, no deadline", nodl)
    print(f"    no deadline: {nodl.line()}")
    for lang in TUNE_LANGS + HELD_OUT_LANGS:
        g = [it for it in score_set if it.clip.lang == lang]
        a, b = sc(g, res_nodl), sc(g, res)
        print(
            f"    {lang:<6} people within {HUMAN_DECIDE_MS} ms: {a.person_within:.3f} -> "
            f"{b.person_within:.3f}; machine_ok {a.machine_ok:.3f} -> {b.machine_ok:.3f}"
        )
    rec = [it for it in score_set if it.clip.kind == "receptionist"]
    rec_took = [res[id(it)].took_ms for it in rec if res[id(it)].verdict == AmdVerdict.HUMAN]
    print(
        f"  receptionists (business budget, not the {HUMAN_DECIDE_MS} ms): "
        f"{final.reception_within:.3f} decided HUMAN within {budget_ms} ms of answer "
        f"(greeting budget {best.greeting_budget_ms} + the closing wait); HUMAN decided at "
        f"p50 {quantile(rec_took, 0.5):.0f} ms, p95 {quantile(rec_took, 0.95):.0f} ms, "
        f"max {max(rec_took, default=0):.0f} ms"
    )
    causes = Counter(res[id(it)].cause for it in score_set)
    print("  causes: " + ", ".join(f"{k}={v}" for k, v in sorted(causes.items())))
    if args.errors:
        for it in score_set:
            r = res[id(it)]
            want = AmdVerdict.MACHINE if it.clip.is_machine else AmdVerdict.HUMAN
            if r.verdict != want:
                c = it.clip
                print(
                    f"    miss: {c.lang} {c.kind} pickup={c.pickup_s:.2f}s "
                    f"speech={c.speech_s:.2f}s -> {r.verdict.value} {r.cause} {r.took_ms}ms"
                )
    dsc = score(score_set, [res_d[id(it)] for it in score_set], reception_budget(d))
    print(
        f"\nVAD analyser with the AmdSettings defaults (budget {d.greeting_budget_ms} ms, "
        f"silence {d.vad_silence_ms}/{d.vad_long_silence_ms} ms, aggressiveness "
        f"{d.vad_aggressiveness}, max_analysis_ms {d.max_analysis_ms}):\n  {dsc.line()}"
    )
    # the budget is the one threshold a campaign sets (amd_greeting_budget_ms)
    db = dataclasses.replace(d, greeting_budget_ms=best.greeting_budget_ms)
    dbsc = score(
        score_set, [run_vad(it.feats[db.vad_aggressiveness], db) for it in score_set],
        reception_budget(db),
    )
    print(f"  the same with a campaign's amd_greeting_budget_ms = {db.greeting_budget_ms}:\n"
          f"  {dbsc.line()}")
    esc = sc(score_set, energy)
    print_table("energy analyser (app_amd defaults), same clips:", esc)
    print(f"  {esc.line()}")
    print(f"\namd: {final.line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
