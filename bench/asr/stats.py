"""Word errors and the statistics of the speech benchmark.

* ``errors(ref, hyp)``: Levenshtein distance over words (substitutions + deletions + insertions);
  WER = total errors / total reference words.
* Confidence intervals resample *verses* (each verse carries all its voices' utterances), since
  utterances of the same verse are not independent: 95% percentile intervals over ``B`` seeded
  bootstrap samples. Comparisons are paired: the same resampled verses for both systems.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def errors(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Word-level edit distance, one numpy row per reference word: substitutions and
    deletions from the previous row, then insertions along the row as a running minimum
    (cur[j] = min over k <= j of c[k] + j - k)."""
    h = np.asarray(hyp, dtype=object)
    cols = np.arange(len(hyp) + 1)
    prev = cols.copy()
    for i, r in enumerate(ref, 1):
        c = np.empty_like(prev)
        c[0] = i
        c[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (h != r))
        prev = np.minimum.accumulate(c - cols) + cols
    return int(prev[-1])


def by_verse(verses: Sequence[str], errs: Sequence[int], words: Sequence[int]
             ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(verse keys, errors per verse, reference words per verse), summed over voices."""
    keys = sorted(set(verses))
    index = {k: i for i, k in enumerate(keys)}
    e, w = np.zeros(len(keys)), np.zeros(len(keys))
    for v, x, n in zip(verses, errs, words):
        e[index[v]] += x
        w[index[v]] += n
    return keys, e, w


def _samples(n: int, boots: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(boots, n))


def wer_ci(e: np.ndarray, w: np.ndarray, boots: int = 2000, seed: int = 0
           ) -> tuple[float, float, float]:
    """WER (%) and its 95% bootstrap interval over verses."""
    idx = _samples(len(e), boots, seed)
    rates = 100 * e[idx].sum(1) / w[idx].sum(1)
    return (100 * e.sum() / w.sum(), float(np.percentile(rates, 2.5)),
            float(np.percentile(rates, 97.5)))


def paired(e_base: np.ndarray, e_new: np.ndarray, w: np.ndarray, boots: int = 2000,
           seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of ``new`` against ``base`` over verses: absolute difference of WER
    (points, negative = fewer errors) and relative change (%), each with a 95% interval, and the
    share of samples where ``new`` is not better (a one-sided p-value)."""
    idx = _samples(len(w), boots, seed)
    words = w[idx].sum(1)
    base, new = e_base[idx].sum(1) / words, e_new[idx].sum(1) / words
    diff, rel = 100 * (new - base), 100 * (new - base) / base
    d0 = 100 * (e_new.sum() - e_base.sum()) / w.sum()
    r0 = 100 * (e_new.sum() - e_base.sum()) / e_base.sum()
    return {"diff_points": float(d0), "diff_ci": [float(np.percentile(diff, 2.5)),
                                                   float(np.percentile(diff, 97.5))],
            "rel_percent": float(r0), "rel_ci": [float(np.percentile(rel, 2.5)),
                                                  float(np.percentile(rel, 97.5))],
            "p_not_better": float(np.mean(diff >= 0))}


def lattice_errors(lattice: Any, ref: Sequence[str]) -> int:
    """The oracle of a word lattice: the fewest word errors of any start-to-end path. One
    numpy vector per node over reference positions (errors after reading ref[:j]), relaxed
    along links in topological order; a node's deletions are a running minimum, as in
    :func:`errors`."""
    r = np.asarray(ref, dtype=object)
    cols = np.arange(len(ref) + 1)
    best: dict[int, np.ndarray] = {lattice.start: cols.copy()}
    outgoing = lattice.outgoing()
    for node in lattice.order():
        cur = best.pop(node, None)
        if cur is None:
            continue
        cur = np.minimum.accumulate(cur - cols) + cols  # deletions of reference words
        if node == lattice.end:
            return int(cur[-1])
        for link in outgoing[node]:
            if link.word:
                new = cur + 1  # insertion
                new[1:] = np.minimum(new[1:], cur[:-1] + (r != link.word))
            else:
                new = cur
            old = best.get(link.end)
            best[link.end] = new if old is None else np.minimum(old, new)
    raise ValueError(f"lattice {lattice.id}: the end node is not reachable")
