"""Lattice rescoring: each system searches pocketsphinx's word lattice with its language models.

    lattices/<utt>.slf ──prune (link posterior >= PRUNE)──▶ for each search in SEARCHES:
        expand (pocketlm.runtime.speech.rescore_lattice): acoustic + LM_SCALE / (number of LMs)
        per LM, histories merged on their last HISTORY words, BEAM hypotheses per node
        ──▶ its NBEST best distinct sentences with their features (rescore_lattice.search)
    ──▶ lattice-<key>/<utt>.json (with the oracle WER of the pruned lattice)

The search weights are fixed before any reference is read: ``LM_SCALE`` is the weight at which
the search with the first-pass 3-gram alone gives back pocketsphinx's own first pass (the
``lattice_3gram`` system; ``first_pass_agreement`` in the output), and each system shares it
equally between its language models. The lists are then reranked with weights tuned by
cross-validation over verses (``report.py``), like the A* n-best systems.

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

from stats import lattice_errors

PRUNE = 1e-3
LM_SCALE = 9.5
HISTORY = 3
BEAM = 20
NBEST = 100

#: search name -> the language models it expands with (``lm3`` is the first-pass 3-gram)
SEARCHES = {
    "3gram": ["lm3"],
    "kenlm_5gram": ["lm3", "kenlm5"],
    "pocketlm": ["lm3", "pocketlm"],
    "pocketlm+5gram": ["lm3", "pocketlm", "kenlm5"],
}

_state: dict[str, Any] = {}


def _init(model: str, arpa3: str, arpa5: str, hidden: list[str]) -> None:
    import kenlm

    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.speech.scorers import NGramScorer, PocketLMScorer

    lm = LanguageModel(model, threads=1)
    _state.update(pocketlm=PocketLMScorer(lm, hidden),
                  lm3=NGramScorer(kenlm.Model(arpa3), "lm3"),
                  kenlm5=NGramScorer(kenlm.Model(arpa5), "kenlm5"))


def _one(job: tuple[dict[str, Any], list[str], str, str]) -> dict[str, Any]:
    from pocketlm.runtime.speech.lattice import prune, read_slf
    from pocketlm.runtime.speech.rescore_lattice import search

    record, ref, slf, cache = job
    out = Path(cache) / f"{record['utt']}.json"
    if out.exists():
        return json.loads(out.read_text())
    t0 = time.perf_counter()
    lattice = read_slf(slf)
    pruned = prune(lattice, PRUNE)
    row: dict[str, Any] = {"utt": record["utt"], "links": len(lattice.links),
                           "pruned_links": len(pruned.links), "read_s": time.perf_counter() - t0,
                           "lattice_oracle": lattice_errors(pruned, ref), "searches": {}}
    for name, lms in SEARCHES.items():
        t = time.perf_counter()
        got, trie = search(pruned, [_state[k] for k in lms], LM_SCALE, history=HISTORY,
                           beam=BEAM, nbest=NBEST)
        row["searches"][name] = {
            "seconds": time.perf_counter() - t, "histories": trie.steps,
            "hypotheses": [{"text": h.text, **h.features} for h in got.hypotheses]}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    tmp.rename(out)
    return row


def lattice_lists(records: list[dict[str, Any]], refs: dict[str, list[str]], utts: Path,
                  model: Path, arpa3: Path, arpa5: Path, hidden: list[str], processes: int = 2
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per utterance: each search's n-best with features (cached); and the real-time factor
    and histories per second of each search."""
    key = hashlib.sha256(json.dumps([str(model), str(arpa3), str(arpa5), hidden, PRUNE,
                                     LM_SCALE, HISTORY, BEAM, NBEST, SEARCHES]).encode()
                         ).hexdigest()[:10]
    cache = utts / f"lattice-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(r, refs[r["utt"].split("-")[0]], str(utts / "lattices" / f"{r['utt']}.slf"),
             str(cache)) for r in records]
    args = (str(model), str(arpa3), str(arpa5), hidden)
    with get_context("fork").Pool(processes, initializer=_init, initargs=args) as pool:
        rows = list(pool.imap(_one, jobs, chunksize=2))
    audio = sum(r["audio_s"] for r in records)
    timing: dict[str, Any] = {"cache": str(cache), "prune": PRUNE, "lm_scale": LM_SCALE,
                              "history": HISTORY, "beam": BEAM, "nbest": NBEST,
                              "links_per_utt": sum(r["links"] for r in rows) / len(rows),
                              "pruned_links_per_utt": sum(r["pruned_links"] for r in rows)
                              / len(rows)}
    for name in SEARCHES:
        seconds = sum(r["searches"][name]["seconds"] for r in rows)
        timing[f"{name}_rtf"] = seconds / audio
        timing[f"{name}_histories_per_s"] = sum(
            r["searches"][name]["histories"] for r in rows) / seconds
    first = [" ".join(r["first_pass"].split()) for r in records]
    timing["first_pass_agreement"] = sum(
        row["searches"]["3gram"]["hypotheses"][0]["text"] == f
        for row, f in zip(rows, first)) / len(rows)
    return rows, timing
