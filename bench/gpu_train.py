"""GPU training benchmark: throughput per configuration, then time to quality.

Runs from an ingest folder only (no ``datasets`` import), as a GPU host allows::

    pocketlm ingest --out runs/kjv/data                 # on any machine with datasets
    python bench/gpu_train.py --data runs/kjv/data      # on the GPU host

Prints one JSON object per line: the environment, then one line per throughput configuration
(tokens/s over a partial epoch, evaluation excluded; the pytorch/examples-style baseline runs in
the same process), then the time-to-quality run (validation perplexity per epoch with wall
seconds since training started), test perplexity from torch on CPU and CUDA and from the exported
ONNX graphs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from pocketlm.pipeline.train import TrainConfig, environment, preset, train

#: (label, config overrides). The first is the pytorch/examples word_language_model recipe.
THROUGHPUT = [
    ("baseline lstm 2x650 b20 fp32 sgd", dict(cell="lstm", layers=2, embedding_size=650,
                                              hidden_size=650, dropout=0.5, tied=False,
                                              batch_size=20, optimizer="sgd", lr=20.0,
                                              precision="fp32")),
    ("lstm 2x650 b20 bf16", dict(batch_size=20)),
    ("lstm 2x650 b64 bf16", dict(batch_size=64)),
    ("lstm 2x650 b256 bf16", dict(batch_size=256)),
    ("gru 2x650 b256 bf16", dict(cell="gru", batch_size=256)),
    ("rnn_tanh 2x650 b256 bf16", dict(cell="rnn_tanh", batch_size=256)),
]


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def throughput(data: Path, work: Path, steps: int) -> None:
    for label, overrides in THROUGHPUT:
        try:
            base = dict(overrides)
            config = (TrainConfig(**base, epochs=1, max_steps=steps, log_every=0)
                      if "optimizer" in base else
                      preset("medium", **base, epochs=1, max_steps=steps, log_every=0))
            manifest = train(config, data, work / label.replace(" ", "_"))
            m = manifest["metrics"]
            emit(kind="throughput", label=label, steps=m["steps"], tokens_per_s=m["tokens_per_s"],
                 seconds=m["train_seconds"], precision=manifest["precision"],
                 batch=config.batch_size, bptt=config.bptt, cell=config.cell)
        except Exception as exc:  # report and go on to the next configuration
            emit(kind="error", label=label, error=repr(exc), trace=traceback.format_exc()[-800:])


def quality(data: Path, work: Path, name: str, epochs: int) -> None:
    config = preset(name, epochs=epochs, log_every=0)
    out = work / f"quality_{name}"
    start = time.perf_counter()
    manifest = train(config, data, out)
    wall = time.perf_counter() - start
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for h in history:
        emit(kind="epoch", preset=name, epoch=h["epoch"], valid_ppl=h.get("valid_ppl"),
             elapsed=h["elapsed"], tokens_per_s=h["tokens_per_s"])
    targets = {}
    for target in (60, 45, 35, 30):
        hit = next((h["elapsed"] for h in history if h.get("valid_ppl", math.inf) <= target), None)
        targets[str(target)] = hit
    emit(kind="quality", preset=name, config=manifest["config"], wall_seconds=round(wall, 1),
         best_valid_ppl=manifest["metrics"]["valid_ppl"], test_ppl=manifest["metrics"]["test_ppl"],
         seconds_to_valid_ppl=targets)
    # The same weights on CPU and through ONNX must give the same test figure.
    from pocketlm.pipeline.evaluate import evaluate

    cpu = evaluate(None, data, "test", backend="torch", checkpoint_dir=out)
    emit(kind="check", what="test ppl torch cpu", perplexity=cpu["perplexity"])
    from pocketlm.export import export

    t0 = time.perf_counter()
    model_manifest = export(out, work / f"model_{name}")
    emit(kind="export", seconds=round(time.perf_counter() - t0, 1),
         max_abs_diff=model_manifest["export"]["max_abs_diff"],
         bytes=model_manifest["export"]["bytes"])
    for precision in ("fp32", "int8"):
        t0 = time.perf_counter()
        onnx = evaluate(work / f"model_{name}", data, "test", precision=precision)
        emit(kind="check", what=f"test ppl onnx {precision}", perplexity=onnx["perplexity"],
             seconds=round(time.perf_counter() - t0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="ingest folder")
    parser.add_argument("--steps", type=int, default=300, help="steps per throughput run")
    parser.add_argument("--preset", default="medium", help="preset for the quality run")
    parser.add_argument("--epochs", type=int, default=15, help="epochs for the quality run")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_train.py needs CUDA")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    emit(kind="environment", **environment(torch.device("cuda")), python=sys.version.split()[0],
         datasets_imported="datasets" in sys.modules)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            throughput(args.data, work, args.steps)
        quality(args.data, work, args.preset, args.epochs)
    emit(kind="done", datasets_imported="datasets" in sys.modules)


if __name__ == "__main__":
    main()
