"""``load_model(path)``: open any pocketlm model folder with the runtime class its task needs
(runtime/tasks.py): a :class:`LanguageModel`, a :class:`Classifier` or a :class:`Tagger`.

>>> model = load_model("runs/kjv/model")                 # doctest: +SKIP
>>> type(model).__name__                                 # doctest: +SKIP
'LanguageModel'
"""

from __future__ import annotations

import os

from .artifact import read_manifest
from .classifier import Classifier
from .model import LanguageModel
from .tagger import Tagger
from .tasks import get_task, task_of

#: The runtime class of each task of the registry (runtime/tasks.py names them).
RUNTIME_CLASSES: dict[str, type[LanguageModel] | type[Classifier] | type[Tagger]] = {
    "lm": LanguageModel, "classify": Classifier, "tag": Tagger}


def load_model(path: str | os.PathLike[str], *, precision: str = "fp32",
               threads: int | None = None,
               verify: bool = True) -> LanguageModel | Classifier | Tagger:
    """The model folder at ``path`` opened by its task's runtime class (a folder without a
    ``task`` field is a language model). ``precision``, ``threads`` and ``verify`` as for
    each class."""
    task = task_of(read_manifest(path, "model", verify=False))
    cls = RUNTIME_CLASSES[get_task(task).name]
    return cls(path, precision=precision, threads=threads, verify=verify)
