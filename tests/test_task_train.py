"""Supervised training of the labelled tasks on small real folders: a classify and a tag model
learn the toy grammar's labels in a few seconds, a run killed between checkpoints resumes to the
same weights, a language model's checkpoint starts the encoder (same vocabulary file only), and
freezing keeps weights as they were."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pocketlm.pipeline.task_train import TaskTrainConfig, train_task
from pocketlm.runtime.artifact import PocketLMError

SMALL = dict(embedding_size=24, hidden_size=24, batch_size=16, epochs=3, lr=1e-2,
             device="cpu", log_every=0, dropout=0.0)


def test_classify_learns_the_toy_labels(toy_classify_data: Path, tmp_path: Path) -> None:
    manifest = train_task(TaskTrainConfig.of(task="classify", pooling="mean", **SMALL),
                          toy_classify_data, tmp_path / "ckpt")
    assert manifest["task"] == "classify" and manifest["labels"] == ["animal", "person"]
    assert manifest["metrics"]["valid"]["accuracy"] >= 0.9
    assert manifest["metrics"]["test"]["accuracy"] >= 0.9
    assert set(manifest["metrics"]["test"]) == {"accuracy", "macro_f1"}
    history = [json.loads(line) for line in (tmp_path / "ckpt/metrics.jsonl").read_text()
               .splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3] or len(history) == 3
    assert "curve.png" in manifest["files"]


def test_tag_learns_the_toy_names(toy_tag_data: Path, tmp_path: Path) -> None:
    # 5 epochs: at 3 the F1 depends on the seed (0.8 to 1.0), with any suffix table
    manifest = train_task(TaskTrainConfig.of(task="tag", bidirectional=True,
                                             **{**SMALL, "epochs": 5}),
                          toy_tag_data, tmp_path / "ckpt")
    assert manifest["task"] == "tag" and manifest["labels"][0] == "O"
    assert manifest["metrics"]["test"]["f1"] >= 0.9


def test_a_resumed_run_ends_with_the_uninterrupted_weights(toy_classify_data: Path,
                                                           tmp_path: Path) -> None:
    config = TaskTrainConfig.of(task="classify", **{**SMALL, "epochs": 2})
    train_task(config, toy_classify_data, tmp_path / "whole")
    # the same run stopped after 7 steps (mid-epoch), then resumed
    train_task(config.__class__.of(**{**config.to_dict(), "max_steps": 7}), toy_classify_data,
               tmp_path / "cut")
    state = json.loads((tmp_path / "cut/manifest.json").read_text())["status"]
    assert state["step"] == 7
    resumed = train_task(config, toy_classify_data, tmp_path / "cut", resume=True)
    assert resumed["status"]["resumes"] == 1
    whole, cut = load_file(str(tmp_path / "whole/model.safetensors")), load_file(
        str(tmp_path / "cut/model.safetensors"))
    for name, tensor in whole.items():
        torch.testing.assert_close(cut[name], tensor, rtol=0, atol=1e-6)


def test_init_from_a_language_model(toy_checkpoint: Path, toy_classify_data: Path,
                                    tmp_path: Path) -> None:
    lm = load_file(str(toy_checkpoint / "model.safetensors"))
    config = TaskTrainConfig.of(task="classify", cell="lstm", layers=1, freeze="encoder",
                                init_from=str(toy_checkpoint),
                                **{**SMALL, "epochs": 1})
    manifest = train_task(config, toy_classify_data, tmp_path / "ckpt")
    assert manifest["init"]["forward"]["loaded"][0] == "embedding.weight" or \
        "embedding.weight" in manifest["init"]["forward"]["loaded"]
    trained = load_file(str(tmp_path / "ckpt/model.safetensors"))
    # frozen: the encoder is the language model's, exactly
    torch.testing.assert_close(trained["encoder.embedding.weight"], lm["embedding.weight"])
    torch.testing.assert_close(trained["encoder.rnn.weight_hh_l0"], lm["rnn.weight_hh_l0"])
    assert trained["encoder.shape_embedding.weight"].abs().sum() > 0   # the features train


def test_init_from_refuses_another_vocabulary(toy_checkpoint: Path, toy_classify_data: Path,
                                              tmp_path: Path) -> None:
    other = tmp_path / "data"
    other.mkdir()
    for f in toy_classify_data.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    vocab = json.loads((other / "tokenizer.json").read_text())
    vocab["model"]["vocab"]["zebra"] = len(vocab["model"]["vocab"])
    (other / "tokenizer.json").write_text(json.dumps(vocab))
    from pocketlm.runtime.artifact import write_manifest

    body = json.loads((other / "manifest.json").read_text())
    files = list(body.pop("files"))
    write_manifest(other, "data", body, files)
    with pytest.raises(PocketLMError, match="--vocab-from"):
        train_task(TaskTrainConfig.of(task="classify", layers=1, init_from=str(toy_checkpoint),
                                      **SMALL), other, tmp_path / "ckpt")


def test_init_from_a_pretty_printed_vocabulary(toy_checkpoint: Path, toy_classify_data: Path,
                                               tmp_path: Path) -> None:
    """An older checkpoint holds tokenizer.json pretty-printed: the same vocabulary as the data
    folder's compact file, so it starts the encoder."""
    from pocketlm.runtime.artifact import write_manifest

    old = tmp_path / "lm"
    old.mkdir()
    for f in toy_checkpoint.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    vocab = json.loads((old / "tokenizer.json").read_text(encoding="utf-8"))
    (old / "tokenizer.json").write_text(json.dumps(vocab, indent=2), encoding="utf-8")
    body = json.loads((old / "manifest.json").read_text())
    write_manifest(old, "checkpoint", body, list(body.pop("files")))
    manifest = train_task(TaskTrainConfig.of(task="classify", layers=1, init_from=str(old),
                                             max_steps=1, **SMALL), toy_classify_data,
                          tmp_path / "ckpt")
    assert "embedding.weight" in manifest["init"]["forward"]["loaded"]


