"""The labelled data folder's examples (``{split}.jsonl``) and label names (``labels.json``)::

    data/  manifest.json (task, labels, splits)  tokenizer.json  labels.json
           train.jsonl  valid.jsonl  test.jsonl   one example per line:
             classify  {"words": [...], "ids": [...], "label": 3}
             tag       {"words": [...], "ids": [...], "tags": [0, 1, 2, ...], "heads": [...]}

A minimal reader; the ingest side of labelled data owns the full version of this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pocketlm.runtime.artifact import PocketLMError


@dataclass(frozen=True)
class Example:
    """One sentence: its pieces as written, their vocabulary ids, and its label(s)."""

    words: list[str]
    ids: list[int]
    label: int | None = None
    tags: list[int] | None = None
    heads: list[int] = field(default_factory=list)


def load_examples(data_dir: str | os.PathLike[str], split: str) -> list[Example]:
    """The examples of ``split`` in a labelled data folder."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise PocketLMError(f"{path}: no such file; a labelled data folder has one jsonl file "
                            f"per split (pocketlm ingest --task ...)")
    examples = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                examples.append(Example(list(row["words"]), [int(i) for i in row["ids"]],
                                        row.get("label"), row.get("tags"),
                                        list(row.get("heads", []))))
            except (ValueError, KeyError, TypeError) as exc:
                raise PocketLMError(f"{path}:{number}: not an example ({exc}); re-create the "
                                    f"folder with pocketlm ingest --task ...") from exc
    return examples


def read_labels(data_dir: str | os.PathLike[str]) -> list[str]:
    """The label names of a labelled data folder (index = label id)."""
    path = Path(data_dir) / "labels.json"
    try:
        return [str(name) for name in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError) as exc:
        raise PocketLMError(f"{path}: unreadable label list ({exc}); re-create the folder with "
                            f"pocketlm ingest --task ...") from exc
