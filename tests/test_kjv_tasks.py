"""The KJV's own labelled tasks: sections of the books (classify) and names from the
capitalisation (tag), on the embedded KJV and on verses written here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from pocketlm.pipeline.corpus import line_split
from pocketlm.pipeline.kjv_tasks import (SECTION_BOOKS, SECTIONS, WORD, capitalisation_table,
                                         name_rows, name_tags, section_rows, verses)
from pocketlm.pipeline.labelled import load_examples, read_labels
from pocketlm.runtime.artifact import read_manifest
from pocketlm.runtime.cli import cli


def tags_of(text: str, table: dict[str, bool] | None = None) -> list[tuple[str, str]]:
    words = WORD.findall(text)
    return [(w, t) for w, t in zip(words, name_tags(words, table or {})) if t != "O"]


def test_sections_cover_every_book() -> None:
    books = Counter(book for book, _, _ in verses())
    assert len(books) == 66 and set(books) == set(SECTIONS)
    assert len(SECTION_BOOKS) == 8
    per_section = Counter(label for _, _, label in section_rows())
    assert per_section["law"] == sum(books[b] for b in SECTION_BOOKS["law"]) == 5852
    assert sum(per_section.values()) == 31103


def test_name_rules() -> None:
    """Titles, I and O, capitals throughout and position-capitalised words are not names;
    adjacent name words are one span."""
    assert tags_of("And God said, Let there be light: and there was light.") == []
    assert tags_of("O LORD, I will praise the Lord GOD of Israel.") == [("Israel", "B-NAME")]
    assert tags_of("Paul, a servant of Jesus Christ, called to be an apostle") == \
        [("Jesus", "B-NAME"), ("Christ", "I-NAME")]
    # For and Aaron start a parenthesis and a sentence: names only by the table
    assert tags_of("(For Moses said; Aaron spake") == [("Moses", "B-NAME")]
    assert tags_of("(For Moses said; Aaron spake", {"aaron": True, "for": False}) \
        == [("Moses", "B-NAME"), ("Aaron", "B-NAME")]
    assert tags_of("JESUS OF NAZARETH THE KING OF THE JEWS") == []


def test_capitalisation_table(tmp_path: Path) -> None:
    """A sentence-initial word is a name when it is capitalised in most other places."""
    lines = ["And Enoch walked.", "Enoch lived.", "and the Then was then", "Then came Enoch.",
             "and then said he, Then go"]
    path = tmp_path / "kjv.jsonl"
    path.write_text("".join(json.dumps({"book": "Genesis", "text": t}) + "\n" for t in lines),
                    encoding="utf-8")
    assert capitalisation_table([WORD.findall(t) for t in lines]) == \
        {"enoch": True, "walked": False, "lived": False, "the": False,
         "then": False, "was": False, "came": False, "said": False, "he": False, "go": False}
    rows = list(name_rows(path))
    assert rows[1] == ("line 2 (Genesis)", ["enoch", "lived", "."], ["B-NAME", "O", "O"])
    assert rows[3][2] == ["O", "O", "B-NAME", "O"]


def test_default_tag_folder(tmp_path: Path) -> None:
    """`ingest --task tag` with no source: every KJV verse, lower-cased words, the LM's split
    rule; the figures of docs/tasks.md."""
    out = tmp_path / "kjv-tag"
    result = CliRunner().invoke(cli, ["ingest", "--task", "tag", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out, "data")
    assert read_labels(out) == ["O", "B-NAME", "I-NAME"]
    splits = manifest["splits"]
    assert sum(s["tokens"] for s in splits.values()) == 916_956
    assert sum(s["entities"]["NAME"] for s in splits.values()) == 33_739
    assert [splits[s]["sentences"] for s in ("train", "valid", "test")] == [27_993, 1_555, 1_555]
    records = list(verses())
    valid = load_examples(out, "valid")
    lm_valid = [i for i in range(len(records)) if line_split(i, 20) == "valid"]
    assert valid[0].words == [w.lower() for w in WORD.findall(records[lm_valid[0]][1])]
    assert all(w == w.lower() for e in valid for w in e.words)
