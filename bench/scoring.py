"""Sentence-scoring throughput on the KJV test split: onnxruntime vs torch eager, on the CPU.

    python bench/scoring.py --run /tmp/bench_run          # folders of `pocketlm run --out DIR`
    python bench/scoring.py --model M --data D --checkpoint C
    python bench/scoring.py                               # no model: builds a quick one (100 steps)

The sentences are the test split's lines, re-read from the corpus with the data folder's split
rule (so scoring includes tokenisation, as an application would do it); their token ids are
checked against ``test.bin``. Both backends use the runtime's convention (zero state, ``<eos>``
as start context, final ``<eos>`` predicted) and the same batching (64 sentences per padded
batch, sorted by length), tokenisation included:

* onnx:  ``LanguageModel.score_batch`` (fp32 and int8), ``threads=1`` and ``threads=all``;
* torch: the checkpoint's ``RNNLM`` in ``inference_mode``, ``torch.set_num_threads(1)`` and all.

Variants are run in turn (A B C ... A B C ...) for ``--repeats`` rounds; medians are reported,
plus onnx/torch ratios of those medians and the largest |onnx - torch| sentence log-probability.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from common import add_folder_arguments, emit, machine, median, model_folders  # noqa: E402


def test_sentences(data_dir: Path) -> tuple[list[str], bool]:
    """The test split's lines as text, and whether they tokenise to exactly ``test.bin``."""
    from tokenizers import Tokenizer

    from pocketlm.pipeline.ingest import IngestConfig, load_split
    from pocketlm.runtime import EOS_ID, read_manifest

    dm = read_manifest(data_dir, "data")
    lines = list(IngestConfig.from_manifest(dm["config"]).corpus().split_lines("test"))
    tok = Tokenizer.from_file(str(data_dir / dm["tokenizer"]))
    ids = [i for enc in tok.encode_batch(lines) for i in (*enc.ids, EOS_ID)]
    stream = np.asarray(load_split(data_dir, "test", dm), dtype=np.int64)
    return lines, bool(len(ids) == len(stream) and np.array_equal(np.asarray(ids), stream))


class TorchScorer:
    """The runtime's sentence convention with the checkpoint's torch model (eager, CPU)."""

    def __init__(self, checkpoint: Path, tokenizer_file: Path) -> None:
        import torch
        from tokenizers import Tokenizer

        from pocketlm.pipeline.checkpoint import load_checkpoint

        self.torch = torch
        self.model, _ = load_checkpoint(checkpoint)
        self.model.eval()
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))

    def score_batch(self, sentences: list[str], batch_size: int = 64) -> list[float]:
        torch = self.torch
        from pocketlm.runtime import EOS_ID

        id_lists = [enc.ids for enc in self.tokenizer.encode_batch(sentences)]
        out = [0.0] * len(id_lists)
        order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                lengths = torch.tensor([len(id_lists[i]) + 1 for i in chunk])
                targets = torch.full((len(chunk), int(lengths.max())), EOS_ID, dtype=torch.long)
                for row, i in enumerate(chunk):
                    targets[row, :len(id_lists[i])] = torch.tensor(id_lists[i], dtype=torch.long)
                inputs = torch.cat([torch.full_like(targets[:, :1], EOS_ID), targets[:, :-1]], 1)
                logits, _ = self.model(inputs)
                logprobs = torch.log_softmax(logits, -1).gather(2, targets.unsqueeze(2))[..., 0]
                mask = torch.arange(targets.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
                sums = (logprobs * mask).double().sum(1).tolist()
                for row, i in enumerate(chunk):
                    out[i] = sums[row]
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_arguments(parser)
    parser.add_argument("--checkpoint", help="checkpoint folder (default: MODEL/../checkpoint)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over all variants")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N sentences")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of idle between variants, so that one variant's spinning "
                             "worker threads do not compete with the next")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from pocketlm.runtime import LanguageModel

    model, data, ckpt, tmp = model_folders(args)

    all_threads = os.cpu_count() or 1
    sentences, matches = test_sentences(data)
    if args.limit:
        sentences = sentences[:args.limit]
    emit("machine", **machine("cpu"))

    onnx = {(p, t): LanguageModel(model, precision=p, threads=t)
            for p in ("fp32", "int8") for t in (1, all_threads)}
    torch_scorer = TorchScorer(ckpt, model / "tokenizer.json")
    n_tokens = sum(s.tokens for s in onnx["fp32", 1].analyze(sentences))
    emit("config", model=str(model), data=str(data), checkpoint=str(ckpt),
         model_config=onnx["fp32", 1].manifest["model"], split="test",
         sentences=len(sentences), predicted_tokens=n_tokens,
         sentences_match_test_bin=matches, batch_size=args.batch_size, repeats=args.repeats,
         pause_s=args.pause,
         threads=[1, all_threads], onnxruntime=ort.__version__, torch=torch.__version__)

    def onnx_run(p: str, t: int) -> Callable[[], list[float]]:
        return lambda: onnx[p, t].score_batch(sentences, args.batch_size)

    def torch_run(t: int) -> Callable[[], list[float]]:
        def go() -> list[float]:
            torch.set_num_threads(t)
            return torch_scorer.score_batch(sentences, args.batch_size)
        return go

    variants: dict[str, Callable[[], list[float]]] = {}
    for t in (1, all_threads):
        variants[f"onnx_fp32_t{t}"] = onnx_run("fp32", t)
        variants[f"onnx_int8_t{t}"] = onnx_run("int8", t)
        variants[f"torch_fp32_t{t}"] = torch_run(t)

    results: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():            # warm-up (sessions, allocators, thread pools)
        fn()
    for _ in range(args.repeats):
        for name, fn in variants.items():   # A B C ... A B C ...
            time.sleep(args.pause)
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)

    figures: dict[str, Any] = {}
    for name, ts in times.items():
        sec = median(ts)
        figures[name] = {"median_s": round(sec, 4),
                         "sentences_per_s": round(len(sentences) / sec, 1),
                         "tokens_per_s": round(n_tokens / sec, 1),
                         "runs_s": [round(x, 4) for x in ts]}
        emit("throughput", variant=name, **figures[name])
    for t in (1, all_threads):
        tt = median(times[f"torch_fp32_t{t}"])
        emit("ratio", threads=t,
             onnx_fp32_over_torch=round(tt / median(times[f"onnx_fp32_t{t}"]), 3),
             onnx_int8_over_torch=round(tt / median(times[f"onnx_int8_t{t}"]), 3),
             int8_over_fp32=round(median(times[f"onnx_fp32_t{t}"])
                                  / median(times[f"onnx_int8_t{t}"]), 3),
             meaning="speed ratio (higher: the first is faster), from medians of the same run")
    ref = np.asarray(results["torch_fp32_t1"])
    for name in ("onnx_fp32_t1", "onnx_int8_t1"):
        got = np.asarray(results[name])
        emit("agreement", variant=name, versus="torch_fp32",
             max_abs_diff_sentence_logprob=float(np.max(np.abs(got - ref))),
             total_logprob=float(got.sum()), torch_total_logprob=float(ref.sum()),
             abs_diff_total=float(abs(got.sum() - ref.sum())))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
