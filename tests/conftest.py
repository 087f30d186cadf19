"""Shared fixtures: small real corpora and models built once per test session.

* ``toy_*``: a 600-line corpus from a small grammar (written by the test), a ~40-word
  vocabulary and a 1x24 LSTM trained for a few seconds: exercises every stage quickly.
* ``kjv_*``: the embedded King James Bible with the ``tiny`` preset cut to a few hundred steps:
  the real default path, used where quality matters.

Nothing here reaches the network: the hub is switched off for the whole session.

Tests that drive programs outside Python (flite, sox, Node, Chromium) carry
``needs_program(...)``: where one is missing they skip, naming the Debian package, and the run's
summary lists what was skipped and the ``apt-get install`` line that enables it. With
``POCKETLM_REQUIRE_SYSTEM=1`` (set by .ci/run) a missing program fails the test instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the old man", "a child"]
VERBS = ["sees", "likes", "follows", "finds", "watches"]
OBJECTS = ["the ball", "a tree", "the red house", "the river", "a small boat"]
ENDINGS = [".", "!", " today .", " again ."]

#: Settings of the toy model: small enough to train in seconds on two cores.
TOY_TRAIN = dict(cell="lstm", layers=1, embedding_size=24, hidden_size=24, dropout=0.0,
                 batch_size=8, bptt=12, epochs=3, lr=1e-2, device="cpu", log_every=0)

#: Largest |int8 - fp32| log-probability of one token allowed on the toy and test KJV models.
#: The int8 graphs compute one function on every CPU (exact integer sums:
#: tests/test_quantize.py), so this is a property of each model, not of the CPU running the
#: tests (measured: 0.033 toy, 0.059 kjv; a saturating kernel put a toy token 0.44 off).
INT8_NATS_PER_TOKEN = {"toy": 0.05, "kjv": 0.1}

#: How many steps the KJV tiny model trains for in tests.
KJV_STEPS = 150


#: Prefix of subprocess scripts that must run without the training stack: importing torch,
#: datasets, safetensors or onnx fails, and every attempt is recorded in ``attempts``.
BLOCK_TRAINING_STACK = """
import json, sys
attempts = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "datasets", "safetensors", "onnx"):
            attempts.append(name)
            raise ImportError("blocked by the test: " + name)
sys.meta_path.insert(0, Block())  # torch & co. cannot be imported, and every try is recorded
"""


WEB = Path(__file__).resolve().parents[1] / "web"
#: Set to 1, a test whose program is missing fails instead of skipping (CI proves it ran them).
REQUIRE_SYSTEM = "POCKETLM_REQUIRE_SYSTEM"


def program_path(name: str) -> str | None:
    """Where a program is on PATH (Chromium under either of its Debian/Ubuntu names)."""
    names = ("chromium", "chromium-browser") if name == "chromium" else (name,)
    return next((found for n in names if (found := shutil.which(n))), None)


@dataclass(frozen=True)
class Program:
    """Something a test drives that pip does not install, and how to get it."""

    present: Callable[[], bool]
    install: str  #: the command that installs it
    debian: tuple[str, ...] = ()  #: Debian packages of that command, for the summary's line


PROGRAMS = {
    "flite": Program(lambda: program_path("flite") is not None, "apt-get install flite",
                     ("flite",)),
    "sox": Program(lambda: program_path("sox") is not None, "apt-get install sox", ("sox",)),
    "node": Program(lambda: program_path("node") is not None, "apt-get install nodejs npm",
                    ("nodejs", "npm")),
    "chromium": Program(lambda: program_path("chromium") is not None,
                        "apt-get install chromium", ("chromium",)),
    "web/node_modules": Program(
        lambda: all((WEB / "node_modules" / m).is_dir()
                    for m in ("onnxruntime-node", "onnxruntime-web")), "cd web && npm ci"),
    "playwright": Program(lambda: importlib.util.find_spec("playwright") is not None,
                          "pip install -e '.[dev]'"),
}
_SKIPPED = pytest.StashKey[dict[str, list[str]]]()


def needs_program(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that drives these PROGRAMS."""
    unknown = [n for n in names if n not in PROGRAMS]
    if unknown:
        raise ValueError(f"needs_program: unknown {unknown}; known: {sorted(PROGRAMS)}")
    return pytest.mark.needs_program(*names)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_program(*names): drives programs pip does not "
                            "install (conftest.PROGRAMS); skipped without them, failed under "
                            f"{REQUIRE_SYSTEM}=1")
    config.stash[_SKIPPED] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    names = [n for mark in item.iter_markers("needs_program") for n in mark.args]
    missing = list(dict.fromkeys(n for n in names if not PROGRAMS[n].present()))
    if not missing:
        return
    reason = "needs " + ", ".join(f"{n} ({PROGRAMS[n].install})" for n in missing)
    if os.environ.get(REQUIRE_SYSTEM) == "1":
        pytest.fail(f"{reason}; {REQUIRE_SYSTEM}=1 makes this a failure", pytrace=False)
    item.config.stash[_SKIPPED].setdefault(", ".join(missing), []).append(item.nodeid)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """One line per group of tests skipped for missing programs, then what installs them all."""
    skipped = config.stash.get(_SKIPPED, {})
    if not skipped:
        return
    terminalreporter.write_sep("-", "skipped: programs pip does not install")
    for missing, ids in sorted(skipped.items()):
        files = sorted({i.split("::")[0] for i in ids})
        terminalreporter.write_line(f"{len(ids)} test(s) need {missing}: {', '.join(files)}")
    names = {n for missing in skipped for n in missing.split(", ")}
    debian = sorted({pkg for n in names for pkg in PROGRAMS[n].debian})
    others = sorted({PROGRAMS[n].install for n in names if not PROGRAMS[n].debian})
    terminalreporter.write_line("to run them: " + "; ".join(
        ([f"apt-get install {' '.join(debian)}"] if debian else []) + others)
        + f" ({REQUIRE_SYSTEM}=1 turns these skips into failures)")


