"""CTC beam search with pyctcdecode: no LM, a KenLM 5-gram, pocketlm — on synthetic emissions.

    python bench/asr/ctc.py --model runs/kjv/model --data runs/kjv/data --verses 200

No acoustic CTC model is available offline, so emissions are made from held-out verses by a
seeded confusion model (``emissions``), over the labels ``blank, space, a-z, '``. Each
character becomes 2 frames (the character, then a blank), each word boundary a space frame::

    character c ──▶ with p_sub a close letter c' takes the peak and c keeps a share
                ──▶ with p_del c's frames are blank-dominated (c only a small share)
    boundary    ──▶ with p_space the space frame is blank-dominated (words run together)
                ──▶ a spurious space with p_space inside a word (a word is split)
    each frame: peak probability ~ U(0.5, 0.95), the rest spread over 4 random labels

Close letters: vowels among themselves, b/p, d/t, g/k/c/q, m/n, s/z/c, f/v, l/r, w/u, j/g,
h/(blank), x/s, y/i. Three noise levels (``LEVELS``). The LM weights (alpha, beta) of each
system are tuned on verses of the *valid* split (grid search over ``GRID``, WER), then every
test verse is decoded by each system in turn (alternated, one thread each, a process per noise
level); figures: WER (bootstrap CI over verses), decode seconds per verse, and pocketlm's time
over KenLM's per verse (median) and in total.
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
from ngram import build_arpa, spoken  # noqa: E402
from stats import errors, paired, wer_ci  # noqa: E402

LABELS = [""] + [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
CLOSE = ["aeiou", "bp", "dt", "gkcq", "mn", "szc", "fv", "lr", "wu", "jg", "xs", "yi"]
#: level -> (p_sub, p_del, p_space)
LEVELS = {"low": (0.06, 0.02, 0.02), "mid": (0.12, 0.05, 0.05), "high": (0.2, 0.08, 0.08)}


def _close(c: str) -> list[str]:
    out = sorted({x for group in CLOSE if c in group for x in group} - {c})
    return out or [x for x in "aeiou" if x != c]


def emissions(text: str, level: str, rng: np.random.Generator) -> np.ndarray:
    """Log-probabilities [frames, labels] for ``text`` (lowercase words) at a noise level."""
    p_sub, p_del, p_space = LEVELS[level]
    index = {label: i for i, label in enumerate(LABELS)}
    frames: list[tuple[int, int, float]] = []  # (peak label, true label, true share)
    words = text.split()
    for w, word in enumerate(words):
        for k, c in enumerate(word):
            r = rng.random()
            if r < p_sub:
                frames.append((index[str(rng.choice(_close(c)))], index[c], 0.3))
            elif r < p_sub + p_del:
                frames.append((0, index[c], 0.25))
            else:
                frames.append((index[c], index[c], 0.0))
            frames.append((0, 0, 0.0))
            if k + 1 < len(word) and rng.random() < p_space / 2:
                frames.append((1, 0, 0.4))
        if w + 1 < len(words):
            frames.append((0, 1, 0.3) if rng.random() < p_space else (1, 1, 0.0))
    out = np.full((len(frames), len(LABELS)), 1e-4)
    for t, (peak, true, share) in enumerate(frames):
        p = rng.uniform(0.5, 0.95)
        out[t, peak] = p
        if share and true != peak:
            out[t, true] += share * (1 - p)
        others = rng.choice(len(LABELS), size=4, replace=False)
        out[t, others] += (1 - out[t].sum()).clip(0) / 4
    out /= out.sum(axis=1, keepdims=True)
    return np.log(out).astype(np.float32)


def _decoders(model: Path, arpa5: Path, vocab: list[str]) -> dict:
    from pyctcdecode import Alphabet, BeamSearchDecoderCTC, build_ctcdecoder

    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.speech.ctc import PocketLMForCTC

    lm = LanguageModel(model, threads=1)
    kenlm_decoder = build_ctcdecoder(LABELS, kenlm_model_path=str(arpa5), unigrams=vocab)
    pocket = PocketLMForCTC(lm, LABELS)
    pocket_decoder = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), pocket)

    def kenlm(a: float, b: float):
        kenlm_decoder.reset_params(alpha=a, beta=b)
        return kenlm_decoder

    def pocketlm(a: float, b: float):
        pocket.reset_params(alpha=a, beta=b)
        return pocket_decoder

    plain = build_ctcdecoder(LABELS)
    return {"no_lm": lambda a, b: plain, "kenlm_5gram": kenlm, "pocketlm": pocketlm}


GRID = [(a, b) for a in (0.4, 0.8, 1.2) for b in (1.5, 3.0, 5.0, 8.0)]


def level_task(job: tuple) -> dict:
    """Tune alpha, beta per system on the tuning verses, then decode every test verse with
    each system in turn (no LM, KenLM, pocketlm: alternated, so the times compare)."""
    level, seed, model, arpa5, vocab, tune_v, test_v, beam = job
    import os
    os.environ["OMP_NUM_THREADS"] = "1"
    makers = _decoders(model, arpa5, vocab)
    lrng = np.random.default_rng([seed, list(LEVELS).index(level)])
    tune_items = [(t, emissions(t, level, lrng)) for t in tune_v]
    test_items = [(t, emissions(t, level, lrng)) for t in test_v]
    best = {"no_lm": (0.0, 0.0)}
    for name in ("kenlm_5gram", "pocketlm"):
        best[name] = min(GRID, key=lambda ab: sum(_run(makers[name](*ab), tune_items,
                                                       beam)[0]))
    errs: dict[str, list[int]] = {n: [] for n in makers}
    secs: dict[str, list[float]] = {n: [] for n in makers}
    for text, logits in test_items:
        for name in makers:
            e, t = _run(makers[name](*best[name]), [(text, logits)], beam)
            errs[name] += e
            secs[name].append(t)
    return {"level": level, "best": best, "errors": errs, "seconds": secs,
            "words": [len(t.split()) for t, _ in test_items]}


def _run(decoder, items: list[tuple[str, np.ndarray]], beam: int) -> tuple[list[int], float]:
    errs, t0 = [], time.perf_counter()
    for text, logits in items:
        hyp = decoder.decode(logits, beam_width=beam)
        errs.append(errors(text.split(), hyp.split()))
    return errs, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--verses", type=int, default=60)
    p.add_argument("--tune-verses", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beam", type=int, default=16)
    p.add_argument("--levels", default="mid,low,high")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("runs/asr"))
    args = p.parse_args()
    from multiprocessing import get_context

    emit("machine", **machine())
    emit("config", **{k: str(v) for k, v in vars(args).items()})
    args.work.mkdir(parents=True, exist_ok=True)
    splits = split_lines(args.data)
    arpa5 = build_arpa(spoken(splits["train"]), 5, args.work / "train5")
    vocab = sorted({w for line in spoken(splits["train"]) for w in line.split()})
    rng = np.random.default_rng(args.seed)
    test, valid = spoken(splits["test"]), spoken(splits["valid"])
    test_v = [test[i] for i in sorted(rng.choice(len(test), args.verses, replace=False))]
    tune_v = [valid[i] for i in sorted(rng.choice(len(valid), args.tune_verses,
                                                   replace=False))]
    jobs = [(level, args.seed, args.model, arpa5, vocab, tune_v, test_v, args.beam)
            for level in args.levels.split(",")]
    with get_context("fork").Pool(args.jobs) as pool:
        for res in pool.imap(level_task, jobs, chunksize=1):
            _report(res, args.seed)


def _report(res: dict, seed: int) -> None:
    """Print one level's figures."""
    words = np.array(res["words"], dtype=float)
    per = {}
    for name, errs in res["errors"].items():
        e = np.array(errs, dtype=float)
        per[name] = e
        wer, lo, hi = wer_ci(e, words, seed=seed)
        secs = res["seconds"][name]
        emit("ctc", level=res["level"], system=name, alpha=res["best"][name][0],
             beta=res["best"][name][1], wer=wer, ci95=[lo, hi],
             seconds_per_verse=float(np.mean(secs)),
             median_seconds_per_verse=float(np.median(secs)), verses=len(e),
             words=int(words.sum()))
    ratio = np.array(res["seconds"]["pocketlm"]) / np.array(res["seconds"]["kenlm_5gram"])
    emit("ctc_paired", level=res["level"], base="kenlm_5gram", system="pocketlm",
         time_ratio_median=float(np.median(ratio)),
         time_ratio_total=float(sum(res["seconds"]["pocketlm"])
                                / sum(res["seconds"]["kenlm_5gram"])),
         **paired(per["kenlm_5gram"], per["pocketlm"], words, seed=seed))


if __name__ == "__main__":
    main()
