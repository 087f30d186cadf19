"""Where the time goes in the score and step graphs: onnxruntime's profiler, per node (CPU).

    python bench/profile_graphs.py --run runs/kjv --raw bench/results/profile_avx2
    python bench/profile_graphs.py --model M --threads 1 --precisions fp32,int8

Runs each graph (fp32 and int8) the way the runtime does (``session_options``): the score graph
over the KJV test split in the runtime's batches (``LanguageModel``'s budget), the step graph
advancing 64 rows and then 1 row for ``--steps`` steps. onnxruntime's profiler records every
node run; the script sums them per node and per operator type and prints one JSON line per
(graph, precision): total node time, the share of each operator type, the top nodes and what
falls outside the nodes (session overhead: inputs, outputs, allocation). ``--raw DIR`` keeps the
profiler's own JSON files. Every line carries ``cpu`` (``common.cpu_flags``): kernels differ by
instruction set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from common import add_folder_arguments, cpu_flags, emit, machine, run_folders  # noqa: E402


def test_batches(model_dir: Path, data_dir: Path) -> list[dict[str, np.ndarray]]:
    """The score graph's inputs for the test split, batched by the runtime's rule (sorted by
    length, at most 64 rows and the runtime's float budget per batch)."""
    from pocketlm.runtime import read_manifest
    from pocketlm.runtime.scoring import BATCH_FLOATS

    manifest = read_manifest(data_dir, "data")
    split = manifest["splits"]["test"]
    stream = np.fromfile(data_dir / split["file"], dtype=split["dtype"]).astype(np.int64)
    eos = int(manifest["special_tokens"]["eos"]["id"])
    ends = np.flatnonzero(stream == eos)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lines = sorted((stream[a:b] for a, b in zip(starts, ends)), key=len)
    vocab = int(read_manifest(model_dir, "model")["vocab_size"])
    batches, start = [], 0
    while start < len(lines):
        end = start + 1
        while (end < len(lines) and end - start < 64
               and (end + 1 - start) * (len(lines[end]) + 1) * vocab <= BATCH_FLOATS):
            end += 1
        chunk = lines[start:end]
        lengths = np.array([len(x) + 1 for x in chunk], dtype=np.int64)
        tokens = np.full((len(chunk), int(lengths.max())), eos, dtype=np.int64)
        for row, ids in enumerate(chunk):
            tokens[row, :len(ids)] = ids
        batches.append({"tokens": tokens, "lengths": lengths})
        start = end
    return batches


def step_feeds(session: Any, rows: int, steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """Inputs for ``steps`` step-graph calls with ``rows`` rows (random tokens, zero state)."""
    rng = np.random.default_rng(seed)
    names = [i.name for i in session.get_inputs()]
    feeds = []
    for _ in range(steps):
        feed: dict[str, Any] = {}
        for inp in session.get_inputs():
            if inp.name == names[0]:
                feed[inp.name] = rng.integers(2, 1000, rows).astype(np.int64)
            else:
                shape = [rows if not isinstance(d, int) else d for d in inp.shape]
                feed[inp.name] = np.zeros(shape, dtype=np.float32)
        feeds.append(feed)
    return feeds


def profile(path: Path, feeds: list[dict[str, Any]], threads: int, raw: Path | None,
            label: str) -> dict[str, Any]:
    """Run ``feeds`` through ``path`` with the profiler on; per-node sums (microseconds)."""
    import onnxruntime as ort

    from pocketlm.runtime.graphs import session_options

    options = session_options(threads)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / label)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, feeds[0])  # warm-up (counted in the raw file, not below)
        warm = len(feeds) > 1
        t0 = time.perf_counter()
        for feed in feeds[1:] if warm else feeds:
            session.run(None, feed)
        wall = time.perf_counter() - t0
        profile_file = Path(session.end_profiling())
        events = json.loads(profile_file.read_text())
        if raw is not None:
            raw.mkdir(parents=True, exist_ok=True)
            shutil.copy(profile_file, raw / f"{label}.json")
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    skip_until = runs[0]["ts"] + runs[0]["dur"] if warm and runs else -1
    by_node: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        if e["ts"] < skip_until:
            continue
        node = e["name"][:-len("_kernel_time")]
        by_node[node] += e["dur"]
        by_op[e.get("args", {}).get("op_name", "?")] += e["dur"]
    run_us = sum(r["dur"] for r in runs[1:] if warm) if warm else sum(r["dur"] for r in runs)
    node_us = sum(by_node.values())
    top = sorted(by_node.items(), key=lambda kv: -kv[1])[:8]
    return {"calls": len(feeds) - (1 if warm else 0), "wall_s": round(wall, 4),
            "run_us": round(run_us), "node_us": round(node_us),
            "outside_nodes_share": round(1 - node_us / run_us, 4) if run_us else None,
            "ops": {k: round(v / node_us, 4) for k, v in
                    sorted(by_op.items(), key=lambda kv: -kv[1])},
            "top_nodes": [{"node": k, "share": round(v / node_us, 4)} for k, v in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_folder_arguments(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300, help="step-graph calls per row count")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--raw", type=Path, default=None,
                        help="folder for onnxruntime's raw profile files")
    args = parser.parse_args()
    model_dir, data_dir, _ = run_folders(args.run, args.model, args.data, None)
    if model_dir is None or data_dir is None:
        parser.error("pass --run DIR or --model M (--data D)")
    import onnxruntime as ort

    from pocketlm.runtime import read_manifest

    cpu = cpu_flags()
    emit("machine", **machine())
    manifest = read_manifest(model_dir, "model")
    batches = test_batches(model_dir, data_dir)
    tokens = int(sum(b["lengths"].sum() for b in batches))
    for precision in args.precisions.split(","):
        score = model_dir / manifest["graphs"]["score"]["files"][precision]
        result = profile(score, [batches[0], *batches], args.threads, args.raw,
                         f"score_{precision}")
        emit("profile", cpu=cpu, graph="score", precision=precision, threads=args.threads,
             tokens=tokens, batches=len(batches),
             tokens_per_s=round(tokens / result["wall_s"]), **result)
        step = model_dir / manifest["graphs"]["step"]["files"][precision]
        plain = ort.InferenceSession(str(step), providers=["CPUExecutionProvider"])
        for rows in (1, 64):
            feeds = step_feeds(plain, rows, args.steps + 1)
            result = profile(step, feeds, args.threads, args.raw, f"step{rows}_{precision}")
            emit("profile", cpu=cpu, graph="step", precision=precision, threads=args.threads,
                 rows=rows, ms_per_call=round(1000 * result["wall_s"] / result["calls"], 4),
                 **result)


if __name__ == "__main__":
    main()
