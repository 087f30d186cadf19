"""`pocketlm run --minutes M`: does the run fit its budget, and does `--max-steps N` redo it?

    python bench/minutes.py --out /tmp/minutes --minutes 3,6
    python bench/minutes.py --out /tmp/minutes --minutes 3 --no-rerun

For each budget M: `pocketlm run --out OUT/mM --minutes M` (ingest, train, export; the budget
is the training stage's), then from its checkpoint manifest the steps the plan chose
(``config.max_steps``, ``status.budget``), the wall time of the training stage (``train()``,
from its call to the last save: ``status.budget.wall_seconds``) against the budget,
and the learning rate of the last step against the cosine's floor. Then (unless ``--no-rerun``)
`pocketlm train --data OUT/mM/data --out OUT/mM-rerun --preset tiny --max-steps N` and whether
every tensor of both checkpoints (best weights and ``last.safetensors``) is identical. One JSON
line per budget, with the CPU's flags.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from common import cpu_flags, emit, machine  # noqa: E402


def pocketlm(*args: str) -> float:
    """Run a pocketlm command (output to stderr); its wall seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pocketlm.stages.cli", *args], check=True,
                   stdout=sys.stderr)
    return time.perf_counter() - t0


def same_tensors(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", default="3,6", help="budgets, comma-separated")
    parser.add_argument("--no-rerun", action="store_true")
    args = parser.parse_args()
    from pocketlm.pipeline.recipe import lr_at

    cpu = cpu_flags()
    emit("machine", **machine())
    for minutes in (float(m) for m in args.minutes.split(",")):
        folder = args.out / f"m{minutes:g}"
        wall = pocketlm("run", "--out", str(folder), "--minutes", f"{minutes:g}", "--overwrite")
        ckpt = folder / "checkpoint"
        manifest = json.loads((ckpt / "manifest.json").read_text())
        config, budget = manifest["config"], manifest["status"].get("budget", {})
        steps = int(config["max_steps"])
        history = [json.loads(line) for line in (ckpt / "metrics.jsonl").read_text().splitlines()]
        floor_lr = lr_at(steps, steps, config["lr"], config["warmup"], config["schedule"],
                         config["lr_floor"])
        record: dict[str, Any] = {
            "minutes": minutes, "steps": steps, "steps_done": manifest["metrics"]["steps"],
            "budget": budget, "train_wall": budget.get("wall_seconds"),
            "train_vs_budget": round(budget.get("wall_seconds", 0) / (60 * minutes) - 1, 4),
            "run_wall": round(wall, 1), "reason": manifest["status"]["reason"],
            "last_lr": history[-1]["lr"], "floor_lr": floor_lr,
            "valid_ppl": manifest["metrics"]["valid_ppl"],
            "test_ppl": manifest["metrics"]["test_ppl"],
            "precision": manifest["precision"]}
        if not args.no_rerun:
            again = args.out / f"m{minutes:g}-rerun"
            record["rerun_wall"] = round(pocketlm(
                "train", "--data", str(folder / "data"), "--out", str(again), "--preset",
                "tiny", "--max-steps", str(steps), "--overwrite", "--quiet"), 1)
            record["same_weights"] = (same_tensors(ckpt / "model.safetensors",
                                                   again / "model.safetensors")
                                      and same_tensors(ckpt / "last.safetensors",
                                                       again / "last.safetensors"))
        emit("minutes", cpu=cpu, **record)


if __name__ == "__main__":
    main()
