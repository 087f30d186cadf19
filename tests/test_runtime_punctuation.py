"""runtime/punctuation.py: the marks a typist leaves out, inferred. The restored state and the
marginal distribution equal a brute-force computation from the definition (toy model with
hypothesis, the KJV model on unpunctuated verses); nothing is inferred at the start, next to a
typed mark, or when switched off."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.keyboard import Keyboard, LMSource, keyboard
from pocketlm.runtime.punctuation import (PUNCTUATION_CANDIDATES, PUNCTUATION_MIN_PROB,
                                          PunctuationInference, is_punctuation)

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
TOY_WORDS = ["the", "cat", "dog", "sees", "likes", "ball", "tree", "red", "house", "a", "old",
             "man", ".", "!", "today", "zebra"]
KJV_CONTEXTS = ["and god said let there be light and there was light",
                "in the beginning god created the heaven and the earth and the earth was",
                "and he said unto them go ye into all the world",
                "thus saith the lord , behold i will"]


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def brute(lm: LanguageModel, context: str, infer: bool = True) -> tuple[Any, np.ndarray]:
    """The state after ``context`` and the distribution to rank with, from the definition:
    after each word (not at the start, not after a mark) the two likeliest marks with P > 0.05
    are branches; a word right after a word goes on from the branch that makes it likelier
    (ties: no mark); the distribution is P(w | s) + the branches' P(p | s) P(w | s, p)."""
    vocab = [lm.token_text(i) for i in range(lm.vocab_size)]
    marks = [i for i, w in enumerate(vocab) if w and not (w.startswith("<") and w.endswith(">"))
             and not any(ch.isalpha() or ch.isdigit() or ch.isnumeric() for ch in w)]
    state, branches = lm.begin(), []
    for token in lm.tokenize(context):
        if branches and token not in marks:
            here = state.logprobs[0]
            options = [(float(here[token]), state)] + [
                (float(here[p]) + float(s.logprobs[0][token]), s) for p, s in branches]
            best = max(score for score, _ in options)
            state = next(s for score, s in options if score == best)
        state = lm.advance(state, token)[1]
        here = state.logprobs[0]
        top = sorted(marks, key=lambda p: (-float(here[p]), p))[:2]
        branches = [(p, lm.advance(state, p)[1]) for p in top
                    if infer and token not in marks and math.exp(float(here[p])) > 0.05]
    here = state.logprobs[0].astype(np.float64)
    total = np.exp(here)
    for p, s in branches:
        total += math.exp(here[p]) * np.exp(s.logprobs[0].astype(np.float64))
    return state, np.log(total)


def same_as_brute(kb: Keyboard, lm: LanguageModel, context: str, infer: bool) -> None:
    got = kb.context(context)
    state, ranked = brute(lm, context, infer)
    np.testing.assert_allclose(got.state.logprobs[0], state.logprobs[0], atol=1e-6)
    np.testing.assert_allclose(got.ranked, ranked, atol=1e-6)


def test_punctuation_entries() -> None:
    assert all(is_punctuation(w) for w in (",", ".", ";", "--", "'", "!?", "(", "<", "<>"))
    assert not any(is_punctuation(w) for w in ("<unk>", "<eos>", "a", "3", "lord's", "", "é"))
    assert PUNCTUATION_CANDIDATES == 2 and PUNCTUATION_MIN_PROB == 0.05


@PROPERTY
@given(context=st.lists(st.sampled_from(TOY_WORDS), max_size=9).map(" ".join))
def test_toy_contexts_equal_the_brute_force(lm: LanguageModel, context: str) -> None:
    same_as_brute(keyboard(lm), lm, context, True)
    same_as_brute(Keyboard(LMSource(lm), infer_punctuation=False), lm, context, False)


def test_a_mark_is_inferred_where_it_helps(lm: LanguageModel) -> None:
    """The toy grammar ends each sentence with "." or "!": after "the ball" a mark is likely, and
    the next "the" goes on from it; the plain context does not."""
    kb, plain = keyboard(lm), Keyboard(LMSource(lm), infer_punctuation=False)
    context = kb.context("the cat sees the ball")
    assert [p for p, _, _ in context.branches] == kb.inference.candidates(context.logprobs)
    assert context.branches and {lm.token_text(p) for p, _, _ in context.branches} <= {".", "!"}
    assert np.all(context.ranked >= context.logprobs - 1e-6)  # the marginal only adds mass
    restored = kb.context("the cat sees the ball the")
    assert any(np.allclose(restored.logprobs, kb.context(f"the cat sees the ball {mark} the")
                           .logprobs, atol=1e-6) for mark in ".!")
    unmarked = plain.context("the cat sees the ball the")
    assert not np.allclose(unmarked.logprobs, restored.logprobs, atol=1e-3)


def test_nothing_inferred_at_the_start_next_to_a_mark_or_when_off(lm: LanguageModel) -> None:
    kb, off = keyboard(lm), Keyboard(LMSource(lm), infer_punctuation=False)
    assert kb.context("").branches == () and kb.context(".").branches == ()
    assert kb.context("the ball .").branches == () and kb.context("the ball !").branches == ()
    for text in ("", "the cat sees the ball the dog", "the ball . the"):
        got = off.context(text)
        assert got.branches == () and got.ranked is got.logprobs


def test_candidates_are_the_likeliest_marks_above_the_floor(lm: LanguageModel) -> None:
    inference = PunctuationInference(LMSource(lm))
    marks = inference.marks
    logprobs = np.full(lm.vocab_size, -9.0, dtype=np.float32)
    assert inference.candidates(logprobs) == []
    logprobs[marks] = math.log(0.3)              # all tied: the smallest ids
    assert inference.candidates(logprobs) == sorted(int(m) for m in marks)[:2]
    logprobs[marks] = math.log(0.01)
    logprobs[marks[-1]] = math.log(0.06)
    assert inference.candidates(logprobs) == [int(marks[-1])]


def test_kjv_unpunctuated_verses_equal_the_brute_force(kjv_model: Path) -> None:
    lm = LanguageModel(kjv_model)
    kb, plain = keyboard(lm), Keyboard(LMSource(lm), infer_punctuation=False)
    restored = 0
    for context in KJV_CONTEXTS:
        same_as_brute(kb, lm, context, True)
        same_as_brute(plain, lm, context, False)
        words = context.split()
        for n in range(2, len(words) + 1):  # a left-out mark was restored somewhere
            head = " ".join(words[:n])
            restored += not np.allclose(kb.context(head).logprobs,
                                        plain.context(head).logprobs, atol=1e-4)
    assert restored > 0
    offered, ranked = set(kb.index.words), brute(lm, KJV_CONTEXTS[0])[1]
    best = sorted((-ranked[i], w) for i, w in enumerate(kb.source.vocabulary) if w in offered)
    assert [s.word for s in kb.suggest(KJV_CONTEXTS[0], "", 3)] == [w for _, w in best[:3]]
