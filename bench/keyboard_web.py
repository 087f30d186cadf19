"""Per-keystroke latency of the keyboard's suggestions outside Python: the JavaScript ``Typing``
(web/src/keyboard.js) in headless Chromium (onnxruntime-web, wasm, 1 thread) and in Node
(onnxruntime-node, 1 thread), beside the Python runtime's ``Typing``, on one model folder.

    python bench/keyboard_web.py --run /work/runs/kjv --verses 200
    python bench/keyboard_web.py --model M [--data D] --verses 0 --precisions fp32

Needs Debian's chromium, playwright (pip) and web/node_modules (``cd web && npm ci``).

The typist is bench/keyboard_driver.py's ``savings()`` (Python) and web/tools/typist.js (the
same rule in JavaScript, run in the page's own context and through web/tools/driver.js): the
first ``--verses`` test verses (0: all), lower-cased and reduced to their runs of letters
(``typist_words``), typed with ``learn=False``; at each letter ``suggestions(3)`` is read and a
correct word is tapped as soon as it shows. ``--warmup`` verses are typed first, untimed.
Python always runs, as the reference (``--engines`` chooses the records printed).

Records (JSON lines; ``machine`` carries ``cpu_flags``, Node's and Chromium's versions):

* ``typist``, per engine (``python``, ``node``, ``chromium-wasm``) and precision: keystrokes,
  taps, savings; ``suggest_*_us``: each ``suggestions(3)`` call (the kept distribution filtered
  by the prefix index; ``time.perf_counter`` in Python, ``performance.now()`` in JavaScript);
  ``word_step_*_us``: each finished word (``accept`` or ``space``: the model's step);
  ``same_as_python``: the same taps as Python on the same verses (the runtimes agree);
  ``x_python``: p50 ratios to Python's. In Chromium ``isolated`` says whether the page is
  cross-origin isolated (``performance.now()`` then ticks every 5 µs, else 100 µs) and
  ``tick_us`` is the smallest step of its clock seen.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import (  # noqa: E402
    add_folder_arguments, emit, machine, percentile, run_folders, split_lines,
)
from keyboard_driver import savings, typist_words  # noqa: E402
from web import launch, node, open_page, served_site, versions  # noqa: E402

TYPIST = Path(__file__).resolve().parents[1] / "web" / "tools" / "typist.js"

#: Runs web/tools/typist.js (served beside the page) on the page's keyboard, 1 thread.
PAGE_JS = """async ([src, warmup, sentences, k]) => {
  const { typist } = await import(src);
  const shown = window.pocketlm.keyboard;  // the page's own session: its Keyboard and class
  const typing = await shown.constructor.create(shown.keyboard, { learn: false });
  await typist(typing, warmup, k);
  let tick = Infinity;
  for (let i = 0, last = performance.now(); i < 100000; i++) {
    const now = performance.now();
    if (now > last) { tick = Math.min(tick, now - last); last = now; }
  }
  return { ...(await typist(typing, sentences, k)), isolated: window.crossOriginIsolated,
           tickUs: tick * 1000 };
}"""


def python_typist(model: Path, precision: str, warmup: list[str], sentences: list[str],
                  k: int) -> dict[str, Any]:
    """The Python runtime's figures, in the JavaScript typist's units (ms)."""
    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.keyboard import Keyboard, LMSource
    from pocketlm.runtime.typing_session import Typing

    typing = Typing(Keyboard(LMSource(LanguageModel(model, precision=precision, threads=1,
                                                    verify=False))), learn=False)
    savings(typing, warmup, k)
    suggest: list[float] = []
    steps: list[float] = []
    got = savings(typing, sentences, k, timings=suggest, steps=steps)
    return {**got, "suggestMs": [t * 1e3 for t in suggest], "stepMs": [t * 1e3 for t in steps]}


def summary(got: dict[str, Any]) -> dict[str, Any]:
    """Counts, savings and the timing percentiles (µs) of one typist run."""
    def us(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1e3, 1)
    out = {key: got[key] for key in ("keystrokes", "taps", "words", "savings")}
    out.update(suggest_calls=len(got["suggestMs"]),
               suggest_p50_us=us(got["suggestMs"], 50), suggest_p95_us=us(got["suggestMs"], 95),
               suggest_p99_us=us(got["suggestMs"], 99), suggest_max_us=us(got["suggestMs"], 100),
               word_step_p50_us=us(got["stepMs"], 50), word_step_p95_us=us(got["stepMs"], 95))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_folder_arguments(parser)
    parser.add_argument("--verses", type=int, default=200, help="test verses typed (0: all)")
    parser.add_argument("--warmup", type=int, default=20, help="verses typed first, untimed")
    parser.add_argument("-k", type=int, default=3, help="suggestions shown")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"],
                        choices=["fp32", "int8"])
    parser.add_argument("--engines", nargs="+", default=["python", "node", "chromium-wasm"],
                        choices=["python", "node", "chromium-wasm"])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    model, data, _ = run_folders(args.run, args.model, args.data, None)
    assert model is not None and data is not None, "pass --run or --model"
    test = [typist_words(line) for line in split_lines(data)["test"]]
    verses = test[:args.verses] if args.verses else test
    warmup = test[:args.warmup]
    emit("machine", **machine(), **versions())
    emit("config", model=str(model), data=str(data), verses=len(verses), warmup=len(warmup),
         k=args.k, threads=1, engines=args.engines, precisions=args.precisions)
    with served_site(model, (TYPIST,)) as (url, _, _), sync_playwright() as p:
        browser = launch(p) if "chromium-wasm" in args.engines else None
        for precision in args.precisions:
            reference = None
            for engine in ["python", *(e for e in args.engines if e != "python")]:
                extra: dict[str, Any] = {}
                if engine == "python":
                    got = python_typist(model, precision, warmup, verses, args.k)
                    reference = got
                elif engine == "node":
                    got = node({"model": str(model), "precision": precision, "threads": 1,
                                "verify": False, "typist": {"sentences": verses, "k": args.k,
                                                            "warmup": warmup}})["typist"]
                else:
                    page = open_page(browser, url, precision, 1)
                    got = page.evaluate(PAGE_JS, [f"{url}{TYPIST.name}", warmup, verses, args.k])
                    page.close()
                    extra = {"isolated": got["isolated"], "tick_us": round(got["tickUs"], 2)}
                row = summary(got)
                if engine != "python" and reference is not None:
                    py = summary(reference)
                    extra.update(same_as_python=got["taps"] == reference["taps"],
                                 python_savings=reference["savings"],
                                 x_python_suggest_p50=round(row["suggest_p50_us"]
                                                            / py["suggest_p50_us"], 2),
                                 x_python_word_step_p50=round(row["word_step_p50_us"]
                                                              / py["word_step_p50_us"], 2))
                if engine in args.engines:
                    emit("typist", engine=engine, precision=precision, threads=1, **row,
                         **extra)
        if browser is not None:
            browser.close()


if __name__ == "__main__":
    main()
