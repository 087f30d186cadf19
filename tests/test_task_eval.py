"""Measuring labelled models: the exported graph gives the metrics torch gave, and a model is
evaluated only on data of its task, vocabulary and labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pocketlm.export.config import ExportConfig
from pocketlm.export.task_export import export_task
from pocketlm.pipeline.task_eval import evaluate_model, load_task_checkpoint, model_task
from pocketlm.pipeline.task_train import TaskTrainConfig, train_task
from pocketlm.runtime.artifact import PocketLMError, write_manifest


@pytest.fixture(scope="module")
def classify_model(toy_classify_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classify")
    train_task(TaskTrainConfig.of(task="classify", embedding_size=16, hidden_size=16,
                                  epochs=1, device="cpu", log_every=0), toy_classify_data,
               root / "checkpoint")
    export_task(root / "checkpoint", root / "model", ExportConfig(int8=False))
    return root / "model"


def test_the_graph_measures_what_torch_measured(classify_model: Path,
                                                toy_classify_data: Path) -> None:
    report = evaluate_model(classify_model, toy_classify_data, "test")
    trained = json.loads((classify_model.parent / "checkpoint/manifest.json").read_text())
    assert report["metrics"] == pytest.approx(trained["metrics"]["test"])
    assert model_task(classify_model).name == "classify"
    model, manifest = load_task_checkpoint(classify_model.parent / "checkpoint")
    assert not model.training and manifest["labels"] == ["animal", "person"]
    with pytest.raises(PocketLMError, match="no int8 graph"):
        evaluate_model(classify_model, toy_classify_data, "test", precision="int8")


def test_other_data_is_refused(classify_model: Path, toy_tag_data: Path,
                               toy_classify_data: Path, tmp_path: Path) -> None:
    with pytest.raises(PocketLMError, match="evaluate on a --task classify folder"):
        evaluate_model(classify_model, toy_tag_data, "test")
    relabelled = tmp_path / "data"
    shutil.copytree(toy_classify_data, relabelled)
    body = json.loads((relabelled / "manifest.json").read_text())
    files = list(body.pop("files"))
    body["labels"] = ["person", "animal"]
    write_manifest(relabelled, "data", body, files)
    with pytest.raises(PocketLMError, match="labels differ"):
        evaluate_model(classify_model, relabelled, "test")
