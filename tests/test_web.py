"""web/: the JavaScript package, run in Node through web/tools/driver.js, gives what the Python
runtime gives on the same model folder: token ids, scores, the state API, seeded generation,
and one-line errors for a bad folder.

Needs Node and ``web/node_modules`` (``cd web && npm ci``; .ci/run does both)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.artifact import read_manifest, write_json_atomic

from .conftest import WEB, needs_program

DRIVER = WEB / "tools" / "driver.js"
#: Verses scored in Node and Python.
N_VERSES = 200
#: fp32 graphs: largest |Node - Python| in nats per sentence.
FP32_TOLERANCE = 1e-4
#: int8 graphs: largest |Node - Python| in nats per predicted token. Activations are rounded to
#: 8 bits (with scales fixed at export), so float kernels of other CPUs (or of wasm) may round a
#: value near a step the other way; one flipped step moves a log-probability by far less than this.
INT8_TOLERANCE_PER_TOKEN = 1e-2
#: Prompts of the seeded-generation comparison, and the words each must produce.
PROMPTS = ["", "and the lord said", "in the beginning", "my son ,", "blessed are the"]
WORDS = 30

HOSTILE = [
    "", " ", "\t\n\r \u3000\u2028\u2029\x85", "\x00", "a\x00b", "\ud800", "a\udfffb",
    "\ud83d x", "\u202eevil\u202c text \u200f\u200e",
    "e\u0301\u0301\u0323 Z\u0334\u0321\u0347a\u0337l",
    "👍🏽 👨‍👩‍👧 🇬🇧!", "<unk>", "<eos>", "the <eos> end <unk>", "<EOS> <Unk> ＜eos＞",
    "ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ", "İstanbul ß ẞ ﬃ",
    "x² ١٢٣ ⅻ ½", "\ufeffbom \u00ad soft\u200bzero", "中文 日本語 한국어", "ｆｕｌｌ ｗｉｄｔｈ",
    "the LORD's",
    ("And God said, Let there be light: and there was light. " * 1800)[:100_000],
]

pytestmark = needs_program("node", "web/node_modules")


def node(request: dict[str, Any]) -> dict[str, Any]:
    """One request to the JavaScript package; its JSON answer."""
    done = subprocess.run(["node", str(DRIVER)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def split_text(data: Path, count: int | None = None) -> list[str]:
    """The test split of a data folder as raw text (capitals and punctuation as in the source)."""
    from pocketlm.pipeline.ingest import IngestConfig

    manifest = read_manifest(data, "data", verify=False)
    lines = list(IngestConfig.from_manifest(manifest["config"]).corpus().split_lines("test"))
    return lines[:count] if count else lines




@pytest.fixture(scope="module")
def lm(kjv_model: Path) -> LanguageModel:
    return LanguageModel(kjv_model)


def test_token_ids_on_the_whole_test_split(kjv_data: Path, kjv_model: Path,
                                           lm: LanguageModel) -> None:
    """Every verse of the KJV test split tokenises to the same ids in JavaScript and in Python,
    and both are the ids ingest wrote to test.bin."""
    lines = split_text(kjv_data)
    assert len(lines) > 1000
    ours = node({"tokenizer": str(kjv_model / "tokenizer.json"), "tokenize": lines})["tokenize"]
    python = [lm.tokenize(line) for line in lines]
    assert ours == python
    manifest = read_manifest(kjv_data, "data", verify=False)
    written = np.fromfile(kjv_data / "test.bin", dtype=manifest["splits"]["test"]["dtype"])
    assert [i for ids in python for i in ids + [lm.eos_id]] == written.tolist()


def test_token_ids_on_hostile_strings(kjv_model: Path, lm: LanguageModel) -> None:
    """Empty, blank, NUL, lone surrogates, bidi controls, combining marks, emoji, 100,000
    characters, special tokens typed literally: the same ids on both sides."""
    ours = node({"tokenizer": str(kjv_model / "tokenizer.json"), "tokenize": HOSTILE})["tokenize"]
    for text, got in zip(HOSTILE, ours):
        assert got == lm.tokenize(text), repr(text[:80])
    assert ours[HOSTILE.index("<eos>")] == [lm.eos_id]
    assert ours[HOSTILE.index("<unk>")] == [lm.unk_id]
    assert len(ours[-1]) > 15_000


def _sweep_texts() -> list[str]:
    """Every code point but the surrogates, inside and between words, 256 to a string."""
    texts = []
    for block in range(0, 0x110000, 256):
        chars = [chr(c) for c in range(block, block + 256) if not 0xD800 <= c <= 0xDFFF]
        texts.append(" ".join(f"a{c}b {c} 9{c}{c}Σ" for c in chars))
    return [t for t in texts if t]


def test_words_for_every_code_point(kjv_model: Path) -> None:
    """Normaliser and pre-tokenizer agree with the tokenizers library on all of Unicode (the
    classes come from web/tools/unicode_tables.py; the JavaScript engine's own Unicode version
    does not matter)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(kjv_model / "tokenizer.json"))
    texts = _sweep_texts()
    ours = node({"tokenizer": str(kjv_model / "tokenizer.json"), "words": texts})["words"]
    for text, got in zip(texts, ours):
        normal = tokenizer.normalizer.normalize_str(text)
        expected = [w for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normal)]
        assert got == expected, f"block U+{ord(text[1]):04X}"


