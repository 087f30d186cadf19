"""Small labelled data folders for the task tests, written by `pocketlm ingest --task` from the
toy grammar's sentences on a data folder's vocabulary (so a language model trained on that folder
can start the encoder)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import toy_lines

ANIMALS = ("cat", "dog", "bird")
#: Classify: the subject is an animal or a person.
CLASSES = ["animal", "person"]
#: Tag: the subject's noun, capitalised, is a NAME (one piece; "old man": two pieces).
TAGS = ["O", "B-NAME", "I-NAME"]


def _capitalise_subject(line: str) -> tuple[str, set[int]]:
    """The line with the subject's noun(s) capitalised, and their word positions."""
    words = line.split()
    span = [2, 3] if words[:3] == ["the", "old", "man"] else [1]
    for i in span:
        words[i] = words[i].capitalize()
    return " ".join(words), set(span)


def write_folder(out: Path, task: str, vocab_from: Path,
                 example: Callable[[str], dict[str, Any]], n: int = 240, seed: int = 3) -> Path:
    """A labelled data folder of ``n`` toy sentences (train/valid/test 70/15/15 %), written by
    the real labelled ingest from JSON lines files, on ``vocab_from``'s vocabulary."""
    from pocketlm.pipeline.ingest import IngestConfig
    from pocketlm.pipeline.labelled import LabelledConfig, task_ingest

    lines = toy_lines(n, seed)
    cut = {"train": lines[:int(n * .7)], "valid": lines[int(n * .7):int(n * .85)],
           "test": lines[int(n * .85):]}
    sources = out.parent / f"{out.name}-sources"
    sources.mkdir(parents=True)
    for split, chosen in cut.items():
        (sources / f"{split}.jsonl").write_text(
            "".join(json.dumps(example(line)) + "\n" for line in chosen), encoding="utf-8")
    config = IngestConfig(**{f"{split}_files": (str(sources / f"{split}.jsonl"),)
                             for split in cut})
    labelled = LabelledConfig(task=task, vocab_from=str(vocab_from))
    task_ingest(task).run(config, labelled, out, False, False)
    return out


def classify_example(line: str) -> dict[str, Any]:
    animal = any(a in line.split()[:2] for a in ANIMALS)
    return {"text": line, "label": CLASSES[0 if animal else 1]}


def tag_example(line: str) -> dict[str, Any]:
    text, span = _capitalise_subject(line)
    tags = ["O"] * len(text.split())
    for i in sorted(span):
        tags[i] = "I-NAME" if i - 1 in span else "B-NAME"
    return {"tokens": text.split(), "tags": tags}


def write_classify(out: Path, vocab_from: Path) -> Path:
    return write_folder(out, "classify", vocab_from, classify_example)


def write_tag(out: Path, vocab_from: Path) -> Path:
    return write_folder(out, "tag", vocab_from, tag_example)

