"""Prefix-shared n-best scoring against scoring each hypothesis whole, on real n-best lists.

    python bench/asr/prefix_speed.py --model runs/kjv/model --work runs/asr --lists 40

The lists are pocketsphinx's distinct n-best lists written by ``run.py`` (``records/*.json``, up
to 500 hypotheses each). On one onnxruntime thread, alternating A B A B (``--repeats``), the
median seconds of:

* ``whole``: ``LanguageModel.score_batch`` of a list's hypotheses (the score graph, padded
  batches: each hypothesis fed from its first word);
* ``prefix``: ``PrefixScorer.score`` (the step graph through the word trie: each distinct prefix
  fed once), checked equal to ``whole`` within 1e-4;
* ``prefix_hidden``: the same with hidden punctuation (what the speech benchmark uses);
* ``steps_unshared``: the same stepping with every hypothesis on a path of its own
  (``PrefixScorer(share=False)``): each hypothesis stepped whole through the state API, so
  ``prefix`` against it is what sharing saves with the same graph.

Tokens/s counts every hypothesis's predicted tokens (words + the end) for all three.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common import emit, machine, median  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="run.py's --work folder")
    p.add_argument("--lists", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.speech.prefix import PrefixScorer
    from pocketlm.runtime.speech.wordstep import DEFAULT_HIDDEN

    emit("machine", **machine())
    files = sorted((args.work / "utts-clean" / "records").glob("*.json"))[:args.lists]
    lists = [[t for t, _ in json.loads(f.read_text())["nbest"]] for f in files]
    lm = LanguageModel(args.model, threads=1)
    prefix, hidden = PrefixScorer(lm), PrefixScorer(lm, DEFAULT_HIDDEN)
    unshared = PrefixScorer(lm, share=False)
    tokens = sum(len(t.split()) + 1 for hyps in lists for t in hyps)
    nodes = unshared_nodes = 0
    worst = 0.0
    for hyps in lists:
        a, b = prefix.score(hyps), lm.score_batch(hyps)
        worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
        nodes += prefix.nodes
        unshared.score(hyps)
        unshared_nodes += unshared.nodes
    times: dict[str, list[float]] = {"whole": [], "prefix": [], "prefix_hidden": [],
                                     "steps_unshared": []}
    runs = {"whole": lm.score_batch, "prefix": prefix.score, "prefix_hidden": hidden.score,
            "steps_unshared": unshared.score}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            for hyps in lists:
                fn(hyps)
            times[name].append(time.perf_counter() - t0)
    rate = {name: tokens / median(t) for name, t in times.items()}
    emit("prefix_speed", lists=len(lists), hypotheses=sum(len(h) for h in lists),
         tokens=tokens, trie_nodes=nodes, unshared_nodes=unshared_nodes, max_abs_diff=worst,
         tokens_per_s=rate, speedup_prefix_vs_whole=rate["prefix"] / rate["whole"],
         speedup_hidden_vs_whole=rate["prefix_hidden"] / rate["whole"],
         speedup_prefix_vs_unshared_steps=rate["prefix"] / rate["steps_unshared"],
         seconds={k: sorted(v) for k, v in times.items()})


if __name__ == "__main__":
    main()
