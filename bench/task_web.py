"""The JavaScript package's classify and tag against the Python runtime's, on real exported
task folders: headless Chromium (onnxruntime-web, wasm, 1 thread) and Node (onnxruntime-node,
1 thread) beside ``Classifier`` / ``Tagger``, on the same texts, fp32 and int8.

    python bench/task_web.py --run /work/runs/kjv --classify C/model --tag T/model --count 500
    python bench/task_web.py --texts verses.txt --classify C/model --engines python node

Needs Debian's chromium, playwright (pip) and web/node_modules (``cd web && npm ci``).

Texts: the first ``--count`` test verses of the ``--run`` folder's data (0: all), lower-cased as
the KJV tasks are (``--keep-case`` keeps them as written), or one text per line of ``--texts``.

Records (JSON lines; ``machine`` carries ``cpu_flags``, Node's and Chromium's versions), one per
task, engine and precision. Engines: ``python`` (the reference), ``python-single`` (Python with
each text run alone: how far the runtime's batching alone moves the figures, which int8 graphs'
per-tensor dynamic quantisation of activations does), ``node``, ``chromium-wasm``.

* ``texts_over_target``: texts whose largest |Δ log-probability| is over 1e-4.
* ``classify``: ``max_abs_dlogprob``: the largest |Δ| against Python over every label's
  log-probability of every text (``logProbs`` / ``Classifier.log_probs``); ``top_differs``:
  texts whose ``predict`` label differs from Python's.
* ``tag``: the JavaScript ``Tagger`` gives the chosen tag's probability per piece, not every
  tag's log-probability, so ``max_abs_dlogprob`` is over the chosen tags' log-probabilities of
  the texts whose tags equal Python's; ``tags_differ``: texts whose tag sequence differs;
  ``entities_differ``: texts whose entities (text, type, start, end, first, last) differ.
* ``texts_per_s``: ``predict`` / ``tagBatch`` over all the texts in one call, median of 3 timed
  runs after one untimed run (load excluded; Python: task_runtime.py's ``_median_rate``);
  ``x_python``: the ratio to Python's. ``within_target``: ``max_abs_dlogprob`` ≤ 1e-4 and no
  text differs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import emit, machine, split_lines  # noqa: E402
from task_runtime import _median_rate  # noqa: E402
from web import launch, node, open_page, served_site, versions  # noqa: E402

#: The agreement asked of the JavaScript package: |Δ log-probability| against Python.
TARGET = 1e-4
#: Timed runs after the untimed one (as ``_median_rate``).
REPEATS = 3
ENGINES = ("python", "python-single", "node", "chromium-wasm")

#: The page's model (loaded by the page, 1 thread): one untimed run, REPEATS timed runs.
PAGE_JS = """async ([task, texts, repeats]) => {
  const model = window.pocketlm.lm;
  const run = task === 'classify' ? () => model.predict(texts) : () => model.tagBatch(texts);
  const first = await run();
  const runsMs = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await run();
    runsMs.push(performance.now() - t0);
  }
  const logProbs = task === 'classify'
    ? (await model.logProbs(texts)).map((v) => Array.from(v)) : null;
  return { first, runsMs, logProbs, isolated: window.crossOriginIsolated };
}"""


def python_run(task: str, folder: Path, precision: str, texts: list[str],
               single: bool = False) -> dict[str, Any]:
    """Python's answers in the JavaScript package's form, and its texts/s; ``single``: each
    text run alone (a batch of one) instead of in the runtime's batches."""
    from pocketlm.runtime import Classifier, Tagger

    model: Any = (Classifier if task == "classify" else Tagger)(
        folder, precision=precision, threads=1, verify=False)
    method = model.predict if task == "classify" else model.tag_batch

    def run(batch: list[str]) -> list[Any]:
        return [got for text in batch for got in method([text])] if single else method(batch)

    log_probs = None
    if task == "classify":
        log_probs = ([model.log_probs([text])[0].tolist() for text in texts] if single
                     else model.log_probs(texts).tolist())
    return {"answers": [got.to_dict() for got in run(texts)], "logProbs": log_probs,
            "texts_per_s": _median_rate(run, texts)}


def node_run(task: str, folder: Path, precision: str, texts: list[str]) -> dict[str, Any]:
    """Node's answers (web/tools/driver.js, one process) and its texts/s."""
    request: dict[str, Any] = {"model": str(folder), "precision": precision, "threads": 1,
                               "verify": False, task: texts, "repeats": REPEATS}
    if task == "classify":
        request["logProbs"] = texts
    got = node(request)
    return {"answers": got[task], "logProbs": got.get("logProbs"),
            "texts_per_s": len(texts) / statistics.median(got[f"{task}RunsMs"]) * 1000}


