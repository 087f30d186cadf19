"""Rescore a word lattice with language models: expand its paths in topological order.

Every node holds hypotheses (a word history, its features and its score). Hypotheses arriving
at a node are merged when their last ``history`` words agree (the best one is kept: the usual
approximation for recurrent LMs, exact for an n-gram of order ``history + 1``; ``None`` merges
only identical word sequences, which gives exact distinct n-best lists); the ``beam`` best are
then advanced along each outgoing link::

    node n: hyps (merged on arrival) ──beam──▶ for each link n→m:
        filler link: acoustic (and posterior) added
        word link:   + ln P(word | history) per scorer, looked up in the history trie
    end node: distinct word sequences ──▶ + ln P(</s>) per scorer ──▶ best first ──▶ NBestList

Language-model work is done once per distinct *word history*, not once per path: histories
live in a trie shared by the whole lattice, and a node's new (history, word) extensions are
advanced in one batch per scorer. A recogniser's lattice repeats the same words at many
start and end times, so most links find their scores already there.

Features (log domain): ``acoustic`` (sum of link acoustic scores), ``lm`` (sum of the links'
first-pass LM scores, when the lattice has them), ``posterior`` (sum of ln link posteriors,
when it has them), ``words``, and one per scorer (its name). ``weights`` rank hypotheses during
the search; :mod:`.combine` tunes them on the output lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..artifact import InputError
from .lattice import Lattice, Link
from .nbest import Hypothesis, NBestList

#: Features every expansion reports before the scorers' own.
BASE_FEATURES = ("acoustic", "lm", "posterior", "words")


class _Hyp:
    __slots__ = ("score", "history", "features")

    def __init__(self, score: float, history: int, features: np.ndarray) -> None:
        self.score, self.history, self.features = score, history, features


class Histories:
    """A trie of word histories shared by a lattice's hypotheses. History ``i`` has a parent,
    a last word, a merge key and, per scorer, its context (a row of a batch); ``extend`` makes
    the missing (history, word) children in one batched ``advance`` per scorer."""

    def __init__(self, scorers: Sequence[Any], history: int | None) -> None:
        self.scorers = scorers
        self.k = history
        self.parent, self.word = [-1], [""]
        self.keys: list[Any] = [()]
        self.contexts: list[list[tuple[Any, int]]] = [[(s.start(), 0) for s in scorers]]
        self.children: dict[tuple[int, str], tuple[int, np.ndarray]] = {}
        self.steps = 0

    def key(self, node: int) -> Any:
        return node if self.k is None else self.keys[node]

    def extend(self, pairs: Sequence[tuple[int, str]]) -> None:
        new = sorted({p for p in pairs if p not in self.children})
        if not new:
            return
        scores, batches = [], []
        for k, scorer in enumerate(self.scorers):
            batch = scorer.gather(_parts([self.contexts[h][k] for h, _ in new]))
            lp, stepped = scorer.advance(batch, range(len(new)), [w for _, w in new])
            scores.append(lp)
            batches.append(stepped)
        table = np.stack(scores, axis=1) if scores else np.zeros((len(new), 0))
        for i, (h, word) in enumerate(new):
            node = len(self.parent)
            self.parent.append(h)
            self.word.append(word)
            if self.k is not None:
                self.keys.append((self.keys[h] + (word,))[-self.k:] if self.k else ())
            self.contexts.append([(b, i) for b in batches])
            self.children[(h, word)] = (node, table[i])
        self.steps += len(new)

    def words(self, node: int) -> tuple[str, ...]:
        out = []
        while node > 0:
            out.append(self.word[node])
            node = self.parent[node]
        return tuple(reversed(out))

    def end(self, nodes: Sequence[int]) -> np.ndarray:
        """[len(nodes), scorers]: ln P(end of sentence) after each history."""
        cols = [s.end(s.gather(_parts([self.contexts[h][k] for h in nodes])),
                      list(range(len(nodes)))) for k, s in enumerate(self.scorers)]
        return np.stack(cols, axis=1) if cols else np.zeros((len(nodes), 0))


def expand(lattice: Lattice, scorers: Sequence[Any], weights: Mapping[str, float],
           history: int | None = 3, beam: int = 50, nbest: int = 100,
           trie: Histories | None = None) -> NBestList:
    """The ``nbest`` best distinct word sequences of ``lattice`` after rescoring with
    ``scorers``, each with its features (see the module docstring). ``trie`` (optional, made
    here otherwise) is left holding the histories that were scored."""
    names = list(BASE_FEATURES) + [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise InputError(f"expand: scorer names must be distinct and not one of "
                         f"{', '.join(BASE_FEATURES)}; got {names[len(BASE_FEATURES):]}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise InputError(f"expand: weights for unknown features {unknown}; features are "
                         f"{names}")
    if beam < 1 or nbest < 1 or (history is not None and history < 0):
        raise InputError("expand: beam and nbest must be at least 1, history at least 0")
    w = np.array([float(weights.get(n, 0.0)) for n in names])
    base = len(BASE_FEATURES)
    trie = trie if trie is not None else Histories(scorers, history)
    outgoing = lattice.outgoing()
    pending: dict[int, dict[Any, _Hyp]] = {
        lattice.start: {(): _Hyp(0.0, 0, np.zeros(len(names)))}}
    final: list[_Hyp] = []
    for node in lattice.order():
        bucket = pending.pop(node, None)
        if not bucket:
            continue
        hyps = sorted(bucket.values(), key=lambda h: -h.score)
        if node == lattice.end:
            final = hyps
            break
        hyps = hyps[:beam]
        links = outgoing[node]
        trie.extend([(h.history, k.word) for k in links if k.word for h in hyps])
        for link in links:
            step = _link_features(link, len(names))
            step_score = float(step @ w)
            into = pending.setdefault(link.end, {})
            last = link.end == lattice.end
            for h in hyps:
                if link.word:
                    child, lps = trie.children[(h.history, link.word)]
                    f = h.features + step
                    f[base:] += lps
                    score = float(f @ w)
                else:
                    child, f, score = h.history, h.features + step, h.score + step_score
                key = child if last else trie.key(child)
                old = into.get(key)
                if old is None or score > old.score:
                    into[key] = _Hyp(score, child, f)
    if not final:
        raise InputError(f"lattice {lattice.id or '?'}: no path reaches the end node "
                         f"{lattice.end}")
    final = final[:max(nbest, beam)]
    ends = trie.end([h.history for h in final])
    for h, lp in zip(final, ends):
        h.features[base:] += lp
        h.score = float(h.features @ w)
    final.sort(key=lambda h: -h.score)
    return NBestList(lattice.id, tuple(
        Hypothesis(" ".join(trie.words(h.history)),
                   {n: float(v) for n, v in zip(names, h.features)})
        for h in final[:nbest]))


def lm_names(scorers: Sequence[Any], lattice_lm: bool = False) -> list[str]:
    """The language models of a search: the scorers' names, and ``lm`` (the lattice's own
    first-pass scores) with ``lattice_lm``."""
    return [s.name for s in scorers] + (["lm"] if lattice_lm else [])


def search_weights(lms: Sequence[str], lm_scale: float) -> dict[str, float]:
    """Weights of a lattice search: acoustic 1 and ``lm_scale`` shared equally by the language
    models named ``lms`` (scorers, and ``lm`` for the lattice's own first-pass scores)."""
    return {"acoustic": 1.0} | {name: lm_scale / len(lms) for name in lms}


def search(lattice: Lattice, scorers: Sequence[Any], lm_scale: float, history: int | None = 3,
           beam: int = 20, nbest: int = 100, lattice_lm: bool = False
           ) -> tuple[NBestList, Histories]:
    """:func:`expand` with :func:`search_weights` over the scorers (and the lattice's ``lm``
    scores with ``lattice_lm``); also the trie, whose ``steps`` count the histories scored."""
    trie = Histories(scorers, history)
    weights = search_weights(lm_names(scorers, lattice_lm), lm_scale)
    got = expand(lattice, scorers, weights, history=history, beam=beam, nbest=nbest, trie=trie)
    return got, trie


def _link_features(link: Link, width: int) -> np.ndarray:
    step = np.zeros(width)
    step[0], step[1] = link.acoustic, link.lm
    if link.posterior is not None:
        step[2] = math.log(max(link.posterior, 1e-30))
    step[3] = 1.0 if link.word else 0.0
    return step


def _parts(contexts: list[tuple[Any, int]]) -> list[tuple[Any, list[int]]]:
    """Consecutive contexts from the same batch grouped: [(batch, rows), ...] in order."""
    parts: list[tuple[Any, list[int]]] = []
    for batch, row in contexts:
        if parts and parts[-1][0] is batch:
            parts[-1][1].append(row)
        else:
            parts.append((batch, [row]))
    return parts
