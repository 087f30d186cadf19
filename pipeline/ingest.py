"""Stage 1, ingest: corpus → vocabulary (``tokenizer.json``) + token ids per split.

Output folder (see docs/artifacts.md)::

    data/
      manifest.json     source, config, split rule, sizes, OOV rates, special ids, hashes
      tokenizer.json    tokenizers WordLevel model, normaliser and pre-tokenizer included
      train.bin         token ids, every line followed by <eos> (uint16, or uint32 for big vocabs)
      valid.bin
      test.bin
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime.artifact import (EOS_ID, EOS_TOKEN, SPECIAL_TOKENS, UNK_ID, UNK_TOKEN,
                                       PocketLMError, atomic_folder, check_output_folder,
                                       package_versions, write_manifest)

from .corpus import SPLITS, Corpus, load_corpus

log = logging.getLogger(__name__)
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class IngestConfig:
    """How to read the corpus and build the vocabulary.

    ``vocab_size`` counts the special tokens; ``split_every`` is the split period (line i goes to
    valid when i % split_every == split_every - 2, to test when == split_every - 1).
    """

    data_files: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_split: str = "train"
    dataset_config: str | None = None
    text_column: str = "text"
    vocab_size: int = 10_000
    min_frequency: int = 1
    lowercase: bool = True
    split_every: int = 20

    def __post_init__(self) -> None:
        if self.vocab_size < len(SPECIAL_TOKENS) + 1:
            raise PocketLMError(f"--vocab-size {self.vocab_size} is too small; it counts the "
                                f"{len(SPECIAL_TOKENS)} special tokens, use at least 3")
        if self.split_every < 3:
            raise PocketLMError(f"--split-every {self.split_every} is too small; use at least 3")
        if self.min_frequency < 1:
            raise PocketLMError("--min-frequency must be at least 1")


def build_tokenizer(lines: Iterable[str], vocab_size: int, min_frequency: int = 1,
                    lowercase: bool = True, length: int | None = None) -> Any:
    """Train a WordLevel tokenizer on ``lines``: ``<unk>`` = 0, ``<eos>`` = 1, then words by
    frequency. Words are split on whitespace and punctuation after NFKC (and lowercasing)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tokenizer = Tokenizer(WordLevel(unk_token=UNK_TOKEN))
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                               special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(lines, trainer, length=length)
    assert tokenizer.token_to_id(UNK_TOKEN) == UNK_ID and tokenizer.token_to_id(EOS_TOKEN) == EOS_ID
    return tokenizer


def _batches(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest(config: IngestConfig, out: str | os.PathLike[str], overwrite: bool = False,
           corpus: Corpus | None = None) -> dict[str, Any]:
    """Run the ingest stage into ``out`` (written atomically); return the manifest."""
    started = time.perf_counter()
    check_output_folder(out, overwrite)
    if corpus is None:
        corpus = load_corpus(config.data_files, config.dataset, config.dataset_split,
                             config.dataset_config, config.text_column)
    log.info("corpus: %s (%d rows)", corpus.source["type"], corpus.source["rows"])
    tokenizer = build_tokenizer(corpus.split_lines("train", config.split_every),
                                config.vocab_size, config.min_frequency, config.lowercase)
    vocab_size = tokenizer.get_vocab_size()
    if vocab_size <= len(SPECIAL_TOKENS):
        raise PocketLMError("the train split has no words; pass a larger corpus")
    dtype = np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)
    stats = {s: {"file": f"{s}.bin", "dtype": dtype.name, "lines": 0, "tokens": 0,
                 "words": 0, "oov_words": 0} for s in SPLITS}
    with atomic_folder(out, overwrite) as tmp:
        tokenizer.save(str(tmp / TOKENIZER))
        handles = {s: open(tmp / stats[s]["file"], "wb") for s in SPLITS}
        try:
            index = 0
            every = config.split_every
            for batch in _batches(corpus.lines(), 8192):
                encodings = tokenizer.encode_batch(batch)
                parts: dict[str, list[list[int]]] = {s: [] for s in SPLITS}
                for enc in encodings:
                    r = index % every
                    split = "valid" if r == every - 2 else "test" if r == every - 1 else "train"
                    parts[split].append(enc.ids)
                    index += 1
                for split, id_lists in parts.items():
                    if not id_lists:
                        continue
                    flat = np.fromiter((i for ids in id_lists for i in (*ids, EOS_ID)),
                                       dtype=dtype)
                    flat.tofile(handles[split])
                    st = stats[split]
                    st["lines"] += len(id_lists)
                    st["tokens"] += int(flat.size)
                    st["words"] += int(flat.size) - len(id_lists)
                    st["oov_words"] += int(np.count_nonzero(flat == UNK_ID))
        finally:
            for fh in handles.values():
                fh.close()
        for split, st in stats.items():
            st["oov_rate"] = st["oov_words"] / st["words"] if st["words"] else 0.0
        for split in ("valid", "test"):
            if stats[split]["lines"] == 0:
                log.warning("the %s split is empty (the corpus has fewer than %d lines)",
                            split, config.split_every)
        body = {
            "config": asdict(config),
            "source": corpus.source,
            "split_rule": (f"i-th non-blank line (0-based): valid if i % {every} == {every - 2}, "
                           f"test if i % {every} == {every - 1}, else train"),
            "vocab_size": vocab_size,
            "tokenizer": TOKENIZER,
            "splits": stats,
            "versions": package_versions("datasets", "tokenizers", "numpy"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        manifest = write_manifest(tmp, "data", body,
                                  [TOKENIZER] + [stats[s]["file"] for s in SPLITS])
    log.info("ingest: %d words in the vocabulary; train/valid/test tokens %d/%d/%d",
             vocab_size, *(stats[s]["tokens"] for s in SPLITS))
    return manifest


def load_split(data_dir: str | os.PathLike[str], split: str,
               manifest: dict[str, Any] | None = None) -> np.ndarray:
    """Token ids of one split of an ingest folder, memory-mapped (read-only)."""
    from pocketlm.runtime.artifact import read_manifest

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
