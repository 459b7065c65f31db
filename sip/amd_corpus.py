"""Synthetic AMD test audio made with espeak-ng (bench/amd.py and the AMD tests).

Every clip is what the AMD port would hear after answer: 8 kHz 16-bit mono, a pick-up
delay, then a person's short answer, a receptionist's company greeting or a voicemail
greeting (with or without a beep), then silence - all over line hiss and a little background
noise (in some clips a quiet second voice: room talk, a TV), band-limited to the telephone
band (300-3400 Hz). Speech comes from espeak-ng voices (language, voice variant, rate and pitch
vary); noise and levels from a seeded numpy RNG, so a corpus is reproducible for a given seed
and espeak-ng version.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000
VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")

#: per language: people's answers (1-6 words), receptionists' (company, greeting, name)
#: parts, voicemail sentences
TEXTS: dict[str, dict[str, list[str]]] = {
    "en": {
        "person": [
            "Hello?",
            "Yes?",
            "Hello, this is Mike.",
            "Hi, Sarah speaking.",
            "Hello, who is calling?",
            "Yeah, hello.",
            "Speaking.",
            "Good morning, John here.",
        ],
        "company": [
            "Acme Insurance",
            "Northfield Dental Practice",
            "Baker and Sons Solicitors",
            "Greenway Logistics",
        ],
        "greeting": ["good morning", "good afternoon, how can I help you", "thank you for calling"],
        "name": ["this is Emma", "Paul speaking", "you're speaking with Claire"],
        "machine": [
            "Hi, you've reached Mike and Sarah.",
            "We can't come to the phone right now.",
            "Please leave your name, number and a short message after the tone.",
            "We will get back to you as soon as possible.",
            "Thank you for calling.",
            "If this is urgent, please call my mobile instead.",
            "Our office hours are Monday to Friday, nine to five.",
        ],
    },
    "en-us": {
        "person": [
            "Hello?",
            "Yeah?",
            "Hello, this is Mike.",
            "Hey, it's Dave.",
            "Hi, who's this?",
            "Yes, speaking.",
            "Hello, Jenny speaking.",
        ],
        "company": [
            "Sunrise Realty",
            "Pacific Auto Repair",
            "Lincoln Family Dentistry",
            "Blue Ridge Plumbing",
        ],
        "greeting": ["good morning", "how may I help you", "thanks for calling"],
        "name": ["this is Ashley", "Kevin speaking", "my name is Megan"],
        "machine": [
            "Hey, you've reached Dave.",
            "I'm not available right now.",
            "Leave a message at the beep and I'll call you back.",
            "The person you are calling is not available.",
            "Please record your message after the tone.",
            "When you are finished, you may hang up or press pound for more options.",
        ],
    },
    "sv": {
        "person": [
            "Hallå?",
            "Ja?",
            "Ja, det är Anna.",
            "Hej, det är Lars.",
            "Ja, hallå, vem är det?",
            "Anna Svensson.",
            "Hej, Erik här.",
        ],
        "company": ["Nordbanken", "Lindqvist Bygg", "Tandläkarna i Solna", "Svea Försäkring"],
        "greeting": ["god morgon", "välkommen", "hur kan jag hjälpa dig"],
        "name": ["du talar med Karin", "det är Johan", "Maria här"],
        "machine": [
            "Hej, du har kommit till Anna och Lars.",
            "Vi kan inte svara just nu.",
            "Lämna ett meddelande efter tonen så ringer vi upp.",
            "Tack för att du ringde.",
            "Du kan också skicka ett sms.",
            "Vårt kontor har öppet måndag till fredag.",
        ],
    },
    "ru": {
        "person": [
            "Алло?",
            "Да?",
            "Да, это Анна.",
            "Алло, слушаю.",
            "Здравствуйте, кто это?",
            "Да, Сергей слушает.",
        ],
        "company": [
            "Компания Северный ветер",
            "Стоматология Улыбка",
            "Банк Восток",
            "Агентство Альфа Недвижимость",
        ],
        "greeting": ["добрый день", "здравствуйте, чем могу помочь", "доброе утро"],
        "name": ["меня зовут Ольга", "Дмитрий слушает", "это Наталья"],
        "machine": [
            "Здравствуйте, вы позвонили Ивану.",
            "Сейчас я не могу ответить.",
            "Оставьте сообщение после сигнала.",
            "Я перезвоню вам как можно скорее.",
            "Спасибо за звонок.",
            "Если это срочно, напишите мне сообщение.",
        ],
    },
    "lv": {
        "person": [
            "Hallo?",
            "Jā?",
            "Jā, te Anna.",
            "Labdien, klausos.",
            "Hallo, kas zvana?",
            "Jā, Jānis klausās.",
        ],
        "company": [
            "Rīgas Zobārstniecība",
            "Baltijas Apdrošināšana",
            "Liepājas Loģistika",
            "Kurzemes Banka",
        ],
        "greeting": ["labrīt", "labdien, kā varu palīdzēt", "paldies, ka zvanāt"],
        "name": ["runā Ilze", "te Andris", "jūs runājat ar Lauru"],
        "machine": [
            "Sveiki, jūs esat piezvanījis Jānim.",
            "Es šobrīd nevaru atbildēt.",
            "Lūdzu, atstājiet ziņu pēc signāla.",
            "Es jums atzvanīšu, cik drīz vien varēšu.",
            "Paldies par zvanu.",
            "Ja tas ir steidzami, rakstiet man īsziņu.",
        ],
    },
    "da": {
        "person": [
            "Hallo?",
            "Ja?",
            "Ja, det er Anna.",
            "Hej, det er Lars.",
            "Hallo, hvem taler jeg med?",
            "Mette her.",
        ],
        "company": ["Danske Forsikring", "Tandlægerne i Odense", "Jensen Byg", "Nordisk Revision"],
        "greeting": ["godmorgen", "velkommen, hvad kan jeg hjælpe med", "goddag"],
        "name": ["du taler med Sofie", "det er Mikkel", "Camilla her"],
        "machine": [
            "Hej, du har ringet til Anna og Lars.",
            "Vi kan ikke tage telefonen lige nu.",
            "Læg en besked efter tonen, så ringer vi tilbage.",
            "Tak fordi du ringede.",
            "Du kan også sende en sms.",
            "Kontoret har åbent mandag til fredag.",
        ],
    },
    "de": {
        "person": [
            "Hallo?",
            "Ja?",
            "Ja, hier ist Anna.",
            "Müller.",
            "Hallo, wer spricht da?",
            "Guten Tag, Schmidt hier.",
        ],
        "company": [
            "Autohaus Becker",
            "Zahnarztpraxis Doktor Weber",
            "Schneider Versicherungen",
            "Stadtwerke Hamm",
        ],
        "greeting": ["guten Morgen", "guten Tag, was kann ich für Sie tun", "herzlich willkommen"],
        "name": ["Sie sprechen mit Julia", "hier ist Thomas", "mein Name ist Sabine"],
        "machine": [
            "Hallo, hier ist der Anschluss von Anna und Peter.",
            "Wir sind gerade nicht erreichbar.",
            "Bitte hinterlassen Sie eine Nachricht nach dem Signalton.",
            "Wir rufen so bald wie möglich zurück.",
            "Vielen Dank für Ihren Anruf.",
            "In dringenden Fällen erreichen Sie uns auf dem Handy.",
        ],
    },
    "fr": {
        "person": [
            "Allô?",
            "Oui?",
            "Oui, c'est Marie.",
            "Allô, bonjour.",
            "Allô, qui est à l'appareil?",
            "Oui, Pierre à l'appareil.",
        ],
        "company": [
            "Cabinet Dentaire Dupont",
            "Assurances du Centre",
            "Garage Martin",
            "Agence Immobilière Lefèvre",
        ],
        "greeting": ["bonjour", "bonjour, que puis-je pour vous", "merci de votre appel"],
        "name": ["Sophie à l'appareil", "c'est Nicolas", "vous parlez avec Camille"],
        "machine": [
            "Bonjour, vous êtes bien chez Marie et Pierre.",
            "Nous ne pouvons pas vous répondre pour le moment.",
            "Laissez-nous un message après le bip sonore.",
            "Nous vous rappellerons dès que possible.",
            "Merci de votre appel.",
            "En cas d'urgence, appelez-nous sur le portable.",
        ],
    },
}
LANGS = tuple(TEXTS)
#: share of clips with a quiet second voice somewhere (room talk, a TV)
BACKGROUND_TALK = 0.3


@dataclass(frozen=True, slots=True)
class Clip:
    """One answered call as the AMD hears it."""

    kind: str  # person | receptionist | machine_beep | machine_nobeep
    lang: str
    pcm: bytes  # 8 kHz 16-bit little-endian mono
    speech_s: float  # length of the spoken part
    pickup_s: float

    @property
    def is_machine(self) -> bool:
        return self.kind.startswith("machine")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _bandlimit_resample(x: np.ndarray, src: int, dst: int = RATE) -> np.ndarray:
    """Resample by FFT truncation and keep only the telephone band (300-3400 Hz)."""
    n_out = round(len(x) * dst / src)
    spec = np.fft.rfft(x)
    keep = n_out // 2 + 1
    out_spec = np.zeros(keep, dtype=complex)
    m = min(keep, len(spec))
    out_spec[:m] = spec[:m]
    freqs = np.fft.rfftfreq(n_out, 1.0 / dst)
    out_spec[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(out_spec, n_out) * (n_out / len(x))


def speak(text: str, voice: str, rate_wpm: int = 160, pitch: int = 50) -> np.ndarray:
    """espeak-ng speech as float samples at 8 kHz, leading/trailing silence trimmed."""
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "s.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(rate_wpm),
                "-p",
                str(pitch),
                "-w",
                str(path),
                text,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        with wave.open(str(path), "rb") as w:
            src = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    y = _bandlimit_resample(data, src)
    loud = np.flatnonzero(np.abs(y) > 0.02 * (np.abs(y).max() or 1.0))
    if loud.size:
        y = y[max(loud[0] - 80, 0) : loud[-1] + 80]
    return y


def _level(y: np.ndarray, rms: float) -> np.ndarray:
    cur = float(np.sqrt(np.mean(y * y))) or 1.0
    return y * (rms / cur)


def beep(rng: np.random.Generator) -> np.ndarray:
    f = float(rng.choice([1000.0, 1000.0, 1400.0, float(rng.uniform(900, 2000))]))
    dur = float(rng.uniform(0.2, 0.8))
    t = np.arange(int(dur * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, dur - t) / 0.01)
    return np.sin(2 * np.pi * f * t) * ramp * float(rng.uniform(2000, 6000))


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Line hiss (white) plus a little low-frequency-heavy background noise."""
    hiss = rng.normal(0, float(rng.uniform(15, 70)), n)
    bg = rng.normal(0, 1, n + 16)
    bg = np.convolve(bg, np.ones(16) / 16, mode="valid")[:n]  # crude low-pass: room rumble
    bg *= float(rng.uniform(10, 120)) / (float(np.std(bg)) or 1.0)
    return hiss + bg


