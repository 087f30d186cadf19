"""Rescore a word lattice with language models: expand its paths in topological order.

Every node holds hypotheses (word history, features, each scorer's context). A node's
hypotheses are merged when their last ``history`` words agree (the best one is kept: the usual
approximation for recurrent LMs, exact for an n-gram of order ``history + 1``; ``None`` merges
only identical word sequences, which gives exact distinct n-best lists), cut to the ``beam``
best, and then advanced along each outgoing link, one batched ``advance`` per scorer and node::

    node n: hyps ──merge(last k words)──▶ beam ──▶ gather contexts ──▶ for each link n→m:
        filler link: acoustic added             word link: + ln P(word | context) per scorer
    end node: + ln P(</s>) per scorer ──▶ best first, distinct word sequences ──▶ NBestList

Features (log domain): ``acoustic`` (sum of link acoustic scores), ``lm`` (sum of the links'
first-pass LM scores, when the lattice has them), one per scorer (its name), ``words``.
``weights`` rank hypotheses during the search; :mod:`.combine` tunes them on the output lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import InputError
from .lattice import Lattice
from .nbest import Hypothesis, NBestList


@dataclass
class _Hyp:
    score: float
    words: tuple[str, ...]
    features: np.ndarray          # [acoustic, lm, words, scorer 1, scorer 2, ...]
    contexts: list[tuple[Any, int]]  # per scorer: (batch, row)


def expand(lattice: Lattice, scorers: Sequence[Any], weights: Mapping[str, float],
           history: int | None = 3, beam: int = 50, nbest: int = 100) -> NBestList:
    """The ``nbest`` best distinct word sequences of ``lattice`` after rescoring with
    ``scorers``, each with its features (see the module docstring)."""
    names = ["acoustic", "lm", "words"] + [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise InputError(f"expand: scorer names must be distinct and not acoustic, lm or "
                         f"words, got {names[3:]}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise InputError(f"expand: weights for unknown features {unknown}; features are "
                         f"{names}")
    if beam < 1 or nbest < 1 or (history is not None and history < 0):
        raise InputError("expand: beam and nbest must be at least 1, history at least 0")
    w = np.array([float(weights.get(n, 0.0)) for n in names])
    outgoing = lattice.outgoing()
    pending: dict[int, list[_Hyp]] = {
        lattice.start: [_Hyp(0.0, (), np.zeros(len(names)), [(s.start(), 0) for s in scorers])]}
    final: list[_Hyp] = []
    for node in lattice.order():
        hyps = pending.pop(node, None)
        if not hyps:
            continue
        hyps = _prune(hyps, history, beam if node != lattice.end else max(beam, nbest))
        if node == lattice.end:
            final = hyps
            break
        batches = [s.gather(_parts([h.contexts[k] for h in hyps]))
                   for k, s in enumerate(scorers)]
        word_links = [link for link in outgoing[node] if link.word]
        for link in outgoing[node]:
            if link.word:
                continue
            step = np.zeros(len(names))
            step[0], step[1] = link.acoustic, link.lm
            for i, h in enumerate(hyps):
                f = h.features + step
                pending.setdefault(link.end, []).append(
                    _Hyp(float(f @ w), h.words, f, [(b, i) for b in batches]))
        if not word_links:
            continue
        rows = [i for _ in word_links for i in range(len(hyps))]
        words = [link.word for link in word_links for _ in hyps]
        advanced = [s.advance(batches[k], rows, words) for k, s in enumerate(scorers)]
        j = 0
        for link in word_links:
            for h in hyps:
                f = h.features.copy()
                f[0] += link.acoustic
                f[1] += link.lm
                f[2] += 1
                for k, (lp, _) in enumerate(advanced):
                    f[3 + k] += lp[j]
                pending.setdefault(link.end, []).append(
                    _Hyp(float(f @ w), h.words + (link.word,), f,
                         [(batch, j) for _, batch in advanced]))
                j += 1
    if not final:
        raise InputError(f"lattice {lattice.id or '?'}: no path reaches the end node "
                         f"{lattice.end}")
    final = _prune(final, None, len(final))
    ends = [s.end(s.gather(_parts([h.contexts[k] for h in final])), list(range(len(final))))
            for k, s in enumerate(scorers)]
    for i, h in enumerate(final):
        for k, lp in enumerate(ends):
            h.features[3 + k] += lp[i]
        h.score = float(h.features @ w)
    final.sort(key=lambda h: -h.score)
    return NBestList(lattice.id, tuple(
        Hypothesis(" ".join(h.words), {n: float(v) for n, v in zip(names, h.features)})
        for h in final[:nbest]))


def _parts(contexts: list[tuple[Any, int]]) -> list[tuple[Any, list[int]]]:
    """Consecutive contexts from the same batch grouped: [(batch, rows), ...] in order."""
    parts: list[tuple[Any, list[int]]] = []
    for batch, row in contexts:
        if parts and parts[-1][0] is batch:
            parts[-1][1].append(row)
        else:
            parts.append((batch, [row]))
    return parts


def _prune(hyps: list[_Hyp], history: int | None, beam: int) -> list[_Hyp]:
    """Best hypothesis per key (last ``history`` words, or all words), then the ``beam`` best."""
    best: dict[tuple[str, ...], _Hyp] = {}
    for h in hyps:
        key = h.words if history is None else h.words[-history:] if history else ()
        old = best.get(key)
        if old is None or h.score > old.score:
            best[key] = h
    kept = sorted(best.values(), key=lambda h: -h.score)
    return kept[:beam]
