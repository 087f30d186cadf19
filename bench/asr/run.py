"""Speech benchmark: does pocketlm lower a real recogniser's word error rate?

    python bench/asr/run.py --model runs/kjv/model --data runs/kjv/data \\
        --voices slt,rms,awb,kal16,festival-slt --verses 200 --seed 0 --work runs/asr

One command, six steps (each cached in ``--work``, so a rerun only redoes what changed):

1. held-out verses: ``--verses`` drawn with ``--seed`` from the *test* split;
2. n-grams from the *train* split (``ngram.py``): a 3-gram for the first pass, a 5-gram for
   KenLM rescoring; the 5-gram's test perplexity is printed beside the reference 37.05;
3. speech and first pass (``decode.py``): every verse in every voice, 2 processes;
   pocketsphinx with the 3-gram writes its hypothesis and its word lattice (SLF);
4. candidates from the A* n-best: pocketsphinx's 2,000 best paths merged into at most 500
   distinct word sequences, each with its path score, plus the first-pass hypothesis; their
   features: pocketlm through the prefix trie (1 thread, hidden punctuation), the 5-gram;
5. candidates from the lattice (``lattice.py``): each system searches the pruned lattice with
   its language models in the loop (the 3-gram alone, + the 5-gram, + pocketlm, + both) and
   keeps its 100 best sentences with their features;
6. systems: log-linear weights tuned by ``--folds``-fold cross-validation over verses (a verse's
   utterances are never chosen with weights tuned on that verse); WER with a bootstrap CI over
   verses, paired bootstraps against the first pass and between systems, the oracle WER of
   each system's candidates and of the pruned lattices, per voice, and the real-time factor of
   each step.

Prints JSON lines; writes per-utterance records to ``--out`` (bench/results/ by default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from common import emit, machine, split_lines  # noqa: E402
from decode import decode_all  # noqa: E402
from ngram import (REFERENCE_5GRAM_PPL, build_arpa, sentence_ppl,  # noqa: E402
                   spoken, token_lines)
from synth import VOICES, check_voices, reference_words  # noqa: E402

#: system name -> (candidate source, the features its weights combine; the first, the path or
#: acoustic score, has its weight fixed at 1)
_LATTICE = ["acoustic", "posterior", "words", "lm3"]
SYSTEMS = {
    "nbest_3gram": ("nbest", ["ps", "first", "lm3", "words"]),
    "nbest_kenlm_5gram": ("nbest", ["ps", "first", "lm3", "kenlm5", "words"]),
    "nbest_pocketlm": ("nbest", ["ps", "first", "lm3", "pocketlm", "words"]),
    "nbest_pocketlm+5gram": ("nbest", ["ps", "first", "lm3", "pocketlm", "kenlm5", "words"]),
    "lattice_3gram": ("lattice:3gram", _LATTICE),
    "lattice_kenlm_5gram": ("lattice:kenlm_5gram", _LATTICE + ["kenlm5"]),
    "lattice_pocketlm": ("lattice:pocketlm", _LATTICE + ["pocketlm"]),
    "lattice_pocketlm+5gram": ("lattice:pocketlm+5gram", _LATTICE + ["pocketlm", "kenlm5"]),
}
#: paired comparisons besides each system against the first pass
PAIRS = [("nbest_kenlm_5gram", "nbest_pocketlm"), ("lattice_kenlm_5gram", "lattice_pocketlm"),
         ("lattice_kenlm_5gram", "lattice_pocketlm+5gram"), ("nbest_pocketlm", "lattice_pocketlm")]


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="pocketlm model folder")
    p.add_argument("--data", type=Path, required=True, help="pocketlm data folder (splits)")
    p.add_argument("--voices", default=",".join(VOICES))
    p.add_argument("--verses", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-snr", type=float, default=None, help="white noise SNR in dB")
    p.add_argument("--work", type=Path, default=Path("runs/asr"))
    p.add_argument("--out", type=Path, default=HERE.parent / "results")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    p.add_argument("--jobs", type=int, default=2, help="synthesis+decoding processes")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--hidden", default=",.:;?!", help="hidden punctuation for pocketlm "
                   "(characters; empty: none)")
    p.add_argument("--stop-after", choices=["decode", "features", "lattice"], default=None)
    p.add_argument("--decoded-only", action="store_true",
                   help="use only the utterances already decoded in --work (a partial look)")
    return p.parse_args()


def main() -> None:
    args = arguments()
    voices = [v for v in args.voices.split(",") if v]
    check_voices(voices)
    emit("machine", **machine())
    emit("config", **{k: str(v) for k, v in vars(args).items()})
    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    splits = split_lines(args.data)
    test = splits["test"]
    rng = np.random.default_rng(args.seed)
    chosen = sorted(int(i) for i in rng.choice(len(test), size=min(args.verses, len(test)),
                                                replace=False))
    jobs = [(f"v{i:05d}-{voice}", voice, test[i]) for i in chosen for voice in voices]
    refs = {f"v{i:05d}": reference_words(test[i]) for i in chosen}
    arpa3 = build_arpa(spoken(splits["train"]), 3, args.work / "train3")
    emit("ngram", order=3, arpa=str(arpa3), seconds=time.perf_counter() - t)
    noise = "clean" if args.noise_snr is None else f"snr{args.noise_snr:g}-seed{args.seed}"
    utts = args.work / f"utts-{noise}"
    if args.decoded_only:
        jobs = [j for j in jobs if (utts / "records" / f"{j[0]}.json").exists()]
    records = decode_all(jobs, arpa3, utts, args.noise_snr, args.seed, args.jobs)
    emit("decoded", utterances=len(records))
    if args.stop_after == "decode":
        return
    from features import candidate_features  # noqa: E402  (needs the model and kenlm)

    arpa5 = build_arpa(spoken(splits["train"]), 5, args.work / "train5")
    tok5 = build_arpa(token_lines(splits["train"], args.model), 5, args.work / "tokens5")
    emit("ngram", order=5, test_sentence_ppl_tokens=sentence_ppl(tok5, token_lines(
        test, args.model)), reference_lmplz=REFERENCE_5GRAM_PPL,
         test_sentence_ppl_spoken=sentence_ppl(arpa5, spoken(test)),
         test_sentence_ppl_spoken_3gram=sentence_ppl(arpa3, spoken(test)))
    hidden = list(args.hidden)
    lists, timing = candidate_features(records, utts, args.model, arpa3, arpa5, hidden,
                                       args.jobs)
    emit("timing", **timing)
    if args.stop_after == "features":
        return
    from lattice import SEARCHES, lattice_lists  # noqa: E402

    rows, timing = lattice_lists(records, refs, utts, args.model, arpa3, arpa5, hidden,
                                 args.jobs)
    emit("lattice_timing", **timing)
    if args.stop_after == "lattice":
        return
    from report import report  # noqa: E402

    sources = {"nbest": lists} | {f"lattice:{name}": [r["searches"][name] for r in rows]
                                  for name in SEARCHES}
    report(records, sources, refs, SYSTEMS, PAIRS, args,
           lattice_oracle=[r["lattice_oracle"] for r in rows])


if __name__ == "__main__":
    main()