def _voice(lang: str, rng: np.random.Generator) -> tuple[str, int, int]:
    return (
        f"{lang}+{rng.choice(VARIANTS)}",
        int(rng.integers(135, 200)),
        int(rng.integers(30, 75)),
    )


def _fit(text: str, lang: str, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Speak ``text``; re-speak at an adjusted rate when its length is outside [lo, hi] s."""
    voice, wpm, pitch = _voice(lang, rng)
    y = speak(text, voice, wpm, pitch)
    dur = len(y) / RATE
    if not lo <= dur <= hi:
        target = float(np.clip(dur, lo + 0.1, hi - 0.1))
        wpm = int(np.clip(wpm * dur / target, 80, 300))
        y = speak(text, voice, wpm, pitch)
    return y


def make_clip(kind: str, lang: str, rng: np.random.Generator, min_total_s: float = 7.0) -> Clip:
    """One clip of ``kind`` in ``lang`` (see the module docstring)."""
    t = TEXTS[lang]
    pickup = float(rng.uniform(0.2, 0.9))
    if kind == "person":
        text = str(rng.choice(t["person"]))
        y = _fit(text, lang, rng, 0.3, 2.2)
    elif kind == "receptionist":
        text = f"{rng.choice(t['company'])}, {rng.choice(t['greeting'])}, {rng.choice(t['name'])}."
        y = _fit(text, lang, rng, 2.0, 4.0)
    else:
        target = float(rng.uniform(2.0, 10.0))
        sents = list(t["machine"])
        rng.shuffle(sents)
        n = max(1, min(len(sents), round(target / 1.8)))
        y = _fit(" ".join(sents[:n]), lang, rng, max(2.0, target - 1.5), min(10.0, target + 1.5))
    y = _level(y, float(rng.uniform(700, 3500)))
    parts = [np.zeros(int(pickup * RATE)), y]
    if kind == "machine_beep":
        parts += [np.zeros(int(rng.uniform(0.1, 0.6) * RATE)), beep(rng)]
    body = np.concatenate(parts)
    total = max(min_total_s, len(body) / RATE + 3.0)
    x = np.concatenate([body, np.zeros(int(total * RATE) - len(body))])
    x = x + noise(len(x), rng)
    if rng.random() < BACKGROUND_TALK:  # someone talking in the room / on a TV, well below
        other = str(rng.choice(TEXTS[lang]["machine"]))
        bg = _level(speak(other, _voice(lang, rng)[0], 170, 50), float(rng.uniform(60, 200)))
        at = int(rng.integers(0, max(1, len(x) - len(bg))))
        x[at : at + len(bg)] += bg[: len(x) - at]
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return Clip(kind, lang, pcm, len(y) / RATE, pickup)
