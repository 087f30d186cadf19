"""Do the int8 step and score graphs of a model folder agree, and how far is int8 from fp32?

For each ``--model`` folder (e.g. one exported before and one after a change to export):

* ``agreement``: on ``--verses`` test verses (evenly spaced over the test split), each verse fed
  token by token with ``LanguageModel.advance`` (+ ``end``, the step graph) against the score
  graph: per token against ``full_scores`` (the verse alone), per sentence against ``score``
  (alone) and ``score_batch`` (batches of 64, as a reranker calls it). The largest |Δ| in nats,
  per token and per sentence, for int8 and, as the floor, fp32.
* ``quality``: sentence perplexity of the whole test split, fp32 and int8 (bench/vs_ngram.py's
  ``sentence_ppl``), and the int8 / fp32 bytes of the two graphs plus their shared weights.
* ``step_latency``: microseconds per run of each step graph alone (batch 1, one thread),
  the best of ``--repeats`` rounds that visit every folder and precision in turn (``advance_us``
  in ``agreement`` adds the runtime's Python around it, timed once).

Usage: ``python bench/int8_agreement.py --data RUN/data --model RUN/model [--model OTHER]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_flags, emit, machine  # noqa: E402
from vs_ngram import sentence_ppl, test_verses  # noqa: E402


def agreement(lm: Any, verses: list[list[int]]) -> dict[str, Any]:
    """Largest |advance - score| per token and per sentence over ``verses`` (token ids)."""
    words = lm.tokenizer.id_to_token
    texts = [" ".join(words(i) for i in v) for v in verses]
    batch = lm.score_batch(texts)
    token_worst = sentence_alone = sentence_batch = 0.0
    seconds, steps = 0.0, 0
    for verse, text, batched in zip(verses, texts, batch):
        state = lm.begin()
        stepped = []
        t0 = time.perf_counter()
        for token in verse:
            logprob, state = lm.advance(state, int(token))
            stepped.append(logprob)
        stepped.append(lm.end(state))
        seconds += time.perf_counter() - t0
        steps += len(verse)
        scored = np.array([w.logprob for w in lm.full_scores(text)])
        token_worst = max(token_worst, float(np.abs(np.array(stepped) - scored).max()))
        sentence_alone = max(sentence_alone, abs(sum(stepped) - lm.score(text)))
        sentence_batch = max(sentence_batch, abs(sum(stepped) - float(batched)))
    return {"max_token_nats": token_worst, "max_sentence_nats_vs_score": sentence_alone,
            "max_sentence_nats_vs_score_batch": sentence_batch,
            "advance_us": round(1e6 * seconds / steps, 1)}


def step_latency(folders: list[Path], repeats: int, calls: int = 300) -> None:
    """Emit the best microseconds per step-graph run of each folder and precision."""
    from pocketlm.runtime import LanguageModel, graphs

    sessions, feeds = {}, {}
    for folder in folders:
        lm = LanguageModel(folder)
        for precision, file in lm.manifest["graphs"][graphs.STEP]["files"].items():
            sessions[str(folder), precision] = graphs.open_session(folder / file, threads=1)
            feeds[str(folder), precision] = {graphs.TOKEN: np.array([lm.eos_id]), **{
                s["input"]: np.zeros([1 if d == graphs.BATCH else d for d in s["shape"]],
                                     np.float32) for s in lm.manifest["state"]}}
    best = dict.fromkeys(sessions, float("inf"))
    for _ in range(repeats):
        for key, session in sessions.items():
            for _ in range(20):
                session.run(None, feeds[key])
            t0 = time.perf_counter()
            for _ in range(calls):
                session.run(None, feeds[key])
            best[key] = min(best[key], 1e6 * (time.perf_counter() - t0) / calls)
    for (folder, precision), us in best.items():
        emit("step_latency", cpu=cpu_flags(), model=folder, precision=precision,
             us_per_step=round(us, 1), repeats=repeats, calls=calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append", required=True,
                        help="a model folder (repeat to compare several exports)")
    parser.add_argument("--data", type=Path, required=True, help="the run's data folder")
    parser.add_argument("--verses", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from pocketlm.runtime import LanguageModel

    cpu = cpu_flags()
    emit("machine", **machine())
    every = test_verses(args.data)
    every = [v for v in every if v]
    picks = np.linspace(0, len(every) - 1, args.verses).round().astype(int)
    verses = [every[i] for i in picks]
    for folder in args.model:
        lms = {p: LanguageModel(folder, precision=p, threads=1) for p in ("fp32", "int8")}
        export = lms["fp32"].manifest["export"]
        shared = export["shared_weights"]
        for precision, lm in lms.items():
            emit("agreement", cpu=cpu, model=str(folder), precision=precision,
                 verses=len(verses), tokens=sum(len(v) + 1 for v in verses),
                 **agreement(lm, verses))
        ppl, speed = {}, {}
        for p, lm in lms.items():
            t0 = time.perf_counter()
            ppl[p] = sentence_ppl(lm, every)
            speed[f"scoring_tokens_per_s_{p}"] = round(
                sum(len(v) + 1 for v in every) / (time.perf_counter() - t0))
        emit("quality", cpu=cpu, model=str(folder), verses=len(every),
             sentence_ppl_fp32=round(ppl["fp32"], 3), sentence_ppl_int8=round(ppl["int8"], 3),
             int8_over_fp32=round(ppl["int8"] / ppl["fp32"] - 1, 5), **speed,
             bytes_fp32=shared["fp32"]["after"], bytes_int8=shared["int8"]["after"],
             bytes_ratio=round(shared["int8"]["after"] / shared["fp32"]["after"], 4),
             int8_activations=export.get("int8_activations"))
    step_latency(args.model, args.repeats)


if __name__ == "__main__":
    main()
