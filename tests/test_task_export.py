"""Export of labelled task models: the classify and tag graphs match torch (every pooling, one
and two directions), int8 copies run and their metrics are recorded, they
hold int8 weights and compute in float (a text alone and in a batch gets the same int8
log-probabilities), the folder holds what the manifest names, the int8
folder of the run model's encoder on a 10K vocabulary fits in 2 MiB with the vocabulary file the
same compact bytes from ingest on, ``pocketlm export`` picks the exporter by the checkpoint's
task, and ``pocketlm evaluate`` reports the task's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pocketlm.export.task_export import export_checkpoint, export_task
from pocketlm.pipeline.task_train import TaskTrainConfig, train_task
from pocketlm.runtime import graphs
from pocketlm.runtime.features import features, words_of

SMALL = dict(embedding_size=16, hidden_size=16, batch_size=16, epochs=1, lr=1e-2,
             device="cpu", log_every=0)
#: The most bytes of the int8 folder of a tagger with the ``pocketlm run`` model's encoder
#: (10,000 words, embedding 128, a bidirectional 1×208 LSTM): 2 MiB.
INT8_FOLDER_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def tag_checkpoint(toy_tag_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tag") / "checkpoint"
    train_task(TaskTrainConfig.of(task="tag", bidirectional=True, **{**SMALL, "epochs": 3}),
               toy_tag_data, out)
    return out


@pytest.fixture(scope="module")
def classify_checkpoint(toy_classify_data: Path, tmp_path_factory: pytest.TempPathFactory
                        ) -> Path:
    out = tmp_path_factory.mktemp("classify") / "checkpoint"
    train_task(TaskTrainConfig.of(task="classify", bidirectional=True, **SMALL),
               toy_classify_data, out)
    return out


@pytest.mark.parametrize("task", ["classify", "tag"])
def test_int8_graph_computes_one_function(task: str, request: pytest.FixtureRequest,
                                          tmp_path: Path) -> None:
    """int8 weights, float arithmetic: no activation is quantised, weights stay 7-bit, and
    each text's int8 log-probabilities are the same alone and in a batch with every other text
    of the valid split."""
    import onnx

    from pocketlm.export.quantize import saturating_weights
    from pocketlm.pipeline.task_eval import split_of
    from pocketlm.pipeline.tasks import get_task

    data: Path = request.getfixturevalue(f"toy_{task}_data")
    manifest = export_task(request.getfixturevalue(f"{task}_checkpoint"), tmp_path / "model")
    path = tmp_path / "model" / manifest["graphs"][task]["files"]["int8"]
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"DynamicQuantizeLinear", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul",
                      "QuantizeLinear", "MatMulInteger", "MatMulIntegerToFloat"}
    assert {"DequantizeLinear", "LSTM"} <= ops
    assert saturating_weights(model) == []
    assert manifest["export"]["int8"] == {"int8_weights": ["Gather", "LSTM"],
                                          "activations": "float"}

    spec = get_task(task)
    valid = split_of(spec, data, "valid")
    session = graphs.open_session(path)

    def run(index: list[int]) -> np.ndarray:
        tensors = valid.batch(index, device="cpu", per_piece=spec.per_piece)
        return session.run(None, {n: tensors[n].numpy() for n in graphs.TASK_INPUTS})[0]

    together = run(list(range(len(valid))))
    worst = 0.0
    for i in range(len(valid)):
        alone, inside = run([i])[0], together[i]
        if spec.per_piece:
            alone, inside = alone[:len(valid.ids[i])], inside[:len(valid.ids[i])]
        worst = max(worst, float(np.abs(alone - inside).max()))
    assert worst <= 1e-5


@pytest.mark.parametrize("pooling,bidirectional,cell", [
    ("last", True, "lstm"), ("mean", False, "gru"), ("max", True, "gru"),
    ("attention", False, "lstm")])
def test_classify_graphs_match_torch(pooling: str, bidirectional: bool, cell: str,
                                     toy_classify_data: Path, tmp_path: Path) -> None:
    from pocketlm.export.config import ExportConfig

    ckpt = tmp_path / "ckpt"
    train_task(TaskTrainConfig.of(task="classify", pooling=pooling, bidirectional=bidirectional,
                                  cell=cell, max_steps=2, **SMALL), toy_classify_data, ckpt)
    manifest = export_task(ckpt, tmp_path / "model", ExportConfig(int8=False))
    assert manifest["export"]["max_abs_diff"]["fp32"] <= 1e-4
    assert manifest["graphs"]["classify"]["files"] == {"fp32": "classify.onnx"}
    assert manifest["metrics"]["export"]["fp32"]["accuracy"] == pytest.approx(
        manifest["metrics"]["valid"]["accuracy"])


def test_tag_model_folder(tag_checkpoint: Path, toy_tag_data: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    out = tmp_path / "model"
    manifest = export_checkpoint(tag_checkpoint, out)
    assert manifest["task"] == "tag" and manifest["labels"] == ["O", "B-NAME", "I-NAME"]
    assert manifest["graphs"]["tag"]["inputs"] == ["tokens", "shapes", "suffixes", "lengths"]
    assert manifest["weights"] == {"fp32": "weights.onnx.data", "int8": "weights.int8.onnx.data"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*manifest["files"], "manifest.json"])
    measured = manifest["metrics"]["export"]
    assert measured["fp32"]["f1"] == pytest.approx(manifest["metrics"]["valid"]["f1"], abs=1e-9)
    assert measured["int8"]["f1"] >= measured["fp32"]["f1"] - 0.1
    # a sentence the runtime way: pieces, features, one row
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    words, ids = words_of(tokenizer, "the Dog finds the river .")
    shapes, suffixes = features(words)
    session = graphs.open_session(out / "tag.onnx")
    logp = session.run(None, {"tokens": np.array([ids]), "shapes": np.array([shapes]),
                              "suffixes": np.array([suffixes]),
                              "lengths": np.array([len(ids)])})[0]
    assert logp.shape == (1, len(ids), 3)
    assert [manifest["labels"][t] for t in logp[0].argmax(-1)] == [
        "O", "B-NAME", "O", "O", "O", "O"]


def test_export_refuses_nothing_written_on_mismatch(tag_checkpoint: Path,
                                                    tmp_path: Path) -> None:
    from pocketlm.export.config import ExportConfig
    from pocketlm.export.onnx_export import ExportError

    with pytest.raises(ExportError, match="nothing was written"):
        export_task(tag_checkpoint, tmp_path / "model", ExportConfig(tolerance=1e-12))
    assert not (tmp_path / "model").exists()


def test_cli_export_and_evaluate(tag_checkpoint: Path, toy_tag_data: Path,
                                 toy_checkpoint: Path, tmp_path: Path) -> None:
    from pocketlm.runtime.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--checkpoint", str(tag_checkpoint), "--out",
                                 str(tmp_path / "model"), "--no-int8"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["evaluate", "--model", str(tmp_path / "model"), "--data",
                                 str(toy_tag_data), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    trained = json.loads((tag_checkpoint / "manifest.json").read_text())["metrics"]["test"]
    assert report["task"] == "tag" and report["sentences"] == 36
    assert report["metrics"]["f1"] == pytest.approx(trained["f1"])
    # the language model's checkpoint still goes through its own exporter
    result = runner.invoke(cli, ["export", "--checkpoint", str(toy_checkpoint), "--out",
                                 str(tmp_path / "lm"), "--no-int8"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lm/score.onnx").is_file()


def test_the_int8_folder_of_a_10k_vocabulary_tagger_fits(kjv_data: Path, tmp_path: Path) -> None:
    """Sizes do not depend on the weights' values: one training step, then export."""
    from pocketlm.runtime.artifact import sha256_file

    from .labelled_data import write_tag

    data = write_tag(tmp_path / "data", kjv_data)
    ckpt, out = tmp_path / "ckpt", tmp_path / "model"
    train_task(TaskTrainConfig.of(task="tag", bidirectional=True, embedding_size=128,
                                  hidden_size=208, max_steps=1, batch_size=16, device="cpu",
                                  log_every=0), data, ckpt)
    manifest = export_task(ckpt, out)
    assert manifest["vocab_size"] == 10_000
    graph = manifest["graphs"]["tag"]["files"]["int8"]
    files = ["manifest.json", "tokenizer.json", graph, manifest["weights"]["int8"]]
    assert sum((out / f).stat().st_size for f in files) <= INT8_FOLDER_BYTES
    # the vocabulary file: compact, and the same bytes along ingest → checkpoint → model
    text = (out / "tokenizer.json").read_text(encoding="utf-8")
    assert "\n" not in text and len(text.encode("utf-8")) < 160_000
    assert len({sha256_file(folder / "tokenizer.json")
                for folder in (kjv_data, data, ckpt, out)}) == 1
    # no shapes the quantiser inferred are stored (onnxruntime infers its own)
    import onnx

    model = onnx.load(str(out / graph), load_external_data=False)
    assert not model.graph.value_info
