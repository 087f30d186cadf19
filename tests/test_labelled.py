"""Labelled ingest (``pocketlm ingest --task classify|tag``): files of each kind, saved datasets
with ClassLabel columns, CoNLL files, the vocabulary reused from an LM folder, the folder's
format, and the one-line errors of bad input that leave nothing behind. Every file is written
here, read through the real ``datasets`` and ``tokenizers``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import Result
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from pocketlm.pipeline.corpus import SPLITS
from pocketlm.pipeline.ingest import IngestConfig, ingest
from pocketlm.pipeline.labelled import (LABELS, TASK_INGESTS, LabelledConfig, ingest_labelled,
                                        load_examples, read_labels, task_ingest)
from pocketlm.runtime.artifact import UNK_ID, PocketLMError, read_manifest, write_manifest
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS

from .test_ingest_sources import invoke, ok

GOOD = ["a fine film", "Great acting by Anna", "a joy to watch", "warm and funny"]
BAD = ["a dull mess", "Boring and long", "no story at all", "flat jokes"]


def sentiment(n: int, start: int = 0) -> list[tuple[str, str]]:
    """n (text, label) pairs, alternating pos / neg, numbered from ``start``."""
    return [(GOOD[i // 2 % 4] + f" {i + start}", "pos") if i % 2 == 0 else
            (BAD[i // 2 % 4] + f" {i + start}", "neg") for i in range(n)]


def write_rows(path: Path, rows: list[tuple[str, str]], text: str = "text",
               label: str = "label") -> Path:
    """(text, label) rows as .csv, .tsv, .jsonl or .parquet."""
    if path.suffix in (".csv", ".tsv"):
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writerow([text, label])
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({text: t, label: lab}) + "\n" for t, lab in rows),
                        encoding="utf-8")
    else:
        Dataset.from_dict({text: [t for t, _ in rows], label: [lab for _, lab in rows]}
                          ).to_parquet(str(path))
    return path


def one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- classify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_classify_files_per_split(kind: str, tmp_path: Path) -> None:
    """Files per split keep their splits; labels are the sorted names; words keep their case."""
    files = {s: write_rows(tmp_path / f"{s}{kind}", sentiment(n, start))
             for s, n, start in (("train", 24, 0), ("valid", 4, 0), ("test", 6, 100))}
    out = tmp_path / "data"
    result = ok("ingest", "--task", "classify", "--out", str(out),
                *(a for s in SPLITS for a in (f"--{s}-files", str(files[s]))))
    assert "pos" in result.output and "OOV rate" in result.output
    manifest = read_manifest(out, "data")
    assert manifest["task"] == "classify" and manifest["labels"] == ["neg", "pos"]
    assert read_labels(out) == ["neg", "pos"]
    assert manifest["features"] == {"shapes": list(SHAPES), "suffix_buckets": SUFFIX_BUCKETS}
    assert {s: manifest["splits"][s]["sentences"] for s in SPLITS} == \
        {"train": 24, "valid": 4, "test": 6}
    assert manifest["splits"]["train"]["label_counts"] == {"neg": 12, "pos": 12}
    assert set(manifest["files"]) == {"tokenizer.json", LABELS, "train.jsonl", "valid.jsonl",
                                      "test.jsonl"}
    first = jsonl(out / "train.jsonl")[2]
    assert first["words"] == ["Great", "acting", "by", "Anna", "2"] and first["label"] == 1
    assert UNK_ID not in first["ids"]
    examples = load_examples(out, "test")
    assert len(examples) == 6 and examples[1].label == 0 and examples[1].tags is None
    assert manifest["splits"]["test"]["oov_rate"] > 0  # test's numbers 100..105 are new words


def test_classify_pooled_file_carves_valid_and_test(tmp_path: Path) -> None:
    """One file: row i goes to valid when i % N == N-2, test when N-1; numeric labels sort by
    value."""
    rows = [(f"text number {i}", str(i % 11)) for i in range(44)]
    source = write_rows(tmp_path / "all.jsonl", rows)
    out = tmp_path / "data"
    ingest_labelled(IngestConfig(data_files=(str(source),), split_every=4),
                    LabelledConfig(task="classify"), out)
    assert read_labels(out) == [str(i) for i in range(11)]
    valid = [e.words[2] for e in load_examples(out, "valid")]
    assert valid == [str(i) for i in range(44) if i % 4 == 2]
    assert len(load_examples(out, "train")) == 22


def test_classify_saved_dataset_with_class_label(tmp_path: Path) -> None:
    """A ClassLabel column gives the label names (its order), columns chosen by option."""
    features = Features({"sentence": Value("string"),
                         "stars": ClassLabel(names=["one", "two", "three"])})
    data = {"sentence": ["good", "bad", "so so", "fine", "awful"] * 4, "stars": [2, 0, 1, 2, 0] * 4}
    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_dict(data, features=features),
                 "validation": Dataset.from_dict(data, features=features)}).save_to_disk(saved)
    out = tmp_path / "data"
    ok("ingest", "--task", "classify", "--dataset", str(saved), "--text-column", "sentence",
       "--label-column", "stars", "--out", str(out), "--split-every", "5")
    manifest = read_manifest(out, "data")
    assert manifest["labels"] == ["one", "two", "three"]
    assert manifest["splits"]["valid"]["sentences"] == 20
    assert manifest["splits"]["test"]["sentences"] == 4  # carved from train: i % 5 == 4
    assert [e.label for e in load_examples(out, "valid")][:3] == [2, 0, 1]


def test_vocab_from_an_lm_folder(tmp_path: Path) -> None:
    """--vocab-from copies the LM folder's tokenizer.json byte for byte (it is compact), and
    writes a pretty-printed one (a folder of an older pocketlm) compactly."""
    lm_corpus = tmp_path / "lm.txt"
    lm_corpus.write_text("a fine film and a dull mess\n" * 30, encoding="utf-8")
    lm = tmp_path / "lm"
    ingest(IngestConfig(data_files=(str(lm_corpus),)), lm)
    source = write_rows(tmp_path / "all.csv", sentiment(40))
    out = tmp_path / "data"
    result = ok("ingest", "--task", "classify", "--data-files", str(source), "--vocab-from",
                str(lm), "--out", str(out))
    assert f"from {lm.resolve()}" in result.output
    assert (out / "tokenizer.json").read_bytes() == (lm / "tokenizer.json").read_bytes()
    manifest = read_manifest(out, "data")
    assert manifest["vocab_from"] == str(lm.resolve()) and manifest["vocab_size"] == 8
    assert manifest["splits"]["train"]["oov_rate"] > 0.3  # "great", "joy", numbers ... unknown
    stats = ok("ingest", "--stats", str(out)).output
    assert "label" in stats and "pos" in stats
    compact = (lm / "tokenizer.json").read_bytes()
    pretty = json.dumps(json.loads(compact), indent=2, ensure_ascii=False).encode("utf-8")
    (lm / "tokenizer.json").write_bytes(pretty)
    body = json.loads((lm / "manifest.json").read_text(encoding="utf-8"))
    write_manifest(lm, "data", body, list(body.pop("files")))
    ok("ingest", "--task", "classify", "--data-files", str(source), "--vocab-from", str(lm),
       "--out", str(out), "--overwrite")
    assert (out / "tokenizer.json").read_bytes() == compact and len(pretty) > len(compact)


# --- tag -----------------------------------------------------------------------------------------


def test_tag_saved_dataset_with_pieces(tmp_path: Path) -> None:
    """Sequence-of-ClassLabel tags: names used, O first; a token cut into pieces keeps its tag
    on the first piece and I-X on the rest; heads point at first pieces."""
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = Features({"tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=names))})
    data = {"tokens": [["Jacob's", "son", "went", "to", "New", "York"], ["it", "rained"]] * 3,
            "ner_tags": [[1, 0, 0, 0, 3, 4], [0, 0]] * 3}
    saved = tmp_path / "saved"
    Dataset.from_dict(data, features=features).save_to_disk(saved)
    out = tmp_path / "data"
    ok("ingest", "--task", "tag", "--dataset", str(saved), "--tags-column", "ner_tags",
       "--out", str(out), "--split-every", "3")
    labels = read_labels(out)
    assert labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    first = load_examples(out, "train")[0]
    assert first.words == ["Jacob", "'", "s", "son", "went", "to", "New", "York"]
    assert [labels[t] for t in first.tags or []] == \
        ["B-PER", "I-PER", "I-PER", "O", "O", "O", "B-LOC", "I-LOC"]
    assert first.heads == [0, 3, 4, 5, 6, 7] and first.label is None
    manifest = read_manifest(out, "data")
    assert manifest["splits"]["train"]["entities"] == {"LOC": 1, "PER": 1}  # rows 0 and 3


def test_tag_conll_files(tmp_path: Path) -> None:
    """CoNLL files (found by extension, or --format conll): token ... tag per line, -DOCSTART-
    skipped, IOB1 read as BIO2."""
    train = tmp_path / "train.conll"
    train.write_text("-DOCSTART- -X- O O\n\nEU NNP I-ORG\nrejects VBZ O\nGerman JJ I-MISC\n\n"
                     "Peter NNP I-PER\nBlackburn NNP I-PER\n\n" * 2, encoding="utf-8")
    test = tmp_path / "test.txt"
    test.write_text("Paris\tB-LOC\nis\tO\n\nBlackburn\tB-PER\n", encoding="utf-8")
    out = tmp_path / "data"
    one_line_error(invoke("ingest", "--task", "tag", "--train-files", str(train),
                          "--test-files", str(test), "--out", str(out)), "test.txt",
                   "--format conll")
    one_line_error(invoke("ingest", "--task", "tag", "--format", "conll", "--train-files",
                          str(train), "--test-files", str(test), "--out", str(out)),
                   "test.txt: line 1", "entity type 'LOC'", "never occurs in train")
    assert not out.exists()
    test.write_text("Blackburn\tB-PER\nis\tO\n\n", encoding="utf-8")
    ok("ingest", "--task", "tag", "--format", "conll", "--train-files", str(train),
       "--test-files", str(test), "--out", str(out), "--split-every", "3")
    labels = read_labels(out)
    assert labels == ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    train_examples = load_examples(out, "train")
    assert [labels[t] for t in train_examples[0].tags or []] == ["B-ORG", "O", "B-MISC"]
    assert [labels[t] for t in train_examples[2].tags or []] == ["B-PER", "I-PER"]
    assert read_manifest(out, "data")["splits"]["test"]["sentences"] == 1


# --- one place per task --------------------------------------------------------------------------


def test_task_registry() -> None:
    assert list(TASK_INGESTS) == ["lm", "classify", "tag"]
    with pytest.raises(PocketLMError, match="choose one of lm, classify, tag"):
        task_ingest("parse")
    with pytest.raises(PocketLMError, match="--task"):
        LabelledConfig(task="parse")


def test_lm_ingest_is_unchanged(tmp_path: Path) -> None:
    """--task lm writes what the LM ingest writes, bytes and manifest config alike."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i} of text\n" for i in range(40)), encoding="utf-8")
    ok("ingest", "--out", str(tmp_path / "a"), "--data-files", str(corpus))
    ok("ingest", "--task", "lm", "--out", str(tmp_path / "b"), "--data-files", str(corpus))
    a, b = read_manifest(tmp_path / "a", "data"), read_manifest(tmp_path / "b", "data")
    assert a["config"] == b["config"] and "task" not in a["config"]
    assert a["files"] == b["files"] and a["fingerprint"] == b["fingerprint"]


