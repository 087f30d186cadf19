"""Generation latency at batch 1, graph sizes and the perplexity cost of int8.

    python bench/generation.py --run /tmp/bench_run       # folders of `pocketlm run --out DIR`
    python bench/generation.py --model M [--data D]
    python bench/generation.py                            # no model: builds a quick one

* latency: ms per generated token through ``LanguageModel.step`` at batch 1 (one step of the
  graph plus picking the next token: greedy argmax, feeding ``<eos>`` on like any token), fp32
  and int8, alternated in blocks over ``--repeats`` rounds; p50 and p95 over all timed tokens.
  Also ms per word of the full ``LanguageModel.generate`` (sampling, temperature 1).
* size: bytes of each graph and the int8/fp32 ratio.
* quality: stream perplexity of the test split (``pocketlm.pipeline.evaluate``), fp32 vs int8.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from common import (add_folder_arguments, emit, machine, median, percentile,  # noqa: E402
                    quick_run, run_folders)


def step_latencies(lm, tokens: int, warmup: int = 20) -> list[float]:
    """Seconds of each (step + argmax) at batch 1, ``tokens`` of them after ``warmup``."""
    state = lm.initial_state(1)
    token = lm.eos_id
    out = []
    for i in range(warmup + tokens):
        t0 = time.perf_counter()
        logprobs, state = lm.step([token], state)
        token = int(np.argmax(logprobs[0]))
        dt = time.perf_counter() - t0
        if i >= warmup:
            out.append(dt)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_arguments(parser)
    parser.add_argument("--tokens", type=int, default=500, help="timed tokens per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of fp32, int8")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--no-ppl", action="store_true", help="skip the perplexity comparison")
    args = parser.parse_args()

    from pocketlm.runtime import LanguageModel

    logging.getLogger("pocketlm").setLevel(logging.WARNING)
    tmp = None
    model, data, _ = run_folders(args.run, args.model, args.data, None)
    if model is None:
        tmp = tempfile.TemporaryDirectory(prefix="pocketlm-bench-")
        model, data, _ = quick_run(Path(tmp.name))

    emit("machine", **machine())
    lms = {p: LanguageModel(model, precision=p, threads=args.threads) for p in ("fp32", "int8")}
    emit("config", model=str(model), model_config=lms["fp32"].manifest["model"],
         batch=1, tokens_per_round=args.tokens, repeats=args.repeats, threads=args.threads)

    lat: dict[str, list[float]] = {p: [] for p in lms}
    rounds: dict[str, list[float]] = {p: [] for p in lms}
    gen: dict[str, list[float]] = {p: [] for p in lms}
    for r in range(args.repeats):
        for p, lm in lms.items():                   # A B A B ...
            ts = step_latencies(lm, args.tokens)
            lat[p] += ts
            rounds[p].append(percentile(ts, 50))
            t0, words = time.perf_counter(), 0
            for k in range(5):
                words += len(lm.generate(max_words=40, seed=r * 10 + k).split()) + 1
            gen[p].append((time.perf_counter() - t0) / words)
    for p in lms:
        ms = [t * 1e3 for t in lat[p]]
        emit("latency", precision=p, threads=args.threads, tokens=len(ms),
             p50_ms=round(percentile(ms, 50), 4), p95_ms=round(percentile(ms, 95), 4),
             mean_ms=round(float(np.mean(ms)), 4),
             p50_ms_per_round=[round(x * 1e3, 4) for x in rounds[p]],
             generate_ms_per_word_median=round(median(gen[p]) * 1e3, 4))
    p50 = {p: percentile(lat[p], 50) for p in lms}
    emit("latency_ratio", fp32_p50_over_int8_p50=round(p50["fp32"] / p50["int8"], 3))

    sizes = lms["fp32"].manifest["export"]["bytes"]
    files = lms["fp32"].manifest["graphs"]
    for g in ("score", "step"):
        fp32 = sizes[files[g]["files"]["fp32"]]
        int8 = sizes.get(files[g]["files"].get("int8", ""), None)
        emit("size", graph=g, fp32_bytes=fp32, int8_bytes=int8,
             int8_over_fp32=None if int8 is None else round(int8 / fp32, 3))

    if not args.no_ppl and data is not None:
        from pocketlm.pipeline.evaluate import evaluate

        res = {}
        for p in ("fp32", "int8"):
            t0 = time.perf_counter()
            res[p] = evaluate(model, data, "test", "onnx", precision=p, threads=args.threads)
            res[p]["seconds"] = round(time.perf_counter() - t0, 2)
        emit("perplexity", split="test", batch=10, fp32=res["fp32"]["perplexity"],
             int8=res["int8"]["perplexity"],
             int8_minus_fp32=res["int8"]["perplexity"] - res["fp32"]["perplexity"],
             relative_change=res["int8"]["perplexity"] / res["fp32"]["perplexity"] - 1,
             predicted_tokens=res["fp32"]["tokens"],
             seconds={p: res[p]["seconds"] for p in res})
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
