"""Systems, word error rates and their statistics; raw per-utterance records.

Every rescoring system chooses among the same candidates with weights tuned by cross-validation
over verse folds (``pocketlm.runtime.speech.combine.cross_validate``): the figures are
out-of-fold. Printed per system: WER (bootstrap CI over verses), per voice, the oracle WER of the
candidates; paired bootstraps against the first pass, and pocketlm against the KenLM 5-gram.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from common import emit
from stats import by_verse, errors, paired, wer_ci

from pocketlm.runtime.artifact import atomic_path
from pocketlm.runtime.speech.combine import Candidates, cross_validate


def report(records: list[dict[str, Any]], rows: list[dict[str, Any]],
           refs: dict[str, list[str]], systems: dict[str, list[str]], args: Any) -> None:
    verse = [r["utt"].split("-")[0] for r in records]
    voice = [r["voice"] for r in records]
    ref_words = [len(refs[v]) for v in verse]
    cand_errs = [np.array([errors(refs[v], h["text"].split()) for h in row["hypotheses"]])
                 for v, row in zip(verse, rows)]
    chosen: dict[str, list[int]] = {}
    weights: dict[str, Any] = {}
    first = [int(np.argmax([h["first"] for h in row["hypotheses"]])) for row in rows]
    chosen["first_pass"] = first
    for name, feats in systems.items():
        problems = [Candidates(np.array([[h[f] for f in feats] for h in row["hypotheses"]]),
                               e, n, v)
                    for row, e, n, v in zip(rows, cand_errs, ref_words, verse)]
        chosen[name], weights[name] = cross_validate(problems, feats, folds=args.folds,
                                                     seed=args.seed, fixed="ps")
    utt_errs = {name: [int(e[i]) for e, i in zip(cand_errs, picks)]
                for name, picks in chosen.items()}
    oracle = [int(e.min()) for e in cand_errs]
    _, e_oracle, w = by_verse(verse, oracle, ref_words)
    per = {}
    for name, errs in utt_errs.items():
        _, e, w = by_verse(verse, errs, ref_words)
        per[name] = e
        wer, lo, hi = wer_ci(e, w, seed=args.seed)
        voices = {}
        for vc in sorted(set(voice)):
            idx = [i for i, x in enumerate(voice) if x == vc]
            voices[vc] = 100 * sum(errs[i] for i in idx) / sum(ref_words[i] for i in idx)
        emit("system", system=name, wer=wer, ci95=[lo, hi], per_voice=voices,
             oracle_wer=100 * e_oracle.sum() / w.sum(), utterances=len(errs),
             reference_words=int(w.sum()), verses=len(w), weights=weights.get(name))
    for name in systems:
        emit("paired", base="first_pass", system=name,
             **paired(per["first_pass"], per[name], w, seed=args.seed))
    for name in ("pocketlm", "pocketlm+5gram"):
        emit("paired", base="kenlm_5gram", system=name,
             **paired(per["kenlm_5gram"], per[name], w, seed=args.seed))
    reference_best = sum(
        1 for row, v in zip(rows, verse)
        if " ".join(refs[v]) in {h["text"] for h in row["hypotheses"]})
    emit("candidates", reference_in_list=reference_best, utterances=len(rows),
         first_pass_in_nbest=sum(1 for r in records
                                 if " ".join(r["first_pass"].split()) in dict(r["nbest"])))
    args.out.mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"asr_utterances{args.tag}.jsonl"
    with atomic_path(path) as tmp, tmp.open("w") as out:
        for i, (record, row) in enumerate(zip(records, rows)):
            hyps = row["hypotheses"]
            out.write(json.dumps({
                "utt": record["utt"], "voice": record["voice"], "verse": verse[i],
                "reference": " ".join(refs[verse[i]]), "audio_s": record["audio_s"],
                "candidates": len(hyps), "oracle_errors": oracle[i],
                "systems": {name: {"text": hyps[chosen[name][i]]["text"],
                                   "errors": utt_errs[name][i]} for name in chosen},
                "seconds": {k: record[k] for k in ("synth_s", "decode_s", "nbest_s")}
                | {k: row[k] for k in ("lm3_s", "pocketlm_s", "kenlm5_s")}}) + "\n")
    emit("written", path=str(path))
