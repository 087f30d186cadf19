"""export/calibration.py: what int8 graphs are calibrated on. A language model without its data
folder samples its calibration text; a labelled task's graph calibrates on evenly spaced
sentences of its train split (its valid split when the folder has no train split), and a
checkpoint whose data folder is gone gets one line naming --no-int8. (That the calibrated graphs
compute one function: tests/test_quantize.py, tests/test_task_export.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pocketlm.export.calibration import calibration_tokens, task_calibration_feeds
from pocketlm.pipeline.tasks import get_task
from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import PocketLMError


def test_calibration_without_data_samples_the_model(toy_checkpoint: Path) -> None:
    """Without its data folder, calibration text is sampled from the model: in-vocabulary ids
    of the requested shape, the same for the same seed."""
    from pocketlm.pipeline.checkpoint import load_checkpoint

    model, _ = load_checkpoint(toy_checkpoint)
    tokens, origin = calibration_tokens(model, None, seed=3, rows=4, length=6)
    assert origin == "sampled" and tokens.shape == (4, 6)
    assert 0 <= tokens.min() and tokens.max() < model.config.vocab_size
    assert np.array_equal(tokens, calibration_tokens(model, None, seed=3, rows=4, length=6)[0])


def test_task_calibration_on_the_train_split(toy_tag_data: Path) -> None:
    task = get_task("tag")
    train = json.loads((toy_tag_data / "manifest.json").read_text())["splits"]["train"]
    feeds, record = task_calibration_feeds(task, toy_tag_data)
    assert list(feeds) == list(graphs.TASK_INPUTS)
    assert record == {"split": "train", "sentences": train["sentences"],
                      "pieces": int(feeds["lengths"].sum())}
    lengths = feeds["lengths"]
    assert feeds["tokens"].shape == (len(lengths), lengths.max())
    inside = np.arange(lengths.max())[None, :] < lengths[:, None]
    assert (feeds["tokens"][~inside] == 0).all() and (feeds["shapes"][inside] > 0).all()
    fewer, record = task_calibration_feeds(task, toy_tag_data, sentences=10)
    assert record["sentences"] == 10 and fewer["tokens"].shape[0] == 10


def test_task_calibration_falls_back_to_valid(toy_classify_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shutil.copytree(toy_classify_data, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["splits"]["train"], manifest["files"]["train.jsonl"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "train.jsonl").unlink()
    feeds, record = task_calibration_feeds(get_task("classify"), folder)
    assert record["split"] == "valid"
    assert record["sentences"] == manifest["splits"]["valid"]["sentences"] == len(feeds["lengths"])


@pytest.mark.parametrize("where", [None, "gone"])
def test_task_calibration_without_data_names_no_int8(where: str | None, tmp_path: Path) -> None:
    folder = None if where is None else tmp_path / where
    with pytest.raises(PocketLMError, match="data folder is gone.*--no-int8") as err:
        task_calibration_feeds(get_task("classify"), folder)
    assert "\n" not in str(err.value)
