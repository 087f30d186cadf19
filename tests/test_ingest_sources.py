"""Ingest of the corpora people bring: splits from the source (files per split, a saved
``DatasetDict``), streaming, the fingerprint cache, number folding, the long-line guard,
encodings, the report, and the one-line errors of bad input. Every corpus is written here."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer

from pocketlm.pipeline.corpus import SPLITS, line_split
from pocketlm.pipeline.ingest import IngestConfig, fingerprint, ingest, load_split
from pocketlm.pipeline.options import option_name
from pocketlm.pipeline.splits import report
from pocketlm.runtime.artifact import EOS_ID, UNK_ID, PocketLMError, read_manifest
from pocketlm.runtime.cli import cli
from pocketlm.stages.cli import stages

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda"]


def lines_of(tag: str, n: int) -> list[str]:
    """n distinct lines, each starting with its tag and number: 'train 0 alpha beta ...'."""
    return [f"{tag} {i} " + " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(i % 5 + 2))
            for i in range(n)]


SIZES = {"train": 60, "valid": 7, "test": 9}
TEXTS = {split: lines_of(split, n) for split, n in SIZES.items()}


def write(path: Path, lines: list[str]) -> Path:
    """Write lines as the file kind its suffix names (txt, jsonl, csv, parquet)."""
    kind = path.suffix
    if kind == ".txt":
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif kind == ".jsonl":
        path.write_text("".join(json.dumps({"id": i, "text": line}, ensure_ascii=False) + "\n"
                                for i, line in enumerate(lines)), encoding="utf-8")
    elif kind == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "text"])
            writer.writerows(enumerate(lines))
    elif kind == ".parquet":
        Dataset.from_dict({"text": lines}).to_parquet(str(path))
    return path


def split_files(folder: Path, kind: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {split: write(folder / f"{split}{kind}", TEXTS[split]) for split in SPLITS}


def decoded(data: Path, split: str) -> list[list[int]]:
    """The id lists of a split, one per line (the <eos> markers removed)."""
    ids = load_split(data, split).tolist()
    out, line = [], []
    for i in ids:
        if i == EOS_ID:
            out.append(line)
            line = []
        else:
            line.append(i)
    return out


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.output
    assert sum(line.startswith("Error") for line in lines) == 1
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


# --- splits from the source ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [".txt", ".jsonl", ".csv", ".parquet"])
def test_three_files_keep_their_splits(kind: str, tmp_path: Path) -> None:
    """--train-files/--valid-files/--test-files: each split is exactly its file, in order
    (line counts and first lines checked), and the manifest names the rule of each split."""
    files = split_files(tmp_path / "corpus", kind)
    out = tmp_path / "data"
    ok("-q", "ingest", "--out", str(out), "--train-files", str(files["train"]),
       "--valid-files", str(files["valid"]), "--test-files", str(files["test"]))
    manifest = read_manifest(out, "data")
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    for split in SPLITS:
        entry = manifest["splits"][split]
        assert entry["lines"] == SIZES[split]
        assert entry["rule"] == f"source split {split!r}"
        got = decoded(out, split)
        assert len(got) == SIZES[split]
        assert got[0] == tokenizer.encode(TEXTS[split][0]).ids
    # the vocabulary comes from the train file only: 'valid' and 'test' are <unk>
    assert tokenizer.token_to_id("valid") is None and tokenizer.token_to_id("train") is not None
    assert decoded(out, "valid")[0][0] == UNK_ID
    assert manifest["source"]["split_files"]["valid"] == [str(files["valid"])]


def test_train_files_alone_use_the_line_rule(tmp_path: Path) -> None:
    """--train-files without valid/test files: the line rule carves both from train."""
    files = split_files(tmp_path / "corpus", ".txt")
    manifest = ingest(IngestConfig(train_files=(str(files["train"]),)), tmp_path / "data")
    assert [manifest["splits"][s]["lines"] for s in SPLITS] == [54, 3, 3]
    assert "i % 20 == 18" in manifest["splits"]["valid"]["rule"]


def test_train_and_valid_files_carve_test_from_train(tmp_path: Path) -> None:
    """With train and valid files only, valid is the file and test is carved from train."""
    files = split_files(tmp_path / "corpus", ".txt")
    manifest = ingest(IngestConfig(train_files=(str(files["train"]),),
                                   valid_files=(str(files["valid"]),)), tmp_path / "data")
    assert [manifest["splits"][s]["lines"] for s in SPLITS] == [57, 7, 3]
    assert manifest["splits"]["valid"]["rule"] == "source split 'valid'"
    assert "i % 20 == 19" in manifest["splits"]["test"]["rule"]
    assert "i % 20 == 18" not in manifest["splits"]["train"]["rule"]
    wanted = [line for i, line in enumerate(TEXTS["train"])
              if line_split(i, 20, frozenset({"test"})) == "test"]
    tokenizer = Tokenizer.from_file(str(tmp_path / "data" / "tokenizer.json"))
    assert decoded(tmp_path / "data", "test") == [tokenizer.encode(t).ids for t in wanted]


def test_globs_expand_in_sorted_order(tmp_path: Path) -> None:
    """A glob in --train-files reads every match, sorted."""
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder / "b.txt", TEXTS["train"][30:])
    write(folder / "a.txt", TEXTS["train"][:30])
    valid = write(tmp_path / "v.txt", TEXTS["valid"])
    test = write(tmp_path / "t.txt", TEXTS["test"])
    out = tmp_path / "data"
    ingest(IngestConfig(train_files=(str(folder / "*.txt"),), valid_files=(str(valid),),
                        test_files=(str(test),)), out)
    whole = tmp_path / "whole"
    files = split_files(tmp_path / "c", ".txt")
    ingest(IngestConfig(train_files=(str(files["train"]),), valid_files=(str(valid),),
                        test_files=(str(test),)), whole)
    assert (out / "train.bin").read_bytes() == (whole / "train.bin").read_bytes()


@pytest.fixture
def saved_dict(tmp_path: Path) -> Path:
    folder = tmp_path / "saved_dict"
    DatasetDict({"train": Dataset.from_dict({"text": TEXTS["train"]}),
                 "validation": Dataset.from_dict({"text": TEXTS["valid"]}),
                 "test": Dataset.from_dict({"text": TEXTS["test"]})}).save_to_disk(str(folder))
    return folder


def test_saved_dataset_dict_keeps_its_splits(saved_dict: Path, tmp_path: Path) -> None:
    """A saved DatasetDict with train/validation/test gives exactly those splits, and its
    ids equal those of the same text given as three files."""
    out = tmp_path / "data"
    manifest = ingest(IngestConfig(dataset=str(saved_dict)), out)
    assert [manifest["splits"][s]["lines"] for s in SPLITS] == [60, 7, 9]
    assert manifest["splits"]["valid"]["rule"] == "source split 'validation'"
    assert manifest["source"]["split_names"] == {"train": "train", "valid": "validation",
                                                 "test": "test"}
    files = split_files(tmp_path / "corpus", ".txt")
    ingest(IngestConfig(train_files=(str(files["train"]),), valid_files=(str(files["valid"]),),
                        test_files=(str(files["test"]),)), tmp_path / "files")
    for name in ("tokenizer.json", "train.bin", "valid.bin", "test.bin"):
        assert (out / name).read_bytes() == (tmp_path / "files" / name).read_bytes()


def test_saved_dataset_dict_without_test(tmp_path: Path) -> None:
    """A DatasetDict with train and validation only: test is carved from train by the rule."""
    folder = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_dict({"text": TEXTS["train"]}),
                 "validation": Dataset.from_dict({"text": TEXTS["valid"]})}
                ).save_to_disk(str(folder))
    manifest = ingest(IngestConfig(dataset=str(folder)), tmp_path / "data")
    assert [manifest["splits"][s]["lines"] for s in SPLITS] == [57, 7, 3]
    assert manifest["splits"]["test"]["rule"].endswith("of source split 'train'")


def test_dataset_split_pools_one_split(saved_dict: Path, tmp_path: Path) -> None:
    """--dataset-split NAME reads that split only and splits it by the line rule."""
    manifest = ingest(IngestConfig(dataset=str(saved_dict), dataset_split="train"),
                      tmp_path / "data")
    assert [manifest["splits"][s]["lines"] for s in SPLITS] == [54, 3, 3]


# --- streaming -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["pooled", "files", "saved"])
def test_streaming_gives_the_same_ids(source: str, saved_dict: Path, tmp_path: Path) -> None:
    """--streaming writes byte-identical token files, tokenizer and statistics."""
    files = split_files(tmp_path / "corpus", ".jsonl")
    config = {"pooled": IngestConfig(data_files=(str(files["train"]), str(files["test"]))),
              "files": IngestConfig(train_files=(str(files["train"]),),
                                    valid_files=(str(files["valid"]),),
                                    test_files=(str(files["test"]),)),
              "saved": IngestConfig(dataset=str(saved_dict))}[source]
    plain = ingest(config, tmp_path / "plain")
    streamed = ingest(dataclasses.replace(config, streaming=True), tmp_path / "streamed")
    assert streamed["config"]["streaming"] is True
    assert streamed["source"]["streaming"] is True
    assert plain["files"] == streamed["files"]
    assert plain["splits"] == streamed["splits"]
    assert plain["fingerprint"] == streamed["fingerprint"]  # streaming does not change the output


# --- the cache -----------------------------------------------------------------------------------


def test_cache_is_reused_and_force_rebuilds(tmp_path: Path) -> None:
    """The same command twice reuses the folder and says so; --force rebuilds it; a changed
    source file changes the fingerprint, and that folder is then a different run."""
    corpus = write(tmp_path / "c.txt", TEXTS["train"])
    out = tmp_path / "data"
    args = ("ingest", "--out", str(out), "--data-files", str(corpus), "--vocab-size", "50")
    first = ok(*args)
    assert f"wrote {out}" in first.stdout
    stamp = (out / "manifest.json").stat().st_mtime_ns
    again = ok(*args)
    assert f"reused {out}" in again.stdout and "--force" in again.stdout
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert "OOV rate" in again.stdout  # the report is printed either way
    forced = ok(*args, "--force")
    assert f"wrote {out}" in forced.stdout
    assert (out / "manifest.json").stat().st_mtime_ns != stamp
    assert leftovers(tmp_path) == []
    # another setting: a different run, refused without --overwrite
    one_line_error(invoke(*args[:-1], "60"), str(out), "different", "--overwrite")
    # the source changed: a different run too
    write(corpus, TEXTS["train"][:-1])
    before = read_manifest(out, "data")["fingerprint"]
    assert fingerprint(IngestConfig(data_files=(str(corpus),), vocab_size=50)) != before
    one_line_error(invoke(*args), "different ingest run", "--overwrite")
    assert read_manifest(out, "data")["fingerprint"] == before
    ok(*args, "--overwrite")
    assert read_manifest(out, "data")["splits"]["train"]["lines"] == sum(
        line_split(i, 20) == "train" for i in range(SIZES["train"] - 1))


def test_fingerprint_depends_on_settings_not_streaming(tmp_path: Path) -> None:
    corpus = write(tmp_path / "c.txt", TEXTS["train"])
    base = IngestConfig(data_files=(str(corpus),))
    assert fingerprint(base) == fingerprint(dataclasses.replace(base, streaming=True))
    assert fingerprint(base) != fingerprint(dataclasses.replace(base, fold_numbers=True))
    assert fingerprint(base) != fingerprint(dataclasses.replace(base, vocab_size=99))


def test_corrupted_cached_folder_is_not_reused(tmp_path: Path) -> None:
    """A folder whose files no longer match their hashes is not reused."""
    corpus = write(tmp_path / "c.txt", TEXTS["train"])
    out = tmp_path / "data"
    config = IngestConfig(data_files=(str(corpus),))
    ingest(config, out)
    data = bytearray((out / "train.bin").read_bytes())
    data[0] ^= 0xFF
    (out / "train.bin").write_bytes(bytes(data))
    with pytest.raises(PocketLMError, match="--overwrite"):
        ingest(config, out)
    assert ingest(config, out, overwrite=True)["reused"] is False
    read_manifest(out, "data")


# --- normalisation -------------------------------------------------------------------------------


def test_number_folding(tmp_path: Path) -> None:
    """--fold-numbers turns every number into <num> (in the vocabulary by its frequency, and in
    the tokenizer.json the runtime uses); words with digits in them stay whole."""
    corpus = write(tmp_path / "n.txt", ["in 1611 there were 12 men", "3.14 and 1,000 and 12:30",
                                        "v12 and 2nd (7)"] * 10)
    manifest = ingest(IngestConfig(data_files=(str(corpus),), fold_numbers=True),
                      tmp_path / "folded")
    tokenizer = Tokenizer.from_file(str(tmp_path / "folded" / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    assert "<num>" in vocab and not {"1611", "12", "3", "14", "000"} & set(vocab)
    assert {"v12", "2nd"} <= set(vocab)
    assert vocab["<num>"] == 2  # the most frequent word: 6 per 3 lines
    assert tokenizer.encode("in 1984 (5)").tokens == ["in", "<num>", "(", "<num>", ")"]
    assert manifest["normalisation"]["fold_numbers"] is True
    ingest(IngestConfig(data_files=(str(corpus),)), tmp_path / "kept")
    kept = Tokenizer.from_file(str(tmp_path / "kept" / "tokenizer.json")).get_vocab()
    assert "<num>" not in kept and "1611" in kept


@pytest.mark.parametrize("mode", ["split", "drop"])
def test_long_line_guard(mode: str, tmp_path: Path) -> None:
    """Lines over --max-line-chars are split at spaces (pieces stay in the line's split) or
    dropped, and the report counts them."""
    long_line = " ".join(WORDS * 5)  # 8 words x 5, about 230 characters
    lines = TEXTS["train"][:40]
    lines[3] = long_line  # a train line
    lines[18] = long_line  # the valid line (i % 20 == 18)
    corpus = write(tmp_path / "long.txt", lines)
    config = IngestConfig(data_files=(str(corpus),), max_line_chars=100, long_lines=mode)
    manifest = ingest(config, tmp_path / "data")
    train, valid = manifest["splits"]["train"], manifest["splits"]["valid"]
    assert train["long_lines"] == valid["long_lines"] == 1
    tokenizer = Tokenizer.from_file(str(tmp_path / "data" / "tokenizer.json"))
    if mode == "split":
        assert valid["long_line_pieces"] == 3 and valid["long_lines_dropped"] == 0
        assert valid["lines"] == 2 + 2
        pieces = decoded(tmp_path / "data", "valid")[:3]
        assert all(len(tokenizer.decode(p)) <= 100 for p in pieces)
        assert sum(pieces, []) == tokenizer.encode(long_line).ids
    else:
        assert valid["long_lines_dropped"] == 1 and valid["lines"] == 1
        assert train["lines"] == 36 - 1
    text = report(manifest)
    assert "long split/dropped" in text


@pytest.mark.parametrize("kind", [".txt", ".jsonl", ".csv"])
@pytest.mark.parametrize("streaming", [False, True])
def test_encoding_option(kind: str, streaming: bool, tmp_path: Path) -> None:
    """--encoding reads a latin-1 file of each text kind; without it the file is refused
    naming the option."""
    corpus = write(tmp_path / f"latin{kind}", ["café crème", "naïve façade"] * 5)
    corpus.write_bytes(corpus.read_text(encoding="utf-8").encode("latin-1"))
    config = IngestConfig(data_files=(str(corpus),), encoding="latin-1", streaming=streaming)
    manifest = ingest(config, tmp_path / "data")
    vocab = Tokenizer.from_file(str(tmp_path / "data" / "tokenizer.json")).get_vocab()
    assert {"café", "crème", "naïve"} <= set(vocab)
    assert manifest["source"]["encoding"] == "latin-1"
    with pytest.raises(PocketLMError, match="--encoding") as info:
        ingest(dataclasses.replace(config, encoding="utf-8"), tmp_path / "utf8")
    assert str(corpus) in str(info.value)
    assert not (tmp_path / "utf8").exists()


# --- the report ----------------------------------------------------------------------------------


def test_report_and_stats(tmp_path: Path) -> None:
    """ingest prints a table per split with lines, tokens, OOV rate, coverage and the most
    frequent <unk> words; `ingest --stats DIR` prints the same table."""
    files = split_files(tmp_path / "corpus", ".txt")
    write(files["valid"], [line + " zeta zeta eta" for line in TEXTS["valid"]])
    out = tmp_path / "data"
    result = ok("-q", "ingest", "--out", str(out), "--train-files", str(files["train"]),
                "--valid-files", str(files["valid"]), "--test-files", str(files["test"]))
    manifest = read_manifest(out, "data")
    valid = manifest["splits"]["valid"]
    assert valid["unk_top"][0] == ["zeta", 14]
    assert ["valid", 7] in valid["unk_top"] and ["eta", 7] in valid["unk_top"]
    assert valid["oov_types"] == 3  # 'valid', 'zeta', 'eta'
    assert 0 < valid["type_coverage"] < 1
    assert manifest["splits"]["train"]["type_coverage"] == 1.0
    table = result.stdout.split("\n", 1)[1]
    for needle in ("split", "lines", "tokens", "OOV rate", "types in vocab", "zeta (14)"):
        assert needle in table
    stats = ok("ingest", "--stats", str(out))
    assert stats.stdout.strip() == table.strip()


# --- declared once -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ingest", "run"])
def test_every_config_field_is_an_option(command: str) -> None:
    """ingest and run take one option per IngestConfig field, with the field's default."""
    params = {p.name: p for p in stages.commands[command].params}
    for f in dataclasses.fields(IngestConfig):
        assert f.name in params, f.name
        option = params[f.name]
        assert option_name(f.name) in option.opts
        assert option.default == f.default or (option.multiple and not f.default)


def test_run_passes_ingest_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --fold-numbers --max-line-chars N` reaches the ingest config."""
    import pocketlm.pipeline.ingest as ingest_module

    seen = []

    def fake(config: IngestConfig, *args: object, **kw: object) -> None:
        seen.append(config)
        raise PocketLMError("stop here")

    monkeypatch.setattr(ingest_module, "ingest", fake)
    corpus = write(tmp_path / "c.txt", TEXTS["train"])
    result = invoke("run", "--out", str(tmp_path / "run"), "--data-files", str(corpus),
                    "--fold-numbers", "--max-line-chars", "50", "--epochs", "1")
    one_line_error(result, "stop here")
    assert seen[0].fold_numbers and seen[0].max_line_chars == 50


# --- bad input: one line, nothing left -----------------------------------------------------------


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is a one-line error naming it and --encoding."""
    good = write(tmp_path / "good.txt", TEXTS["train"])
    bad = tmp_path / "bad.txt"
    bad.write_bytes("ok line\ncafé au lait\n".encode("latin-1"))
    out = tmp_path / "out" / "data"
    for streaming in ([], ["--streaming"]):
        result = invoke("ingest", "--out", str(out), "--data-files", str(good),
                        "--data-files", str(bad), *streaming)
        one_line_error(result, str(bad), "utf-8", "--encoding")
        assert not out.exists()
        assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_not_utf8_in_a_split_file(tmp_path: Path) -> None:
    files = split_files(tmp_path / "corpus", ".txt")
    files["test"].write_bytes("\xff\xfe broken\n".encode("latin-1"))
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--train-files",
                    str(files["train"]), "--test-files", str(files["test"]), "--streaming")
    one_line_error(result, str(files["test"]), "--encoding")
    assert not (tmp_path / "data").exists() and leftovers(tmp_path) == []


def test_unknown_encoding(tmp_path: Path) -> None:
    corpus = write(tmp_path / "c.txt", TEXTS["train"])
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--data-files", str(corpus),
                    "--encoding", "klingon-8")
    one_line_error(result, "--encoding", "klingon-8")


@pytest.mark.parametrize("option", ["--valid-files", "--test-files"])
def test_split_files_without_train_files(option: str, tmp_path: Path) -> None:
    files = split_files(tmp_path / "corpus", ".txt")
    result = invoke("ingest", "--out", str(tmp_path / "data"), option, str(files["valid"]))
    one_line_error(result, option, "--train-files")
    assert not (tmp_path / "data").exists()


def test_train_files_with_data_files(tmp_path: Path) -> None:
    files = split_files(tmp_path / "corpus", ".txt")
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--train-files",
                    str(files["train"]), "--data-files", str(files["valid"]))
    one_line_error(result, "--train-files", "--data-files")


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_empty_split(content: str, tmp_path: Path) -> None:
    """A split file with no text is a one-line error naming the split and the file."""
    files = split_files(tmp_path / "corpus", ".txt")
    files["valid"].write_text(content, encoding="utf-8")
    out = tmp_path / "data"
    result = invoke("ingest", "--out", str(out), "--train-files", str(files["train"]),
                    "--valid-files", str(files["valid"]))
    one_line_error(result, "valid split is empty", str(files["valid"]))
    assert not out.exists() and leftovers(tmp_path) == []


def test_empty_split_of_a_saved_dict(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_dict({"text": TEXTS["train"]}),
                 "test": Dataset.from_dict({"text": ["", "  "]})}).save_to_disk(str(folder))
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--dataset", str(folder))
    one_line_error(result, "test split is empty")
    assert not (tmp_path / "data").exists()


def test_split_emptied_by_the_guard(tmp_path: Path) -> None:
    files = split_files(tmp_path / "corpus", ".txt")
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--train-files",
                    str(files["train"]), "--test-files", str(files["test"]),
                    "--max-line-chars", "5", "--long-lines", "drop")
    one_line_error(result, "split is empty", "--max-line-chars")
    assert not (tmp_path / "data").exists() and leftovers(tmp_path) == []


def test_glob_matching_nothing(tmp_path: Path) -> None:
    result = invoke("ingest", "--out", str(tmp_path / "data"), "--train-files",
                    str(tmp_path / "*.txt"))
    one_line_error(result, "no file matches", "--train-files")


def test_streaming_hub_offline(tmp_path: Path) -> None:
    """A hub dataset streamed offline: one line saying how to use local files."""
    out = tmp_path / "data"
    result = invoke("ingest", "--out", str(out), "--dataset",
                    "pocketlm-tests/no-such-dataset-4f1c", "--streaming")
    one_line_error(result, "no-such-dataset-4f1c", "--data-files", "--train-files")
    assert not out.exists() and leftovers(tmp_path) == []


def test_out_holding_a_different_run(tmp_path: Path) -> None:
    """An --out that holds another ingest is refused in one line and left as it was."""
    corpus = write(tmp_path / "c.txt", TEXTS["train"])
    out = tmp_path / "data"
    ingest(IngestConfig(data_files=(str(corpus),)), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = invoke("ingest", "--out", str(out), "--data-files", str(corpus), "--keep-case")
    one_line_error(result, str(out), "different ingest run", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_stats_of_a_folder_that_is_not_data(tmp_path: Path) -> None:
    one_line_error(invoke("ingest", "--stats", str(tmp_path / "nope")), "no such folder")
    result = invoke("ingest")
    assert result.exit_code == 2 and "--out" in result.output


def test_source_with_numbers_keeps_ids_stable(tmp_path: Path) -> None:
    """The vocabulary stays numbered by falling frequency after the specials."""
    files = split_files(tmp_path / "corpus", ".txt")
    ingest(IngestConfig(train_files=(str(files["train"]),)), tmp_path / "data")
    counts = np.bincount(load_split(tmp_path / "data", "train").astype(np.int64))
    assert all(counts[i] >= counts[i + 1] for i in range(2, len(counts) - 1))
