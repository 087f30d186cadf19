"""pipeline/ingest.py: the vocabulary, the token files, the manifest and the atomic output folder.

Most checks read the session's ``toy_data`` folder; the few ingests made here use a small corpus
and take about a second each."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from pocketlm.pipeline.corpus import SPLITS, Corpus
from pocketlm.pipeline.sources import load_corpus
from pocketlm.pipeline.ingest import IngestConfig, build_tokenizer, ingest, load_split
from pocketlm.runtime.artifact import EOS_ID, UNK_ID, PocketLMError, read_manifest

#: Words as the Whitespace pre-tokenizer cuts them: runs of word characters or of punctuation.
WORD = re.compile(r"\w+|[^\w\s]+")


def corpus_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_of(i: int, every: int = 20) -> str:
    r = i % every
    return "valid" if r == every - 2 else "test" if r == every - 1 else "train"


def words(line: str) -> list[str]:
    return WORD.findall(line.lower())


def leftovers(parent: Path) -> list[str]:
    """Hidden temporary siblings an atomic write may leave behind."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_special_token_ids(toy_data: Path) -> None:
    """tokenizer.json maps <unk> to 0 and <eos> to 1, and unknown words to <unk>."""
    tokenizer = Tokenizer.from_file(str(toy_data / "tokenizer.json"))
    assert tokenizer.token_to_id("<unk>") == UNK_ID == 0
    assert tokenizer.token_to_id("<eos>") == EOS_ID == 1
    assert tokenizer.encode("zebra").ids == [UNK_ID]
    text = (toy_data / "tokenizer.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    assert raw["model"]["type"] == "WordLevel"
    assert raw["model"]["unk_token"] == "<unk>"
    assert text == tokenizer.to_str(pretty=False)        # written compactly, in one line


def test_vocab_counts_specials(toy_data: Path, toy_corpus: Path) -> None:
    """Uncapped, the vocabulary is every train word (lowercased) plus the two special tokens."""
    lines = corpus_lines(toy_corpus)
    train_words = {w for i, line in enumerate(lines) if split_of(i) == "train" for w in words(line)}
    manifest = read_manifest(toy_data, "data")
    tokenizer = Tokenizer.from_file(str(toy_data / "tokenizer.json"))
    assert set(tokenizer.get_vocab()) == train_words | {"<unk>", "<eos>"}
    assert manifest["vocab_size"] == tokenizer.get_vocab_size() == len(train_words) + 2
    assert manifest["vocab_size"] < 100  # the cap the toy ingest used is not reached


@pytest.fixture(scope="module")
def capped_data(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy corpus with a vocabulary capped at 10 entries (8 words + 2 specials)."""
    out = tmp_path_factory.mktemp("capped") / "data"
    ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=10), out)
    return out


def test_vocab_is_capped_by_frequency(capped_data: Path, toy_corpus: Path) -> None:
    """A cap keeps exactly vocab_size entries, specials included, and keeps the most frequent
    train words: no dropped word is more frequent than a kept one."""
    lines = corpus_lines(toy_corpus)
    counts = Counter(w for i, line in enumerate(lines) if split_of(i) == "train"
                     for w in words(line))
    tokenizer = Tokenizer.from_file(str(capped_data / "tokenizer.json"))
    vocab = set(tokenizer.get_vocab()) - {"<unk>", "<eos>"}
    assert read_manifest(capped_data, "data")["vocab_size"] == tokenizer.get_vocab_size() == 10
    assert len(vocab) == 8
    assert vocab <= set(counts)
    dropped = set(counts) - vocab
    assert min(counts[w] for w in vocab) >= max(counts[w] for w in dropped)


def test_oov_counts(capped_data: Path, toy_corpus: Path) -> None:
    """Per split, oov_words is the number of words outside the vocabulary and equals the
    <unk> ids in the token file; oov_rate is their share of the words."""
    lines = corpus_lines(toy_corpus)
    vocab = set(Tokenizer.from_file(str(capped_data / "tokenizer.json")).get_vocab())
    manifest = read_manifest(capped_data, "data")
    for split in SPLITS:
        split_words = [w for i, line in enumerate(lines) if split_of(i) == split
                       for w in words(line)]
        oov = sum(w not in vocab for w in split_words)
        entry = manifest["splits"][split]
        assert oov > 0
        assert entry["words"] == len(split_words)
        assert entry["oov_words"] == oov
        assert entry["oov_rate"] == pytest.approx(oov / len(split_words))
        ids = np.asarray(load_split(capped_data, split, manifest))
        assert int(np.count_nonzero(ids == UNK_ID)) == oov


def test_token_files_hold_words_and_one_eos_per_line(toy_data: Path, toy_corpus: Path) -> None:
    """Each split's .bin is its lines in corpus order, each encoded and followed by one <eos>:
    tokens = words + lines, and the <eos> count equals the line count."""
    lines = corpus_lines(toy_corpus)
    manifest = read_manifest(toy_data, "data")
    tokenizer = Tokenizer.from_file(str(toy_data / "tokenizer.json"))
    for split in SPLITS:
        split_lines = [line for i, line in enumerate(lines) if split_of(i) == split]
        entry = manifest["splits"][split]
        ids = np.asarray(load_split(toy_data, split, manifest))
        assert ids.dtype == np.uint16
        assert entry["lines"] == len(split_lines)
        assert int(np.count_nonzero(ids == EOS_ID)) == len(split_lines)
        assert entry["tokens"] == ids.size == entry["words"] + entry["lines"]
        assert entry["words"] == sum(len(words(line)) for line in split_lines)
        expected = [i for line in split_lines for i in (*tokenizer.encode(line).ids, EOS_ID)]
        assert ids.tolist() == expected
    assert [manifest["splits"][s]["lines"] for s in SPLITS] == [540, 30, 30]


def test_load_split_unknown_split(toy_data: Path) -> None:
    """Asking for a split the folder lacks names the splits it has."""
    with pytest.raises(PocketLMError, match="train, valid, test"):
        load_split(toy_data, "dev")


def test_manifest_fields(toy_data: Path, toy_corpus: Path) -> None:
    """The manifest records kind, special tokens, split sizes, the config and a SHA-256 per file
    that matches the bytes on disk."""
    manifest = read_manifest(toy_data, "data")
    assert manifest["format"] == "pocketlm"
    assert manifest["kind"] == "data"
    assert manifest["special_tokens"] == {"unk": {"token": "<unk>", "id": 0},
                                          "eos": {"token": "<eos>", "id": 1}}
    assert set(manifest["splits"]) == set(SPLITS)
    for split in SPLITS:
        assert set(manifest["splits"][split]) >= {"file", "dtype", "lines", "tokens", "words",
                                                  "oov_words", "oov_rate"}
    assert set(manifest["files"]) == {"tokenizer.json", "train.bin", "valid.bin", "test.bin"}
    for name, entry in manifest["files"].items():
        data = (toy_data / name).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    config = json.loads(json.dumps(asdict(IngestConfig(data_files=(str(toy_corpus),),
                                                       vocab_size=100))))
    assert manifest["config"] == config
    assert IngestConfig.from_manifest(manifest["config"]) == IngestConfig(
        data_files=(str(toy_corpus),), vocab_size=100)
    assert manifest["source"]["type"] == "files"
    assert manifest["source"]["rows"] == 600
    assert "i % 20 == 18" in manifest["split_rule"]
    assert sorted(p.name for p in toy_data.iterdir()) == sorted([*manifest["files"],
                                                                 "manifest.json"])


def test_ingest_is_deterministic(toy_data: Path, toy_corpus: Path, tmp_path: Path) -> None:
    """A second ingest of the same corpus and config writes byte-identical files."""
    again = tmp_path / "again"
    manifest = ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=100), again)
    assert manifest["files"] == read_manifest(toy_data, "data")["files"]
    for name in ("tokenizer.json", "train.bin", "valid.bin", "test.bin"):
        assert (again / name).read_bytes() == (toy_data / name).read_bytes()


def test_lowercase_off_keeps_case(tmp_path: Path) -> None:
    """With lowercase=False, 'The' and 'the' are two vocabulary entries."""
    path = tmp_path / "case.txt"
    path.write_text("The cat\nthe cat\n", encoding="utf-8")
    ingest(IngestConfig(data_files=(str(path),), lowercase=False), tmp_path / "cased")
    ingest(IngestConfig(data_files=(str(path),)), tmp_path / "lower")
    cased = Tokenizer.from_file(str(tmp_path / "cased" / "tokenizer.json")).get_vocab()
    lower = Tokenizer.from_file(str(tmp_path / "lower" / "tokenizer.json")).get_vocab()
    assert {"The", "the"} <= set(cased)
    assert "The" not in lower and "the" in lower


def test_build_tokenizer_orders_by_frequency() -> None:
    """build_tokenizer puts the specials first, then words from most to least frequent."""
    tokenizer = build_tokenizer(["b a b c b a"], vocab_size=100)
    vocab = tokenizer.get_vocab()
    assert vocab["<unk>"] == 0 and vocab["<eos>"] == 1
    assert vocab["b"] < vocab["a"] < vocab["c"]


# --- atomic output -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailingCorpus(Corpus):
    """A real corpus whose second pass over the lines (the one that writes the token files,
    inside the output folder) fails half-way, as a crash or a bad record would."""

    passes: list[int] = field(default_factory=list)

    @classmethod
    def wrap(cls, corpus: Corpus) -> FailingCorpus:
        return cls(corpus.dataset, corpus.text_column, corpus.source)

    def lines(self, batch_size: int = 10_000) -> Iterator[str]:
        self.passes.append(len(self.passes) + 1)
        for i, line in enumerate(super().lines(batch_size)):
            if len(self.passes) > 1 and i == 300:
                raise RuntimeError("disk on fire")
            yield line


def test_failure_mid_way_leaves_nothing(toy_corpus: Path, tmp_path: Path) -> None:
    """An ingest that fails while writing leaves no output folder and no .partial sibling."""
    corpus = FailingCorpus.wrap(load_corpus((str(toy_corpus),)))
    out = tmp_path / "data"
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest(IngestConfig(data_files=(str(toy_corpus),)), out, corpus=corpus)
    assert len(corpus.passes) == 2  # the failure did happen inside the output folder
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failure_with_overwrite_keeps_the_old_folder(toy_data: Path, toy_corpus: Path,
                                                    tmp_path: Path) -> None:
    """With overwrite, a failed ingest leaves the previous artifact whole and in place."""
    out = tmp_path / "data"
    ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=100), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    corpus = FailingCorpus.wrap(load_corpus((str(toy_corpus),)))
    with pytest.raises(RuntimeError):
        ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=50), out, overwrite=True,
               corpus=corpus)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    read_manifest(out, "data")
    assert leftovers(tmp_path) == []


def test_train_split_without_words_leaves_nothing(tmp_path: Path) -> None:
    """A corpus whose train split yields no vocabulary word (every word below min_frequency)
    is refused, and no output folder or .partial sibling is left."""
    path = tmp_path / "corpus" / "rare.txt"
    path.parent.mkdir()
    path.write_text("alpha\nbeta\ngamma\n", encoding="utf-8")
    out = tmp_path / "out" / "data"
    with pytest.raises(PocketLMError, match="train split has no words"):
        ingest(IngestConfig(data_files=(str(path),), min_frequency=2), out)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_refuses_non_empty_out(toy_corpus: Path, tmp_path: Path) -> None:
    """A non-empty --out is refused without overwrite (and left alone); with overwrite it is
    replaced by the new artifact only."""
    out = tmp_path / "data"
    out.mkdir()
    (out / "precious.txt").write_text("keep me", encoding="utf-8")
    config = IngestConfig(data_files=(str(toy_corpus),), vocab_size=100)
    with pytest.raises(PocketLMError, match="--overwrite") as info:
        ingest(config, out)
    assert str(out) in str(info.value)
    assert (out / "precious.txt").read_text(encoding="utf-8") == "keep me"
    assert leftovers(tmp_path) == []
    ingest(config, out, overwrite=True)
    assert not (out / "precious.txt").exists()
    read_manifest(out, "data")
    assert leftovers(tmp_path) == []


def test_empty_out_folder_is_accepted(tmp_path: Path) -> None:
    """An existing empty folder is a valid --out without overwrite."""
    path = tmp_path / "c.txt"
    path.write_text("a b\nc d\n", encoding="utf-8")
    out = tmp_path / "data"
    out.mkdir()
    ingest(IngestConfig(data_files=(str(path),)), out)
    assert read_manifest(out, "data")["splits"]["train"]["lines"] == 2


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """An --out path that is a file is refused and left alone."""
    path = tmp_path / "c.txt"
    path.write_text("a b\n", encoding="utf-8")
    out = tmp_path / "data"
    out.write_text("a file", encoding="utf-8")
    with pytest.raises(PocketLMError, match="not a folder"):
        ingest(IngestConfig(data_files=(str(path),)), out)
    assert out.read_text(encoding="utf-8") == "a file"


@pytest.mark.parametrize("kwargs, option", [
    ({"vocab_size": 2}, "--vocab-size"),
    ({"vocab_size": 0}, "--vocab-size"),
    ({"split_every": 2}, "--split-every"),
    ({"min_frequency": 0}, "--min-frequency"),
])
def test_config_validation(kwargs: dict[str, int], option: str) -> None:
    """Out-of-range settings are refused with a message naming the option."""
    with pytest.raises(PocketLMError, match=option):
        IngestConfig(**kwargs)


def test_smallest_valid_config() -> None:
    """The smallest accepted values build a config (3 vocabulary entries, period 3)."""
    config = IngestConfig(vocab_size=3, split_every=3, min_frequency=1)
    assert (config.vocab_size, config.split_every) == (3, 3)
