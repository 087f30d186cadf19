"""Systems, word error rates and their statistics; raw per-utterance records.

A system chooses, for each utterance, among the candidates of one *source* (the A* n-best, or
the n-best of one lattice search) with weights tuned by cross-validation over verse folds
(``pocketlm.runtime.speech.combine.cross_validate``): the figures are out-of-fold. Printed per
system: WER (bootstrap CI over verses), per voice, the oracle WER of its candidates; paired
bootstraps for the pairs asked for; the oracle of the pruned lattices.
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


def report(records: list[dict[str, Any]], sources: dict[str, list[dict[str, Any]]],
           refs: dict[str, list[str]], systems: dict[str, tuple[str, list[str]]],
           pairs: list[tuple[str, str]], args: Any, lattice_oracle: list[int] | None = None
           ) -> None:
    """``sources``: name -> per-utterance rows with ``hypotheses``; ``systems``: name ->
    (source, features, the first of which has its weight fixed at 1). The ``nbest`` source's
    ``first`` feature marks the first-pass hypothesis. ``lattice_oracle``: per utterance, the
    fewest errors of any path of its (pruned) lattice."""
    verse = [r["utt"].split("-")[0] for r in records]
    voice = [r["voice"] for r in records]
    ref_words = [len(refs[v]) for v in verse]
    errs_of = {name: [np.array([errors(refs[v], h["text"].split()) for h in row["hypotheses"]])
                      for v, row in zip(verse, rows)] for name, rows in sources.items()}
    first = [int(np.argmax([h["first"] for h in row["hypotheses"]])) for row in sources["nbest"]]
    utt_errs = {"first_pass": [int(e[i]) for e, i in zip(errs_of["nbest"], first)]}
    texts = {"first_pass": [row["hypotheses"][i]["text"]
                            for row, i in zip(sources["nbest"], first)]}
    weights: dict[str, Any] = {}
    oracle_of = {"first_pass": utt_errs["first_pass"]}
    for name, (source, feats) in systems.items():
        rows, cand_errs = sources[source], errs_of[source]
        problems = [Candidates(np.array([[h.get(f, 0.0) for f in feats]
                                         for h in row["hypotheses"]]), e, n, v)
                    for row, e, n, v in zip(rows, cand_errs, ref_words, verse)]
        picks, weights[name] = cross_validate(problems, feats, folds=args.folds,
                                              seed=args.seed, fixed=feats[0])
        utt_errs[name] = [int(e[i]) for e, i in zip(cand_errs, picks)]
        texts[name] = [row["hypotheses"][i]["text"] for row, i in zip(rows, picks)]
        oracle_of[name] = [int(e.min()) for e in cand_errs]
    per = {}
    for name, errs in utt_errs.items():
        _, e, w = by_verse(verse, errs, ref_words)
        _, e_oracle, _ = by_verse(verse, oracle_of[name], ref_words)
        per[name] = e
        wer, lo, hi = wer_ci(e, w, seed=args.seed)
        voices = {}
        for vc in sorted(set(voice)):
            idx = [i for i, x in enumerate(voice) if x == vc]
            voices[vc] = 100 * sum(errs[i] for i in idx) / sum(ref_words[i] for i in idx)
        emit("system", system=name, source=systems.get(name, ("first pass",))[0], wer=wer,
             ci95=[lo, hi], per_voice=voices, oracle_wer=100 * e_oracle.sum() / w.sum(),
             utterances=len(errs), reference_words=int(w.sum()), verses=len(w),
             weights=weights.get(name))
    for base, name in [("first_pass", n) for n in systems] + pairs:
        emit("paired", base=base, system=name, **paired(per[base], per[name], w, seed=args.seed))
    for source, rows in sources.items():
        in_list = sum(1 for row, v in zip(rows, verse)
                      if " ".join(refs[v]) in {h["text"] for h in row["hypotheses"]})
        emit("candidates", source=source, reference_in_list=in_list, utterances=len(rows),
             per_utterance=sum(len(row["hypotheses"]) for row in rows) / len(rows))
    if lattice_oracle:
        emit("lattice", pruned_lattice_oracle_wer=100 * sum(lattice_oracle) / sum(ref_words))
    args.out.mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"asr_utterances{args.tag}.jsonl"
    with atomic_path(path) as tmp, tmp.open("w") as out:
        for i, record in enumerate(records):
            out.write(json.dumps({
                "utt": record["utt"], "voice": record["voice"], "verse": verse[i],
                "reference": " ".join(refs[verse[i]]), "audio_s": record["audio_s"],
                "oracle_errors": {name: o[i] for name, o in oracle_of.items()},
                "first_pass": texts["first_pass"][i],
                # a system's text only where it is not the first pass's (keeps the file small)
                "systems": {name: {"errors": utt_errs[name][i]}
                            | ({"text": texts[name][i]}
                               if texts[name][i] != texts["first_pass"][i] else {})
                            for name in utt_errs if name != "first_pass"},
                "first_pass_errors": utt_errs["first_pass"][i],
                "seconds": {k: record[k] for k in ("synth_s", "decode_s", "nbest_s")}}) + "\n")
    emit("written", path=str(path))
