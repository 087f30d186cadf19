"""Candidates and their language-model features, per utterance, cached as JSON.

    records/<utt>.json: first pass + pocketsphinx's distinct n-best (ln path score)
        ──▶ candidates = n-best ∪ {first pass}
        ──▶ features  ps (ln path score; the first pass, when missing from the n-best, gets the
                      list's best), first (1 for the first-pass hypothesis), words,
                      lm3 (the first-pass 3-gram, KenLM), kenlm5 (the 5-gram, KenLM),
                      pocketlm (PrefixScorer, one thread, hidden punctuation)
        ──▶ features-<key>/<utt>.json

Two worker processes, each with its own one-thread pocketlm model, so every time recorded is a
one-thread time.
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


def candidates(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The n-best with the first pass added: text, ps, first."""
    first = " ".join(record["first_pass"].split())
    out = [{"text": text, "ps": score, "first": float(text == first)}
           for text, score in record["nbest"]]
    if not out:
        return [{"text": first, "ps": 0.0, "first": 1.0}]
    if not any(c["first"] for c in out):
        out.append({"text": first, "ps": max(c["ps"] for c in out), "first": 1.0})
    return out


def _one(job: tuple[dict[str, Any], str]) -> dict[str, Any]:
    record, cache = job
    out = Path(cache) / f"{record['utt']}.json"
    if out.exists():
        return json.loads(out.read_text())
    hyps = candidates(record)
    texts = [h["text"].split() for h in hyps]
    t0 = time.perf_counter()
    lm3 = _state["lm3"].score(texts)
    t1 = time.perf_counter()
    pocket = _state["prefix"].score(texts)
    nodes = _state["prefix"].nodes
    t2 = time.perf_counter()
    kenlm5 = _state["kenlm5"].score(texts)
    t3 = time.perf_counter()
    for h, words, a, b, c in zip(hyps, texts, lm3, pocket, kenlm5):
        h.update(words=len(words), lm3=a, pocketlm=b, kenlm5=c)
    row = {"utt": record["utt"], "hypotheses": hyps,
           "tokens": sum(len(t) + 1 for t in texts), "trie_nodes": nodes,
           "lm3_s": t1 - t0, "pocketlm_s": t2 - t1, "kenlm5_s": t3 - t2}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    tmp.rename(out)
    return row


def candidate_features(records: list[dict[str, Any]], utts: Path, model: Path, arpa3: Path,
                       arpa5: Path, hidden: list[str], processes: int = 2
                       ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per utterance: candidates with features (cached); and the real-time factor per step."""
    key = hashlib.sha256(json.dumps([str(model), str(arpa3), str(arpa5), hidden]).encode()
                         ).hexdigest()[:10]
    cache = utts / f"features-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(r, str(cache)) for r in records]
    args = (str(model), str(arpa3), str(arpa5), hidden)
    with get_context("fork").Pool(processes, initializer=_init, initargs=args) as pool:
        rows = list(pool.imap(_one, jobs, chunksize=4))
    audio = sum(r["audio_s"] for r in records)
    timing: dict[str, Any] = {"audio_s": audio, "cache": str(cache)}
    for step in ("synth_s", "decode_s", "nbest_s", "lattice_s"):
        timing[step.replace("_s", "_rtf")] = sum(r[step] for r in records) / audio
    for step in ("lm3_s", "pocketlm_s", "kenlm5_s"):
        timing[step.replace("_s", "_rtf")] = sum(r[step] for r in rows) / audio
    timing["pocketlm_tokens_per_s"] = sum(r["tokens"] for r in rows) / sum(
        r["pocketlm_s"] for r in rows)
    timing["candidates_per_utt"] = sum(len(r["hypotheses"]) for r in rows) / len(rows)
    timing["trie_nodes_per_token"] = sum(r["trie_nodes"] for r in rows) / sum(
        r["tokens"] for r in rows)
    return rows, timing
