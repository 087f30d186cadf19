"""The `pocketlm run` model against the 5-gram it replaces, on the default KJV split (CPU).

    python bench/vs_ngram.py                    # runs `pocketlm run --out runs/vs_ngram` (timed)
    python bench/vs_ngram.py --run runs/kjv     # measure an existing `pocketlm run` folder

Figures, each printed beside the 5-gram's (KenLM modified Kneser-Ney, measured on the same split;
see /BENCHMARKS in docs/stages.md):

* ``sentence_ppl``: test split, one verse at a time with the runtime convention (zero state,
  ``<eos>`` as start context, final ``<eos>`` predicted), exp(total nats / predicted tokens);
* ``ranking``: held-out (test) verses against corrupted copies — two words swapped, or one word
  replaced by a random vocabulary word — the share of pairs where the verse scores higher
  (``--pairs`` verses, each with both corruptions; ties count as wrong);
* ``tokens_per_s``: the test split's sentences scored on one thread (``LanguageModel(...,
  threads=1).score_batch``, tokenisation included), fp32 and int8, median of ``--repeats``;
* ``int8_vs_fp32``: over every predicted token of the test split, the largest and mean
  |int8 − fp32| log-probability, and the sentence perplexity change int8/fp32 − 1.

Prints one JSON line per figure group (``record``: machine, run, quality, int8_vs_fp32, speed,
summary); every line carries ``cpu`` (the CPU's kind and AVX2/AVX-512/VNNI/bf16/AMX flags,
``bench/common.py:cpu_flags``), on which speed and, for saturating int8 kernels, results depend.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from common import cpu_flags, emit, machine, median  # noqa: E402

#: KenLM 5-gram (modified Kneser-Ney) on the same split, from BENCHMARKS.md.
NGRAM = {"sentence_ppl": 37.05, "ranking": 0.936, "tokens_per_s": 4_000_000}
#: What the `pocketlm run` model must reach on the 2-core machine.
TARGETS = {"sentence_ppl": 29.6, "ranking": 0.95, "tokens_per_s_int8": 150_000,
           "tokens_per_s_fp32": 80_000, "run_seconds": 300}


def test_verses(data_dir: Path) -> list[list[int]]:
    """The test split's lines as token-id lists (without the ``<eos>`` markers)."""
    from pocketlm.runtime import EOS_ID, read_manifest

    info = read_manifest(data_dir, "data")["splits"]["test"]
    ids = np.fromfile(data_dir / info["file"], dtype=info["dtype"]).astype(np.int64)
    cuts = np.flatnonzero(ids == EOS_ID)
    out, begin = [], 0
    for end in cuts:
        out.append(ids[begin:end].tolist())
        begin = end + 1
    return out


def sentence_ppl(lm: Any, verses: list[list[int]]) -> float:
    """Sentence perplexity of ``verses`` (token-id lists) under a ``LanguageModel``: each verse
    typed as its words (``<unk>`` stays ``<unk>``) and scored alone, exp(total nats / predicted
    tokens, the final ``<eos>`` included)."""
    words = lm.tokenizer.id_to_token
    nats = -float(np.sum(lm.score_batch([" ".join(words(i) for i in v) for v in verses])))
    return float(np.exp(nats / sum(len(v) + 1 for v in verses)))


