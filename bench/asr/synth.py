"""Held-out verses → 16 kHz speech with Debian's text-to-speech voices, seeded noise added.

    test split ──seeded choice──▶ verses ──flite / festival──▶ wav (8-48 kHz)
        ──sox -R rate 16000──▶ 16-bit mono ──+ white noise at --noise-snr (seeded)──▶ utt.wav

Voices: ``slt``, ``rms``, ``awb``, ``kal16`` (``flite -voice``) and ``festival-slt`` (festival with
``festvox-us-slt-hts``). ``sox -R`` makes resampling repeatable (no random dither); the noise
comes from ``numpy.random.default_rng(seed, utterance)``, so a run is the same on every machine.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np

FLITE_VOICES = ("slt", "rms", "awb", "kal16")
FESTIVAL_VOICES = {"festival-slt": "voice_cmu_us_slt_arctic_hts"}
VOICES = FLITE_VOICES + tuple(FESTIVAL_VOICES)
RATE = 16000

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def reference_words(verse: str) -> list[str]:
    """The words a listener hears: lowercase, punctuation dropped, inner apostrophes kept,
    hyphenated words split (``"the LORD's burnt-offering."`` → ``the lord's burnt offering``)."""
    return _WORD.findall(verse.lower().replace("-", " "))


def check_voices(voices: list[str]) -> None:
    """Raise ``SystemExit`` naming an unknown voice or a missing program."""
    for voice in voices:
        if voice not in VOICES:
            raise SystemExit(f"--voices: unknown voice {voice!r}; choose from {', '.join(VOICES)}")
    for program, needed in (("flite", any(v in FLITE_VOICES for v in voices)),
                            ("text2wave", any(v in FESTIVAL_VOICES for v in voices)),
                            ("sox", True)):
        if needed and subprocess.run(["which", program], capture_output=True).returncode:
            raise SystemExit(f"{program} is not installed: apt-get install flite sox festival "
                             f"festvox-us-slt-hts")


def _tts(voice: str, text: str, out: Path) -> None:
    if voice in FLITE_VOICES:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True,
                       capture_output=True)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        subprocess.run(["text2wave", "-eval", f"({FESTIVAL_VOICES[voice]})", f.name, "-o",
                        str(out)], check=True, capture_output=True)
    finally:
        Path(f.name).unlink()


def read_wav(path: Path) -> np.ndarray:
    """16-bit mono samples of a wav file."""
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype(np.int16).tobytes())


def add_noise(samples: np.ndarray, snr_db: float | None, seed: int, key: str) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` (signal power over the whole utterance), from a
    generator seeded by ``seed`` and the utterance key; ``None``: unchanged."""
    if snr_db is None:
        return samples
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    signal = samples.astype(np.float64)
    power = float(np.mean(signal ** 2)) or 1.0
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=signal.shape)
    return np.clip(np.round(signal + noise), -32768, 32767).astype(np.int16)


def finish(raw: Path, out: Path, snr_db: float | None, seed: int) -> float:
    """Resample ``raw`` to 16 kHz mono 16-bit (``sox -R``), add noise, write ``out``;
    returns the duration in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        resampled = Path(tmp) / "16k.wav"
        subprocess.run(["sox", "-R", str(raw), "-r", str(RATE), "-c", "1", "-b", "16",
                        str(resampled)], check=True, capture_output=True)
        samples = add_noise(read_wav(resampled), snr_db, seed, out.stem)
    write_wav(out, samples)
    return len(samples) / RATE


def synthesise(voice: str, text: str, out: Path, snr_db: float | None, seed: int) -> float:
    """Speak ``text`` with ``voice`` into ``out`` (16 kHz, 16-bit mono, noise added); returns
    the duration in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        _tts(voice, text, raw)
        return finish(raw, out, snr_db, seed)


def festival_batch(voice: str, items: list[tuple[str, Path]]) -> subprocess.Popen:
    """Start one festival process that speaks every (text, raw wav path) of ``items`` (the
    voice is loaded once instead of once per utterance); returns the running process."""
    def quote(text: str) -> str:
        return '"' + text.replace("\\", " ").replace('"', " ") + '"'

    lines = [f"({FESTIVAL_VOICES[voice]})"]
    lines += [f"(utt.save.wave (SynthText {quote(text)}) {quote(str(path))} 'riff)"
              for text, path in items]
    script = tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False)
    script.write("\n".join(lines) + "\n")
    script.close()
    return subprocess.Popen(["festival", "-b", script.name], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
