"""Shared fixtures: small real corpora and models built once per test session.

* ``toy_*``: a 600-line corpus from a small grammar (written by the test), a ~40-word
  vocabulary and a 1x24 LSTM trained for a few seconds: exercises every stage quickly.
* ``kjv_*``: the embedded King James Bible with the ``tiny`` preset cut to a few hundred steps:
  the real default path, used where quality matters.

Nothing here reaches the network: the hub is switched off for the whole session.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

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
