"""Ingest of labelled data: examples + labels → a data folder for ``classify`` or ``tag``.

Output folder (docs/tasks.md)::

    data/
      manifest.json    task, labels, features, per split: sentences, tokens (word pieces),
                       OOV rate, label counts; source, config, split rules, hashes
      tokenizer.json   built from the train split, or copied from an LM folder (--vocab-from)
      labels.json      ["neg", "pos"]  or  ["O", "B-loc", "I-loc", ...]   (index = label id)
      train.jsonl      one example per line:
      valid.jsonl        classify  {"words": ["A", "fine", "film"], "ids": [7, 912, 40], "label": 1}
      test.jsonl         tag       {"words": [...], "ids": [...], "tags": [1, 2, 0],
                                    "heads": [0, 1, 2]}

Tags are per word piece (the pre-tokenizer's pieces): an original token cut into several pieces
(``Jacob's`` → ``Jacob`` ``'`` ``s``) keeps its tag on the first piece (``heads`` holds that
piece's index per original token) and gives its continuation pieces I-X (when the token is in
an entity X) or O. What differs between the tasks is their entry in ``labellings.LABELLINGS``;
this module does the same for each: read, check, encode, write.

Nothing is written when an example is bad: the error names the file, the row and the field.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import (SPECIAL_TOKENS, UNK_ID, PocketLMError, atomic_folder,
                                       check_output_folder, package_versions, read_manifest,
                                       write_manifest)
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS

from .corpus import SPLITS
from .ingest import TOKENIZER, IngestConfig, build_tokenizer
from .ingest import ingest as lm_ingest
from .splits import report as lm_report
from .labelled_read import FORMATS, Columns, Row, Source, read_source
from .labellings import LABELLINGS, Labelling
from pocketlm.runtime.options import option
from .options import check_fields, option_name
from .vocabulary import copy_tokenizer, save_tokenizer

LABELS = "labels.json"


@dataclass(frozen=True)
class LabelledConfig:
    """The options of a labelled ingest (beside :class:`IngestConfig`'s source options)."""

    task: str = field(default="lm", metadata=option(
        "What the data is for: lm (next word), classify (a label per sentence), tag (a BIO "
        "label per word).", choices=lambda: list(TASK_INGESTS)))
    label_column: str = field(default="label", metadata=option(
        "Column holding each example's label (--task classify)."))
    tokens_column: str = field(default="tokens", metadata=option(
        "Column holding each example's list of tokens (--task tag)."))
    tags_column: str = field(default="tags", metadata=option(
        "Column holding each example's list of tags, one per token (--task tag)."))
    format: str = field(default="auto", metadata=option(
        "How to read the files: auto (by extension; .conll is CoNLL) or conll (token ... tag "
        "per line, a blank line between sentences).", choices=FORMATS))
    vocab_from: str | None = field(default=None, metadata=option(
        "An LM data folder whose tokenizer.json to reuse (so its LM checkpoint can start the "
        "encoder); default: a vocabulary built from the train split."))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Example:
    """One example of a labelled data folder (``label`` for classify; ``tags``, ``heads`` for
    tag)."""

    words: list[str]
    ids: list[int]
    label: int | None = None
    tags: list[int] | None = None
    heads: list[int] | None = None


# --- the vocabulary ------------------------------------------------------------------------------


def _tokenizer(lcfg: LabelledConfig, config: IngestConfig, rows: list[Row]
               ) -> tuple[Any, dict[str, Any]]:
    from tokenizers import Tokenizer

    if lcfg.vocab_from:
        manifest = read_manifest(lcfg.vocab_from, "data")
        path = Path(lcfg.vocab_from) / manifest.get("tokenizer", TOKENIZER)
        return Tokenizer.from_file(str(path)), {
            "vocab_from": str(Path(lcfg.vocab_from).resolve()),
            "fingerprint": manifest.get("fingerprint"),
            "normalisation": manifest.get("normalisation")}
    lines = [" ".join(r.value) if isinstance(r.value, list) else r.value or "" for r in rows]
    tokenizer = build_tokenizer(lines, config.vocab_size, config.min_frequency,
                                config.lowercase, fold_numbers=config.fold_numbers)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise PocketLMError("the train split has no words; pass a larger train split")
    return tokenizer, {"vocab_from": None, "normalisation": {
        "nfkc": True, "lowercase": config.lowercase, "fold_numbers": config.fold_numbers}}


# --- the stage -----------------------------------------------------------------------------------


def _labels_of(src: Source, task: Labelling, cols: Columns
               ) -> tuple[list[str], dict[str, list[Any]]]:
    """Per split, each row's label name(s), checked; and the label list."""
    named = {split: [task.label_of(row, src.class_names, cols.label, cols.value) for row in rows]
             for split, rows in src.rows.items()}
    if not named["train"]:
        raise PocketLMError("the train split is empty; pass examples to train on")
    labels = task.label_list(named["train"], src.class_names)
    seen = {k for value in named["train"] for k in task.kinds(value)}
    for split in ("valid", "test"):
        for row, value in zip(src.rows[split], named[split]):
            for kind in task.kinds(value):
                if kind not in seen:
                    raise PocketLMError(
                        f"{row.where}: field {cols.label!r}: {task.kind} {kind!r} of the {split} "
                        f"split never occurs in train (train has {len(seen)}: "
                        f"{', '.join(sorted(seen)[:20])}); fix the label or add train examples")
    return labels, named


def _split_entry(split: str, examples: list[dict[str, Any]], labels: list[str],
                 task: Labelling, rule: str) -> dict[str, Any]:
    tokens = sum(len(e["ids"]) for e in examples)
    oov = sum(i == UNK_ID for e in examples for i in e["ids"])
    return {"file": f"{split}.jsonl", "rule": rule, "sentences": len(examples),
            "tokens": tokens, "oov_words": oov, "oov_rate": oov / tokens if tokens else 0.0,
            **task.counts(examples, labels)}


def ingest_labelled(config: IngestConfig, lcfg: LabelledConfig, out: str | os.PathLike[str],
                    overwrite: bool = False, force: bool = False) -> dict[str, Any]:
    """Read labelled examples (``lcfg.task`` classify or tag), encode them and write the data
    folder ``out`` atomically; return its manifest. ``force`` is accepted for symmetry with
    the LM ingest (a labelled folder is always rebuilt)."""
    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, overwrite)
    task = LABELLINGS[lcfg.task]
    settings = {**asdict(config), **asdict(lcfg)}
    cols = Columns(settings[task.value_field], settings[task.label_field],
                   option_name(task.value_field), option_name(task.label_field), task.sequence)
    src = read_source(config, cols, lcfg.format, task.kjv)
    labels, named = _labels_of(src, task, cols)
    index = {name: i for i, name in enumerate(labels)}
    tokenizer, vocab = _tokenizer(lcfg, config, src.rows["train"])
    examples = {split: [task.encode(row, tokenizer, name, index, cols.value)
                        for row, name in zip(src.rows[split], named[split])] for split in SPLITS}
    splits = {s: _split_entry(s, examples[s], labels, task, src.rules[s]) for s in SPLITS}
    with atomic_folder(out, overwrite) as tmp:
        if lcfg.vocab_from:
            copy_tokenizer(Path(vocab["vocab_from"]) / TOKENIZER, tmp / TOKENIZER)
        else:
            save_tokenizer(tokenizer, tmp / TOKENIZER)
        (tmp / LABELS).write_text(json.dumps(labels, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
        for split in SPLITS:
            with open(tmp / f"{split}.jsonl", "w", encoding="utf-8") as fh:
                for example in examples[split]:
                    fh.write(json.dumps(example, ensure_ascii=False, separators=(",", ":")))
                    fh.write("\n")
        body = {
            "task": lcfg.task,
            "labels": labels,
            "features": {"shapes": list(SHAPES), "suffix_buckets": SUFFIX_BUCKETS},
            "config": settings,
            "source": src.source,
            "split_rule": "; ".join(f"{s}: {src.rules[s]}" for s in SPLITS),
            "vocab_size": tokenizer.get_vocab_size(),
            "tokenizer": TOKENIZER,
            "labels_file": LABELS,
            **vocab,
            "splits": splits,
            "versions": package_versions("datasets", "tokenizers"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        manifest = write_manifest(tmp, "data", body, [TOKENIZER, LABELS] +
                                  [splits[s]["file"] for s in SPLITS])
    return {**manifest, "reused": False}


def report(manifest: dict[str, Any]) -> str:
    """The table of a labelled data manifest: per split sentences, tokens, OOV rate, then the
    count of each label per split (word pieces for tag, with entity counts)."""
    splits = manifest["splits"]
    rows = [["split", "sentences", "tokens", "OOV rate"]]
    rows += [[s, f"{e['sentences']:,}", f"{e['tokens']:,}", f"{e['oov_rate']:.2%}"]
             for s, e in splits.items()]
    rows.append(["label"] + list(splits))
    rows += [[name] + [f"{splits[s]['label_counts'].get(name, 0):,}" for s in splits]
             for name in manifest["labels"]]
    types = sorted({t for e in splits.values() for t in e.get("entities", {})})
    if types:
        rows.append(["entity spans"] + list(splits))
        rows += [[t] + [f"{splits[s]['entities'].get(t, 0):,}" for s in splits] for t in types]
    width = max(len(r[0]) for r in rows)
    lines = []
    for r in rows:
        if r[0] in ("split", "label", "entity spans"):
            lines.append("")
        lines.append(r[0].ljust(width) + "".join(c.rjust(12) for c in r[1:]))
    lines.append("")
    lines.append(f"task {manifest['task']}: {len(manifest['labels'])} labels; vocabulary "
                 f"{manifest['vocab_size']:,} words"
                 + (f" from {manifest['vocab_from']}" if manifest.get("vocab_from") else ""))
    lines += [f"{s} split: {e['rule']}" for s, e in splits.items()]
    return "\n".join(lines[1:])


# --- reading a labelled folder -------------------------------------------------------------------


def read_labels(data_dir: str | os.PathLike[str]) -> list[str]:
    """The label names of a labelled data folder (index = label id)."""
    path = Path(data_dir) / LABELS
    if not path.is_file():
        raise PocketLMError(f"{data_dir}: no {LABELS}; ingest labelled data with "
                            f"`pocketlm ingest --task classify|tag`")
    return list(json.loads(path.read_text(encoding="utf-8")))


def load_examples(data_dir: str | os.PathLike[str], split: str) -> list[Example]:
    """The examples of one split of a labelled data folder (checked by hash)."""
    manifest = read_manifest(data_dir, "data")
    if manifest.get("task", "lm") == "lm" or split not in manifest["splits"]:
        raise PocketLMError(f"{data_dir}: no labelled split {split!r}; pass a folder written "
                            f"by `pocketlm ingest --task classify|tag` and one of "
                            f"{', '.join(SPLITS)}")
    path = Path(data_dir) / manifest["splits"][split]["file"]
    with open(path, encoding="utf-8") as fh:
        return [Example(**json.loads(line)) for line in fh if line.strip()]


# --- one ingest per task -------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskIngest:
    """How ``pocketlm ingest --task NAME`` writes its folder and reports it."""

    run: Callable[[IngestConfig, LabelledConfig, str | os.PathLike[str], bool, bool],
                  dict[str, Any]]
    report: Callable[[dict[str, Any]], str]


def _lm(config: IngestConfig, lcfg: LabelledConfig, out: str | os.PathLike[str],
        overwrite: bool, force: bool) -> dict[str, Any]:
    return lm_ingest(config, out, overwrite, force=force)


#: Task name → its ingest (the one place the ingest command looks a task up); the labelled
#: tasks' differences are their entries in ``LABELLINGS``.
TASK_INGESTS = {"lm": TaskIngest(_lm, lm_report),
                **{name: TaskIngest(ingest_labelled, report) for name in LABELLINGS}}


def task_ingest(task: str) -> TaskIngest:
    """The ingest of ``task``; an unknown name is an error listing the known ones."""
    if task not in TASK_INGESTS:
        raise PocketLMError(f"unknown task {task!r} (--task); choose one of "
                            f"{', '.join(TASK_INGESTS)}")
    return TASK_INGESTS[task]


def stats(data_dir: str | os.PathLike[str]) -> str:
    """The report of an existing data folder, LM or labelled (``pocketlm ingest --stats``)."""
    manifest = read_manifest(data_dir, "data", verify=False)
    return task_ingest(manifest.get("task", "lm")).report(manifest)
