"""``Tagger``: one BIO2 tag per word piece from a ``tag`` model folder, read as entity spans.

The graph gives each piece a log-probability per tag; the tags are then the best *valid* BIO2
sequence (Viterbi over the allowed transitions), so an entity never starts with ``I-``::

    logprobs [n, T] ──Viterbi (max of summed log-probs; forbidden: start→I-X, O→I-X,
                               B-X/I-X→I-Y for Y != X)──▶ tags ──bio_spans──▶ entities

Ties go to the lower tag index at every step, the same in the JavaScript package. Character
offsets are code points of the text given (a Python ``str`` index).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from . import graphs
from .metrics import bio_spans, split_tag
from .task_model import Encoded, TaskModel


@dataclass(frozen=True)
class Entity:
    """One span of pieces with its type: ``text[start:end]`` is what it covers, pieces
    ``first`` to ``last`` (inclusive) of the tagged text."""

    text: str
    type: str
    start: int
    end: int
    first: int
    last: int


@dataclass(frozen=True)
class Tagged:
    """A text's pieces as written, their tags and character offsets, each tag's probability
    under the graph, and the entities the tags spell."""

    text: str
    words: tuple[str, ...]
    tags: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    probabilities: tuple[float, ...]
    entities: tuple[Entity, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form (what ``pocketlm tag --json`` prints)."""
        return {"text": self.text, "words": list(self.words), "tags": list(self.tags),
                "offsets": [list(o) for o in self.offsets],
                "probabilities": list(self.probabilities),
                "entities": [vars(e) for e in self.entities]}


def allowed_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(start, transition)``: which tags may open a sentence (``[T]`` bool) and which may
    follow which (``[T, T]`` bool, previous x next). ``I-X`` only follows ``B-X`` or ``I-X``."""
    parts = [split_tag(tag) for tag in labels]
    start = np.array([prefix != "I" for prefix, _ in parts])
    transition = np.array([[nxt != "I" or (prv != "O" and pt == nt)
                            for nxt, nt in parts] for prv, pt in parts])
    return start, transition


def viterbi(logprobs: np.ndarray, start: np.ndarray, transition: np.ndarray) -> list[int]:
    """The tag ids of the highest-scoring allowed path through ``logprobs`` ``[n, T]`` (sum of
    the chosen tags' log-probabilities, in float64). Ties: the lower tag index wins."""
    n = logprobs.shape[0]
    if n == 0:
        return []
    emit = logprobs.astype(np.float64)
    blocked = np.where(transition, 0.0, -np.inf)                     # [T_prev, T_next]
    score = np.where(start, emit[0], -np.inf)
    back = np.zeros((n, emit.shape[1]), np.int64)
    for t in range(1, n):
        candidates = score[:, None] + blocked                         # [T_prev, T_next]
        back[t] = np.argmax(candidates, axis=0)                       # first max: lowest prev
        score = candidates[back[t], np.arange(emit.shape[1])] + emit[t]
    path = [int(np.argmax(score))]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


class Tagger(TaskModel):
    """A ``tag`` model folder opened for inference (the options are the Classifier's)."""

    task = graphs.TAG

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32",
                 threads: int | None = None, verify: bool = True) -> None:
        super().__init__(path, precision=precision, threads=threads, verify=verify)
        self._start, self._transition = allowed_transitions(self.labels)

    def tag(self, text: str) -> Tagged:
        """Pieces, valid BIO2 tags and entities of one text."""
        return self.tag_batch([text])[0]

    def tag_batch(self, texts: Iterable[str]) -> list[Tagged]:
        """:meth:`tag` for many texts, run in batches; results in input order."""
        encoded = [self.encode(t) for t in texts]
        return [self._decode(e, lp) for e, lp in zip(encoded, self._run(encoded))]

    def _decode(self, e: Encoded, logprobs: np.ndarray) -> Tagged:
        path = viterbi(logprobs, self._start, self._transition)
        tags = tuple(self.labels[i] for i in path)
        probs = tuple(float(np.exp(np.float64(logprobs[t, i]))) for t, i in enumerate(path))
        entities = tuple(Entity(e.text[e.offsets[a][0]:e.offsets[b - 1][1]], kind,
                                e.offsets[a][0], e.offsets[b - 1][1], a, b - 1)
                         for a, b, kind in bio_spans(tags))
        return Tagged(e.text, tuple(e.words), tags, tuple(e.offsets), probs, entities)
