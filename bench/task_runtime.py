"""Speed of the classify and tag runtimes (Python, and Node through web/tools/driver.js) on a
task model folder. One JSON object per line.

    python bench/task_runtime.py --classify runs/genre/model --tag runs/names/model
    python bench/task_runtime.py --texts verses.txt --classify M --threads 1

Records: ``classify`` / ``tag`` with texts per second for ``predict`` / ``tag_batch`` over the
texts (median of 3 runs after one warm-up), per precision, and the same through Node (``node``:
true; one process, load time excluded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "web"
#: Sentences used when no --texts file is given.
DEFAULT = ["Anna sees the cat in Paris ?", "John Smith likes the red house !",
           "a dog finds a tree in New York .", "Peter Paul Jones follows Mary in Rome ."]


def _median_rate(run: Callable[[list[str]], object], texts: list[str]) -> float:
    run(texts)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run(texts)
        times.append(time.perf_counter() - start)
    return len(texts) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classify", type=Path)
    parser.add_argument("--tag", type=Path)
    parser.add_argument("--texts", type=Path, help="one text per line (default: 2,000 toy lines)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-node", action="store_true")
    args = parser.parse_args()
    from pocketlm.runtime import Classifier, Tagger

    texts = (args.texts.read_text(encoding="utf-8").splitlines() if args.texts
             else DEFAULT * 500)
    for task, folder, cls, method, request in (
            ("classify", args.classify, Classifier, "predict", "classify"),
            ("tag", args.tag, Tagger, "tag_batch", "tag")):
        if folder is None:
            continue
        for precision in ("fp32", "int8"):
            model = cls(folder, precision=precision, threads=args.threads)
            rate = _median_rate(getattr(model, method), texts)
            print(json.dumps({"record": task, "node": False, "precision": precision,
                              "threads": args.threads, "texts": len(texts),
                              "texts_per_s": round(rate, 1)}), flush=True)
            if args.no_node:
                continue
            done = subprocess.run(
                ["node", str(WEB / "tools" / "driver.js")], capture_output=True, text=True,
                input=json.dumps({"model": str(folder), "precision": precision,
                                  "threads": args.threads, request: texts, "timing": True}),
                check=True)
            answer = json.loads(done.stdout)
            print(json.dumps({"record": task, "node": True, "precision": precision,
                              "threads": args.threads, "texts": len(texts),
                              "texts_per_s": round(len(texts) / answer[f"{request}Ms"] * 1000,
                                                   1)}), flush=True)


if __name__ == "__main__":
    main()
