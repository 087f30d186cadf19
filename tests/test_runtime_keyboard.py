"""runtime/keyboard.py: suggestions exact over the vocabulary (against a brute-force sort of
the full distribution, hypothesis), empty results, hostile strings, noisy-channel corrections,
any next-word source."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.keyboard import (UNKNOWN_SPELLING_LOGPROB, Keyboard, LMSource,
                                       PrefixIndex, is_word, keyboard)
from pocketlm.runtime.qwerty import channel_logprob

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

TOY_WORDS = ["the", "cat", "dog", "sees", "likes", "ball", "tree", "red", "house", "a", "old",
             "man", ".", "!", "zebra"]
HOSTILE = ["\ud800", "a\udfffb", "\x00\x01\x1c\x7f", "x" * 10_000, "\n\r\t", "<eos> <eos>",
           "<unk>", "\ud83d\ude00 smile", "", " ", "e\u0301", "\u2028", "'", "--"]


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


@functools.lru_cache(maxsize=4)
def plain_keyboard(lm: LanguageModel) -> Keyboard:
    """The keyboard that reads contexts as typed (no inferred punctuation)."""
    return Keyboard(LMSource(lm), infer_punctuation=False)


def _brute(lm: LanguageModel, context: str, prefix: str,
           infer: bool = True) -> list[tuple[str, float]]:
    if infer:  # the distribution the keyboard ranks with (tests/test_runtime_punctuation.py)
        logprobs = keyboard(lm).context(context).ranked
    else:
        state = lm.begin()
        for token in lm.tokenize(context):
            state = lm.advance(state, token)[1]
        logprobs = state.logprobs[0]
    rows = [(lm.token_text(i), float(lp)) for i, lp in enumerate(logprobs)]
    rows = [r for r in rows if is_word(r[0]) and r[0].startswith(prefix.lower())]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


@PROPERTY
@given(context=st.lists(st.sampled_from(TOY_WORDS), max_size=8).map(" ".join),
       prefix=st.one_of(st.sampled_from(["", "t", "th", "C", "ca", "s", "r", "zz", "b"]),
                        st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=3)),
       k=st.integers(0, 12))
def test_suggest_is_the_top_of_a_full_sort(lm: LanguageModel, context: str, prefix: str,
                                           k: int) -> None:
    for kb, infer in ((keyboard(lm), True), (plain_keyboard(lm), False)):
        got = [(s.word, s.logprob) for s in kb.suggest(context, prefix, k)]
        want = _brute(lm, context, prefix, infer)[:k]
        assert [w for w, _ in got] == [w for w, _ in want]
        np.testing.assert_allclose([lp for _, lp in got], [lp for _, lp in want], atol=1e-6)


def test_suggest_words_only_unless_asked(lm: LanguageModel) -> None:
    words = [s.word for s in keyboard(lm).suggest("the cat sees the ball", "", 50)]
    assert words and all(is_word(w) for w in words)
    assert "<eos>" not in words and "." not in words
    everything = Keyboard(LMSource(lm), punctuation=True, specials=True)
    found = {s.word for s in everything.suggest("the cat sees the ball", "", 200)}
    assert {".", "<eos>", "<unk>"} <= found


def test_no_match_is_an_empty_list(lm: LanguageModel) -> None:
    kb = keyboard(lm)
    assert kb.suggest("the cat", "qqq") == []
    assert kb.suggest("the cat", "zebra") == []
    assert kb.suggest("the cat", "th", k=0) == []
    assert kb.correct("the cat", "", k=3) == []


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings(lm: LanguageModel, text: str) -> None:
    kb = keyboard(lm)
    for got in (kb.suggest(text, "", 3), kb.suggest("the", text, 3), kb.correct(text, "cat"),
                kb.correct("the", text[:40])):
        assert len(got) <= 3
        assert all(np.isfinite(s.score) for s in got)


def test_bad_arguments_raise_input_error(lm: LanguageModel) -> None:
    kb = keyboard(lm)
    for call in (lambda: kb.suggest(None, "a"), lambda: kb.suggest("a", 3),  # type: ignore[arg-type]
                 lambda: kb.suggest("a", "", -1), lambda: kb.suggest("a", "", True),
                 lambda: kb.correct("a", None)):  # type: ignore[arg-type]
        with pytest.raises(InputError):
            call()


def test_correct_keeps_a_likely_word_and_fixes_a_neighbour_typo(lm: LanguageModel) -> None:
    kb = keyboard(lm)
    assert kb.correct("the old", "man")[0].word == "man"          # typed right: kept
    fixed = kb.correct("the old", "mab")                          # b is beside n
    assert fixed[0].word == "man" and fixed[0].channel == -4.0
    assert kb.correct("the", "czt")[0].word == "cat"              # z beside a
    assert kb.correct("the cat", "sese")[0].word == "sees"        # a transposition
    unknown = [s for s in kb.correct("the", "xqzvw") if s.word == "xqzvw"]
    assert unknown[0].logprob == pytest.approx(
        float(kb.context("the").ranked[lm.unk_id]) + UNKNOWN_SPELLING_LOGPROB)
    plain = [s for s in plain_keyboard(lm).correct("the", "xqzvw") if s.word == "xqzvw"]
    assert plain[0].logprob == pytest.approx(
        float(plain_keyboard(lm).state("the").logprobs[0, lm.unk_id]) + UNKNOWN_SPELLING_LOGPROB)


def test_correct_ranks_by_lm_plus_channel(lm: LanguageModel) -> None:
    got = keyboard(lm).correct("the cat", "seed", k=5)
    assert got == sorted(got, key=lambda s: (-s.score, s.word))
    assert all(s.channel <= 0 for s in got)


class Unigram:
    """A next-word source that ignores the context: every state is the same distribution."""

    def __init__(self, words: Sequence[str], weights: Sequence[float]) -> None:
        self.vocabulary = list(words)
        self.unk_id = 0
        p = np.asarray(weights, dtype=np.float64)
        self._logprobs = np.log(p / p.sum())

    def normalize(self, text: str) -> str:
        return text.lower()

    def tokenize(self, text: str) -> list[int]:
        index = {w: i for i, w in enumerate(self.vocabulary)}
        return [index.get(w, 0) for w in text.lower().split()]

    def begin(self) -> Any:
        return ()

    def advance(self, state: Any, token: int) -> Any:
        return (*state, token)

    def logprobs(self, state: Any) -> np.ndarray:
        return self._logprobs


def test_any_next_word_source() -> None:
    kb = Keyboard(Unigram(["<unk>", "lord", "lot", "love", "said"], [1, 5, 1, 3, 4]))
    assert [s.word for s in kb.suggest("and the", "lo")] == ["lord", "love", "lot"]
    assert kb.correct("and the", "lprd")[0].word == "lord"      # p is beside o


#: Words close to one another, so a typed word has many candidates within two edits.
CLOSE_WORDS = ["the", "then", "than", "them", "they", "thee", "there", "three", "these", "those",
               "this", "thus", "tree", "trees", "ten", "hen", "when", "wheat", "heat", "hear",
               "here", "her", "he", "she", "shed", "shod", "shew", "sheaf", "eth", "teh"]


@PROPERTY
@given(typed=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
       | st.sampled_from(["teh", "hte", "thn", "tehre", "ehre", "thsoe", "sheep", "x"]))
def test_near_is_every_word_the_channel_model_accepts(typed: str) -> None:
    """The index's quick filters (lengths, letter counts, an edit-distance bound over all
    candidates at once) drop only words the channel model would reject."""
    index = PrefixIndex(CLOSE_WORDS)
    brute = [(pos, channel_logprob(typed, word)) for pos, word in enumerate(index.words)]
    assert sorted(index.near(typed)) == sorted(r for r in brute if r[1] > -np.inf)
