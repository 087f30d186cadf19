"""runtime/loading.py: ``load_model`` opens each folder with its task's class."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketlm.runtime import ArtifactError, Classifier, LanguageModel, Tagger, load_model
from pocketlm.runtime.loading import RUNTIME_CLASSES
from pocketlm.runtime.tasks import TASKS


def test_every_task_has_its_class() -> None:
    assert {name: cls.__name__ for name, cls in RUNTIME_CLASSES.items()} == {
        name: task.runtime_class for name, task in TASKS.items()}


def test_load_model_by_task(toy_model: Path, classify_model: Path, tag_model: Path,
                            toy_data: Path) -> None:
    assert isinstance(load_model(toy_model), LanguageModel)
    clf = load_model(classify_model, precision="int8", threads=1)
    assert isinstance(clf, Classifier) and clf.precision == "int8"
    assert isinstance(load_model(tag_model, verify=False), Tagger)
    with pytest.raises(ArtifactError, match="expected a 'model' folder"):
        load_model(toy_data)
