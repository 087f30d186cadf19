"""CPU training of a 2x200 LSTM: pocketlm's recipe against pytorch/examples', same wall time.

    python bench/cpu_train.py --data runs/kjv/data                 # 240 s each (2 x 4 minutes)
    python bench/cpu_train.py --data D --seconds 60 --threads 1    # shorter, one thread

Both runs get the same training budget: a short calibration (``--calibrate`` steps) measures the
seconds per step, and the run is then cut to the steps that fit ``--seconds`` (evaluation not
counted). Prints JSON lines: ``machine``; per run one ``epoch`` line per evaluation and one
``result`` (tokens/s over the training steps, validation stream perplexity of the last epoch,
training seconds); then ``summary`` with the throughput ratio.

* baseline: pytorch/examples word_language_model defaults for this size: LSTM 2x200, dropout
  0.2, untied, full softmax, batch 20, bptt 35, SGD lr 20 (divided by 4 when validation stalls),
  clip 0.25, state carried over the stream, fp32 (pytorch/examples has no autocast).
* pocketlm: the ``small`` preset (LSTM 2x200, adaptive softmax, AdamW, cosine schedule over the
  steps that fit, batch 64, ``precision auto``: bf16 on CPUs with hardware bf16), cut to the
  same seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine  # noqa: E402

BASELINE = dict(cell="lstm", layers=2, embedding_size=200, hidden_size=200, dropout=0.2,
                input_dropout=0.2, tied=False, output="full", cutoffs=(), batch_size=20, bptt=35,
                optimizer="sgd", lr=20.0, lr_decay=0.25, clip=0.25, weight_decay=0.0,
                schedule="plateau", warmup=0, windows="stream", vary_bptt=False, ema=0.0,
                embed_dropout=0.0, weight_dropout=0.0, ar=0.0, precision="fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="ingest folder (KJV)")
    parser.add_argument("--seconds", type=float, default=240.0, help="training budget per run")
    parser.add_argument("--calibrate", type=int, default=30, help="steps timed to size the run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()

    import torch

    from pocketlm.pipeline.config import preset
    from pocketlm.pipeline.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    logging_off()
    emit("machine", **machine("cpu"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("baseline", "pocketlm"):
            config = preset("small", device="cpu", log_every=0, epochs=100,
                            **(BASELINE if label == "baseline" else {}))
            probe = dataclasses.replace(config, max_steps=args.calibrate, epochs=1)
            m = train(probe, args.data, Path(tmp) / f"{label}_probe")["metrics"]
            per_step = m["train_seconds"] / m["steps"]
            steps = max(1, int(args.seconds / per_step))
            config = dataclasses.replace(config, max_steps=steps)
            emit("config", label=label, steps=steps, seconds_per_step=round(per_step, 4),
                 config=dataclasses.asdict(config))
            started = time.perf_counter()
            out = Path(tmp) / label
            manifest = train(config, args.data, out)
            wall = time.perf_counter() - started
            for line in (out / "metrics.jsonl").read_text().splitlines():
                h = json.loads(line)
                emit("epoch", label=label, epoch=h["epoch"], valid_ppl=h.get("valid_ppl"),
                     seconds=h["seconds"], tokens_per_s=h["tokens_per_s"])
            last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
            m = manifest["metrics"]
            results[label] = dict(tokens_per_s=m["tokens_per_s"], train_seconds=m["train_seconds"],
                                  valid_ppl_last=last.get("valid_ppl"),
                                  valid_ppl_best=m["valid_ppl"], steps=m["steps"],
                                  wall_seconds=round(wall, 1))
            emit("result", label=label, **results[label])
    emit("summary", threads=torch.get_num_threads(), budget_seconds=args.seconds,
         throughput_ratio=round(results["pocketlm"]["tokens_per_s"]
                                / results["baseline"]["tokens_per_s"], 2),
         valid_ppl_baseline=results["baseline"]["valid_ppl_best"],
         valid_ppl_pocketlm=results["pocketlm"]["valid_ppl_best"],
         target="pocketlm tokens/s >= 3x baseline (8K tokens/s on 2 cores) at equal or better "
                "validation perplexity after the same seconds")


def logging_off() -> None:
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("pocketlm").setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
