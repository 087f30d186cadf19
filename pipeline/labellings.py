"""What differs between the labelled tasks on the data side: one entry per task.

    task       reads                      label names                 an example (JSON line)
    classify   text, label                ClassLabel names, or the    {"words", "ids", "label"}
                                          train labels sorted
    tag        tokens, tags (lists)       O, then B-X, I-X per type   {"words", "ids", "tags",
                                          X (sorted)                   "heads"}

Tags are BIO2: an I-X that does not continue an X entity is read as B-X. An original token cut
into several word pieces keeps its tag on its first piece; the others get I-X (inside an X
entity) or O; ``heads`` holds the first piece's index per original token.

The ingest (``labelled.py``) calls the entry of ``--task`` and never branches on its name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pocketlm.runtime.artifact import PocketLMError
from pocketlm.runtime.features import words_of

from .kjv_tasks import NAME_TAGS, SECTION_BOOKS, name_rows, section_rows
from .labelled_read import KjvTask, Row

BIO = re.compile(r"^([BI])-(.+)$")
Encoded = dict[str, Any]


def _name(row: Row, names: list[str] | None, value: Any, column: str) -> str:
    """One label as its name (a ClassLabel id through ``names``), checked not empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PocketLMError(f"{row.where}: field {column!r} is empty; give every example a label")
    if names is not None and isinstance(value, int):
        if not 0 <= value < len(names):
            raise PocketLMError(f"{row.where}: field {column!r} is {value}, not a label id of "
                                f"{names}; drop unlabelled rows (-1) before ingest")
        return names[value]
    return str(value).strip()


def _sort_key(name: str) -> tuple[int, float | str]:
    return (0, float(name)) if re.fullmatch(r"-?\d+(\.\d+)?", name) else (1, name)


# --- classify ------------------------------------------------------------------------------------


def _class_label(row: Row, names: list[str] | None, column: str, value_column: str) -> str:
    return _name(row, names, row.label, column)


def _class_list(train: list[Any], names: list[str] | None) -> list[str]:
    return list(names) if names is not None else sorted(set(train), key=_sort_key)


def _class_example(row: Row, tokenizer: Any, label: str, index: dict[str, int],
                   column: str) -> Encoded:
    text = (row.value or "").strip()
    words, ids = words_of(tokenizer, text) if text else ([], [])
    if not words:
        raise PocketLMError(f"{row.where}: field {column!r} is empty (no words); drop the row "
                            f"or fill it")
    return {"words": words, "ids": ids, "label": index[label]}


def _class_counts(examples: list[Encoded], labels: list[str]) -> dict[str, Any]:
    counts = Counter(labels[e["label"]] for e in examples)
    return {"label_counts": {name: counts[name] for name in labels}}


# --- tag -----------------------------------------------------------------------------------------


def _tags(row: Row, names: list[str] | None, column: str, value_column: str) -> list[str]:
    """The row's tags, one per token, checked and made BIO2."""
    tags = [_name(row, names, t, column) for t in row.label]
    if len(tags) != len(row.value):
        raise PocketLMError(f"{row.where}: {len(row.value)} tokens in {value_column!r} but "
                            f"{len(tags)} tags in {column!r}; give each token one tag")
    out: list[str] = []
    for k, tag in enumerate(tags):
        m = BIO.match(tag)
        if tag != "O" and m is None:
            raise PocketLMError(f"{row.where}: field {column!r}, token {k + 1}: tag {tag!r} is "
                                f"not BIO (O, B-TYPE or I-TYPE)")
        if m and m.group(1) == "I" and (not out or out[-1] == "O" or out[-1][2:] != m.group(2)):
            tag = "B-" + m.group(2)
        out.append(tag)
    return out


def _types(tags: list[str]) -> list[str]:
    return [t[2:] for t in tags if t != "O"]


def _tag_list(train: list[Any], names: list[str] | None) -> list[str]:
    types = sorted({t for tags in train for t in _types(tags)})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def _tag_example(row: Row, tokenizer: Any, tags: list[str], index: dict[str, int],
                 column: str) -> Encoded:
    tokens: list[str] = row.value
    enc = tokenizer.encode(tokens, is_pretokenized=True) if tokens else None
    if enc is None or not enc.ids:
        raise PocketLMError(f"{row.where}: field {column!r} is empty (no tokens); drop the row")
    words, piece_tags, heads = [], [], []
    for j, (w, (start, end)) in enumerate(zip(enc.word_ids, enc.offsets)):
        first = len(heads) <= w
        if first and w != len(heads):
            break  # token len(heads) gave no piece
        if first:
            heads.append(j)
        tag = tags[w]
        piece = tag if first else ("O" if tag == "O" else "I-" + tag[2:])
        words.append(tokens[w][start:end])
        piece_tags.append(index[piece])
    if len(heads) != len(tokens):
        raise PocketLMError(f"{row.where}: field {column!r}, token {len(heads) + 1} "
                            f"{tokens[len(heads)]!r} has no word characters; drop it")
    return {"words": words, "ids": list(enc.ids), "tags": piece_tags, "heads": heads}


def _tag_counts(examples: list[Encoded], labels: list[str]) -> dict[str, Any]:
    counts = Counter(labels[t] for e in examples for t in e["tags"])
    entities = Counter(labels[e["tags"][h]][2:] for e in examples for h in e["heads"]
                       if labels[e["tags"][h]].startswith("B-"))
    return {"label_counts": {name: counts[name] for name in labels},
            "entities": dict(sorted(entities.items()))}


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelling:
    """The data side of one labelled task.

    ``value_field``/``label_field``: the config fields naming its two columns; ``sequence``:
    both hold lists; ``label_of(row, class_names, column, value_column)``: the row's label
    name(s), checked; ``label_list(train_labels, class_names)``: the label names, index = id;
    ``kinds(label)``: what valid/test may only hold when train has it (labels, entity types),
    called ``kind``; ``encode(row, tokenizer, label, index, column)``: the JSON line;
    ``counts(examples, labels)``: the split's label counts for the manifest; ``kjv``: the
    task's examples when no source is given.
    """

    value_field: str
    label_field: str
    sequence: bool
    label_of: Callable[[Row, list[str] | None, str, str], Any]
    label_list: Callable[[list[Any], list[str] | None], list[str]]
    kinds: Callable[[Any], list[str]]
    kind: str
    encode: Callable[[Row, Any, Any, dict[str, int], str], Encoded]
    counts: Callable[[list[Encoded], list[str]], dict[str, Any]]
    kjv: KjvTask


LABELLINGS = {
    "classify": Labelling("text_column", "label_column", False, _class_label, _class_list,
                          lambda label: [label], "label", _class_example, _class_counts,
                          KjvTask(section_rows, tuple(SECTION_BOOKS),
                                  "section of the verse's book")),
    "tag": Labelling("tokens_column", "tags_column", True, _tags, _tag_list, _types,
                     "entity type", _tag_example, _tag_counts,
                     KjvTask(name_rows, NAME_TAGS,
                             "names from the capitalisation (words lower-cased)")),
}
