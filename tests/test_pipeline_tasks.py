"""The task registry: three tasks, the language model among them; a clear error for an unknown
one; the metrics each labelled task reports; what manifests record of a task."""

from __future__ import annotations

import pytest

from pocketlm.pipeline.labelled import Example
from pocketlm.pipeline.tasks import TASKS, get_task, labelled_task_names, task_names
from pocketlm.runtime.artifact import PocketLMError


def test_the_registry_names_three_tasks() -> None:
    assert task_names()[:3] == ["lm", "classify", "tag"]
    assert labelled_task_names()[:2] == ["classify", "tag"]
    assert not get_task("lm").labelled and get_task("lm").graphs == ("score", "step")
    with pytest.raises(PocketLMError, match="choose one of lm, classify, tag"):
        get_task("parse")


def test_classify_measures_accuracy_and_macro_f1() -> None:
    task = get_task("classify")
    assert task.measure is not None
    scores = task.measure([0, 0, 1, 2], [0, 1, 1, 2], ["a", "b", "c"])
    assert scores["accuracy"] == 0.75
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert task.target(Example(["x"], [3], label=2)) == 2
    with pytest.raises(PocketLMError, match="--task tag"):
        get_task("tag").target(Example(["x"], [3], label=2))


def test_tag_measures_entities() -> None:
    task = get_task("tag")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert task.measure is not None
    scores = task.measure([[1, 2, 0, 3]], [[1, 0, 0, 3]], labels)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.5, 0.5, 0.5)
    assert scores["piece_accuracy"] == 0.75


def test_manifest_sections() -> None:
    assert TASKS["lm"].manifest_section([]) == {"task": "lm"}
    section = TASKS["tag"].manifest_section(["O", "B-X", "I-X"])
    assert section["labels"] == ["O", "B-X", "I-X"]
    assert section["features"]["suffix_buckets"] == 4096
    assert section["runtime"] == {"class": "Tagger", "command": "tag"}
