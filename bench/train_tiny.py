"""Ingest the embedded KJV, train the `tiny` preset, report time and stream perplexity.

    python bench/train_tiny.py                    # 1 epoch, --device auto, in a temp folder
    python bench/train_tiny.py --max-steps 50     # quick run
    python bench/train_tiny.py --device cuda --out /tmp/tiny   # keep data/ and checkpoint/

Prints JSON lines: machine, config, ingest (wall seconds, tokens, peak RSS), train (wall seconds
of the stage, training-only seconds, tokens/s, valid and test stream perplexity).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import emit, machine  # noqa: E402


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for data/ and checkpoint/ (default: a temp folder)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: all)")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()

    import torch

    from pocketlm.pipeline.ingest import IngestConfig, ingest
    from pocketlm.pipeline.config import preset
    from pocketlm.pipeline.device import resolve_device
    from pocketlm.pipeline.train import train

    logging.getLogger("pocketlm").setLevel(logging.WARNING)
    device = resolve_device(args.device)
    config = preset(args.preset, epochs=args.epochs, max_steps=args.max_steps,
                    device=str(device), precision=args.precision, log_every=0)
    emit("machine", **machine(str(device)))
    emit("config", preset=args.preset, cell=config.model.cell, layers=config.model.layers,
         embedding_size=config.model.embedding_size, hidden_size=config.model.hidden_size,
         batch_size=config.batch_size, bptt=config.bptt, epochs=config.epochs,
         max_steps=config.max_steps, optimizer=config.optimizer, lr=config.lr,
         device=str(device), precision=args.precision, torch_threads=torch.get_num_threads())

    with tempfile.TemporaryDirectory(prefix="pocketlm-bench-") as tmp:
        root = args.out or Path(tmp)
        data, ckpt = root / "data", root / "checkpoint"

        t0 = time.perf_counter()
        dm = ingest(IngestConfig(), data, overwrite=True)
        ingest_s = time.perf_counter() - t0
        splits = dm["splits"]
        emit("ingest", corpus="kjv", seconds=round(ingest_s, 3),
             peak_rss_mb_so_far=round(_peak_rss_mb(), 1), vocab_size=dm["vocab_size"],
             tokens={s: v["tokens"] for s, v in splits.items()},
             tokens_per_s=round(sum(v["tokens"] for v in splits.values()) / ingest_s, 1))

        t0 = time.perf_counter()
        cm = train(config, data, ckpt, overwrite=True)
        wall = time.perf_counter() - t0
        m = cm["metrics"]
        emit("train", wall_seconds=round(wall, 3), train_seconds=m["train_seconds"],
             tokens_per_s=m["tokens_per_s"], steps=m["steps"], epochs=m["epochs"],
             valid_ppl=m["valid_ppl"], test_ppl=m["test_ppl"], parameters=cm["parameters"],
             precision=cm["precision"], environment=cm["environment"],
             peak_rss_mb=round(_peak_rss_mb(), 1),
             kept=str(root) if args.out else None)


if __name__ == "__main__":
    main()
