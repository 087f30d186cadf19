"""Writing an ingest folder's splits, and the figures they are reported by.

Pass 2 of ingest hands every line to its split's :class:`SplitWriter`, which buffers
``BATCH_LINES`` lines, encodes them in one batch and appends the ids to ``<split>.bin``::

    lines ──▶ encode_batch ──▶ ids + <eos> per line ──▶ split.bin (uint16 or uint32)
                                      └▶ SplitStats: lines, tokens, id counts, <unk> words
                                         (the lines holding <unk> encoded again, with offsets,
                                         to name the words)

:func:`split_entry` turns the figures into the split's manifest entry (OOV rate, type coverage,
most frequent ``<unk>`` words, long-line counts); :func:`report` prints the entries as the table
``pocketlm ingest`` and ``pocketlm ingest --stats`` show.
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime.artifact import EOS_ID, SPECIAL_TOKENS, UNK_ID, read_manifest

from .corpus import LineCounts

#: Lines encoded per batch.
BATCH_LINES = 8192
#: Most frequent ``<unk>`` words kept per split in the manifest.
UNK_TOP = 10
#: Distinct ``<unk>`` words counted per split; beyond it only words already seen are counted.
UNK_TYPES_MAX = 1_000_000


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


class SplitWriter:
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


def split_entry(split: str, stats: SplitStats, guard: LineCounts, dtype: np.dtype,
                rule: str) -> dict[str, Any]:
    """The split's entry in the data manifest: its file, sizes and coverage figures."""
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
