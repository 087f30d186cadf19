"""runtime/speech/combine.py: weights tuned to fewer errors, folds that keep groups whole."""

from __future__ import annotations

import numpy as np
import pytest

from pocketlm.runtime import InputError
from pocketlm.runtime.speech.combine import (Candidates, choose, cross_validate, fold_of,
                                             total_errors, tune)

NAMES = ["acoustic", "lm", "words"]


def _problems(n: int = 40, seed: int = 0) -> list[Candidates]:
    """Three candidates per utterance: the acoustically best is wrong in most utterances, and
    the LM (with some noise) prefers the right one."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        acoustic = np.array([0.0, -1.0, -2.0]) + rng.normal(0, 0.1, 3)
        right = int(rng.integers(0, 3)) if i % 4 == 0 else 1
        lm = rng.normal(-20, 0.5, 3)
        lm[right] += 3.0
        errors = np.array([0 if k == right else 2 for k in range(3)])
        words = np.array([5.0, 5.0, 6.0])
        out.append(Candidates(np.stack([acoustic, lm, words], axis=1), errors, 10, i // 2))
    return out


def test_tune_lowers_errors() -> None:
    problems = _problems()
    before = total_errors(problems, np.array([1.0, 0.0, 0.0]))
    weights = tune(problems, NAMES)
    after = total_errors(problems, np.array([weights[n] for n in NAMES]))
    assert weights["acoustic"] == 1.0 and weights["lm"] > 0
    assert after < before / 3


def test_cross_validation_is_out_of_fold() -> None:
    problems = _problems(60)
    chosen, tuned = cross_validate(problems, NAMES, folds=3, seed=1)
    assert len(tuned) == 3 and len(chosen) == 60
    errs = sum(int(p.errors[i]) for p, i in zip(problems, chosen))
    assert errs < total_errors(problems, np.array([1.0, 0.0, 0.0]))
    folds = fold_of([p.group for p in problems], 3, seed=1)
    for group in {p.group for p in problems}:   # a group never straddles folds
        assert len({f for f, p in zip(folds, problems) if p.group == group}) == 1


def test_choose_takes_the_first_of_ties() -> None:
    assert choose(np.array([[1.0], [1.0], [0.5]]), np.array([1.0])) == 0


@pytest.mark.parametrize("call, needle", [
    (lambda: tune([], NAMES), "no utterances"),
    (lambda: tune(_problems(4), ["lm", "words", "x"]), "fixed feature 'acoustic'"),
    (lambda: fold_of([1, 1, 2], 5), "2 <= folds <= 2"),
    (lambda: tune([Candidates(np.zeros((0, 3)), np.zeros(0), 1)], NAMES), "no candidates"),
])
def test_bad_arguments(call, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        call()