def corrupt(verses: list[list[int]], pairs: int, vocab: int, seed: int
            ) -> list[tuple[list[int], list[int], str]]:
    """(original, corrupted, kind) for ``pairs`` verses of at least 3 words, each with a swap of
    two different words and a one-word replacement."""
    rng = np.random.default_rng(seed)
    usable = [v for v in verses if len(v) >= 3 and len(set(v)) >= 2]
    chosen = rng.choice(len(usable), size=min(pairs, len(usable)), replace=False)
    out = []
    for i in chosen:
        verse = usable[int(i)]
        while True:
            a, b = rng.choice(len(verse), size=2, replace=False)
            if verse[a] != verse[b]:
                break
        swapped = list(verse)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        out.append((verse, swapped, "swap"))
        pos = int(rng.integers(len(verse)))
        word = verse[pos]
        while word == verse[pos]:
            word = int(rng.integers(2, vocab))
        replaced = list(verse)
        replaced[pos] = word
        out.append((verse, replaced, "replace"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None,
                        help="an existing `pocketlm run --out DIR` folder (default: run it now)")
    parser.add_argument("--out", type=Path, default=Path("runs/vs_ngram"),
                        help="where to run `pocketlm run` when --run is not given")
    parser.add_argument("--pairs", type=int, default=500, help="verses to corrupt (x2 pairs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cpu = cpu_flags()
    emit("machine", **machine())

    def figure(record: str, **fields: object) -> None:  # every figure beside the CPU's flags
        emit(record, cpu=cpu, **fields)

    run_seconds = None
    folder = args.run
    if folder is None:
        folder = args.out
        command = [sys.executable, "-m", "pocketlm.stages.cli", "run", "--out", str(folder),
                   "--overwrite"]
        t0 = time.perf_counter()
        subprocess.run(command, check=True, stdout=sys.stderr)  # keep stdout JSON lines only
        run_seconds = time.perf_counter() - t0
        figure("run", command=" ".join(["pocketlm", *command[3:]]), seconds=round(run_seconds, 1))

    from pocketlm.runtime import LanguageModel, read_manifest

    model_dir, data_dir = folder / "model", folder / "data"
    manifest = read_manifest(model_dir, "model")
    from tokenizers import Tokenizer

    verses = test_verses(data_dir)
    tok = Tokenizer.from_file(str(model_dir / manifest["tokenizer"]))

    def text(ids: list[int]) -> str:     # what a user would type; <unk> stays <unk>
        return " ".join(tok.id_to_token(i) for i in ids)

    quality = {}
    for precision in manifest["graphs"]["score"]["files"]:
        lm = LanguageModel(model_dir, precision=precision, threads=1)
        pairs = corrupt(verses, args.pairs, lm.vocab_size, args.seed)
        scores = lm.score_batch([text(p[0]) for p in pairs] + [text(p[1]) for p in pairs])
        good = np.array([scores[i] > scores[i + len(pairs)] for i in range(len(pairs))])
        kinds = np.array([p[2] for p in pairs])
        quality[precision] = {
            "sentence_ppl": round(sentence_ppl(lm, verses), 3),
            "ranking": round(float(good.mean()), 4),
            "ranking_swap": round(float(good[kinds == "swap"].mean()), 4),
            "ranking_replace": round(float(good[kinds == "replace"].mean()), 4),
            "pairs": len(pairs), "verses": len(verses),
            "tokens": sum(len(v) + 1 for v in verses)}
        figure("quality", precision=precision, **quality[precision])
    if "int8" in quality:  # token by token over the same verses
        per_token = {}
        for p in ("fp32", "int8"):
            lm = LanguageModel(model_dir, precision=p, threads=1)
            per_token[p] = np.concatenate([[w.logprob for w in lm.full_scores(text(v))]
                                           for v in verses])
        delta = np.abs(per_token["int8"] - per_token["fp32"])
        change = float(np.exp(np.mean(per_token["fp32"]) - np.mean(per_token["int8"])) - 1)
        figure("int8_vs_fp32", tokens=int(delta.size), max_abs_logprob=round(float(delta.max()), 5),
               mean_abs_logprob=round(float(delta.mean()), 6),
               p999_abs_logprob=round(float(np.quantile(delta, 0.999)), 5),
               sentence_ppl_change=round(change, 6))

    lines = [text(v) for v in verses]
    count = sum(len(tok.encode(line).ids) + 1 for line in lines)
    speed = {}
    sessions = {p: LanguageModel(model_dir, precision=p, threads=1)
                for p in manifest["graphs"]["score"]["files"]}
    times: dict[str, list[float]] = {p: [] for p in sessions}
    for _ in range(args.repeats):                       # alternate: fp32 int8 fp32 int8 ...
        for p, model in sessions.items():
            t0 = time.perf_counter()
            model.score_batch(lines)
            times[p].append(time.perf_counter() - t0)
    for p in sessions:
        speed[p] = round(count / median(times[p]))
        figure("speed", precision=p, threads=1, tokens=count, seconds=round(median(times[p]), 3),
             tokens_per_s=speed[p])

    best = quality.get("int8", quality["fp32"])
    figure("summary", model=str(model_dir),
         model_config={k: manifest["model"].get(k) for k in
                       ("cell", "layers", "embedding_size", "hidden_size", "output", "cutoffs")},
         pocketlm={"sentence_ppl_fp32": quality["fp32"]["sentence_ppl"],
                   "sentence_ppl_int8": quality.get("int8", {}).get("sentence_ppl"),
                   "ranking_fp32": quality["fp32"]["ranking"], "ranking_int8": best["ranking"],
                   "tokens_per_s_fp32": speed.get("fp32"), "tokens_per_s_int8": speed.get("int8"),
                   "run_seconds": None if run_seconds is None else round(run_seconds, 1)},
         ngram_5gram=NGRAM, targets=TARGETS)


if __name__ == "__main__":
    main()
