"""Log-linear combination of recogniser and language-model scores, and its weights' tuning.

Each candidate has features (log domain, higher is better): the acoustic log-likelihood, the
first-pass LM score, pocketlm's ln P, an n-gram's ln P, the number of words. Its total is::

    total = Σ_f weight_f · feature_f            the candidate with the highest total wins

One weight is fixed (``acoustic`` = 1: only ratios matter). The others are tuned to the fewest
word errors by coordinate search: one weight at a time over a grid scaled to that feature's
spread within lists (``scale_f`` = median over lists of std(acoustic) / std(f)), a few sweeps.

Tuning on the utterances one reports would flatter the result, so :func:`cross_validate` splits
*groups* (e.g. verses: every voice of a verse in the same fold) into folds, tunes on all folds
but one and picks the candidates of the held-out fold with those weights::

    folds  [1][2][3][4][5]      tune on 2-5 → choose in 1;  tune on 1,3-5 → choose in 2;  ...
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..artifact import InputError

#: Features that may take negative weights (a word count: insertion penalty or bonus).
SIGNED = ("words",)


@dataclass(frozen=True)
class Candidates:
    """One utterance's candidates: ``features`` [n, k] (columns as the caller's ``names``),
    ``errors`` [n] word errors of each against the reference, ``ref_words`` its length,
    ``group`` the unit that folds keep together (a verse)."""

    features: np.ndarray
    errors: np.ndarray
    ref_words: int
    group: Hashable = None


def choose(features: np.ndarray, weights: np.ndarray) -> int:
    """Index of the best candidate (first of ties)."""
    return int(np.argmax(features @ weights))


class _Stacked:
    """All candidates of many utterances in one matrix, for fast repeated choices."""

    def __init__(self, problems: Sequence[Candidates]) -> None:
        sizes = np.array([len(p.features) for p in problems])
        if (sizes == 0).any():
            raise InputError("tune: an utterance has no candidates")
        self.features = np.concatenate([p.features for p in problems])
        self.errors = np.concatenate([p.errors for p in problems]).astype(np.float64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.segment = np.repeat(np.arange(len(problems)), sizes)
        self.index = np.arange(len(self.segment))

    def chosen(self, weights: np.ndarray) -> np.ndarray:
        """Row of the chosen candidate of each utterance (first of ties)."""
        scores = self.features @ weights
        best = np.maximum.reduceat(scores, self.starts)
        index = np.where(scores >= best[self.segment], self.index, len(scores))
        return np.minimum.reduceat(index, self.starts)

    def total_errors(self, weights: np.ndarray) -> int:
        return int(self.errors[self.chosen(weights)].sum())


def total_errors(problems: Sequence[Candidates], weights: np.ndarray) -> int:
    """Word errors of the candidates ``weights`` choose, summed over utterances."""
    return _Stacked(problems).total_errors(weights)


def _scales(problems: Sequence[Candidates], fixed: int) -> np.ndarray:
    k = problems[0].features.shape[1]
    ratios: list[list[float]] = [[] for _ in range(k)]
    for p in problems:
        if len(p.features) < 2:
            continue
        spread = p.features.std(axis=0)
        if spread[fixed] <= 0:
            continue
        for j in range(k):
            if spread[j] > 0:
                ratios[j].append(spread[fixed] / spread[j])
    return np.array([float(np.median(r)) if r else 1.0 for r in ratios])


def tune(problems: Sequence[Candidates], names: Sequence[str], fixed: str = "acoustic",
         start: Mapping[str, float] | None = None, sweeps: int = 3,
         points: int = 24) -> dict[str, float]:
    """Weights (one per name; ``fixed`` stays 1) with the fewest errors on ``problems``."""
    names = list(names)
    if not problems:
        raise InputError("tune: no utterances to tune on")
    if fixed not in names:
        raise InputError(f"tune: the fixed feature {fixed!r} is not among {names}")
    k = len(names)
    for p in problems:
        if p.features.ndim != 2 or p.features.shape[1] != k or len(p.errors) != len(p.features):
            raise InputError(f"tune: each utterance needs features [n, {k}] and n error counts")
    f = names.index(fixed)
    scales = _scales(problems, f)
    weights = np.array([float((start or {}).get(n, 1.0 if j == f else 0.0))
                        for j, n in enumerate(names)])
    stacked = _Stacked(problems)
    best = stacked.total_errors(weights)
    steps = np.concatenate([[0.0], np.logspace(-2, np.log10(30), points)])
    for _ in range(sweeps):
        moved = False
        for j in range(k):
            if j == f:
                continue
            grid = scales[j] * steps
            if names[j] in SIGNED:
                grid = np.concatenate([-grid[:0:-1], grid])
            for value in sorted(grid, key=lambda v: abs(v - weights[j])):
                trial = weights.copy()
                trial[j] = value
                errs = stacked.total_errors(trial)
                if errs < best:
                    best, weights, moved = errs, trial, True
        if not moved:
            break
    return {n: float(w) for n, w in zip(names, weights)}


def fold_of(groups: Sequence[Hashable], folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per item, whole groups together, groups shuffled with ``seed``."""
    keys = sorted(set(groups), key=repr)
    if folds < 2 or folds > len(keys):
        raise InputError(f"cross-validation needs 2 <= folds <= {len(keys)} groups, got {folds}")
    order = np.random.default_rng(seed).permutation(len(keys))
    fold = {keys[i]: n % folds for n, i in enumerate(order)}
    return np.array([fold[g] for g in groups])


def cross_validate(problems: Sequence[Candidates], names: Sequence[str], folds: int = 5,
                   seed: int = 0, fixed: str = "acoustic", start: Mapping[str, float] | None = None
                   ) -> tuple[list[int], list[dict[str, float]]]:
    """Out-of-fold choices: (index of the chosen candidate per utterance, the weights tuned for
    each fold). No utterance is chosen with weights tuned on its own group."""
    fold = fold_of([p.group for p in problems], folds, seed)
    chosen = [0] * len(problems)
    tuned = []
    for k in range(folds):
        train = [p for p, f in zip(problems, fold) if f != k]
        w = tune(train, names, fixed=fixed, start=start)
        tuned.append(w)
        vector = np.array([w[n] for n in names])
        for i, (p, f) in enumerate(zip(problems, fold)):
            if f == k:
                chosen[i] = choose(p.features, vector)
    return chosen, tuned
