"""runtime/speech/prefix.py: trie scoring equals whole-sentence scoring, with fewer steps."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.speech.prefix import PrefixScorer

from .conftest import toy_lines


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def _nbest(n: int = 60) -> list[str]:
    """An n-best-like list: variants of a few sentences (shared prefixes, repeats, empties)."""
    rng = random.Random(3)
    base = [line.rstrip(" .!").split() for line in toy_lines(6, seed=5)]
    out = []
    for _ in range(n):
        words = list(rng.choice(base))
        if rng.random() < 0.5:
            words[rng.randrange(len(words))] = rng.choice(["cat", "dog", "tree", "zebra"])
        out.append(" ".join(words[:rng.randint(0, len(words))]))
    return out + ["the lord's house"]


@pytest.mark.parametrize("batch_rows", [512, 3])
def test_equals_whole_sentence_score(lm: LanguageModel, batch_rows: int) -> None:
    sentences = _nbest()
    scorer = PrefixScorer(lm, batch_rows=batch_rows)
    got = scorer.score(sentences)
    expect = lm.score_batch(sentences)
    assert got == pytest.approx(expect, abs=1e-4)
    tokens = sum(len(s.split()) for s in sentences)
    assert scorer.nodes < tokens / 2   # shared prefixes are fed once


def test_word_lists_and_empty_input(lm: LanguageModel) -> None:
    scorer = PrefixScorer(lm)
    assert scorer.score([["the", "cat"], "the cat"])[0] == pytest.approx(lm.score("the cat"),
                                                                          abs=1e-4)
    assert scorer.score([]) == []
    assert scorer.score([""]) == pytest.approx([lm.score("")], abs=1e-4)


def test_unshared_paths_same_scores_more_steps(lm: LanguageModel) -> None:
    """share=False gives every sentence a path of its own: same scores, one step per word."""
    sentences = _nbest()
    shared, unshared = PrefixScorer(lm), PrefixScorer(lm, share=False)
    assert unshared.score(sentences) == pytest.approx(shared.score(sentences), abs=1e-5)
    assert unshared.nodes == sum(len(s.split()) for s in sentences)
    assert shared.nodes < unshared.nodes / 2