# --- bad input: one line naming file, row and field; nothing written -----------------------------


def _fails(tmp_path: Path, args: list[str], *needles: str) -> None:
    out = tmp_path / "data"
    one_line_error(invoke("ingest", "--out", str(out), *args), *needles)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_column(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "all.csv", sentiment(20), label="sentiment")
    _fails(tmp_path, ["--task", "classify", "--data-files", str(source)],
           "all.csv", "no column 'label'", "columns: text, sentiment", "--label-column")


def test_token_tag_length_mismatch(tmp_path: Path) -> None:
    source = tmp_path / "all.jsonl"
    rows = [{"tokens": ["Anna", "sings"], "tags": ["B-PER", "O"]}] * 3 + \
        [{"tokens": ["Bob", "runs", "fast"], "tags": ["B-PER", "O"]}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _fails(tmp_path, ["--task", "tag", "--data-files", str(source)],
           "all.jsonl: row 4", "3 tokens", "2 tags", "'tags'")


def test_label_unseen_in_train(tmp_path: Path) -> None:
    train = write_rows(tmp_path / "train.csv", sentiment(20))
    valid = write_rows(tmp_path / "valid.csv", [("fine", "pos"), ("meh", "neutral")])
    _fails(tmp_path, ["--task", "classify", "--train-files", str(train), "--valid-files",
                      str(valid)], "valid.csv: row 2", "'neutral'", "never occurs in train")


def test_tag_type_unseen_in_train(tmp_path: Path) -> None:
    train = tmp_path / "train.conll"
    train.write_text("Anna B-PER\nsings O\n\n" * 4, encoding="utf-8")
    test = tmp_path / "test.conll"
    test.write_text("Anna B-PER\n\nin O\nParis B-LOC\n", encoding="utf-8")
    _fails(tmp_path, ["--task", "tag", "--train-files", str(train), "--test-files", str(test)],
           "test.conll: line 3", "entity type 'LOC'", "never occurs in train")


@pytest.mark.parametrize("text", ["", "   ", "..."])
def test_empty_text(text: str, tmp_path: Path) -> None:
    rows = sentiment(10)
    rows[7] = (text, "pos")
    source = write_rows(tmp_path / "all.csv", rows)
    if text == "...":  # punctuation is a word piece: not empty
        ok("ingest", "--task", "classify", "--data-files", str(source), "--out",
           str(tmp_path / "data"))
        return
    _fails(tmp_path, ["--task", "classify", "--data-files", str(source)],
           "all.csv: row 8", "'text'", "empty")


def test_conll_line_without_tag(tmp_path: Path) -> None:
    source = tmp_path / "a.conll"
    source.write_text("Anna B-PER\nsings\n", encoding="utf-8")
    _fails(tmp_path, ["--task", "tag", "--data-files", str(source)], "a.conll: line 2",
           "no tag")


def test_not_bio(tmp_path: Path) -> None:
    source = tmp_path / "a.conll"
    source.write_text("Anna PER\nsings O\n", encoding="utf-8")
    _fails(tmp_path, ["--task", "tag", "--data-files", str(source)], "a.conll: line 1",
           "'PER'", "not BIO")


def test_hub_name_offline(tmp_path: Path) -> None:
    _fails(tmp_path, ["--task", "classify", "--dataset", "pocketlm-tests/no-such-set-9d2e"],
           "no-such-set-9d2e", "--data-files")


def test_out_exists(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "all.csv", sentiment(20))
    out = tmp_path / "data"
    ok("ingest", "--task", "classify", "--data-files", str(source), "--out", str(out))
    one_line_error(invoke("ingest", "--task", "classify", "--data-files", str(source),
                          "--out", str(out)), "--overwrite")
    ok("ingest", "--task", "classify", "--data-files", str(source), "--out", str(out),
       "--overwrite")


def test_every_labelled_field_is_an_ingest_option() -> None:
    """The labelled options are LabelledConfig's fields, with their defaults (declared once)."""
    import dataclasses

    from pocketlm.pipeline.options import option_name
    from pocketlm.stages.cli import stages

    params = {p.name: p for p in stages.commands["ingest"].params}
    for f in dataclasses.fields(LabelledConfig):
        assert option_name(f.name) in params[f.name].opts and params[f.name].default == f.default
