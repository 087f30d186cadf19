"""Training on a large corpus: peak RSS, wall time and the share spent evaluating, and resume cost.

    python bench/train_scale.py                        # 95M tokens, 1,000 steps of tiny, CPU
    python bench/train_scale.py --device cuda          # the same on a GPU
    python bench/train_scale.py --tokens 10e6 --steps 200 --out /tmp/scale   # smaller, keep

The corpus is the KJV repeated: the embedded KJV is ingested once, then its train/valid/test
token files are repeated until the train split holds ``--tokens`` tokens, and a data manifest is
written for them (the token stream ingesting the repeated text would give, without the 95 s of
ingest). Training runs as ``pocketlm train`` in a child process, so its peak RSS is the
training stage's own (``getrusage(RUSAGE_CHILDREN)``).

Prints JSON lines: machine; corpus (tokens, bytes, seconds to build); train (wall seconds of the
child, peak RSS, training / evaluation / other seconds, evaluation share, steps, tokens/s,
validation and test perplexity of the bounded samples, start-up seconds, evaluation tokens/s and
what evaluating the whole valid and test splits once would take at that speed); resume (wall seconds
and start-up of a ``--resume`` run that adds ``--resume-steps`` steps, against the start-up of
the fresh run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import emit, machine  # noqa: E402


def repeated_corpus(kjv: Path, out: Path, tokens: float) -> dict:
    """A data folder whose splits are the KJV's repeated ``ceil(tokens / train tokens)`` times."""
    import numpy as np

    from pocketlm.runtime.artifact import atomic_folder, read_manifest, write_manifest

    source = read_manifest(kjv, "data")
    times = math.ceil(tokens / source["splits"]["train"]["tokens"])
    with atomic_folder(out, overwrite=True) as tmp:
        shutil.copyfile(kjv / source["tokenizer"], tmp / source["tokenizer"])
        splits = {}
        for name, entry in source["splits"].items():
            ids = np.fromfile(kjv / entry["file"], dtype=entry["dtype"])
            with open(tmp / entry["file"], "wb") as fh:
                for _ in range(times):
                    ids.tofile(fh)
            splits[name] = {**entry, **{k: entry[k] * times for k in
                                        ("lines", "tokens", "words", "oov_words")}}
        body = {k: v for k, v in source.items()
                if k not in ("format", "format_version", "kind", "special_tokens", "files")}
        body["splits"] = splits
        body["source"] = {**source["source"], "repeated": times}
        return write_manifest(tmp, "data", body,
                              [source["tokenizer"], *(e["file"] for e in splits.values())])


def run_child(args: list[str]) -> tuple[float, float, int]:
    """Run ``pocketlm <args>`` in a child; return (wall seconds, its peak RSS in MB, exit
    code), the RSS from ``wait4`` (that child's own, not the largest child's)."""
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "pocketlm.stages.cli", "-q", *args])
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the folders here")
    parser.add_argument("--kjv", type=Path, default=None,
                        help="an existing KJV data folder (default: ingest one)")
    parser.add_argument("--tokens", type=float, default=95e6, help="train tokens (95e6)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (1000)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-tokens", type=int, default=100_000)
    parser.add_argument("--resume-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()

    emit("machine", **machine(args.device))
    with tempfile.TemporaryDirectory(prefix="pocketlm-scale-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        kjv = args.kjv
        if kjv is None:
            kjv = root / "kjv"
            if not (kjv / "manifest.json").is_file():
                wall, rss, code = run_child(["ingest", "--out", str(kjv), "--overwrite"])
                emit("kjv_ingest", wall_seconds=round(wall, 2), peak_rss_mb=round(rss, 1))
        t0 = time.perf_counter()
        data = root / "data"
        dm = repeated_corpus(kjv, data, args.tokens)
        emit("corpus", seconds=round(time.perf_counter() - t0, 2), repeated=dm["source"]
             ["repeated"], tokens={s: e["tokens"] for s, e in dm["splits"].items()},
             bytes=sum(e["bytes"] for e in dm["files"].values()))

        ckpt = root / "checkpoint"
        options = ["--preset", args.preset, "--device", args.device, "--max-steps",
                   str(args.steps), "--eval-every", str(args.eval_every), "--eval-tokens",
                   str(args.eval_tokens), "--save-minutes", "0", "--quiet"]
        wall, rss, code = run_child(["train", "--data", str(data), "--out", str(ckpt),
                                     "--overwrite", *options])
        manifest = json.loads((ckpt / "manifest.json").read_text())
        m, status = manifest["metrics"], manifest["status"]
        other = wall - m["train_seconds"] - m["eval_seconds"]
        evaluations = sum(1 for _ in (ckpt / "metrics.jsonl").open())
        sample = {s: min(args.eval_tokens or math.inf, e["tokens"]) // 10 * 10
                  for s, e in dm["splits"].items()}
        eval_tps = (evaluations * sample["valid"] + sample["test"]) / max(m["eval_seconds"], 1e-9)
        whole = dm["splits"]["valid"]["tokens"] + dm["splits"]["test"]["tokens"]
        emit("train", exit_code=code, command="pocketlm train " + " ".join(options),
             wall_seconds=round(wall, 2), peak_rss_mb=round(rss, 1),
             train_seconds=m["train_seconds"], eval_seconds=m["eval_seconds"],
             other_seconds=round(other, 2), eval_share=round(m["eval_seconds"] / wall, 4),
             steps=m["steps"], tokens_per_s=m["tokens_per_s"], valid_ppl=m["valid_ppl"],
             test_ppl=m["test_ppl"], startup_seconds=status["startup_seconds"],
             evaluations=evaluations, eval_tokens_per_s=round(eval_tps, 1),
             whole_valid_test_eval_seconds_estimate=round(whole / eval_tps, 1),
             environment=manifest["environment"])

        wall_r, rss_r, code_r = run_child(["train", "--resume", str(ckpt), "--max-steps",
                                           str(args.steps + args.resume_steps), "--quiet"])
        resumed = json.loads((ckpt / "manifest.json").read_text())
        emit("resume", exit_code=code_r, wall_seconds=round(wall_r, 2),
             startup_seconds=resumed["status"]["startup_seconds"],
             fresh_startup_seconds=status["startup_seconds"],
             steps=resumed["metrics"]["steps"], resumes=resumed["status"]["resumes"],
             state_bytes=resumed["files"]["last.safetensors"]["bytes"])


if __name__ == "__main__":
    main()
