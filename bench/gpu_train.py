"""GPU training benchmark: the pytorch/examples-style baseline, then pocketlm's GPU presets, in
one process.

Runs from an ingest folder only (no ``datasets`` import), as a GPU host allows::

    pocketlm ingest --out runs/kjv/data                 # on any machine with datasets
    python bench/gpu_train.py --data runs/kjv/data      # on the GPU host (about 8 minutes)
    python bench/gpu_train.py --data D --device cpu --smoke   # check the script anywhere

Prints one JSON object per line (``kind``): ``environment``; for each run its ``epoch`` lines
(validation stream perplexity and wall seconds since training started, evaluation included) and
one ``result`` (config, parameters, tokens/s, best valid, test, wall seconds of the whole
``train`` call, seconds until validation first reached each target); ``export`` and ``check``
lines (test perplexity through ONNX) for the large preset; ``done``.

Targets: validation stream perplexity 29.4 within 9 s wall including evaluation;
test stream perplexity <= 19.5 within 5 minutes at <= 25M parameters. The baseline is
pytorch/examples' word_language_model recipe (LSTM 2x650, dropout 0.5, batch 20, bptt 35, SGD
lr 20 divided by 4 when validation stalls, clip 0.25, fp32, untied), 6 epochs.
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
from typing import Any

import torch

from pocketlm.pipeline.config import PRESETS, TrainConfig, preset
from pocketlm.pipeline.device import environment
from pocketlm.pipeline.train import train

BASELINE = TrainConfig.of(cell="lstm", layers=2, embedding_size=650, hidden_size=650, dropout=0.5,
                       input_dropout=0.5, tied=False, batch_size=20, bptt=35, epochs=6,
                       optimizer="sgd", lr=20.0, lr_decay=0.25, clip=0.25, weight_decay=0.0,
                       precision="fp32", log_every=0)

#: (label, preset, overrides): the fast preset, then variants of it around batch size and
#: learning rate (the first to reach the target is the one to keep), then the large preset.
RUNS: list[tuple[str, str, dict[str, Any]]] = [
    ("medium", "medium", {}),
    ("medium b256 lr4e-3", "medium", {"batch_size": 256, "lr": 4e-3}),
    ("medium b64 lr2e-3", "medium", {"batch_size": 64, "lr": 2e-3}),
    ("large", "large", {}),
]
TARGETS = (60.0, 45.0, 35.0, 29.4, 25.0, 21.74, 19.5)


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def run(label: str, config: TrainConfig, data: Path, out: Path) -> dict[str, Any]:
    start = time.perf_counter()
    manifest = train(config, data, out)
    wall = time.perf_counter() - start
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for h in history:
        emit(kind="epoch", label=label, epoch=h["epoch"], valid_ppl=h.get("valid_ppl"),
             elapsed=h["elapsed"], tokens_per_s=h["tokens_per_s"], lr=h["lr"])
    hits = {str(t): next((h["elapsed"] for h in history
                          if h.get("valid_ppl", math.inf) <= t), None) for t in TARGETS}
    m = manifest["metrics"]
    result = dict(kind="result", label=label, config=manifest["config"],
                  parameters=manifest["parameters"], precision=manifest["precision"],
                  tokens_per_s=m["tokens_per_s"], best_valid_ppl=m["valid_ppl"],
                  test_ppl=m["test_ppl"], epochs=m["epochs"], train_seconds=m["train_seconds"],
                  wall_seconds=round(wall, 2), seconds_to_valid_ppl=hits)
    emit(**result)
    return result


def check_export(checkpoint: Path, work: Path, data: Path) -> None:
    """The large preset's weights through ONNX on the CPU give the same test figure."""
    from pocketlm.export.onnx_export import export
    from pocketlm.pipeline.evaluate import evaluate

    t0 = time.perf_counter()
    model_manifest = export(checkpoint, work / "model_large")
    emit(kind="export", seconds=round(time.perf_counter() - t0, 1),
         max_abs_diff=model_manifest["export"]["max_abs_diff"],
         bytes=model_manifest["export"]["bytes"])
    cpu = evaluate(None, data, "test", backend="torch", checkpoint_dir=checkpoint)
    emit(kind="check", what="test ppl torch cpu", perplexity=cpu["perplexity"])
    t0 = time.perf_counter()
    onnx = evaluate(work / "model_large", data, "test", precision="fp32")
    emit(kind="check", what="test ppl onnx fp32", perplexity=onnx["perplexity"],
         seconds=round(time.perf_counter() - t0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="ingest folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps per run, to check the script without a GPU")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX check")
    parser.add_argument("--only", default=None, help="run only labels containing this text")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_train.py needs CUDA (or --device cpu --smoke to check the script)")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    emit(kind="environment", **environment(torch.device(args.device)),
         python=sys.version.split()[0], datasets_imported="datasets" in sys.modules,
         presets={name: PRESETS[name].__dict__ for name in ("medium", "large")})
    smoke = {"max_steps": 5, "epochs": 1} if args.smoke else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs: list[tuple[str, TrainConfig]] = []
        if not args.skip_baseline:
            jobs.append(("baseline pytorch/examples 2x650",
                         TrainConfig.of(**{**BASELINE.to_dict(), "device": args.device, **smoke})))
        for label, name, overrides in RUNS:
            jobs.append((label, preset(name, device=args.device, log_every=0, **overrides,
                                       **smoke)))
        for label, config in jobs:
            if args.only and args.only not in label:
                continue
            out = work / label.replace(" ", "_").replace("/", "_")
            try:
                run(label, config, args.data, out)
                if label == "large" and not args.no_export:
                    check_export(out, work, args.data)
            except Exception as exc:  # report and go on to the next run
                emit(kind="error", label=label, error=repr(exc),
                     trace=traceback.format_exc()[-800:])
    emit(kind="done", datasets_imported="datasets" in sys.modules)


if __name__ == "__main__":
    main()