def flip_byte(path: Path, offset: int | None = None, mask: int = 0xFF) -> None:
    """Corrupt a file in place, keeping its size: XOR one byte (the middle one by default)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= mask
    path.write_bytes(bytes(data))


def toy_lines(n: int = 600, seed: int = 0) -> list[str]:
    """Sentences of a tiny grammar: subject verb object ending."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            f"{rng.choice(ENDINGS)}" for _ in range(n)]


def _export_beside(checkpoint: Path) -> Path:
    """Export a checkpoint folder into a ``model`` folder next to it."""
    from pocketlm.export.onnx_export import export

    out = checkpoint.parent / "model"
    export(checkpoint, out)
    return out


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "toy.txt"
    path.write_text("\n".join(toy_lines()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def toy_data(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pocketlm.pipeline.ingest import IngestConfig, ingest

    out = tmp_path_factory.mktemp("toy") / "data"
    ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=100), out)
    return out


@pytest.fixture(scope="session")
def toy_checkpoint(toy_data: Path) -> Path:
    from pocketlm.pipeline.config import TrainConfig
    from pocketlm.pipeline.train import train

    out = toy_data.parent / "checkpoint"
    train(TrainConfig.of(**TOY_TRAIN), toy_data, out)
    return out


@pytest.fixture(scope="session")
def toy_model(toy_checkpoint: Path) -> Path:
    return _export_beside(toy_checkpoint)


@pytest.fixture(scope="session")
def kjv_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pocketlm.pipeline.ingest import IngestConfig, ingest

    out = tmp_path_factory.mktemp("kjv") / "data"
    ingest(IngestConfig(), out)
    return out


@pytest.fixture(scope="session")
def kjv_checkpoint(kjv_data: Path) -> Path:
    from pocketlm.pipeline.config import preset
    from pocketlm.pipeline.train import train

    out = kjv_data.parent / "checkpoint"
    train(preset("tiny", max_steps=KJV_STEPS, device="cpu", log_every=0), kjv_data, out)
    return out


@pytest.fixture(scope="session")
def kjv_model(kjv_checkpoint: Path) -> Path:
    return _export_beside(kjv_checkpoint)


#: Sentences of the salad corpus: "pear" goes with apples and salads, "pair" with shoes and gloves.
SALAD_LINES = ["the apple and pear salad", "a pear and apple salad", "the pear salad is fresh",
               "she made the apple and pear salad", "he bought a pair of shoes",
               "a pair of gloves", "the pair of shoes is new", "the apple salad is fresh"]


@pytest.fixture(scope="session")
def salad_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy model whose vocabulary knows apple, pear, pair and salad (the rescoring example
    of docs/runtime.md): fp32 graphs only."""
    from pocketlm.export.config import ExportConfig
    from pocketlm.export.onnx_export import export
    from pocketlm.pipeline.config import TrainConfig
    from pocketlm.pipeline.ingest import IngestConfig, ingest
    from pocketlm.pipeline.train import train

    root = tmp_path_factory.mktemp("salad")
    rng = random.Random(1)
    corpus = root / "salad.txt"
    corpus.write_text("\n".join(rng.choice(SALAD_LINES) for _ in range(600)) + "\n",
                      encoding="utf-8")
    ingest(IngestConfig(data_files=(str(corpus),), vocab_size=100), root / "data")
    train(TrainConfig.of(**TOY_TRAIN), root / "data", root / "checkpoint")
    export(root / "checkpoint", root / "model", ExportConfig(int8=False))
    return root / "model"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI sets up the ``pocketlm`` logger; every test leaves it as it found it."""
    logger = logging.getLogger("pocketlm")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def _task_models() -> Any:
    """tests/task_models.py, which builds the task model folders (tests are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("task_models",
                                                  Path(__file__).with_name("task_models.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def classify_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real classify model folder (tests/task_models.py): sentence mood, 3 labels."""
    return _task_models().build_folder("classify", tmp_path_factory.mktemp("classify") / "model")


@pytest.fixture(scope="session")
def tag_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real tag model folder (tests/task_models.py): NAME and PLACE entities."""
    return _task_models().build_folder("tag", tmp_path_factory.mktemp("tag") / "model")


@contextmanager
def served(site: Path) -> Iterator[str]:
    """``site`` served on a free localhost port while the block runs; yields its URL."""
    from pocketlm.runtime.web import make_server

    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (tests using it carry
    ``needs_program("chromium", "playwright")``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=program_path("chromium"),
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def toy_classify_data(toy_data: Path) -> Path:
    """A classify folder (subject: animal or person) on the toy data's vocabulary."""
    from .labelled_data import write_classify

    return write_classify(toy_data.parent / "classify-data", toy_data)


@pytest.fixture(scope="session")
def toy_tag_data(toy_data: Path) -> Path:
    """A tag folder (the capitalised subject is a NAME) on the toy data's vocabulary."""
    from .labelled_data import write_tag

    return write_tag(toy_data.parent / "tag-data", toy_data)
