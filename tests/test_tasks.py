"""runtime/tasks.py: the runtime's task registry."""

from __future__ import annotations

import pytest

from pocketlm.runtime import ArtifactError, graphs
from pocketlm.runtime.tasks import TASKS, get_task, task_of, wrong_task_message


def test_registry() -> None:
    assert set(TASKS) == {"lm", *graphs.TASK_GRAPHS}
    assert get_task("tag").graph == graphs.TAG and get_task("lm").graph is None
    assert task_of({}) == "lm" and task_of({"task": "classify"}) == "classify"
    with pytest.raises(ArtifactError, match="unknown task 'ner'; this pocketlm runs lm, "):
        get_task("ner")


def test_wrong_task_message() -> None:
    assert wrong_task_message("m", "classify", "tag") == (
        "m: is a 'classify' model folder (task 'classify'), not a 'tag' model; use "
        "`pocketlm classify` (Classifier in Python) or pocketlm.runtime.load_model")
