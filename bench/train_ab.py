"""Two pocketlm installs (or two sets of options) train the `tiny` preset in turn: wall time and
quality, as a ratio measured in one session on one machine.

    python bench/train_ab.py --data runs/kjv/data --out /tmp/ab \\
        --before /tmp/old-venv/bin/python --after .venv/bin/python --precision fp32
    python bench/train_ab.py --data D --out /tmp/ab --before-options "--epochs 14"

Each side runs ``python -m pocketlm.stages.cli train --data D --preset tiny --precision P``
(its own extra options appended) in a subprocess, then exports the fp32 graphs with the same
install and measures the test split's sentence perplexity (one verse at a time, the runtime
convention) with the *current* install's runtime. The sides alternate ``--rounds`` times
(before, after, before, ...). Prints JSON lines with the CPU's flags: ``machine``, one ``run``
per training (the stage's wall seconds from its checkpoint manifest, tokens/s, steps, validation
and test figures) and ``summary``: median wall seconds of each side and after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import cpu_flags, emit, machine  # noqa: E402
from vs_ngram import sentence_ppl, test_verses  # noqa: E402


def one_run(python: str, options: list[str], data: Path, out: Path, precision: str
            ) -> dict[str, Any]:
    """Train and export with one install; the run's figures."""
    cli = [python, "-m", "pocketlm.stages.cli"]
    subprocess.run([*cli, "train", "--data", str(data), "--out", str(out / "checkpoint"),
                    "--preset", "tiny", "--precision", precision, "--overwrite", *options],
                   check=True, stdout=sys.stderr)
    subprocess.run([*cli, "export", "--checkpoint", str(out / "checkpoint"), "--out",
                    str(out / "model"), "--no-int8", "--overwrite"], check=True,
                   stdout=sys.stderr)
    from pocketlm.runtime import LanguageModel

    lm = LanguageModel(out / "model", precision="fp32", threads=1)
    metrics = json.loads((out / "checkpoint" / "manifest.json").read_text())["metrics"]
    return {"wall_seconds": round(metrics["elapsed"], 1),
            "train_seconds": round(metrics["train_seconds"], 1),
            "tokens_per_s": round(metrics["tokens_per_s"]), "steps": metrics["steps"],
            "valid_ppl": round(metrics["valid_ppl"], 3),
            "test_stream_ppl": round(metrics["test_ppl"], 3),
            "test_sentence_ppl": round(sentence_ppl(lm, test_verses(data)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="ingest folder (KJV)")
    parser.add_argument("--out", type=Path, required=True, help="work folder")
    parser.add_argument("--before", default=sys.executable, help="python of the first install")
    parser.add_argument("--after", default=sys.executable, help="python of the second install")
    parser.add_argument("--before-options", default="", help="extra train options, quoted")
    parser.add_argument("--after-options", default="", help="extra train options, quoted")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=1, help="times each side runs")
    args = parser.parse_args()

    cpu = cpu_flags()
    emit("machine", **machine())
    sides = {"before": (args.before, shlex.split(args.before_options)),
             "after": (args.after, shlex.split(args.after_options))}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        for name, (python, options) in sides.items():
            figures = one_run(python, options, args.data, args.out / f"{name}{round_}",
                              args.precision)
            walls[name].append(figures["wall_seconds"])
            emit("run", cpu=cpu, side=name, round=round_, python=python,
                 options=" ".join(options), precision=args.precision, **figures)
    before, after = (statistics.median(walls[n]) for n in ("before", "after"))
    emit("summary", cpu=cpu, before_wall_seconds=before, after_wall_seconds=after,
         ratio=round(after / before, 3))


if __name__ == "__main__":
    main()
