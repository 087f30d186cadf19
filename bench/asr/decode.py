"""Synthesise and decode utterances with pocketsphinx, caching everything on disk.

    job (utt id, voice, verse text) ──synth──▶ wav/<utt>.wav ──pocketsphinx (3-gram)──▶
        lattices/<utt>.slf  (HTK SLF, pocketsphinx's word lattice)
        records/<utt>.json  (first-pass hypothesis, the n-best, durations, seconds per step)

The n-best: pocketsphinx's A* search over its lattice, the first ``NBEST_PATHS`` paths, merged
into distinct word sequences (best score kept), at most ``NBEST_DISTINCT``; each with ``ln`` of
the path score pocketsphinx reports (its acoustic + weighted LM score, as a probability).

Two worker processes (``--jobs``) each hold one decoder. Each utterance starts from the same
decoder state: the cepstral mean is reset to its initial value and ``start_stream()`` is called,
so a result does not depend on the order utterances are decoded in. A finished utterance is
skipped when the run is repeated.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from synth import FESTIVAL_VOICES, festival_batch, finish, read_wav, synthesise

#: Decoder settings: one pass (no fwdflat) with a 10-frame phonetic lookahead, 3x faster
#: than the defaults on this machine with the same first-pass words on the utterances tried.
DECODER = {"fwdflat": False, "pl_window": 10}
NBEST_PATHS = 2000
NBEST_DISTINCT = 500

_decoder: Any = None
_cmn: str = ""
_settings: dict[str, Any] = {}


def _init(arpa: str, work: str, snr: float | None, seed: int) -> None:
    global _decoder, _cmn
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pocketsphinx import Decoder

    _decoder = Decoder(lm=arpa, loglevel="FATAL", **DECODER)
    _cmn = _decoder.get_cmn()
    _settings.update(work=Path(work), snr=snr, seed=seed)


def _one(job: tuple[str, str, str]) -> dict[str, Any]:
    utt, voice, text = job
    work: Path = _settings["work"]
    record_path = work / "records" / f"{utt}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    wav = work / "wav" / f"{utt}.wav"
    made = wav.with_suffix(".json")
    raw = work / "raw" / f"{utt}.wav"
    if made.exists():  # synthesised by an earlier run
        seconds, synth_s = json.loads(made.read_text())
    elif raw.with_suffix(".done").exists():  # spoken by a festival batch
        t0 = time.perf_counter()
        seconds = finish(raw, wav, _settings["snr"], _settings["seed"])
        synth_s = time.perf_counter() - t0 + float(raw.with_suffix(".done").read_text())
        made.write_text(json.dumps([seconds, synth_s]))
    else:
        t0 = time.perf_counter()
        seconds = synthesise(voice, text, wav, _settings["snr"], _settings["seed"])
        synth_s = time.perf_counter() - t0
        made.write_text(json.dumps([seconds, synth_s]))
    t1 = time.perf_counter()
    dec = _decoder
    dec.set_cmn(_cmn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        dec.start_stream()
    dec.start_utt()
    dec.process_raw(read_wav(wav).tobytes(), full_utt=True)
    dec.end_utt()
    t2 = time.perf_counter()
    hyp = dec.hyp()
    nbest: dict[str, float] = {}
    for n, path in enumerate(dec.nbest()):
        if n >= NBEST_PATHS or len(nbest) >= NBEST_DISTINCT:
            break
        words = " ".join(path.hypstr.split())
        if words not in nbest and path.score > 0:
            nbest[words] = math.log(path.score)
    t_nbest = time.perf_counter()
    lattice = work / "lattices" / f"{utt}.slf"
    tmp = lattice.with_suffix(".tmp")
    dec.get_lattice().write_htk(str(tmp))
    tmp.rename(lattice)
    t3 = time.perf_counter()
    record = {"utt": utt, "voice": voice, "audio_s": seconds,
              "first_pass": hyp.hypstr if hyp is not None else "",
              "nbest": list(nbest.items()),
              "synth_s": synth_s, "decode_s": t2 - t1, "nbest_s": t_nbest - t2,
              "lattice_s": t3 - t_nbest}
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.rename(record_path)
    return record


def _festival_first(jobs: list[tuple[str, str, str]], work: Path, processes: int) -> None:
    """Speak the festival utterances not yet made in ``processes`` festival batches at once;
    each raw wav gets a ``.done`` file holding its share of the batch's seconds."""
    todo = [(utt, voice, text) for utt, voice, text in jobs if voice in FESTIVAL_VOICES
            and not (work / "wav" / f"{utt}.json").exists()
            and not (work / "raw" / f"{utt}.done").exists()]
    for voice in sorted({v for _, v, _ in todo}):
        items = [(text, work / "raw" / f"{utt}.wav") for utt, v, text in todo if v == voice]
        t0 = time.perf_counter()
        running = [festival_batch(voice, items[k::processes]) for k in range(processes)]
        for proc in running:
            proc.wait()
        share = (time.perf_counter() - t0) * processes / max(len(items), 1)
        for _, path in items:
            if path.exists():
                path.with_suffix(".done").write_text(repr(share))


def decode_all(jobs: list[tuple[str, str, str]], arpa: Path, work: Path, snr: float | None,
               seed: int, processes: int = 2) -> list[dict[str, Any]]:
    """Records of every job (utt id, voice, text), decoded by ``processes`` workers."""
    for sub in ("wav", "raw", "lattices", "records"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    _festival_first(jobs, work, processes)
    args = (str(arpa), str(work), snr, seed)
    if processes <= 1:
        _init(*args)
        return [_one(j) for j in jobs]
    with get_context("fork").Pool(processes, initializer=_init, initargs=args) as pool:
        return list(pool.imap(_one, jobs, chunksize=1))
