"""The vocabulary file: written compactly, copied byte for byte when compact (pretty files of
older folders compacted), and compared by content, so a pretty file and its compact copy are one
vocabulary while another vocabulary is not."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from pocketlm.pipeline.ingest import build_tokenizer
from pocketlm.pipeline.vocabulary import (compact_json, copy_tokenizer, same_vocabulary,
                                          save_tokenizer, vocabulary_digest)
from pocketlm.runtime.artifact import sha256_file


def _tokenizer(words: str) -> Tokenizer:
    return build_tokenizer([words] * 3, vocab_size=50, min_frequency=1, lowercase=True)


def test_saved_compact_and_copied_byte_for_byte(tmp_path: Path) -> None:
    tokenizer = _tokenizer("Élodie sees the café and the river")
    save_tokenizer(tokenizer, tmp_path / "a.json")
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text == tokenizer.to_str(pretty=False) == compact_json(text)
    assert "\n" not in text and "café" in text                   # UTF-8 kept as it is
    copy_tokenizer(tmp_path / "a.json", tmp_path / "b.json")
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "a.json").read_bytes()
    assert vocabulary_digest(tmp_path / "a.json") == sha256_file(tmp_path / "a.json")
    loaded = Tokenizer.from_file(str(tmp_path / "b.json"))
    assert loaded.encode("the café").ids == tokenizer.encode("the café").ids


def test_a_pretty_file_is_the_same_vocabulary_compacted(tmp_path: Path) -> None:
    tokenizer = _tokenizer("the river and the sea")
    tokenizer.save(str(tmp_path / "pretty.json"))                 # tokenizers' own, indented
    save_tokenizer(tokenizer, tmp_path / "compact.json")
    pretty, compact = (tmp_path / f"{n}.json" for n in ("pretty", "compact"))
    assert pretty.stat().st_size > compact.stat().st_size
    assert same_vocabulary(pretty, compact) and same_vocabulary(compact, compact)
    copy_tokenizer(pretty, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_bytes() == compact.read_bytes()
    other = json.loads(compact.read_text(encoding="utf-8"))
    other["model"]["vocab"]["zebra"] = len(other["model"]["vocab"])
    (tmp_path / "other.json").write_text(json.dumps(other), encoding="utf-8")
    assert not same_vocabulary(pretty, tmp_path / "other.json")
