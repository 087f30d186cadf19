"""Runtime speed on the KJV test split: scoring vs torch, batched advance, generation latency,
session options, import time and memory. One JSON object per line.

    python bench/runtime_speed.py --run /tmp/bench_run          # `pocketlm run --out DIR`
    python bench/runtime_speed.py --model M --data D --checkpoint C --threads 1,2
    python bench/runtime_speed.py                               # builds a quick model first

Records (each measured in the same run, variants alternated A B A B, medians reported):

* ``score``: ``LanguageModel.score_batch`` (fp32, int8) vs the checkpoint's torch model in eager
  mode, same sentences, batching and tokenisation, per thread count; ``ratio`` lines give
  torch time / onnxruntime time.
* ``session_options``: fp32 score_batch under each onnxruntime graph-optimisation level;
  ``score_batch_size``: fixed batches of 8, 16, 64 sentences vs the runtime's float budget;
  ``iobinding``: one step through ``run`` vs ``run_with_iobinding`` into preallocated outputs.
* ``advance``: ``advance_batch`` over 8 and 64 hypotheses vs ``advance`` one hypothesis at a
  time: ms per hypothesis-token and the speed-up.
* ``generation``: ms per generated token, p50 and p95, for one sample (``stream``) and for 8
  samples batched (``samples(num_samples=8)``: ms per step of the batch and per token).
* ``import``: wall time of ``import pocketlm.runtime`` in a fresh process and its peak RSS;
  ``memory``: peak RSS of a process that opens the model and scores the split.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from common import add_folder_arguments, emit, machine, median, model_folders, percentile  # noqa: E402


def alternate(variants: dict[str, Callable[[], Any]], repeats: int,
              pause: float = 0.1) -> dict[str, list[float]]:
    """Seconds of each variant per round, variants run in turn (A B C A B C ...)."""
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def bench_score(model: Path, ckpt: Path, sentences: list[str], threads: list[int],
                repeats: int, batch_size: int) -> None:
    import torch
    from scoring import TorchScorer

    from pocketlm.runtime import LanguageModel

    onnx = {(p, t): LanguageModel(model, precision=p, threads=t)
            for p in ("fp32", "int8") for t in threads}
    scorer = TorchScorer(ckpt, model / "tokenizer.json")
    tokens = sum(s.tokens for s in onnx["fp32", threads[0]].analyze(sentences))
    variants: dict[str, Callable[[], Any]] = {}
    for t in threads:
        variants[f"onnx_fp32_t{t}"] = (lambda t=t: onnx["fp32", t].score_batch(sentences,
                                                                               batch_size))
        variants[f"onnx_int8_t{t}"] = (lambda t=t: onnx["int8", t].score_batch(sentences,
                                                                               batch_size))

        def run_torch(t: int = t, b: int = batch_size) -> Any:
            torch.set_num_threads(t)
            return scorer.score_batch(sentences, b)
        variants[f"torch_fp32_t{t}"] = run_torch
        # torch at the batch size the runtime's float budget picks for short sentences
        variants[f"torch_fp32_b16_t{t}"] = lambda t=t: run_torch(t, 16)
    times = alternate(variants, repeats)
    for name, ts in times.items():
        emit("score", variant=name, sentences=len(sentences), predicted_tokens=tokens,
             median_s=round(median(ts), 4), sentences_per_s=round(len(sentences) / median(ts), 1),
             tokens_per_s=round(tokens / median(ts), 1), runs_s=[round(x, 4) for x in ts])
    for t in threads:
        tt = median(times[f"torch_fp32_t{t}"])
        best = min(tt, median(times[f"torch_fp32_b16_t{t}"]))
        emit("ratio", threads=t, onnx_fp32_over_torch=round(tt / median(times[f"onnx_fp32_t{t}"]),
                                                             3),
             onnx_int8_over_torch=round(tt / median(times[f"onnx_int8_t{t}"]), 3),
             onnx_fp32_over_best_torch=round(best / median(times[f"onnx_fp32_t{t}"]), 3),
             onnx_int8_over_best_torch=round(best / median(times[f"onnx_int8_t{t}"]), 3),
             meaning="torch time / onnxruntime time (higher: onnxruntime faster); torch at "
                     f"batch {batch_size}, and the faster of batch {batch_size} and 16")
    got = np.asarray(onnx["fp32", threads[0]].score_batch(sentences, batch_size))
    ref = np.asarray(scorer.score_batch(sentences, batch_size))
    emit("agreement", max_abs_diff_sentence_logprob=float(np.max(np.abs(got - ref))))


def bench_session_options(model: Path, sentences: list[str], repeats: int,
                          batch_size: int) -> None:
    import onnxruntime as ort

    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime import graphs as runtime_graphs
    from pocketlm.runtime import scoring as runtime_scoring

    levels = {"disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    original = runtime_graphs.session_options
    lms = {}
    for name, level in levels.items():
        def options(threads: int | None = None, level: Any = level) -> Any:
            o = original(threads)
            o.graph_optimization_level = level
            return o
        runtime_graphs.session_options = options  # type: ignore[assignment]
        try:
            lms[name] = LanguageModel(model, threads=1)
        finally:
            runtime_graphs.session_options = original
    times = alternate({k: (lambda lm=lm: lm.score_batch(sentences, batch_size))
                       for k, lm in lms.items()}, repeats)
    for name, ts in times.items():
        emit("session_options", graph_optimization=name, threads=1, median_s=round(median(ts), 4),
             runs_s=[round(x, 4) for x in ts])
    lm = lms["all"]
    budget = runtime_scoring.BATCH_FLOATS

    def fixed(b: int) -> Callable[[], Any]:
        def go() -> Any:  # exactly b sentences per run: the float budget lifted
            runtime_scoring.BATCH_FLOATS = 1 << 62
            try:
                return lm.score_batch(sentences, b)
            finally:
                runtime_scoring.BATCH_FLOATS = budget
        return go

    variants = {f"batch_{b}": fixed(b) for b in (8, 16, 64)}
    variants["budget"] = lambda: lm.score_batch(sentences, batch_size)
    times = alternate(variants, repeats)
    for name, ts in times.items():
        emit("score_batch_size", batch=name, threads=1, median_s=round(median(ts), 4),
             meaning="batch_N: N sentences per run; budget: the runtime's default cut "
                     f"(at most {batch_size} sentences and BATCH_FLOATS log-probabilities)")


def bench_iobinding(model: Path, repeats: int, steps: int = 500) -> None:
    """One step at batch 1: ``session.run`` (fresh outputs) vs ``run_with_iobinding`` into
    preallocated output arrays."""
    from pocketlm.runtime import LanguageModel, graphs

    lm = LanguageModel(model, threads=1)
    session = lm.core.session(graphs.STEP)
    feeds = {graphs.TOKEN: np.array([5], dtype=np.int64), **lm.initial_state(1)}
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    outputs = [np.empty_like(x) for x in session.run(None, feeds)]   # shapes of one run
    for o, out in zip(session.get_outputs(), outputs):
        binding.bind_output(o.name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)

    def plain() -> None:
        for _ in range(steps):
            session.run(None, feeds)

    def bound() -> None:
        for _ in range(steps):
            session.run_with_iobinding(binding)

    times = alternate({"run": plain, "iobinding": bound}, repeats)
    emit("iobinding", graph="step", batch=1, threads=1,
         run_ms=round(median(times["run"]) / steps * 1e3, 4),
         iobinding_ms=round(median(times["iobinding"]) / steps * 1e3, 4))


def bench_advance(model: Path, steps: int, repeats: int) -> None:
    from pocketlm.runtime import LanguageModel

    lm = LanguageModel(model, threads=1)
    rng = np.random.default_rng(0)
    for rows in (8, 64):
        tokens = rng.integers(2, lm.vocab_size, size=(steps, rows))

        def batched(rows: int = rows, tokens: np.ndarray = tokens) -> None:
            state = lm.begin(rows)
            for t in range(steps):
                _, state = lm.advance_batch(state, tokens[t])

        def one_at_a_time(rows: int = rows, tokens: np.ndarray = tokens) -> None:
            states = [lm.begin() for _ in range(rows)]
            for t in range(steps):
                for r in range(rows):
                    _, states[r] = lm.advance(states[r], int(tokens[t, r]))

        times = alternate({"batched": batched, "one_at_a_time": one_at_a_time}, repeats)
        per = {k: median(v) / (steps * rows) * 1e3 for k, v in times.items()}
        emit("advance", hypotheses=rows, steps=steps, threads=1,
             batched_ms_per_hyp_token=round(per["batched"], 4),
             one_at_a_time_ms_per_hyp_token=round(per["one_at_a_time"], 4),
             speedup=round(per["one_at_a_time"] / per["batched"], 2))


def bench_generation(model: Path, words: int, repeats: int) -> None:
    from pocketlm.runtime import LanguageModel

    for precision in ("fp32", "int8"):
        lm = LanguageModel(model, precision=precision, threads=1)
        single: list[float] = []
        batch_steps: list[float] = []
        for r in range(repeats):
            stream = lm.stream(max_words=words, seed=r, allow_unk=True)
            t0 = time.perf_counter()
            for _ in stream:
                t1 = time.perf_counter()
                single.append(t1 - t0)
                t0 = t1
            # 8 samples: time the batched steps through samples() with a fixed length
            t0 = time.perf_counter()
            out = lm.samples(max_words=words, seed=r, num_samples=8, allow_unk=True)
            made = max(len(g.words) for g in out)
            batch_steps.append((time.perf_counter() - t0) / max(made, 1))
        ms = [x * 1e3 for x in single]
        emit("generation", precision=precision, threads=1, samples=1, tokens=len(ms),
             p50_ms_per_token=round(percentile(ms, 50), 4),
             p95_ms_per_token=round(percentile(ms, 95), 4))
        bs = [x * 1e3 for x in batch_steps]
        emit("generation", precision=precision, threads=1, samples=8, rounds=len(bs),
             p50_ms_per_step=round(percentile(bs, 50), 4),
             p95_ms_per_step=round(percentile(bs, 95), 4),
             p50_ms_per_token=round(percentile(bs, 50) / 8, 4),
             note="one step advances all 8 samples; per token = per step / 8")


#: Peak RSS of this process image (VmHWM: unlike ru_maxrss it is not inherited across exec).
_PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

_IMPORT = _PEAK + """
import time, json, sys
t0 = time.perf_counter()
import pocketlm.runtime
t1 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "peak_rss_mb": peak_mb(), "modules": len(sys.modules)}))
"""

_MEMORY = _PEAK + """
import json, sys
from pocketlm.runtime import LanguageModel
lm = LanguageModel(sys.argv[1], threads=1)
lines = [l.rstrip("\\n") for l in open(sys.argv[2], encoding="utf-8")]
lm.score_batch(lines)
lm.generate(seed=0, num_samples=8)
print(json.dumps({"peak_rss_mb": peak_mb()}))
"""


def bench_import_and_memory(model: Path, sentences: list[str], repeats: int) -> None:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", _IMPORT], capture_output=True, text=True,
                              check=True)
        runs.append(json.loads(proc.stdout))
    emit("import", import_s_median=round(median([r["import_s"] for r in runs]), 4),
         import_s_runs=[round(r["import_s"], 4) for r in runs],
         peak_rss_mb=round(median([r["peak_rss_mb"] for r in runs]), 1),
         modules=runs[0]["modules"])
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(sentences) + "\n")
    try:
        proc = subprocess.run([sys.executable, "-c", _MEMORY, str(model), fh.name],
                              capture_output=True, text=True, check=True)
    finally:
        os.unlink(fh.name)
    emit("memory", what="open the model, score the test split, 8 samples", threads=1,
         **json.loads(proc.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_arguments(parser)
    parser.add_argument("--checkpoint", help="checkpoint folder (default: MODEL/../checkpoint)")
    parser.add_argument("--threads", default="1,2", help="thread counts for scoring, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the variants")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N sentences")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="advance steps per round")
    parser.add_argument("--words", type=int, default=40, help="generated words per round")
    parser.add_argument("--only", default="score,options,advance,generation,import",
                        help="comma-separated parts to run")
    args = parser.parse_args()
    parts = set(args.only.split(","))

    model, data, ckpt, tmp = model_folders(args)
    from scoring import test_sentences

    sentences, matches = test_sentences(data)
    if args.limit:
        sentences = sentences[:args.limit]
    threads = [int(t) for t in args.threads.split(",")]
    emit("machine", **machine("cpu"))
    emit("config", model=str(model), data=str(data), checkpoint=str(ckpt), split="test",
         sentences=len(sentences), sentences_match_test_bin=matches, threads=threads,
         repeats=args.repeats, batch_size=args.batch_size,
         model_config=json.loads((model / "manifest.json").read_text())["model"])
    if "score" in parts:
        bench_score(model, ckpt, sentences, threads, args.repeats, args.batch_size)
    if "options" in parts:
        bench_session_options(model, sentences, args.repeats, args.batch_size)
        bench_iobinding(model, args.repeats)
    if "advance" in parts:
        bench_advance(model, args.steps, args.repeats)
    if "generation" in parts:
        bench_generation(model, args.words, args.repeats)
    if "import" in parts:
        bench_import_and_memory(model, sentences, args.repeats)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