def test_number_folding_tokenizer(tmp_path: Path, kjv_data: Path) -> None:
    """A vocabulary made with --fold-numbers (a Replace regex normaliser and a Split
    pre-tokenizer) tokenises the same way too."""
    from pocketlm.pipeline.ingest import build_tokenizer

    lines = split_text(kjv_data, 500) + ["in 1611, 3.14 or 1,000 v12 2nd 12:30 ١٢ x²"]
    tokenizer = build_tokenizer(lines, 500, fold_numbers=True)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    texts = lines + HOSTILE[:-1] + ["chapter 12:3, verse 4.5 and ٣ and 7x and x7 ¹²"]
    ours = node({"tokenizer": str(path), "tokenize": texts})["tokenize"]
    from pocketlm.runtime.core import clean_text

    assert ours == [tokenizer.encode(clean_text(t)).ids for t in texts]


def test_scores_match_python(kjv_data: Path, kjv_model: Path, lm: LanguageModel) -> None:
    """200 test verses: Node's scores equal Python's within 1e-4 nats per sentence with the
    fp32 graphs; the state API (begin/advance/end) sums to the same scores."""
    verses = split_text(kjv_data, N_VERSES)
    got = node({"model": str(kjv_model), "score": verses, "steps": verses[:25]})
    python = np.array(lm.score_batch(verses))
    assert np.abs(np.array(got["score"]) - python).max() <= FP32_TOLERANCE
    assert np.abs(np.array(got["steps"]) - python[:25]).max() <= FP32_TOLERANCE
    ranked = node({"model": str(kjv_model), "rank": [verses[0], verses[0][::-1]]})["rank"]
    assert ranked[0]["sentence"] == verses[0]
    assert ranked[0]["tokens"] == len(lm.tokenize(verses[0])) + 1


def test_int8_scores_match_python(kjv_data: Path, kjv_model: Path) -> None:
    """With the int8 graphs, within INT8_TOLERANCE_PER_TOKEN nats per predicted token."""
    verses = split_text(kjv_data, N_VERSES)
    int8 = LanguageModel(kjv_model, precision="int8")
    got = np.array(node({"model": str(kjv_model), "precision": "int8", "score": verses})["score"])
    tokens = np.array([len(int8.tokenize(v)) + 1 for v in verses])
    python = np.array(int8.score_batch(verses))
    assert np.all(np.abs(got - python) <= INT8_TOLERANCE_PER_TOKEN * tokens)


