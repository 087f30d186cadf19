"""runtime/typing_session.py: keystrokes against the distribution of the finished words,
backspace across words, accepting suggestions, the cache model of the user's last words (exact
top k against a brute-force sort of the mixture, a repeated word rises, the window slides and
backspace undoes it), the left-out punctuation inferred as the keyboard infers it (model steps
once per finished word, none per keystroke; off: the plain distribution)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.keyboard import (UNKNOWN_SPELLING_LOGPROB, Keyboard, LMSource, is_word,
                                       keyboard)
from pocketlm.runtime.punctuation import PUNCTUATION_CANDIDATES
from pocketlm.runtime.qwerty import channel_logprob
from pocketlm.runtime.typing_session import CACHE_WEIGHT, Typing


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def test_each_keystroke_matches_suggest(lm: LanguageModel) -> None:
    kb, typing = keyboard(lm), Typing(lm, learn=False)
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
    typing = Typing(lm, learn=False)
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
    assert typing.cache == {"the": 2, "zorgblat": 1, "sees": 1}
    assert typing.suggestions(1)[0].word == "zorgblat"
    assert all(s.word != "zorgblat" for s in plain.suggestions(10))
    assert typing.suggestions(1)[0].logprob >= math.log(CACHE_WEIGHT / 4)
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


def mixture(typing: Typing) -> dict[str, float]:
    """Brute force: ln P of every offered word under the mixture, from the module docstring."""
    source, lam = typing.source, typing.cache_weight
    p_lm = np.exp(np.asarray(typing.logprobs, dtype=np.float64))
    total = sum(typing.cache.values())
    unknown = typing.user_words
    out = {w: (1 - lam) * p_lm[i] for i, w in enumerate(source.vocabulary) if is_word(w)}
    for w, c in typing.cache.items():
        base = (1 - lam) * p_lm[source.unk_id] * c / sum(unknown.values()) if w in unknown \
            else out[w]
        out[w] = base + lam * c / total
    return {w: math.log(p) for w, p in out.items()}


def test_top_k_is_a_sort_of_the_mixture(lm: LanguageModel) -> None:
    typing = Typing(lm, cache_weight=0.3, cache_window=10)
    for ch in "the zorgblat sees the red zorgblat . the old quux sees the red house . the ":
        typing.type(ch)
    assert len(typing.window) == 10 and typing.user_words == {"zorgblat": 1, "quux": 1}
    full = mixture(typing)
    for prefix in ("", "r", "ho", "zo", "s", "q", "qq"):
        typing.partial = prefix
        want = sorted(((-v, w) for w, v in full.items() if w.startswith(prefix)))[:5]
        got = typing.suggestions(5)
        assert [s.word for s in got] == [w for _, w in want]
        assert [s.logprob for s in got] == pytest.approx([-v for v, _ in want], abs=1e-9)
    unknown_spelling = math.log1p(-0.3) + float(typing.logprobs[lm.unk_id]) \
        + UNKNOWN_SPELLING_LOGPROB               # the typed word itself, when not a word known
    for typed in ("hous", "quix", "zorgblat", "red"):
        typing.partial = typed
        ranked = sorted((-(full[w] + ch), w) for w in full
                        if (ch := channel_logprob(typed, w)) > -math.inf)
        if typed not in full:
            ranked = sorted([*ranked, (-unknown_spelling, typed)])
        got = typing.corrections(4)
        assert [s.word for s in got] == [w for _, w in ranked[:4]]
        assert [s.score for s in got] == pytest.approx([-v for v, _ in ranked[:4]], abs=1e-9)


def test_a_repeated_word_rises(lm: LanguageModel) -> None:
    typing, plain = Typing(lm), Typing(lm, learn=False)
    for t in (typing, plain):
        for ch in "the red red red red the r":
            t.type(ch)
    learned = [s.word for s in typing.suggestions(50)]
    base = [s.word for s in plain.suggestions(50)]
    assert learned.index("red") < (base.index("red") if "red" in base else len(base))
    assert learned[0] == "red"


def test_the_window_slides_and_backspace_undoes_it(lm: LanguageModel) -> None:
    typing = Typing(lm, cache_window=3)
    for ch in "the old man sees":
        typing.type(ch)
    typing.space()
    assert list(typing.window) == ["old", "man", "sees"] and "the" not in typing.cache
    typing.backspace()                      # re-opens "sees": "the" comes back into the window
    assert list(typing.window) == ["the", "old", "man"] and typing.partial == "see"
    typing.type("s")
    typing.type(" ")
    assert list(typing.window) == ["old", "man", "sees"]
    typing.reset()
    assert typing.cache == {"old": 1, "man": 1, "sees": 1}
    for bad in ({"cache_weight": 1.0}, {"cache_weight": -0.1}, {"cache_window": 0},
                {"cache_window": 2.5}):
        with pytest.raises(InputError):
            Typing(lm, **bad)  # type: ignore[arg-type]


class CountingSource(LMSource):
    """The real source, counting the model steps it takes."""

    steps = 0

    def advance(self, state: object, token: int) -> object:
        self.steps += 1
        return super().advance(state, token)


@pytest.mark.parametrize("infer", [True, False])
def test_left_out_punctuation_as_the_keyboard_infers_it(lm: LanguageModel, infer: bool) -> None:
    """Each keystroke's suggestions equal Keyboard.suggest on the text so far (inferred marks
    included, or not when off); the model steps only when a word is finished, at most
    1 + PUNCTUATION_CANDIDATES times; backspace restores the kept context without a step."""
    source = CountingSource(lm)
    kb = Keyboard(source, infer_punctuation=infer)
    typing = Typing(kb, learn=False)
    text = "the cat sees the ball the dog likes a tree today the old man ! a bird"
    branched = 0
    for n, ch in enumerate(text):
        before = source.steps
        typing.type(ch)
        done = " ".join(unit.text for unit in typing.units)
        partial = typing.partial
        if ch == "!":                          # a typed mark: one step, nothing inferred
            assert source.steps - before == 1 and not typing.context.branches
        elif ch == " " and text[n - 1] != "!":  # a finished word
            assert 1 <= source.steps - before <= 1 + PUNCTUATION_CANDIDATES * infer
            branched += bool(typing.context.branches)
        else:
            assert source.steps == before
        want = Keyboard(LMSource(lm), infer_punctuation=infer).suggest(done, partial, 4)
        got = typing.suggestions(4)
        assert [s.word for s in got] == [s.word for s in want]
        assert [s.logprob for s in got] == pytest.approx([s.logprob for s in want], abs=1e-6)
    assert (branched > 0) == infer
    kept, steps = typing.context, source.steps
    typing.type(" ")
    typing.backspace()
    typing.backspace()
    assert typing.context is kept and source.steps == steps + 1 + len(kept.branches)
