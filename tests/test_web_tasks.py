"""web/: the JavaScript package's classify and tag, run in Node through web/tools/driver.js,
give the Python runtime's numbers on the same folders: word features (shape and suffix ids,
every code point), word pieces with their offsets, label probabilities within 1e-4, and the same
Viterbi tags and entities.

Needs Node and ``web/node_modules`` (``cd web && npm ci``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import Classifier, Tagger
from pocketlm.runtime.features import pieces_of, shape_id, suffix_id

from .conftest import needs_program
from .test_web import node

WEB = Path(__file__).resolve().parents[1] / "web"
DRIVER = WEB / "tools" / "driver.js"
#: Largest |Node - Python| of a log-probability with the fp32 graphs.
FP32_TOLERANCE = 1e-4
TEXTS = [
    "Anna sees the cat ?", "John Smith likes Rome !", "a dog finds a tree in New York .", "",
    "Élodie Müller follows Mary in Paris", "Peter Paul Jones sees the red house ?", " ",
    "\x00 a\x00b", "\ud800 a\udfffb", "\u202eevil\u202c text", "e\u0301\u0301 Z\u0334a",
    "👍🏽 👨‍👩‍👧 🇬🇧!", "<unk> <eos> the <eos>", "ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ", "İstanbul ß ẞ ﬃ Ǆemal",
    "x² ١٢٣ ⅻ ½", "\ufeffbom \u00ad soft\u200bzero", "中文 日本語 한국어", "ｆｕｌｌ ｗｉｄｔｈ",
    "Mary " * 3000,
]
WORDS = ["lord", "Lord", "LORD", "McDonald", "1611", ",", "v12", "I", "É", "ΟΣ", "ΣΑΣ", "Σ",
         "ǅ", "ǅa", "Ǆemal", "İ", "İSTANBUL", "ß", "ẞ", "ﬃ", "x²", "²³", "١٢٣", "Ⅻ", "ⅻ", "½",
         "ᾈ", "ʰa", "aʰ", "Aʰ", "ΑΣ\u0301", "ΑΣ.", "ΑΣ\u0301Α", "😀", "a😀b", "", "'", "ǈ",
         "\u0345", "Ω", "Ωmega", "ꭰ", "Ꭰ", "ǅǅ", "ʼn"]

pytestmark = needs_program("node", "web/node_modules")


def _code_point_offsets(text: str, start: int, end: int) -> tuple[int, int]:
    """JavaScript string (UTF-16) offsets as Python code point offsets."""
    units = text.encode("utf-16-le", "surrogatepass")
    return (len(units[:2 * start].decode("utf-16-le", "surrogatepass")),
            len(units[:2 * end].decode("utf-16-le", "surrogatepass")))


def test_features_of_every_code_point_and_hand_words() -> None:
    """shape_id and suffix_id of every code point alone, of each in a capitalised word, and of
    words with final sigmas, titlecase letters, numerals and emoji: the same in JavaScript."""
    words = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    words += [f"A{w}b" for w in words[::7]] + WORDS
    shapes, suffixes = node({"features": words})["features"]
    expected_shapes = [shape_id(w) for w in words]
    expected_suffixes = [suffix_id(w) for w in words]
    bad = [w for w, a, b in zip(words, shapes, expected_shapes) if a != b]
    assert not bad, [f"U+{ord(w[0]):04X} {w!r}" for w in bad[:20]]
    bad = [w for w, a, b in zip(words, suffixes, expected_suffixes) if a != b]
    assert not bad, [f"{w!r}" for w in bad[:20]]


@pytest.mark.parametrize("fold", [False, True], ids=["plain", "fold-numbers"])
def test_pieces_and_offsets(tmp_path: Path, fold: bool) -> None:
    """The pieces as written and their offsets: features.pieces_of in Python."""
    from pocketlm.pipeline.ingest import build_tokenizer

    texts = TEXTS + ["in 1611, 3.14 or 1,000 v12 2nd 12:30 ١٢ x² ½ ²³ 3.14x Ab 1 2 3"]
    tokenizer = build_tokenizer(texts[:6] + ["the cat in 12 , ."], 200, fold_numbers=fold)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    got = node({"tokenizer": str(path), "pieces": texts})["pieces"]
    for text, pieces in zip(texts, got):
        words, ids, offsets = pieces_of(tokenizer, text)
        assert [p["word"] for p in pieces] == words, repr(text[:60])
        assert [p["id"] for p in pieces] == ids
        assert [_code_point_offsets(text, p["start"], p["end"]) for p in pieces] == offsets


def test_classify_matches_python(classify_model: Path) -> None:
    clf = Classifier(classify_model)
    got = node({"model": str(classify_model), "logProbs": TEXTS, "classify": TEXTS, "topK": 3})
    python = clf.log_probs(TEXTS)
    assert np.abs(np.array(got["logProbs"]) - python).max() <= FP32_TOLERANCE
    for row, p in zip(got["classify"], clf.predict(TEXTS, top_k=3)):
        assert [x["label"] for x in row["labels"]] == list(p.labels)
        assert np.allclose([x["probability"] for x in row["labels"]], p.probabilities,
                           atol=FP32_TOLERANCE)


def test_int8_classify_runs(classify_model: Path) -> None:
    int8 = Classifier(classify_model, precision="int8")
    got = node({"model": str(classify_model), "precision": "int8", "classify": TEXTS[:6]})
    assert [r["label"] for r in got["classify"]] == [p.label for p in int8.predict(TEXTS[:6])]


def test_tag_matches_python(tag_model: Path) -> None:
    tagger = Tagger(tag_model)
    got = node({"model": str(tag_model), "tag": TEXTS})["tag"]
    for text, row, t in zip(TEXTS, got, tagger.tag_batch(TEXTS)):
        assert row["words"] == list(t.words) and row["tags"] == list(t.tags), repr(text[:40])
        assert np.allclose(row["probabilities"], t.probabilities, atol=FP32_TOLERANCE)
        assert [(e["text"], e["type"], e["first"], e["last"]) for e in row["entities"]] == \
            [(e.text, e.type, e.first, e.last) for e in t.entities]
        assert [_code_point_offsets(text, e["start"], e["end"]) for e in row["entities"]] == \
            [(e.start, e.end) for e in t.entities]


def test_node_viterbi_matches_python() -> None:
    """Random log-probabilities with many ties: the same paths (the same tie rule)."""
    from pocketlm.runtime.tagger import allowed_transitions, viterbi

    labels = ["O", "B-A", "I-A", "B-B", "I-B"]
    rng = np.random.default_rng(1)
    cases = [np.round(np.log(rng.dirichlet(np.ones(5), size=n)), 1).astype(np.float32)
             for n in range(1, 30)]
    module, names = (WEB / "src" / "tasks.js").as_uri(), json.dumps(labels)
    script = (f"import('{module}').then(async (t) => {{ const cases = JSON.parse(require('fs')"
              f".readFileSync(0, 'utf8')); const tr = t.allowedTransitions({names});"
              "process.stdout.write(JSON.stringify(cases.map((c) => t.viterbi(c.flat(), "
              "c.length, 5, tr)))); })")
    done = subprocess.run(["node", "-e", script], input=json.dumps([c.tolist() for c in cases]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    start, allowed = allowed_transitions(labels)
    assert json.loads(done.stdout) == [viterbi(c, start, allowed) for c in cases]


def test_wrong_task_and_bad_manifest(classify_model: Path, tmp_path: Path) -> None:
    from pocketlm.runtime.artifact import write_json_atomic

    copy = tmp_path / "m"
    shutil.copytree(classify_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["task"] = "translate"
    write_json_atomic(copy / "manifest.json", manifest)
    error = node({"model": str(copy), "classify": ["a"]})["error"]
    assert "unknown task \"translate\"" in error and "\n" not in error
