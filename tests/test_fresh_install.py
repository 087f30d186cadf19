"""A runtime-only install, as a device would have it: pocketlm without extras in a fresh virtual
environment (no torch, datasets or onnx), running the console script on a model folder that this
test session exported, and writing the browser page from the files the package carries (no
web/, no Node), which Chromium then runs. The source tree is copied as CI has it: web/ with its
node_modules (linked, not copied), from which setup.py's build step writes the wheel's
webassets/.

Marked ``venv``: it needs pip to reach PyPI (or wheels in pip's cache) for numpy, onnxruntime,
tokenizers, click and the build backend, and takes about a minute. Skip it with
``-m 'not venv'``; it skips itself when pip cannot reach an index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import venv
from pathlib import Path
from typing import Any

import pytest

from .conftest import WEB, needs_program, program_path

REPO = Path(__file__).resolve().parent.parent
#: What a source install of pocketlm needs (the rest of the repository is not copied); web/'s
#: node_modules is linked where it is installed.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "runtime", "pipeline", "export", "stages",
           "web")
NETWORK_ERRORS = ("No matching distribution", "Could not find a version", "NewConnectionError",
                  "Temporary failure in name resolution", "Network is unreachable",
                  "ConnectTimeout", "ProxyError")

pytestmark = pytest.mark.venv


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(args, capture_output=True, text=True, env=env, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def fresh_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a plain virtual environment with ``pip install pocketlm`` (no extras) done."""
    root = tmp_path_factory.mktemp("fresh")
    source = root / "src"
    for name in SOURCES:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "node_modules", "webassets"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(item, source / name)
    if (WEB / "node_modules").is_dir():
        (source / "web" / "node_modules").symlink_to(WEB / "node_modules", True)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True, system_site_packages=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    proc = _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(source)],
                timeout=900)
    if proc.returncode != 0:
        if any(e in proc.stderr for e in NETWORK_ERRORS):
            pytest.skip(f"pip cannot reach a package index: {proc.stderr.strip()[-200:]}")
        pytest.fail(f"pip install failed:\n{proc.stderr[-3000:]}")
    return bin_dir


def test_runtime_only_install(fresh_bin: Path, toy_model: Path) -> None:
    """In the fresh environment torch, datasets and onnx are absent; `pocketlm score`,
    `rescore`, `generate` and `info` work on the exported toy model and agree with this
    process's runtime; `pocketlm train` says in one line what to install."""
    from pocketlm.runtime import LanguageModel

    python, pocketlm = str(fresh_bin / "python"), str(fresh_bin / "pocketlm")
    probe = _run([python, "-c", "import importlib.util as u, json; print(json.dumps("
                  "[m for m in ('torch', 'datasets', 'onnx', 'safetensors', 'onnxruntime', "
                  "'tokenizers', 'numpy', 'click') if u.find_spec(m)]))"], timeout=60)
    assert json.loads(probe.stdout) == ["onnxruntime", "tokenizers", "numpy", "click"]

    lm = LanguageModel(toy_model)
    score = _run([pocketlm, "score", "--model", str(toy_model), "--json",
                  "the cat sees the ball ."], timeout=120)
    assert score.returncode == 0, score.stderr
    assert json.loads(score.stdout)["logprob"] == pytest.approx(
        lm.score("the cat sees the ball ."), abs=1e-4)

    nbest = "-10\tthe cat sees the ball .\n-9.5\tthe cat sea the ball .\n"
    rescore = _run([pocketlm, "rescore", "--model", str(toy_model)], input=nbest, timeout=120)
    assert rescore.returncode == 0, rescore.stderr
    assert rescore.stdout.splitlines()[0].endswith("\tthe cat sees the ball .")
    lists = json.dumps({"id": "u1", "hypotheses": [{"text": "the cat sea the ball .",
                                                    "acoustic": -1.0},
                                                   {"text": "the cat sees the ball .",
                                                    "acoustic": -1.5}]}) + "\n"
    for extra in ([], ["--weights", "acoustic=1,pocketlm=1"]):
        rescore = _run([pocketlm, "rescore", "--model", str(toy_model), "--json", *extra],
                       input=lists, timeout=120)
        assert rescore.returncode == 0, rescore.stderr
        best = json.loads(rescore.stdout)["hypotheses"][0]
        assert best["text"] == "the cat sees the ball ." and "pocketlm" in best

    generate = _run([pocketlm, "generate", "--model", str(toy_model), "--seed", "3",
                     "--num", "2", "--json"], timeout=120)
    assert generate.returncode == 0, generate.stderr
    assert [json.loads(line)["generated"] for line in generate.stdout.splitlines()] == \
        lm.generate(seed=3, num_samples=2)

    info = _run([pocketlm, "info", "--model", str(toy_model)], timeout=120)
    assert info.returncode == 0 and "score.onnx" in info.stdout, info.stderr

    train = _run([pocketlm, "train", "--data", "d", "--out", "o"], timeout=120)
    assert train.returncode == 1 and train.stdout == ""
    lines = train.stderr.strip().splitlines()
    assert len(lines) == 1, train.stderr
    assert lines[0].startswith("Error: `pocketlm train` needs the training extra")
    assert "pip install 'pocketlm[train]'" in lines[0]
    assert sys.executable not in train.stderr


