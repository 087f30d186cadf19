"""``Classifier``: one label per text from a ``classify`` model folder (graph declared in
runtime/graphs.py)::

    texts ──TaskModel──▶ logprobs [B, C] ──exp, sort──▶ per text: labels best first + probabilities

>>> clf = Classifier("runs/genre/model")                 # doctest: +SKIP
>>> clf.predict(["And God said, Let there be light"], top_k=2)[0].labels   # doctest: +SKIP
('law', 'history')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import graphs
from .artifact import InputError
from .task_model import TaskModel


@dataclass(frozen=True)
class Prediction:
    """A text's labels, most probable first, with their probabilities (the ``top_k`` asked)."""

    text: str
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def label(self) -> str:
        """The most probable label."""
        return self.labels[0]

    @property
    def probability(self) -> float:
        """The most probable label's probability."""
        return self.probabilities[0]

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form (what ``pocketlm classify --json`` prints)."""
        return {"text": self.text, "label": self.label,
                "labels": [{"label": name, "probability": p}
                           for name, p in zip(self.labels, self.probabilities)]}


class Classifier(TaskModel):
    """A ``classify`` model folder opened for inference.

    ``precision="int8"`` runs the quantised graph; ``threads`` sets onnxruntime's intra-op
    threads; ``verify`` checks every file's SHA-256 against the manifest. A language model or a
    tagger folder is refused in one line that names what opens it."""

    task = graphs.CLASSIFY

    def predict(self, texts: str | Iterable[str], top_k: int = 1) -> list[Prediction]:
        """The ``top_k`` most probable labels of each text, in input order (a single string is
        one text). Ties keep the labels' order; ``top_k`` above the label count gives all."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a whole number of at least 1, got {top_k!r}")
        encoded = [self.encode(t) for t in texts]
        out = []
        for e, logprobs in zip(encoded, self._run(encoded)):
            order = np.argsort(-logprobs, kind="stable")[:top_k]
            probs = np.exp(logprobs.astype(np.float64))
            out.append(Prediction(e.text, tuple(self.labels[i] for i in order),
                                  tuple(float(probs[i]) for i in order)))
        return out

    def log_probs(self, texts: Iterable[str]) -> np.ndarray:
        """The graph's log-probabilities, ``[len(texts), len(labels)]`` float32, in input
        order (``labels[j]`` is column ``j``)."""
        encoded = [self.encode(t) for t in texts]
        values = self._run(encoded)
        if not values:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.stack(values)
