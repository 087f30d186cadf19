"""The runtime's task registry: what a model folder's ``task`` field means on the device side.

A task names its graph (runtime/graphs.py), the runtime class that opens its folder and the
``pocketlm`` command that runs it; :func:`pocketlm.runtime.loading.load_model` picks the class
from the manifest. A folder without a ``task`` field is a language model::

    manifest "task"   graph              runtime class    command
    "lm" (or none)    score.onnx + step  LanguageModel    pocketlm score / rank / generate ...
    "classify"        classify.onnx      Classifier       pocketlm classify
    "tag"             tag.onnx           Tagger           pocketlm tag
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import graphs
from .artifact import ArtifactError


@dataclass(frozen=True)
class RuntimeTask:
    """One task as the runtime knows it."""

    name: str
    #: The graph its folder holds (``None``: the language model's score and step graphs).
    graph: str | None
    #: The runtime class that opens its folder (``pocketlm.runtime.<runtime_class>``).
    runtime_class: str
    #: The ``pocketlm`` command that runs it.
    command: str
    #: What it says about a text, for messages and ``--help``.
    summary: str


TASKS: dict[str, RuntimeTask] = {
    "lm": RuntimeTask("lm", None, "LanguageModel", "score",
                      "the probability of each word (a language model)"),
    "classify": RuntimeTask("classify", graphs.CLASSIFY, "Classifier", "classify",
                            "one label per sentence"),
    "tag": RuntimeTask("tag", graphs.TAG, "Tagger", "tag",
                       "one BIO2 tag per word piece, read as entity spans"),
}


def get_task(name: str) -> RuntimeTask:
    """The registry entry of ``name``; the error names the tasks this runtime knows."""
    try:
        return TASKS[name]
    except KeyError:
        raise ArtifactError(f"unknown task {name!r}; this pocketlm runs "
                            f"{', '.join(TASKS)} models (update pocketlm?)") from None


def task_of(manifest: dict[str, Any]) -> str:
    """The task a model manifest declares (``"lm"`` when it has no ``task`` field)."""
    return str(manifest.get("task", "lm"))


def wrong_task_message(path: object, found: str, wanted: str) -> str:
    """One line for a folder of task ``found`` opened as ``wanted``, naming what opens it."""
    entry = get_task(found)
    what, expected = (("a language model" if t == "lm" else f"a {t!r} model")
                      for t in (found, wanted))
    return (f"{path}: is {what} folder (task {found!r}), not {expected}; use "
            f"`pocketlm {entry.command}` ({entry.runtime_class} in Python) or "
            f"pocketlm.runtime.load_model")