@needs_program("web/node_modules")
def test_runtime_only_install_carries_the_page(fresh_bin: Path, toy_model: Path,
                                               tmp_path: Path) -> None:
    """The installed package carries web/page/, web/src/*.js, onnxruntime-web's files named by
    web/tools/ort-files.json and assets.json, nothing else of node_modules; its `pocketlm web`
    writes the very site that `--web web/` writes from the checkout."""
    from pocketlm.runtime.web import build_site

    where = _run([str(fresh_bin / "python"), "-c", "from pocketlm.runtime.web import ASSETS_DIR;"
                  " print(ASSETS_DIR)"], timeout=60)
    packaged = Path(where.stdout.strip())
    names = json.loads((WEB / "tools" / "ort-files.json").read_text(encoding="utf-8"))["files"]
    assert sorted(p.relative_to(packaged).as_posix() for p in packaged.rglob("*")
                  if p.is_file()) == sorted(
        ["assets.json", *(f"page/{p.name}" for p in (WEB / "page").iterdir()),
         *(f"src/{p.name}" for p in (WEB / "src").glob("*.js")), *(f"ort/{n}" for n in names)])
    assert not (packaged.parents[1] / "web").exists()  # no checkout to fall back on

    site = tmp_path / "site"
    done = _run([str(fresh_bin / "pocketlm"), "web", "--model", str(toy_model), "--out",
                 str(site)], timeout=120)
    assert done.returncode == 0 and "wrote" in done.stdout, done.stderr
    listing = json.loads((site / "files.json").read_text(encoding="utf-8"))
    assert listing == build_site(toy_model, tmp_path / "checkout", web=WEB)


@needs_program("web/node_modules", "chromium", "playwright")
def test_runtime_only_install_writes_the_page(fresh_bin: Path, toy_model: Path,
                                              tmp_path: Path) -> None:
    """`pocketlm web` of the fresh install writes the site from its package data alone; in
    Chromium the page ranks and scores as this process's runtime does."""
    from playwright.sync_api import sync_playwright

    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.web import make_server

    site = tmp_path / "site"
    done = _run([str(fresh_bin / "pocketlm"), "web", "--model", str(toy_model), "--out",
                 str(site)], timeout=120)
    assert done.returncode == 0 and "wrote" in done.stdout, done.stderr
    listing = json.loads((site / "files.json").read_text(encoding="utf-8"))
    for name in ("index.html", "pocketlm/browser.js", "ort/ort-wasm-simd-threaded.wasm",
                 "model/score.onnx"):
        assert name in listing["files"]

    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sentences = ["the cat sees the ball .", "the ball sees the cat ."]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=program_path("chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page()
            errors: list[Any] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/?no-offline")
            page.wait_for_function("window.pocketlm && window.pocketlm.firstScoreMs",
                                   timeout=120_000)
            scores = page.evaluate("s => window.pocketlm.lm.scoreBatch(s)", sentences)
            ranked = page.locator("#ranking li").count()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert errors == [] and ranked == 2
    assert scores == pytest.approx(LanguageModel(toy_model).score_batch(sentences), abs=1e-4)
