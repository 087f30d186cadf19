"""runtime/typing_session.py: keystrokes against the distribution of the finished words,
backspace across words, accepting suggestions, learned user words."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.keyboard import keyboard
from pocketlm.runtime.typing_session import CACHE_WEIGHT, Typing


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def test_each_keystroke_matches_suggest(lm: LanguageModel) -> None:
    kb, typing = keyboard(lm), Typing(lm)
    text = "the old man likes the red house."
    for n, ch in enumerate(text):
        typing.type(ch)
        done, _, partial = text[:n + 1].rpartition(" ")
        if not partial.endswith("."):
            want = kb.suggest(done, partial, 3)
            got = typing.suggestions(3)
            assert [s.word for s in got] == [s.word for s in want]
            assert [s.logprob for s in got] == pytest.approx([s.logprob for s in want],
                                                              abs=1e-5)
    assert typing.text == "the old man likes the red house ."
    assert not typing.user_words


def test_backspace_reopens_the_word_before(lm: LanguageModel) -> None:
    typing = Typing(lm)
    for ch in "the cat s":
        typing.type(ch)
    before = typing.suggestions(5)
    typing.backspace()
    typing.backspace()                       # back into "cat", its state restored
    assert typing.partial == "ca" and typing.text == "the ca"
    assert [s.word for s in typing.suggestions(3)] == \
        [s.word for s in keyboard(lm).suggest("the", "ca", 3)]
    typing.type("t")
    typing.type(" ")
    typing.type("s")
    assert typing.suggestions(5) == before
    for _ in range(20):
        typing.backspace()
    assert typing.text == "" and typing.suggestions(2) == keyboard(lm).suggest("", "", 2)


def test_accept_finishes_the_word(lm: LanguageModel) -> None:
    typing = Typing(lm)
    for ch in "the ca":
        typing.type(ch)
    typing.accept(typing.suggestions(1)[0].word)
    assert typing.partial == "" and typing.text.startswith("the ")
    with pytest.raises(InputError):
        typing.accept(" ")
    with pytest.raises(InputError):
        typing.type("ab")


def test_unknown_words_become_suggestable(lm: LanguageModel) -> None:
    typing, plain = Typing(lm), Typing(lm, learn=False)
    for t in (typing, plain):
        for ch in "the zorgblat sees the zo":
            t.type(ch)
    assert dict(typing.user_words) == {"zorgblat": 1}
    assert typing.suggestions(1)[0].word == "zorgblat"
    assert all(s.word != "zorgblat" for s in plain.suggestions(10))
    assert typing.suggestions(1)[0].logprob >= float(__import__("math").log(CACHE_WEIGHT))
    for ch in "rgbalt":                      # a typo of the learned word is corrected to it
        typing.type(ch)
    assert "zorgblat" in [s.word for s in typing.corrections(3)]
    typing.reset()
    assert typing.text == "" and "zorgblat" in typing.user_words


def test_hostile_keystrokes(lm: LanguageModel) -> None:
    typing = Typing(lm)
    for ch in "\ud800\x00\u2028😀'-<>é\t,!":
        typing.type(ch)
        assert len(typing.suggestions(3)) <= 3
        assert len(typing.corrections(3)) <= 3
