"""Word features: shapes, hashed suffixes and the original-cased pieces of a text."""

from __future__ import annotations

from pocketlm.runtime.features import (SHAPES, SUFFIX_BUCKETS, features, shape_id, suffix_id,
                                       words_of)


def test_shapes_of_typical_words() -> None:
    names = [SHAPES[shape_id(w)] for w in ("lord", "Lord", "LORD", "McDonald", "1611", ",",
                                           "v12", "I", "É")]
    assert names == ["lower", "capitalised", "upper", "mixed", "digits", "punct", "other",
                     "capitalised", "capitalised"]


def test_suffix_buckets_are_stable_and_never_padding() -> None:
    # FNV-1a of b"ord" is fixed: the JavaScript runtime must produce the same bucket
    assert suffix_id("Lord") == suffix_id("lord") == suffix_id("word") != suffix_id("lore")
    # FNV-1a 32 of b"a" is the published 0xe40c292c; "Lord" hashes "ord"
    assert suffix_id("A") == 0xE40C292C % (SUFFIX_BUCKETS - 1) + 1
    assert suffix_id("Lord") == 3608
    assert all(1 <= suffix_id(w) < SUFFIX_BUCKETS for w in ("", "a", "ça", "日本語", "!!!"))


def test_words_keep_their_case_while_ids_are_lowercase() -> None:
    from pocketlm.pipeline.ingest import build_tokenizer

    tokenizer = build_tokenizer(["and god said , let there be light"], vocab_size=50)
    words, ids = words_of(tokenizer, "And GOD said, let")
    assert words == ["And", "GOD", "said", ",", "let"]
    assert ids == tokenizer.encode("and god said, let").ids
    shapes, suffixes = features(words)
    assert [SHAPES[s] for s in shapes] == ["capitalised", "upper", "lower", "punct", "lower"]
    assert suffixes[0] == suffix_id("and")


def test_pieces_carry_their_offsets() -> None:
    from pocketlm.pipeline.ingest import build_tokenizer
    from pocketlm.runtime.features import pieces_of

    tokenizer = build_tokenizer(["and god said , let there be light"], vocab_size=50)
    text = "And  GOD\u0301 said, \ud800 let"
    words, ids, offsets = pieces_of(tokenizer, text)
    assert words == ["And", "GOD\u0301", "said", ",", "\ufffd", "let"]
    assert [text[a:b] for a, b in offsets][:4] == words[:4]
    assert offsets[4] == (16, 17) and words_of(tokenizer, text) == (words, ids)
