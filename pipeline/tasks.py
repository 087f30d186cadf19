"""The task registry: what a model is trained to say about text, and everything that differs
between tasks. Training, export, evaluation, the command line's ``--task`` choices and the
manifests ask this registry; no other file branches on a task's name, so adding a task is one
entry (from any file: ``TASKS["name"] = Task(...)``)::

    task       head on the encoder        loss                  metrics              graph
    lm         output layer (outputs.py)  next-word NLL         perplexity           score, step
    classify   pooled → linear  [B, C]    NLL of the label      accuracy, macro-F1   classify
    tag        per piece linear [B, L, T] NLL of each tag       entity P / R / F1    tag

A labelled task (``head`` set) trains with :mod:`pocketlm.pipeline.task_train`, exports with
``pocketlm.export.task_export`` and evaluates with :mod:`pocketlm.pipeline.task_eval`; the
language model (``head=None``) keeps its own stages (``train.py``, ``onnx_export.py``,
``evaluate.py``). ``measure(gold, pred, labels)`` takes label ids (one per sentence, or one
list per sentence for a per-piece task) and returns the metrics by name; the first name of
``metrics`` is the one early stopping watches (higher is better). ``decode(logprobs, labels)``
turns one sentence's output (``[C]``, or ``[n, T]`` per piece) into what ``measure`` takes, as
the runtime decodes it: the arg-max, or for tags the best BIO2-valid path (Viterbi), so the
metrics of training, export and ``pocketlm evaluate`` are the runtime's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pocketlm.runtime.artifact import PocketLMError
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS
from pocketlm.runtime.metrics import accuracy, entity_prf, macro_f1
from pocketlm.runtime.tagger import allowed_transitions, viterbi

from pocketlm.runtime.options import option

Measure = Callable[[Sequence[Any], Sequence[Any], Sequence[str]], dict[str, float]]
Decode = Callable[[np.ndarray, Sequence[str]], Any]


def decode_argmax(logprobs: np.ndarray, labels: Sequence[str]) -> Any:
    """The likeliest label (``[C]`` → an id) or the likeliest of each piece (``[n, T]`` → ids)."""
    best = np.argmax(logprobs, axis=-1)
    return best.tolist() if best.ndim else int(best)


@lru_cache(maxsize=8)
def _transitions(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    return allowed_transitions(labels)


def decode_bio(logprobs: np.ndarray, labels: Sequence[str]) -> list[int]:
    """The best path of tags that is valid BIO2 (the runtime ``Tagger``'s Viterbi)."""
    return viterbi(logprobs, *_transitions(tuple(labels)))


@dataclass(frozen=True)
class Task:
    """One task: its head, its targets, its metrics, its graphs and how the runtime and the
    command line name it."""

    name: str
    description: str
    head: str | None               # a head of pipeline/encoder.py's HEADS; None: the LM's own
    per_piece: bool                # one label per word piece (else one per sentence)
    metrics: tuple[str, ...]       # the first is the one early stopping watches
    graphs: tuple[str, ...]        # the graphs its model folder holds
    runtime_class: str             # the runtime's class for its model folders
    command: str                   # the runtime's command for it
    measure: Measure | None = None
    decode: Decode = decode_argmax

    @property
    def labelled(self) -> bool:
        """Trained on labelled examples (a head on the shared encoder)."""
        return self.head is not None

    def target(self, example: Any) -> Any:
        """An example's label id (``label``), or its tag ids (``tags``) for a per-piece task."""
        value = example.tags if self.per_piece else example.label
        if value is None:
            raise PocketLMError(f"task {self.name} needs examples with "
                                f"{'tags' if self.per_piece else 'a label'}; ingest the data "
                                f"with --task {self.name}")
        return value

    def manifest_section(self, labels: Sequence[str]) -> dict[str, Any]:
        """What checkpoint and model manifests record of the task."""
        if not self.labelled:
            return {"task": self.name}
        return {"task": self.name, "labels": list(labels),
                "features": {"shapes": list(SHAPES), "suffix_buckets": SUFFIX_BUCKETS},
                "runtime": {"class": self.runtime_class, "command": self.command}}


def measure_classes(gold: Sequence[int], pred: Sequence[int],
                    labels: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 of sentence labels."""
    return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred, len(labels))}


def measure_entities(gold: Sequence[Sequence[int]], pred: Sequence[Sequence[int]],
                     labels: Sequence[str]) -> dict[str, float]:
    """Entity precision, recall and F1 (exact spans, CoNLL rules) of BIO2 tag ids; piece
    accuracy beside them."""
    names = list(labels)
    scores = entity_prf([[names[t] for t in g] for g in gold],
                        [[names[t] for t in p] for p in pred])
    flat_gold = [t for g in gold for t in g]
    scores["piece_accuracy"] = accuracy(flat_gold, [t for p in pred for t in p])
    return scores


TASKS: dict[str, Task] = {
    "lm": Task("lm", "the next word (the language model)", None, per_piece=True,
               metrics=("perplexity",), graphs=("score", "step"),
               runtime_class="LanguageModel", command="score"),
    "classify": Task("classify", "one label per sentence", "classify", per_piece=False,
                     metrics=("accuracy", "macro_f1"), graphs=("classify",),
                     runtime_class="Classifier", command="classify", measure=measure_classes),
    "tag": Task("tag", "one BIO2 tag per word piece (entities)", "tag", per_piece=True,
                metrics=("f1", "precision", "recall", "piece_accuracy"), graphs=("tag",),
                runtime_class="Tagger", command="tag", measure=measure_entities,
                decode=decode_bio),
}


def task_names() -> list[str]:
    """The registered tasks' names (a registration made later shows up too)."""
    return list(TASKS)


def labelled_task_names() -> list[str]:
    """The tasks trained on labelled examples."""
    return [name for name, task in TASKS.items() if task.labelled]


def get_task(name: str) -> Task:
    """The registered task called ``name``; a clear error lists the others."""
    try:
        return TASKS[name]
    except KeyError:
        raise PocketLMError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


#: The ``--task`` option of ``pocketlm train`` (default: the language model).
TASK_OPTION = option("What the model learns (default: lm, the language model); a labelled "
                     "task trains on a `pocketlm ingest --task` folder", choices=task_names)
