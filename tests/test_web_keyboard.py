"""web/src/keyboard.js: suggest, correct and a typing session (its cache model included, a
sliding window undone by backspace; the punctuation left out of the text inferred, and not when
switched off) in Node give the Python runtime's words and scores (within 1e-4) on the same model
folder.

Needs Node and ``web/node_modules`` (``cd web && npm ci``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.keyboard import Keyboard, LMSource, Suggestion
from pocketlm.runtime.typing_session import CACHE_WEIGHT, CACHE_WINDOW, Typing

WEB = Path(__file__).resolve().parents[1] / "web"
TOLERANCE = 1e-4

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (WEB / "node_modules" / "onnxruntime-node").is_dir(),
    reason="needs node and web/node_modules (apt-get install nodejs npm; cd web && npm ci)")

QUERIES = [("", ""), ("the", ""), ("the old", "m"), ("the cat sees", "t"), ("a", "zz"),
           ("the \ud800 cat", "s"), ("The OLD", "M"), ("x" * 300, "a"),
           ("the cat sees the ball the dog likes a tree", ""), ("the red house the", "c"),
           ("a bird finds the river today the old man", "s"), ("the ball ! the", "")]
TYPED = [("the old", "mab"), ("the", "czt"), ("the cat", "sese"), ("the", "xqzvw"),
         ("", "the"), ("the", "\x00"), ("the cat sees the ball the", "dpg"),
         ("a small boat today a", "xqzvw")]
KEYS = ["the old man likes the red house.", "the ca\tsees zorgblat. the zo", "th\x08e dog",
        "the red zorgblat sees the red quux . the r\x08\x08\x08\x08zo \x08\x08\x08 q",
        "the cat sees the ball the dog likes a tree\x08\x08\x08\x08\x08 the \t\t\t a b"]
#: Typing options per KEYS entry (the fourth: a small window that slides, backspace undoing it).
OPTIONS: list[dict[str, Any]] = [{}, {}, {}, {"cacheWeight": 0.3, "cacheWindow": 4}, {}]


def node(request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(["node", str(WEB / "tools" / "driver.js")], input=json.dumps(request),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same(js: list[dict[str, Any]], py: list[Suggestion]) -> None:
    assert [s["word"] for s in js] == [s.word for s in py]
    for a, b in zip(js, py):
        assert abs(a["logprob"] - b.logprob) < TOLERANCE and a["channel"] == b.channel


@pytest.mark.parametrize("infer", [True, False])
def test_suggest_correct_and_typing_match_python(toy_model: Path, infer: bool) -> None:
    lm = LanguageModel(toy_model)
    kb = Keyboard(LMSource(lm), infer_punctuation=infer)
    got = node({"model": str(toy_model), "inferPunctuation": infer,
                "suggest": [{"context": c, "prefix": p, "k": 5} for c, p in QUERIES],
                "correct": [{"context": c, "typed": t, "k": 4} for c, t in TYPED],
                "typing": [{"keys": keys, **options} for keys, options in zip(KEYS, OPTIONS)]})
    assert any(kb.context(c).branches for c, _ in QUERIES) == infer  # marks were inferred
    for js, (context, prefix) in zip(got["suggest"], QUERIES):
        same(js, kb.suggest(context, prefix, 5))
    for js, (context, typed) in zip(got["correct"], TYPED):
        same(js, kb.correct(context, typed, 4))
    for trace, keys, options in zip(got["typing"], KEYS, OPTIONS):
        typing = Typing(kb, cache_weight=options.get("cacheWeight", CACHE_WEIGHT),
                        cache_window=options.get("cacheWindow", CACHE_WINDOW))
        for step, key in zip(trace, keys):
            if key == "\t":
                typing.accept(typing.suggestions(1)[0].word)
            elif key == "\x08":
                typing.backspace()
            else:
                typing.type(key)
            assert step["text"] == typing.text
            same(step["suggestions"], typing.suggestions(3))
            same(step["corrections"], typing.corrections(3))


def test_typist_taps_as_python(toy_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """web/tools/typist.js is bench/keyboard_driver.py's typist: the same taps, one timing per
    suggestions call and one per finished word."""
    monkeypatch.syspath_prepend(str(WEB.parent / "bench"))
    from keyboard_driver import savings

    sentences = ["the old man likes the red house", "the cat sees zorgblat", "  the  dog "]
    got = node({"model": str(toy_model), "typist": {"sentences": sentences, "k": 3,
                                                    "warmup": sentences[:1]}})["typist"]
    want = savings(Typing(LanguageModel(toy_model), learn=False), sentences, 3)
    assert {key: got[key] for key in want} == want
    assert len(got["suggestMs"]) == got["taps"] and len(got["stepMs"]) == got["words"]