def test_full_scores_match(kjv_model: Path, lm: LanguageModel) -> None:
    """Per-word log-probabilities (what the page colours) equal Python's full_scores."""
    sentence = "And the LORD spake unto Moses, saying zebra"
    got = node({"model": str(kjv_model), "fullScores": sentence})["fullScores"]
    python = lm.full_scores(sentence)
    assert [w["token"] for w in got] == [w.token for w in python]
    assert np.allclose([w["logprob"] for w in got], [w.logprob for w in python], atol=1e-5)
    assert [w["oov"] for w in got] == [w.oov for w in python]


def test_seeded_generation_matches_python(kjv_model: Path, lm: LanguageModel) -> None:
    """The same seed gives the same 30 words in Node and in Python, for 5 prompts and several
    sampling settings (the shared SplitMix64 sampler of pocketlm.runtime.sampling)."""
    settings = [dict(seed=s, temperature=t, top_k=k, top_p=p) for s, t, k, p in
                [(0, 1.0, 0, 1.0), (1, 0.8, 40, 1.0), (2, 1.0, 0, 0.9), (3, 1.2, 100, 0.95),
                 (2**40 + 5, 1.0, 0, 1.0)]]
    requests = [{"prompt": prompt, "maxWords": WORDS, "seed": s["seed"],
                 "temperature": s["temperature"], "topK": s["top_k"], "topP": s["top_p"]}
                for prompt, s in zip(PROMPTS, settings)]
    got = node({"model": str(kjv_model), "generate": requests})["generate"]
    for prompt, s, words in zip(PROMPTS, settings, got):
        stream = lm.stream(prompt, max_words=WORDS, **s)
        assert words == list(stream), (prompt, s)
    assert sum(len(w) for w in got) >= 3 * WORDS  # mostly long samples, not one-word endings


def _copy(model: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(model, out)
    return out


def test_bad_folders_give_one_line(kjv_model: Path, kjv_data: Path, tmp_path: Path) -> None:
    """Not a model folder, a missing graph, a newer format version, a missing folder: one line
    naming the file and the fix, no stack trace."""
    missing = _copy(kjv_model, tmp_path / "a")
    (missing / "step.onnx").unlink()
    newer = _copy(kjv_model, tmp_path / "b")
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = "2.0"
    write_json_atomic(newer / "manifest.json", manifest)
    cases = {
        str(tmp_path): "no manifest.json, so it is not a pocketlm model folder",
        str(kjv_data): "is a pocketlm 'data' folder, expected a 'model' folder",
        str(missing): "step.onnx: missing file listed in manifest.json",
        str(newer): 'format version "2.0" is not supported',
        str(tmp_path / "nowhere"): "no such folder",
    }
    for folder, message in cases.items():
        request = json.dumps({"model": folder, "score": ["a"]})
        done = subprocess.run(["node", str(DRIVER)], input=request, capture_output=True,
                              text=True, timeout=120)
        error = json.loads(done.stdout)["error"]
        assert message in error and "\n" not in error and "    at " not in done.stdout + done.stderr


def test_node_unit_tests() -> None:
    """The package's own tests (node --test web/test/)."""
    done = subprocess.run(["node", "--test", "test/"], cwd=WEB, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_docs_javascript_examples_run(toy_model: Path, classify_model: Path, tag_model: Path,
                                      tmp_path: Path) -> None:
    """Every ```js block of docs/web.md runs in Node against the toy model (``modelDir``) and
    the test classify and tag folders (``classifyDir``, ``tagDir``), importing the package by
    its name."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "web.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```js\n(.*?)^```", text, re.S | re.M)
    assert blocks
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "pocketlm").symlink_to(WEB)
    for i, code in enumerate(blocks):
        script = tmp_path / f"example{i}.mjs"
        script.write_text(f"const modelDir = {json.dumps(str(toy_model))};\n"
                          f"const classifyDir = {json.dumps(str(classify_model))};\n"
                          f"const tagDir = {json.dumps(str(tag_model))};\n{code}",
                          encoding="utf-8")
        done = subprocess.run(["node", str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
