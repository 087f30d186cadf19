"""Small labelled data folders for the task tests, written as the spec of a labelled data folder
says (manifest, tokenizer.json, labels.json, {split}.jsonl), from the toy grammar's sentences
and a data folder's vocabulary (so a language model trained on that folder can start the
encoder)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import write_manifest
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS, words_of

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


def write_folder(out: Path, task: str, vocab_from: Path, labels: list[str],
                 example: Callable[[Any, str], dict[str, Any]], n: int = 240,
                 seed: int = 3) -> Path:
    """A labelled data folder of ``n`` toy sentences (train/valid/test 70/15/15 %)."""
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
                         "oov_rate": 0.0, "label_counts": counts}
    (out / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    files = ["tokenizer.json", "labels.json", *(f"{s}.jsonl" for s in cut)]
    write_manifest(out, "data", {"task": task, "labels": labels, "vocab_size": len(vocab),
                                 "tokenizer": "tokenizer.json",
                                 "features": {"shapes": list(SHAPES),
                                              "suffix_buckets": SUFFIX_BUCKETS},
                                 "splits": splits}, files)
    return out


def classify_example(tokenizer: Any, line: str) -> dict[str, Any]:
    words, ids = words_of(tokenizer, line)
    animal = any(a in line.split()[:2] for a in ANIMALS)
    return {"words": words, "ids": ids, "label": 0 if animal else 1}


def tag_example(tokenizer: Any, line: str) -> dict[str, Any]:
    text, span = _capitalise_subject(line)
    words, ids = words_of(tokenizer, text)
    # the toy grammar's pre-tokenizer splits on spaces and punctuation: word i is piece i
    tags = [0] * len(words)
    for i in sorted(span):
        tags[i] = 2 if i - 1 in span else 1
    return {"words": words, "ids": ids, "tags": tags, "heads": list(range(len(words)))}


def write_classify(out: Path, vocab_from: Path) -> Path:
    return write_folder(out, "classify", vocab_from, CLASSES, classify_example)


def write_tag(out: Path, vocab_from: Path) -> Path:
    return write_folder(out, "tag", vocab_from, TAGS, tag_example)

