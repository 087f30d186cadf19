"""Adding a task is a change to one file: this one registers a fourth task, "is-capitalised"
(one label per word piece: does the word start with a capital letter), from here alone, writes a
small data folder for it, finds it in ``pocketlm train --help``, trains it through the command
line, exports it through ``pocketlm export`` (graph checked against torch) and runs the exported
graph with onnxruntime on a new sentence.

The runtime side is reached through onnxruntime and the model folder's manifest directly (the
graph's inputs are declared in the manifest); a runtime class per task comes from the runtime's
own registry."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from pocketlm.pipeline.tasks import TASKS, Task
from pocketlm.runtime.metrics import accuracy

from pocketlm.runtime.artifact import write_manifest
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS

from .conftest import toy_lines

LABELS = ["no", "yes"]


def measure_pieces(gold: Sequence[Sequence[int]], pred: Sequence[Sequence[int]],
                   labels: Sequence[str]) -> dict[str, float]:
    return {"piece_accuracy": accuracy([t for g in gold for t in g], [t for p in pred for t in p])}


def capitalised_example(tokenizer: object, line: str) -> dict[str, object]:
    from pocketlm.runtime.features import words_of

    rng = random.Random(line)          # each word capitalised or not, at random
    text = " ".join(w.capitalize() if rng.random() < 0.4 else w for w in line.split())
    words, ids = words_of(tokenizer, text)
    return {"words": words, "ids": ids, "tags": [int(w[:1].isupper()) for w in words]}


def write_folder(out: Path, task: str, vocab_from: Path, labels: list[str],
                 example: Callable[[Any, str], dict[str, Any]], n: int = 240,
                 seed: int = 3) -> Path:
    """A data folder for the new task, in the labelled folder layout (docs/tasks.md), of ``n``
    toy sentences (train/valid/test 70/15/15 %): the new task brings its own data."""
    from tokenizers import Tokenizer

    out.mkdir(parents=True)
    shutil.copyfile(vocab_from / "tokenizer.json", out / "tokenizer.json")
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    lines = toy_lines(n, seed)
    cut = {"train": lines[:int(n * .7)], "valid": lines[int(n * .7):int(n * .85)],
           "test": lines[int(n * .85):]}
    splits = {}
    for split, chosen in cut.items():
        rows = [example(tokenizer, line) for line in chosen]
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                            encoding="utf-8")
        counts: dict[str, int] = {}
        for r in rows:
            for t in r.get("tags", [r.get("label")]):
                counts[labels[t]] = counts.get(labels[t], 0) + 1
        splits[split] = {"sentences": len(rows), "tokens": sum(len(r["ids"]) for r in rows),
                         "oov_rate": 0.0, "label_counts": counts,
                         "file": f"{split}.jsonl"}
    (out / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    files = ["tokenizer.json", "labels.json", *(f"{s}.jsonl" for s in cut)]
    write_manifest(out, "data", {"task": task, "labels": labels, "vocab_size": len(vocab),
                                 "tokenizer": "tokenizer.json",
                                 "features": {"shapes": list(SHAPES),
                                              "suffix_buckets": SUFFIX_BUCKETS},
                                 "splits": splits}, files)
    return out


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The new task, registered for this test only."""
    monkeypatch.setitem(TASKS, "capitalised", Task(
        "capitalised", "whether each word starts with a capital letter", "tag", per_piece=True,
        metrics=("piece_accuracy",), graphs=("capitalised",), runtime_class="Tagger",
        command="tag", measure=measure_pieces))
    yield


def test_a_new_task_from_one_file(registered: None, toy_data: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from pocketlm.runtime import graphs
    from pocketlm.runtime.cli import cli
    from pocketlm.runtime.features import features, words_of

    data = write_folder(tmp_path / "data", "capitalised", toy_data, LABELS, capitalised_example)
    runner = CliRunner()
    assert "capitalised" in runner.invoke(cli, ["train", "--help"]).output
    ckpt, model = tmp_path / "checkpoint", tmp_path / "model"
    result = runner.invoke(cli, ["-q", "train", "--task", "capitalised", "--data", str(data),
                                 "--out", str(ckpt), "--embedding-size", "16", "--hidden-size",
                                 "16", "--epochs", "2", "--lr", "0.02", "--device", "cpu",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    trained = json.loads((ckpt / "manifest.json").read_text())
    assert trained["task"] == "capitalised" and trained["labels"] == LABELS
    assert trained["metrics"]["test"]["piece_accuracy"] >= 0.95

    result = runner.invoke(cli, ["export", "--checkpoint", str(ckpt), "--out", str(model)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["export"]["max_abs_diff"]["fp32"] <= 1e-4
    spec = manifest["graphs"]["capitalised"]

    tokenizer = Tokenizer.from_file(str(model / manifest["tokenizer"]))
    words, ids = words_of(tokenizer, "The dog Sees the Ball today .")
    shapes, suffixes = features(words)
    feeds = dict(zip(spec["inputs"], (np.array([ids]), np.array([shapes]),
                                      np.array([suffixes]), np.array([len(ids)]))))
    for precision in ("fp32", "int8"):
        session = graphs.open_session(model / spec["files"][precision])
        (logp,) = session.run(spec["outputs"], feeds)
        assert [manifest["labels"][t] for t in logp[0].argmax(-1)] == [
            "yes", "no", "yes", "no", "yes", "no", "no"]
