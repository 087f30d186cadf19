"""Word features beside the vocabulary id, for classifiers and taggers.

The vocabulary is lower-cased, so a tagger that saw only ids could not tell "Mark" from "mark".
Each word piece therefore also carries its *shape* (what its capitalisation and characters look
like) and a hashed *suffix* (its last three characters), the two things a CRF tagger leans on for
rare and unknown words. Ingest, training and the runtime (Python and JavaScript) compute them
here, from the original-cased text, so the numbers a model saw in training are the numbers it
gets on a device::

    "Teddy ROOSEVELT, 1901"  ──tokenizer──▶  pieces  Teddy   ROOSEVELT   ,       1901
                                             ids     4120    0 (<unk>)   3       <num> or <unk>
                                             shapes  capit.  upper       punct   digits
                                             suffix  h("ddy") h("elt")   h(",")  h("901")

Index 0 of both features is padding (positions beyond a sentence's length).
"""

from __future__ import annotations

from typing import Any

from .core import clean_text

#: Shape classes; index 0 is padding and never the shape of a real word.
SHAPES = ("pad", "lower", "capitalised", "upper", "mixed", "digits", "punct", "other")
#: Hash buckets of the suffix feature (bucket 0 is padding).
SUFFIX_BUCKETS = 4096
#: Characters of the word's end that the suffix feature hashes.
SUFFIX_CHARS = 3
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def shape_id(word: str) -> int:
    """The index in :data:`SHAPES` of ``word``'s shape: letters only → lower / capitalised /
    upper / mixed; digits only → digits; no letter or digit → punct; anything else → other.

    >>> [SHAPES[shape_id(w)] for w in ("lord", "Lord", "LORD", "McDonald", "1611", ",", "v12")]
    ['lower', 'capitalised', 'upper', 'mixed', 'digits', 'punct', 'other']
    """
    if word.isalpha():
        if word.islower():
            return 1
        if word.isupper():
            return 3 if len(word) > 1 else 2
        if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
            return 2
        return 4
    if word.isdigit():
        return 5
    if not any(ch.isalnum() for ch in word):
        return 6
    return 7


def suffix_id(word: str) -> int:
    """The hash bucket, in ``[1, SUFFIX_BUCKETS)``, of ``word``'s last three characters
    (lower-cased): FNV-1a (32 bit) over their UTF-8 bytes, modulo ``SUFFIX_BUCKETS - 1``, plus 1.
    """
    h = _FNV_OFFSET
    for byte in word.lower()[-SUFFIX_CHARS:].encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h % (SUFFIX_BUCKETS - 1) + 1


def features(words: list[str]) -> tuple[list[int], list[int]]:
    """Shape and suffix ids of each word piece."""
    return [shape_id(w) for w in words], [suffix_id(w) for w in words]


def pieces_of(tokenizer: Any, text: str) -> tuple[list[str], list[int], list[tuple[int, int]]]:
    """The word pieces of ``text`` as written (original case), their vocabulary ids and their
    ``(start, end)`` character offsets in ``text``. A lone surrogate (which cannot be UTF-8
    encoded) is read as U+FFFD, so the offsets still index ``text``."""
    text = clean_text(text)
    encoding = tokenizer.encode(text)
    offsets = [(int(a), int(b)) for a, b in encoding.offsets]
    return [text[a:b] for a, b in offsets], list(encoding.ids), offsets


def words_of(tokenizer: Any, text: str) -> tuple[list[str], list[int]]:
    """The word pieces of ``text`` as written (original case, from the encoding's offsets) and
    their vocabulary ids, as the tokenizer (lower-casing, number folding) encodes them."""
    words, ids, _ = pieces_of(tokenizer, text)
    return words, ids
