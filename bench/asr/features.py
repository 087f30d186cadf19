"""Candidates and their language-model features, per utterance, cached as JSON.

    lattices/<utt>.slf ──expand with the 3-gram (exact, distinct sequences)──▶ n-best
        (features acoustic, lm3, words) ──PrefixScorer (pocketlm, 1 thread)──▶ + pocketlm
        ──KenLM 5-gram──▶ + kenlm5          ──▶ features-<key>/<utt>.json

Two worker processes, each with its own one-thread pocketlm model, so every time recorded is a
one-thread time. Whether the first-pass hypothesis is among the candidates is recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

_state: dict[str, Any] = {}


def _init(model: str, arpa3: str, arpa5: str, hidden: list[str]) -> None:
    import kenlm

    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.speech.prefix import PrefixScorer
    from pocketlm.runtime.speech.scorers import NGramScorer

    lm = LanguageModel(model, threads=1)
    _state.update(prefix=PrefixScorer(lm, hidden), lm3=NGramScorer(kenlm.Model(arpa3), "lm3"),
                  kenlm5=NGramScorer(kenlm.Model(arpa5), "kenlm5"))


def _one(job: tuple[dict[str, Any], str, str, dict[str, float], int, int]) -> dict[str, Any]:
    from pocketlm.runtime.speech.lattice import read_slf
    from pocketlm.runtime.speech.rescore_lattice import expand

    record, utts, cache, weights, beam, nbest = job
    out = Path(cache) / f"{record['utt']}.json"
    if out.exists():
        return json.loads(out.read_text())
    t0 = time.perf_counter()
    lattice = read_slf(Path(utts) / "lattices" / f"{record['utt']}.slf")
    lists = expand(lattice, [_state["lm3"]], weights, history=None, beam=beam, nbest=nbest)
    hyps = [(h.text, dict(h.features)) for h in lists.hypotheses]
    first = " ".join(record["first_pass"].split())
    t1 = t2 = time.perf_counter()
    texts = [text.split() for text, _ in hyps]
    pocket = _state["prefix"].score(texts)
    nodes = _state["prefix"].nodes
    t3 = time.perf_counter()
    kenlm5 = _state["kenlm5"].score(texts)
    t4 = time.perf_counter()
    row = {"utt": record["utt"], "links": len(lattice.links),
           "first_in_list": first in {text for text, _ in hyps},
           "hypotheses": [{"text": text, **{k: v for k, v in f.items() if k != "lm"},
                           "pocketlm": p, "kenlm5": k5}
                          for (text, f), p, k5 in zip(hyps, pocket, kenlm5)],
           "tokens": sum(len(t) + 1 for t in texts), "trie_nodes": nodes,
           "candidates_s": t1 - t0, "pocketlm_s": t3 - t2, "kenlm5_s": t4 - t3}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    tmp.rename(out)
    return row


def candidate_features(records: list[dict[str, Any]], utts: Path, model: Path, arpa3: Path,
                       arpa5: Path, hidden: list[str], weights: dict[str, float], beam: int,
                       nbest: int, processes: int = 2) -> tuple[list[dict[str, Any]],
                                                                dict[str, float]]:
    """Per utterance: candidates with features (cached); and the summed seconds per step."""
    key = hashlib.sha256(json.dumps([str(model), str(arpa3), str(arpa5), hidden, weights, beam,
                                     nbest]).encode()).hexdigest()[:10]
    cache = utts / f"features-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(r, str(utts), str(cache), weights, beam, nbest) for r in records]
    args = (str(model), str(arpa3), str(arpa5), hidden)
    with get_context("fork").Pool(processes, initializer=_init, initargs=args) as pool:
        rows = list(pool.imap(_one, jobs, chunksize=1))
    audio = sum(r["audio_s"] for r in records)
    timing = {"audio_s": audio, "cache": str(cache)}
    for step in ("synth_s", "decode_s", "lattice_s"):
        timing[step.replace("_s", "_rtf")] = sum(r[step] for r in records) / audio
    for step in ("candidates_s", "pocketlm_s", "kenlm5_s"):
        timing[step.replace("_s", "_rtf")] = sum(r[step] for r in rows) / audio
    timing["pocketlm_tokens_per_s"] = sum(r["tokens"] for r in rows) / sum(
        r["pocketlm_s"] for r in rows)
    return rows, timing
