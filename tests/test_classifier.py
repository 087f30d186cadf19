"""Classifier (and the TaskModel it stands on): labels and probabilities from a real classify
folder (tests/task_models.py), batches that do not change results, hostile texts, bad folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import ArtifactError, Classifier, InputError, PocketLMError
from pocketlm.runtime.artifact import write_json_atomic

HOSTILE = ["", " ", "\x00", "a\x00b", "\ud800", "a\udfffb", "\u202eevil\u202c", "e\u0301\u0301",
           "👍🏽 👨‍👩‍👧", "<unk> <eos>", "\n\r\t", "x" * 10_000,
           ("Anna sees the cat in Paris ! " * 4000)[:100_000]]


@pytest.fixture(scope="module")
def clf(classify_model: Path) -> Classifier:
    return Classifier(classify_model)


def test_learned_the_moods(clf: Classifier) -> None:
    got = clf.predict(["Anna sees the cat ?", "John Smith likes Rome !", "a dog finds a tree ."])
    assert [p.label for p in got] == ["question", "exclamation", "statement"]
    assert all(p.probability > 0.5 for p in got)


def test_top_k_sorted_and_probabilities_sum_to_one(clf: Classifier) -> None:
    (p,) = clf.predict("Mary follows the ball in Rome ?", top_k=10)
    assert sorted(p.labels) == sorted(clf.labels)
    assert list(p.probabilities) == sorted(p.probabilities, reverse=True)
    assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert p.to_dict()["labels"][0] == {"label": p.label, "probability": p.probability}
    assert len(clf.predict("x", top_k=2)[0].labels) == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="top_k must be a whole number"):
            clf.predict("x", top_k=bad)


def test_batching_does_not_change_results(clf: Classifier) -> None:
    texts = ["Anna sees the cat ?", "a dog .", "", "Peter Paul Jones finds a tree in Rome !" * 3]
    together = clf.log_probs(texts)
    alone = np.stack([clf.log_probs([t])[0] for t in texts])
    assert together.shape == (4, 3)
    assert np.abs(together - alone).max() < 1e-5
    assert clf.log_probs([]).shape == (0, 3)


def test_hostile_texts_give_a_label(clf: Classifier) -> None:
    got = clf.predict(HOSTILE)
    assert len(got) == len(HOSTILE)
    assert all(p.label in clf.labels and np.isfinite(p.probability) for p in got)
    assert got[0].text == ""
    with pytest.raises(InputError, match="expected a text"):
        clf.predict([None])  # type: ignore[list-item]


def test_int8_close_to_fp32(classify_model: Path, clf: Classifier) -> None:
    int8 = Classifier(classify_model, precision="int8", threads=1)
    texts = ["Anna sees the cat ?", "a dog finds a tree in New York ."]
    assert np.abs(np.exp(int8.log_probs(texts)) - np.exp(clf.log_probs(texts))).max() < 0.05


def test_wrong_folders_say_so_in_one_line(toy_model: Path, tag_model: Path,
                                          classify_model: Path, tmp_path: Path) -> None:
    with pytest.raises(PocketLMError, match="is a language model folder.*`pocketlm score`"):
        Classifier(toy_model)
    with pytest.raises(PocketLMError, match="is a 'tag' model folder.*`pocketlm tag`"):
        Classifier(tag_model)
    with pytest.raises(PocketLMError, match="no 'fp16' graphs; this folder has fp32, int8"):
        Classifier(classify_model, precision="fp16")
    copy = tmp_path / "m"
    shutil.copytree(classify_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["labels"]
    write_json_atomic(copy / "manifest.json", manifest)
    with pytest.raises(ArtifactError, match="no 'labels' list"):
        Classifier(copy)
    manifest["labels"], manifest["task"] = ["a"], "translate"
    write_json_atomic(copy / "manifest.json", manifest)
    with pytest.raises(ArtifactError, match="unknown task 'translate'"):
        Classifier(copy)
