"""runtime/speech/wordstep.py: whole words fed in batches, hidden punctuation summed in."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.speech.wordstep import WordStepper


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def test_without_hidden_tokens_it_is_score(lm: LanguageModel) -> None:
    stepper = WordStepper(lm)
    for sentence in ["the cat sees the ball", "a child finds a small boat today", "",
                     "the zebra's ball"]:  # an unknown word; a word of several tokens
        assert stepper.score(sentence.split()) == pytest.approx(lm.score(sentence), abs=1e-4)


def test_batched_advance_matches_one_row_advance(lm: LanguageModel) -> None:
    stepper = WordStepper(lm)
    state = lm.begin(1)
    _, state = lm.advance(state, "the")
    two = state.select([0, 0])
    lp, new = stepper.advance(two, [0, 1], ["cat", "dog"])
    for i, word in enumerate(["cat", "dog"]):
        expect, after = lm.advance(state, word)
        assert lp[i] == pytest.approx(expect, abs=1e-5)
        np.testing.assert_allclose(new.logprobs[i], after.logprobs[0], atol=1e-5)


def test_hidden_punctuation_is_summed(lm: LanguageModel) -> None:
    """One word with '.' allowed before it: P(w) + P(.) P(w | .), as the docstring says."""
    stepper = WordStepper(lm, hidden=["."], floor=-50.0)
    start = lm.begin(1)
    _, state = lm.advance(start, "the")
    _, state = lm.advance(state, "ball")
    direct, _ = lm.advance(state, "today")
    p_dot, after_dot = lm.advance(state, ".")
    via, _ = lm.advance(after_dot, "today")
    lp, _ = stepper.advance(state, [0], ["today"])
    assert lp[0] == pytest.approx(np.logaddexp(direct, p_dot + via), abs=1e-5)
    end = stepper.end(state)
    assert end[0] == pytest.approx(np.logaddexp(lm.end(state), p_dot + lm.end(after_dot)),
                                   abs=1e-5)
    # a very high floor leaves no continuation: plain scores
    assert WordStepper(lm, hidden=["."], floor=0.0).score(["the", "ball"]) == pytest.approx(
        lm.score("the ball"), abs=1e-4)
    assert math.isfinite(stepper.score("the cat sees the ball".split()))


def test_a_hidden_token_must_be_one_known_token(lm: LanguageModel) -> None:
    with pytest.raises(InputError, match="hidden token '§' is not one vocabulary token"):
        WordStepper(lm, hidden=["§"])
    with pytest.raises(InputError, match="2 rows but 1 words"):
        WordStepper(lm).advance(lm.begin(2), [0, 1], ["the"])
