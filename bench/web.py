"""The model folder outside Python: page load, scoring and generation speed in headless
Chromium (onnxruntime-web, wasm) and in Node (onnxruntime-node), beside the Python runtime, and
the bytes the page downloads.

    python bench/web.py --run /work/runs/kjv            # folders of `pocketlm run --out DIR`
    python bench/web.py --model M [--data D] --repeats 5

Needs Debian's chromium, playwright (pip) and web/node_modules (``cd web && npm ci``).

* ``load``: ms from navigation to the first rendered score (the page scores its example and
  ranks the pear/pair pair), cold (new browser profile) and warm (reload once the service
  worker holds the site), and the bytes transferred for the cold load.
* ``speed``: ms per predicted token scoring ``--sentences`` test verses in one scoreBatch, and
  ms per generated word (``stream``, temperature 1, seeded), per engine: chromium wasm with 1
  and 2 threads (the page is cross-origin isolated), node 1 and 2 threads, python 1 and 2
  threads; fp32 and int8. Engines are alternated within each repeat; medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import add_folder_arguments, emit, machine, run_folders  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "web" / "tools" / "driver.js"


def test_lines(data: Path, count: int) -> list[str]:
    from pocketlm.pipeline.ingest import IngestConfig
    from pocketlm.runtime.artifact import read_manifest

    manifest = read_manifest(data, "data", verify=False)
    lines = IngestConfig.from_manifest(manifest["config"]).corpus().split_lines("test")
    return [line for _, line in zip(range(count), lines)]


def versions() -> dict[str, str]:
    """Node's and Chromium's versions (for the ``machine`` record)."""
    def version(program: str) -> str:
        return subprocess.run([shutil.which(program) or program, "--version"],
                              capture_output=True, text=True).stdout.strip()
    return {"node": version("node"), "chromium": version("chromium")}


def node(request: dict[str, Any]) -> dict[str, Any]:
    """One request to web/tools/driver.js (the JavaScript package in Node); its answer."""
    done = subprocess.run(["node", str(DRIVER)], input=json.dumps(request), capture_output=True,
                          text=True, check=True)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@contextmanager
def served_site(model: Path, extra: tuple[Path, ...] = ()) -> Iterator[tuple[str, Path, dict]]:
    """The page with ``model`` (``build_site``) and the ``extra`` files beside it, served on a
    free localhost port with cross-origin isolation: yields (url, site folder, listing)."""
    from pocketlm.runtime.web import build_site, make_server

    with tempfile.TemporaryDirectory(prefix="pocketlm-web-bench-") as tmp:
        site = Path(tmp) / "site"
        listing = build_site(model, site)
        for path in extra:
            shutil.copy(path, site / path.name)
        server = make_server(site, 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/", site, listing
        finally:
            server.shutdown()
            server.server_close()


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, through Playwright."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                      args=["--no-sandbox"])


def open_page(browser: Any, url: str, precision: str, threads: int) -> Any:
    """A new tab on the page (no service worker) with the model loaded and its example
    scored."""
    page = browser.new_page()
    page.goto(f"{url}?no-offline&precision={precision}&threads={threads}")
    page.wait_for_function("window.pocketlm && window.pocketlm.firstScoreMs", timeout=300_000)
    return page


def node_speed(model: Path, precision: str, threads: int, lines: list[str], words: int) -> dict:
    got = node({"model": str(model), "precision": precision, "threads": threads, "verify": False,
                "score": lines, "generate": [{"prompt": "and the lord said", "maxWords": words,
                                              "seed": 1, "stop": []}]})
    return {"score_ms_per_token": got["scoreMs"] / got["tokens"],
            "generate_ms_per_word": got["generateMs"] / max(got["generatedWords"], 1),
            "words": got["generatedWords"]}


def python_speed(model: Path, precision: str, threads: int, lines: list[str], words: int) -> dict:
    from pocketlm.runtime import LanguageModel

    lm = LanguageModel(model, precision=precision, threads=threads, verify=False)
    tokens = sum(len(ids) + 1 for ids in lm.core.encode_batch(lines))
    t0 = time.perf_counter()
    lm.score_batch(lines)
    score = (time.perf_counter() - t0) * 1000 / tokens
    t0 = time.perf_counter()
    produced = list(lm.stream("and the lord said", max_words=words, seed=1))
    gen = (time.perf_counter() - t0) * 1000 / max(len(produced), 1)
    return {"score_ms_per_token": score, "generate_ms_per_word": gen, "words": len(produced)}


SPEED_JS = """async ([lines, words]) => {
  const lm = window.pocketlm.lm;
  const tokens = lines.reduce((n, s) => n + lm.tokenize(s).length + 1, 0);
  let t0 = performance.now();
  await lm.scoreBatch(lines);
  const score = (performance.now() - t0) / tokens;
  t0 = performance.now();
  let produced = 0;
  for await (const w of lm.stream('and the lord said', {maxWords: words, seed: 1})) produced++;
  const generate = (performance.now() - t0) / Math.max(produced, 1);
  return {score_ms_per_token: score, generate_ms_per_word: generate,
          words: produced, isolated: window.crossOriginIsolated};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_folder_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--words", type=int, default=60)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    model, data, _ = run_folders(args.run, args.model, args.data, None)
    assert model is not None and data is not None, "pass --run or --model"
    lines = test_lines(data, args.sentences)
    emit("machine", **machine(), **versions())
    emit("config", model=str(model), data=str(data), sentences=len(lines),
         words=args.words, repeats=args.repeats)
    with served_site(model) as (url, site, listing), sync_playwright() as p:
        manifest = json.loads((model / "manifest.json").read_text())
        emit("site", bytes=listing["bytes"], files={
            name: (site / name).stat().st_size for name in listing["files"]
            if name not in ("./", "files.json") and (name.startswith(("ort/", "model/"))
                                                     or name.endswith((".js", ".html")))},
            model_files={k: v["bytes"] for k, v in manifest["files"].items()})
        browser = launch(p)
        cold, warm, transferred = [], [], []
        for _ in range(args.repeats):
            context = browser.new_context()
            page = context.new_page()
            sizes: list[int] = []
            page.on("requestfinished",
                    lambda r, sizes=sizes: sizes.append(r.sizes()["responseBodySize"]))
            page.goto(url)
            page.wait_for_function("window.pocketlm && window.pocketlm.firstScoreMs",
                                   timeout=300_000)
            cold.append(page.evaluate("window.pocketlm.firstScoreMs"))
            transferred.append(sum(sizes))
            page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            page.wait_for_function("navigator.serviceWorker.controller !== null")
            page.reload()
            page.wait_for_function("window.pocketlm && window.pocketlm.firstScoreMs",
                                   timeout=300_000)
            warm.append(page.evaluate("window.pocketlm.firstScoreMs"))
            context.close()
        emit("load", cold_ms=statistics.median(cold), warm_ms=statistics.median(warm),
             cold_all=cold, warm_all=warm, page_bytes=statistics.median(transferred),
             note="cold: new profile, page fetches (the service worker then caches the whole "
                  "site, int8 graphs included, in the background); warm: reload served by "
                  "the service worker")

        engines = [(engine, precision, threads) for precision in ("fp32", "int8")
                   for threads in (1, 2) for engine in ("chromium", "node", "python")]
        pages = {}
        results: dict[tuple, list[dict]] = {key: [] for key in engines}
        for _ in range(args.repeats):
            for key in engines:
                engine, precision, threads = key
                if engine == "chromium":
                    if (precision, threads) not in pages:
                        pages[precision, threads] = open_page(browser, url, precision, threads)
                    got = pages[precision, threads].evaluate(SPEED_JS, [lines, args.words])
                elif engine == "node":
                    got = node_speed(model, precision, threads, lines, args.words)
                else:
                    got = python_speed(model, precision, threads, lines, args.words)
                results[key].append(got)
        for (engine, precision, threads), runs in results.items():
            emit("speed", engine=engine, precision=precision, threads=threads,
                 score_ms_per_token=statistics.median(r["score_ms_per_token"] for r in runs),
                 generate_ms_per_word=statistics.median(r["generate_ms_per_word"] for r in runs),
                 words=runs[0]["words"], isolated=runs[0].get("isolated"))
        browser.close()


if __name__ == "__main__":
    main()