def test_gradual_unfreezing_trains_the_head_first(toy_classify_data: Path,
                                                  tmp_path: Path) -> None:
    config = TaskTrainConfig.of(task="classify", layers=2, unfreeze_epochs=1,
                                **{**SMALL, "epochs": 1})
    train_task(config, toy_classify_data, tmp_path / "ckpt")
    from pocketlm.pipeline.encoder import TaskModel

    vocab = json.loads((toy_classify_data / "tokenizer.json").read_text())["model"]["vocab"]
    torch.manual_seed(config.seed)        # the model's initial weights, drawn as training does
    start = TaskModel(dataclasses.replace(config.model, vocab_size=len(vocab), labels=2,
                                          head="classify")).state_dict()
    trained = load_file(str(tmp_path / "ckpt/model.safetensors"))
    for frozen in ("encoder.rnn.weight_hh_l1", "encoder.rnn.weight_ih_l0",
                   "encoder.embedding.weight"):
        torch.testing.assert_close(trained[frozen], start[frozen], rtol=0, atol=0)
    assert not torch.equal(trained["head.linear.weight"], start["head.linear.weight"])


def test_wrong_task_for_the_data_is_one_line(toy_tag_data: Path, tmp_path: Path) -> None:
    with pytest.raises(PocketLMError, match="--task classify"):
        train_task(TaskTrainConfig.of(task="classify", **SMALL), toy_tag_data, tmp_path / "c")


def test_a_backward_language_model_starts_the_backward_cells(toy_data: Path,
                                                             toy_classify_data: Path,
                                                             tmp_path: Path) -> None:
    """``--reverse`` trains a language model on every line read backwards: it scores reversed
    text better than the text itself, loads into a tagger's or classifier's backward cells
    (``--init-backward-from``), and cannot be exported as a forward model."""
    from pocketlm.export.onnx_export import export
    from pocketlm.pipeline.config import TrainConfig
    from pocketlm.pipeline.evaluate import stream_nll_torch
    from pocketlm.pipeline.checkpoint import load_checkpoint
    from pocketlm.pipeline.ingest import load_split
    from pocketlm.pipeline.train import train

    from .conftest import TOY_TRAIN

    backward = tmp_path / "backward"
    manifest = train(TrainConfig.of(**{**TOY_TRAIN, "reverse": True}), toy_data, backward)
    assert manifest["config"]["reverse"] is True
    model, _ = load_checkpoint(backward)
    ids = np.asarray(load_split(toy_data, "valid"))
    reversed_nll, n = stream_nll_torch(model, ids[::-1].copy(), 4)
    forward_nll, m = stream_nll_torch(model, ids.copy(), 4)
    assert reversed_nll / n < forward_nll / m

    config = TaskTrainConfig.of(task="classify", cell="lstm", layers=1, bidirectional=True,
                                freeze="encoder", init_backward_from=str(backward),
                                **{**SMALL, "epochs": 1})
    task = train_task(config, toy_classify_data, tmp_path / "ckpt")
    assert "rnn.weight_hh_l0" in task["init"]["backward"]["loaded"]
    trained = load_file(str(tmp_path / "ckpt/model.safetensors"))
    lm = load_file(str(backward / "model.safetensors"))
    torch.testing.assert_close(trained["encoder.rnn_backward.weight_hh_l0"],
                               lm["rnn.weight_hh_l0"])
    with pytest.raises(PocketLMError, match="--init-backward-from"):
        export(backward, tmp_path / "model")