def page_run(page: Any, task: str, texts: list[str]) -> dict[str, Any]:
    """The page's answers (the package in Chromium's own context) and its texts/s."""
    got = page.evaluate(PAGE_JS, [task, texts, REPEATS])
    return {"answers": got["first"], "logProbs": got["logProbs"], "isolated": got["isolated"],
            "texts_per_s": len(texts) / statistics.median(got["runsMs"]) * 1000}


def _entities(answer: dict[str, Any]) -> list[tuple]:
    return [(e["text"], e["type"], e["start"], e["end"], e["first"], e["last"])
            for e in answer["entities"]]


def agreement(task: str, got: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """How far ``got`` is from Python's ``reference`` (the fields the docstring names)."""
    per_text: list[float] = []
    if task == "classify":
        for mine, theirs in zip(got["logProbs"], reference["logProbs"], strict=True):
            per_text.append(max(abs(a - b) for a, b in zip(mine, theirs, strict=True)))
        differ = sum(a["label"] != b["label"]
                     for a, b in zip(got["answers"], reference["answers"], strict=True))
        counts: dict[str, Any] = {"top_differs": differ}
    else:
        tags = entities = 0
        for mine, theirs in zip(got["answers"], reference["answers"], strict=True):
            entities += _entities(mine) != _entities(theirs)
            if mine["words"] != theirs["words"] or mine["tags"] != theirs["tags"]:
                tags += 1
                continue
            per_text.append(max([0.0, *(abs(math.log(a) - math.log(b)) for a, b in zip(
                mine["probabilities"], theirs["probabilities"], strict=True))]))
        counts = {"dlogprob_over": "chosen tags", "tags_differ": tags,
                  "entities_differ": entities}
        differ = tags + entities
    worst = max(per_text, default=0.0)
    return {"max_abs_dlogprob": worst, "texts_over_target": sum(d > TARGET for d in per_text),
            **counts, "within_target": worst <= TARGET and differ == 0}


def texts_of(args: argparse.Namespace) -> list[str]:
    if args.texts:
        return args.texts.read_text(encoding="utf-8").splitlines()
    if not args.run:
        raise SystemExit("task_web.py: pass --run DIR (its test verses) or --texts FILE")
    test = split_lines(Path(args.run) / "data")["test"]
    test = test[:args.count] if args.count else test
    return test if args.keep_case else [line.lower() for line in test]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classify", type=Path, help="a classify model folder")
    parser.add_argument("--tag", type=Path, help="a tag model folder")
    parser.add_argument("--run", help="folder of `pocketlm run --out DIR`: its test verses")
    parser.add_argument("--count", type=int, default=500, help="test verses (0: all)")
    parser.add_argument("--keep-case", action="store_true", help="do not lower-case the verses")
    parser.add_argument("--texts", type=Path, help="one text per line (instead of --run)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"],
                        choices=["fp32", "int8"])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    texts = texts_of(args)
    folders = [(task, folder) for task, folder in (("classify", args.classify),
                                                   ("tag", args.tag)) if folder is not None]
    if not folders:
        raise SystemExit("task_web.py: pass --classify DIR and/or --tag DIR")
    emit("machine", **machine(), **versions())
    emit("config", classify=str(args.classify), tag=str(args.tag), run=args.run,
         texts=len(texts), source=str(args.texts) if args.texts else "test verses",
         lower_cased=not (args.texts or args.keep_case), threads=1, repeats=REPEATS,
         engines=args.engines, precisions=args.precisions, target=TARGET)
    with sync_playwright() as p:
        browser = launch(p) if "chromium-wasm" in args.engines else None
        for task, folder in folders:
            with served_site(folder) as (url, _, _):
                for precision in args.precisions:
                    reference = python_run(task, folder, precision, texts)
                    for engine in args.engines:
                        extra: dict[str, Any] = {}
                        if engine == "python":
                            got = reference
                        elif engine == "python-single":
                            got = python_run(task, folder, precision, texts, single=True)
                        elif engine == "node":
                            got = node_run(task, folder, precision, texts)
                        else:
                            page = open_page(browser, url, precision, 1)
                            got = page_run(page, task, texts)
                            page.close()
                            extra["isolated"] = got["isolated"]
                        emit(task, engine=engine, precision=precision, threads=1,
                             texts=len(texts), **agreement(task, got, reference),
                             texts_per_s=round(got["texts_per_s"], 1),
                             x_python=round(got["texts_per_s"] / reference["texts_per_s"], 3),
                             **extra)
        if browser is not None:
            browser.close()


if __name__ == "__main__":
    main()
