"""What :class:`~pocketlm.runtime.classifier.Classifier` and
:class:`~pocketlm.runtime.tagger.Tagger` stand on: a task model's folder opened (manifest,
labels, tokenizer, one onnxruntime session for the task's graph) and texts turned into the
graph's padded inputs::

    texts ──words_of + features──▶ per text: pieces, ids, shapes, suffixes, char offsets
          ──pad with 0 (a text without pieces runs as one <eos>)──▶
    tokens, shapes, suffixes [B, L] int64 + lengths [B] ──graph──▶ logprobs [B, C] or [B, L, T]

Texts are run in batches of similar length (sorted by piece count), results come back in input
order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import graphs
from .artifact import ArtifactError, InputError, PocketLMError, read_manifest
from .features import SUFFIX_BUCKETS, features, pieces_of
from .tasks import task_of, wrong_task_message

#: Token-feature slots (rows x padded length) one graph run may take.
BATCH_PIECES = 1 << 16


@dataclass(frozen=True)
class Encoded:
    """One text as the graph sees it: its pieces as written, their ids, features and offsets."""

    text: str
    words: list[str]
    ids: list[int]
    shapes: list[int]
    suffixes: list[int]
    offsets: list[tuple[int, int]]


class TaskModel:
    """A task model's folder opened for inference (the shared part of Classifier and Tagger).

    ``task`` is the graph the subclass reads; a folder of another task is refused in one line
    that names the right command."""

    task = ""

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32",
                 threads: int | None = None, verify: bool = True) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.manifest = read_manifest(self.path, "model", verify=verify)
        m = self.manifest
        found = task_of(m)
        if found != self.task:
            raise PocketLMError(wrong_task_message(self.path, found, self.task))
        labels = m.get("labels")
        if not isinstance(labels, list) or not labels or not all(
                isinstance(x, str) for x in labels):
            raise ArtifactError(f"{self.path}: the manifest has no 'labels' list of names; "
                                f"re-export the model with `pocketlm export`")
        self.labels: list[str] = labels
        buckets = m.get("features", {}).get("suffix_buckets", SUFFIX_BUCKETS)
        if buckets != SUFFIX_BUCKETS:
            raise ArtifactError(f"{self.path}: suffix_buckets {buckets} differs from this "
                                f"runtime's {SUFFIX_BUCKETS}; update pocketlm or re-export")
        self.unk_id: int = int(m["special_tokens"]["unk"]["id"])
        self.eos_id: int = int(m["special_tokens"]["eos"]["id"])
        spec = m.get("graphs", {}).get(self.task)
        if not isinstance(spec, dict) or not isinstance(spec.get("files"), dict):
            raise ArtifactError(f"{self.path}: the manifest has no {self.task!r} graph; "
                                f"re-export the model with `pocketlm export`")
        precisions = sorted(spec["files"])
        if precision not in precisions:
            raise PocketLMError(f"{self.path}: no {precision!r} graphs; this folder has "
                                f"{', '.join(precisions)}")
        self.precision, self.threads = precision, threads
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path / m["tokenizer"]))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ArtifactError(f"{self.path / m['tokenizer']}: cannot load tokenizer "
                                f"({exc}); re-export the model") from exc
        file = self.path / spec["files"][precision]
        try:
            self._session = graphs.open_session(file, threads)
        except Exception as exc:
            raise ArtifactError(f"{file}: onnxruntime cannot load it ({exc}); "
                                f"re-export the model") from exc

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, precision={self.precision!r}, "
                f"labels={len(self.labels)})")

    def encode(self, text: str) -> Encoded:
        """``text``'s pieces, ids, shape and suffix ids and character offsets."""
        if not isinstance(text, str):
            raise InputError(f"expected a text (str), got {type(text).__name__}")
        words, ids, offsets = pieces_of(self.tokenizer, text)
        shapes, suffixes = features(words)
        return Encoded(text, words, ids, shapes, suffixes, offsets)

    def _run(self, encoded: Sequence[Encoded]) -> list[np.ndarray]:
        """The graph's log-probabilities per text (float32: ``[C]`` for classify, ``[n, T]``
        for tag with ``n`` its pieces), in input order."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(encoded)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end + 1 - start) * max(
                    1, len(encoded[order[end]].ids)) <= BATCH_PIECES:
                end += 1
            rows = [encoded[i] for i in order[start:end]]
            for i, values in zip(order[start:end], self._run_rows(rows)):
                out[i] = values
            start = end
        return out

    def _run_rows(self, rows: Sequence[Encoded]) -> list[np.ndarray]:
        lengths = [max(1, len(r.ids)) for r in rows]
        width = max(lengths)
        arrays = {name: np.zeros((len(rows), width), np.int64)
                  for name in (graphs.TOKENS, graphs.WORD_SHAPES, graphs.SUFFIXES)}
        for row, r in enumerate(rows):
            n = len(r.ids)
            if n == 0:
                arrays[graphs.TOKENS][row, 0] = self.eos_id
                continue
            arrays[graphs.TOKENS][row, :n] = r.ids
            arrays[graphs.WORD_SHAPES][row, :n] = r.shapes
            arrays[graphs.SUFFIXES][row, :n] = r.suffixes
        feeds = {**arrays, graphs.LENGTHS: np.array(lengths, np.int64)}
        (logprobs,) = self._session.run([graphs.LOGPROBS], feeds)
        if self.task == graphs.TAG:
            return [logprobs[row, :len(r.ids)] for row, r in enumerate(rows)]
        return [logprobs[row] for row in range(len(rows))]

