"""Audio assets: the default recorded message and test/demo audio for the SIPp callee.

* :func:`ensure_default_message` makes the campaign's default identification message
  (8 kHz mono 16-bit PCM WAV): spoken by espeak-ng when installed (resampled with sox, or
  with a small built-in resampler), else a tone pattern so the pipeline still works.
* :func:`write_callee_audio` writes the G.711 u-law WAVs the callee scenario streams with
  SIPp's ``rtp_stream`` (which sends the raw bytes after the RIFF header: they must already be
  PCMU): ``talk.wav`` (a steady tone), ``human.wav`` (a short "hello" then silence),
  ``machine.wav`` (a long multi-word greeting). The speech is synthetic (voiced bursts with
  formant-like harmonics) so AMD tests are deterministic.
"""

from __future__ import annotations

import math
import random
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

RATE = 8000
DEFAULT_MESSAGE_TEXT = (
    "Hello. This is a call from the customer service team. "
    "We are sorry we could not connect you to an agent. "
    "Please call us back at your convenience. Press 9 to be removed from our call list. Goodbye."
)


def write_wav_pcm16(path: str | Path, samples: Sequence[int], rate: int = RATE) -> Path:
    """Write 16-bit mono PCM."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return p


def read_wav_pcm16(path: str | Path) -> tuple[list[int], int]:
    """Read a 16-bit mono PCM WAV (as written by PJSIP's recorder); returns (samples, rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        data = w.readframes(w.getnframes())
        return list(struct.unpack(f"<{len(data) // 2}h", data)), w.getframerate()


def _ulaw(sample: int) -> int:
    """G.711 u-law encoding of one 16-bit sample (ITU-T G.711, with the 0x84 bias)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    mag = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not (mag & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def write_wav_ulaw(path: str | Path, samples: Sequence[int], rate: int = RATE) -> Path:
    """Write a G.711 u-law WAV (format tag 7): header + raw PCMU bytes, as SIPp streams it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(_ulaw(int(s)) for s in samples)
    fmt = struct.pack("<HHIIHH", 7, 1, rate, rate, 1, 8)
    riff = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    p.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return p


def tone(seconds: float, freq: float = 440.0, amp: int = 8000, rate: int = RATE) -> list[int]:
    n = int(seconds * rate)
    return [int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)]


def silence(seconds: float, rate: int = RATE) -> list[int]:
    return [0] * int(seconds * rate)


def speech_like(seconds: float, seed: int = 1, amp: int = 9000, rate: int = RATE) -> list[int]:
    """A voiced burst: 110-140 Hz glottal pitch with harmonics shaped like vowel formants."""
    rnd = random.Random(seed)
    f0 = rnd.uniform(110, 140)
    n = int(seconds * rate)
    harmonics = [(k, 1.0 / k * (1.5 if 4 <= k <= 7 else 1.0)) for k in range(1, 16)]
    norm = sum(a for _, a in harmonics)
    out = []
    for i in range(n):
        t = i / rate
        env = min(1.0, i / (0.02 * rate), (n - i) / (0.02 * rate))  # 20 ms ramps
        v = sum(a * math.sin(2 * math.pi * f0 * k * t) for k, a in harmonics) / norm
        out.append(int(amp * env * v))
    return out


def human_greeting(rate: int = RATE) -> list[int]:
    """ "Hello?" (one 0.6 s word), then silence, as a live person waiting for an answer."""
    return silence(0.3, rate) + speech_like(0.6, seed=7, rate=rate) + silence(4.0, rate)


def machine_greeting(rate: int = RATE) -> list[int]:
    """A voicemail greeting: many words with short pauses for about 5 s."""
    out = silence(0.3, rate)
    rnd = random.Random(3)
    for w in range(12):
        out += speech_like(rnd.uniform(0.25, 0.45), seed=w, rate=rate)
        out += silence(rnd.uniform(0.08, 0.15), rate)
    return out + silence(1.0, rate)


def write_callee_audio(directory: str | Path) -> Path:
    """Write talk.wav, human.wav and machine.wav (PCMU) for the callee scenario."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    write_wav_ulaw(d / "talk.wav", tone(1.0, 440.0, 6000))
    write_wav_ulaw(d / "human.wav", human_greeting())
    write_wav_ulaw(d / "machine.wav", machine_greeting())
    return d


def _resample_linear(samples: Sequence[int], src: int, dst: int) -> list[int]:
    if src == dst:
        return list(samples)
    n = int(len(samples) * dst / src)
    out = []
    for i in range(n):
        x = i * src / dst
        j = int(x)
        f = x - j
        a = samples[j]
        b = samples[j + 1] if j + 1 < len(samples) else a
        out.append(int(a + (b - a) * f))
    return out


def ensure_default_message(
    path: str | Path, text: str = DEFAULT_MESSAGE_TEXT, *, overwrite: bool = False
) -> Path:
    """Create the default recorded message at ``path`` (8 kHz mono 16-bit) unless it exists.

    Uses espeak-ng if installed (sox for resampling if present), otherwise three short tones.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        return p
    p.parent.mkdir(parents=True, exist_ok=True)
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:
        with tempfile.TemporaryDirectory() as td:
            raw = Path(td) / "speech.wav"
            r = subprocess.run(
                [espeak, "-s", "150", "-w", str(raw), text],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if r.returncode == 0 and raw.exists():
                sox = shutil.which("sox")
                if sox:
                    r2 = subprocess.run(
                        [
                            sox,
                            str(raw),
                            "-r",
                            "8000",
                            "-c",
                            "1",
                            "-b",
                            "16",
                            "-e",
                            "signed-integer",
                            str(p),
                        ],
                        capture_output=True,
                        timeout=60,
                        check=False,
                    )
                    if r2.returncode == 0:
                        return p
                with wave.open(str(raw), "rb") as w:
                    if w.getsampwidth() == 2 and w.getnchannels() == 1:
                        data = w.readframes(w.getnframes())
                        src = list(struct.unpack(f"<{len(data) // 2}h", data))
                        return write_wav_pcm16(p, _resample_linear(src, w.getframerate(), RATE))
    samples: list[int] = []
    for f in (660.0, 880.0, 660.0):
        samples += tone(0.4, f, 6000) + silence(0.2)
    return write_wav_pcm16(p, samples)
