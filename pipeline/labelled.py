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
an entity X) or O. Tags are BIO2: an I-X that does not continue an X entity is read as B-X.

Nothing is written when an example is bad: the error names the file, the row and the field.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import (SPECIAL_TOKENS, UNK_ID, PocketLMError, atomic_folder,
                                       check_output_folder, package_versions, read_manifest,
                                       write_manifest)
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS, words_of

from .corpus import SPLITS
from .ingest import TOKENIZER, IngestConfig, build_tokenizer
from .ingest import ingest as lm_ingest
from .ingest import report as lm_report
from .labelled_read import FORMATS, Columns, Row, Source, read_source
from .options import check_fields, option

LABELS = "labels.json"
BIO = re.compile(r"^([BI])-(.+)$")


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


# --- labels --------------------------------------------------------------------------------------


def _label_name(row: Row, names: list[str] | None, value: Any, column: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PocketLMError(f"{row.where}: field {column!r} is empty; give every example a label")
    if names is not None and isinstance(value, int):
        if not 0 <= value < len(names):
            raise PocketLMError(f"{row.where}: field {column!r} is {value}, not a label id of "
                                f"{names}; drop unlabelled rows (-1) before ingest")
        return names[value]
    return str(value).strip()


def _bio(row: Row, tags: list[str], column: str) -> list[str]:
    """Tags checked and made BIO2 (an I-X that does not continue X becomes B-X)."""
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


def _sort_key(name: str) -> tuple[int, float | str]:
    return (0, float(name)) if re.fullmatch(r"-?\d+(\.\d+)?", name) else (1, name)


def label_list(task: str, train: list[Any], names: list[str] | None) -> list[str]:
    """The label names (index = id): a ClassLabel's names, else the train labels sorted
    (numbers by value); for tag, O then B-X, I-X per entity type X (sorted)."""
    if task == "classify":
        return list(names) if names is not None else sorted(set(train), key=_sort_key)
    types = sorted({t[2:] for tags in train for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


# --- encoding ------------------------------------------------------------------------------------


def _classify_example(row: Row, tokenizer: Any, label: int, column: str) -> dict[str, Any]:
    text = (row.text or "").strip()
    words, ids = words_of(tokenizer, text) if text else ([], [])
    if not words:
        raise PocketLMError(f"{row.where}: field {column!r} is empty (no words); drop the row "
                            f"or fill it")
    return {"words": words, "ids": ids, "label": label}


def _tag_example(row: Row, tokenizer: Any, tags: list[str], index: dict[str, int],
                 column: str) -> dict[str, Any]:
    tokens = row.tokens or []
    enc = tokenizer.encode(tokens, is_pretokenized=True) if tokens else None
    if enc is None or not enc.ids:
        raise PocketLMError(f"{row.where}: field {column!r} is empty (no tokens); drop the row")
    words, piece_tags, heads = [], [], []
    for j, (w, (start, end)) in enumerate(zip(enc.word_ids, enc.offsets)):
        first = len(heads) <= w
        if first:
            if w != len(heads):
                raise PocketLMError(f"{row.where}: field {column!r}, token {len(heads) + 1} "
                                    f"{tokens[len(heads)]!r} has no word characters; drop it")
            heads.append(j)
        tag = tags[w]
        piece = tag if first else ("O" if tag == "O" else "I-" + tag[2:])
        words.append(tokens[w][start:end])
        piece_tags.append(index[piece])
    if len(heads) != len(tokens):
        raise PocketLMError(f"{row.where}: field {column!r}, token {len(heads) + 1} "
                            f"{tokens[len(heads)]!r} has no word characters; drop it")
    return {"words": words, "ids": list(enc.ids), "tags": piece_tags, "heads": heads}


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
    lines = [r.text or "" if r.tokens is None else " ".join(r.tokens) for r in rows]
    tokenizer = build_tokenizer(lines, config.vocab_size, config.min_frequency,
                                config.lowercase, fold_numbers=config.fold_numbers)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise PocketLMError("the train split has no words; pass a larger train split")
    return tokenizer, {"vocab_from": None, "normalisation": {
        "nfkc": True, "lowercase": config.lowercase, "fold_numbers": config.fold_numbers}}


# --- the stage -----------------------------------------------------------------------------------


def _labels_of(src: Source, cols: Columns) -> tuple[list[str], dict[str, list[Any]]]:
    """Per split, each row's label name(s), checked; and the label list."""
    column = cols.label if cols.task == "classify" else cols.tags
    named: dict[str, list[Any]] = {}
    for split, rows in src.rows.items():
        named[split] = []
        for row in rows:
            if cols.task == "classify":
                named[split].append(_label_name(row, src.class_names, row.label, column))
                continue
            tags = [_label_name(row, src.class_names, t, column) for t in row.label]
            if len(tags) != len(row.tokens or []):
                raise PocketLMError(f"{row.where}: {len(row.tokens or [])} tokens in "
                                    f"{cols.tokens!r} but {len(tags)} tags in {column!r}; give "
                                    f"each token one tag")
            named[split].append(_bio(row, tags, column))
    if not named["train"]:
        raise PocketLMError("the train split is empty; pass examples to train on")
    labels = label_list(cols.task, named["train"], src.class_names)
    def kinds(value: Any) -> list[str]:  # a label, or the entity types of a tag sequence
        return [value] if cols.task == "classify" else [t[2:] for t in value if t != "O"]

    seen = {k for value in named["train"] for k in kinds(value)}
    what = "label" if cols.task == "classify" else "entity type"
    for split in ("valid", "test"):
        for row, value in zip(src.rows[split], named[split]):
            for kind in kinds(value):
                if kind not in seen:
                    raise PocketLMError(
                        f"{row.where}: field {column!r}: {what} {kind!r} of the {split} split "
                        f"never occurs in train (train has {len(seen)}: "
                        f"{', '.join(sorted(seen)[:20])}); fix the label or add train examples")
    return labels, named


def _split_entry(split: str, examples: list[dict[str, Any]], labels: list[str], task: str,
                 rule: str) -> dict[str, Any]:
    tokens = sum(len(e["ids"]) for e in examples)
    oov = sum(i == UNK_ID for e in examples for i in e["ids"])
    counts: Counter[str] = Counter()
    entry: dict[str, Any] = {"file": f"{split}.jsonl", "rule": rule,
                             "sentences": len(examples), "tokens": tokens, "oov_words": oov,
                             "oov_rate": oov / tokens if tokens else 0.0}
    if task == "classify":
        counts.update(labels[e["label"]] for e in examples)
    else:
        counts.update(labels[t] for e in examples for t in e["tags"])
        entry["entities"] = dict(sorted(Counter(
            labels[e["tags"][h]][2:] for e in examples for h in e["heads"]
            if labels[e["tags"][h]].startswith("B-")).items()))
    entry["label_counts"] = {name: counts[name] for name in labels}
    return entry


def ingest_labelled(config: IngestConfig, lcfg: LabelledConfig, out: str | os.PathLike[str],
                    overwrite: bool = False, force: bool = False) -> dict[str, Any]:
    """Read labelled examples (``lcfg.task`` classify or tag), encode them and write the data
    folder ``out`` atomically; return its manifest. ``force`` is accepted for symmetry with
    the LM ingest (a labelled folder is always rebuilt)."""
    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, overwrite)
    cols = Columns(lcfg.task, config.text_column, lcfg.label_column, lcfg.tokens_column,
                   lcfg.tags_column)
    src = read_source(config, cols, lcfg.format)
    labels, named = _labels_of(src, cols)
    index = {name: i for i, name in enumerate(labels)}
    tokenizer, vocab = _tokenizer(lcfg, config, src.rows["train"])
    examples: dict[str, list[dict[str, Any]]] = {}
    column = cols.text if cols.task == "classify" else cols.tokens
    for split in SPLITS:
        examples[split] = [
            _classify_example(row, tokenizer, index[name], column) if cols.task == "classify"
            else _tag_example(row, tokenizer, name, index, column)
            for row, name in zip(src.rows[split], named[split])]
    splits = {s: _split_entry(s, examples[s], labels, cols.task, src.rules[s]) for s in SPLITS}
    with atomic_folder(out, overwrite) as tmp:
        if lcfg.vocab_from:
            shutil.copyfile(Path(vocab["vocab_from"]) / TOKENIZER, tmp / TOKENIZER)
        else:
            tokenizer.save(str(tmp / TOKENIZER))
        (tmp / LABELS).write_text(json.dumps(labels, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
        for split in SPLITS:
            with open(tmp / f"{split}.jsonl", "w", encoding="utf-8") as fh:
                for example in examples[split]:
                    fh.write(json.dumps(example, ensure_ascii=False, separators=(",", ":")))
                    fh.write("\n")
        body = {
            "task": cols.task,
            "labels": labels,
            "features": {"shapes": list(SHAPES), "suffix_buckets": SUFFIX_BUCKETS},
            "config": {**asdict(config), **asdict(lcfg)},
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
    if manifest["task"] == "tag":
        types = sorted({t for e in splits.values() for t in e.get("entities", {})})
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


#: Task name → its ingest (the one place the ingest command looks a task up).
TASK_INGESTS = {"lm": TaskIngest(_lm, lm_report),
                "classify": TaskIngest(ingest_labelled, report),
                "tag": TaskIngest(ingest_labelled, report)}


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
