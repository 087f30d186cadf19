"""pipeline/evaluate.py: cutting a stream into rows, stream perplexity through torch and through
onnxruntime (which must agree), and the refusal of a model with another vocabulary."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pocketlm.pipeline.batches import batchify
from pocketlm.pipeline.evaluate import evaluate, stream_nll_onnx, stream_nll_torch
from pocketlm.pipeline.ingest import IngestConfig, ingest, load_split
from pocketlm.pipeline.checkpoint import load_checkpoint
from pocketlm.runtime import LanguageModel
from pocketlm.runtime.artifact import PocketLMError, read_manifest


def test_batchify_shape_and_dropped_tail() -> None:
    """batchify cuts the stream into contiguous rows of len // batch tokens, as int64, and drops
    the tail that does not fill a row."""
    stream = np.arange(23, dtype=np.uint16)
    rows = batchify(stream, 5)
    assert rows.shape == (5, 4)
    assert rows.dtype == np.int64
    assert rows.tolist() == [list(range(r * 4, r * 4 + 4)) for r in range(5)]
    assert set(range(20, 23)).isdisjoint(rows.ravel().tolist())


def test_batchify_exact_fit() -> None:
    """A stream that fills the rows exactly loses nothing; two columns is the minimum."""
    assert batchify(np.arange(10), 5).ravel().tolist() == list(range(10))


@pytest.mark.parametrize("length, batch", [(9, 5), (4, 5), (0, 1), (1, 1)])
def test_batchify_too_short(length: int, batch: int) -> None:
    """Fewer than two tokens per row cannot give a prediction: a clear error, naming the fix."""
    with pytest.raises(PocketLMError, match="too short") as info:
        batchify(np.arange(length), batch)
    assert "--batch-size" in str(info.value)


def test_torch_windows_equal_one_pass(toy_checkpoint: Path, toy_data: Path) -> None:
    """stream_nll_torch gives the same NLL whatever its window length (state is carried), and
    equals one full pass over the rows scored by hand."""
    model, _ = load_checkpoint(toy_checkpoint)
    stream = load_split(toy_data, "valid")
    rows = torch.from_numpy(batchify(stream, 4))
    with torch.no_grad():
        logits, _ = model(rows[:, :-1])
        expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                   rows[:, 1:].reshape(-1), reduction="sum").item()
    for bptt in (5, 13, 70, 1000):
        nll, count = stream_nll_torch(model, stream, batch=4, bptt=bptt)
        assert count == 4 * (rows.shape[1] - 1)
        assert nll == pytest.approx(expected, rel=1e-5)


def test_torch_evaluation_keeps_training_mode(toy_checkpoint: Path, toy_data: Path) -> None:
    """Evaluating a model in training mode scores it in eval mode and gives it back in training
    mode."""
    model, _ = load_checkpoint(toy_checkpoint)
    model.train()
    stream_nll_torch(model, load_split(toy_data, "valid"), batch=4)
    assert model.training


@pytest.mark.parametrize("split", ["valid", "test"])
def test_onnx_and_torch_agree(toy_model: Path, toy_checkpoint: Path, toy_data: Path,
                              split: str) -> None:
    """The exported step graph and the torch checkpoint give the same stream perplexity over the
    same predictions."""
    onnx = evaluate(toy_model, toy_data, split=split, backend="onnx")
    torch_ = evaluate(None, toy_data, split=split, backend="torch", checkpoint_dir=toy_checkpoint)
    assert onnx["tokens"] == torch_["tokens"]
    tokens = read_manifest(toy_data, "data")["splits"][split]["tokens"]
    assert onnx["tokens"] == 10 * (tokens // 10 - 1)
    assert abs(onnx["perplexity"] - torch_["perplexity"]) / torch_["perplexity"] < 1e-4
    assert onnx["perplexity"] == pytest.approx(math.exp(onnx["nll"] / onnx["tokens"]))
    assert (onnx["backend"], torch_["backend"]) == ("onnx", "torch")
    assert onnx["split"] == torch_["split"] == split


def test_checkpoint_test_ppl_is_the_torch_figure(toy_checkpoint: Path, toy_data: Path) -> None:
    """The test perplexity train writes into the checkpoint manifest is what evaluate reports
    for the test split with the torch backend."""
    torch_ = evaluate(None, toy_data, split="test", backend="torch", checkpoint_dir=toy_checkpoint)
    recorded = read_manifest(toy_checkpoint, "checkpoint")["metrics"]["test_ppl"]
    assert recorded == pytest.approx(torch_["perplexity"], rel=1e-9)


def test_onnx_and_torch_agree_per_row_count(toy_model: Path, toy_checkpoint: Path,
                                            toy_data: Path) -> None:
    """With another row count the two backends still make the same predictions: equal counts
    (every token after a row's first) and equal summed NLL."""
    stream = np.asarray(load_split(toy_data, "valid"))
    model, _ = load_checkpoint(toy_checkpoint)
    nll_onnx, count_onnx = stream_nll_onnx(LanguageModel(toy_model), stream, batch=3)
    nll_torch, count_torch = stream_nll_torch(model, stream, batch=3)
    assert count_onnx == count_torch == 3 * (len(stream) // 3 - 1)
    assert nll_onnx == pytest.approx(nll_torch, rel=1e-4)


@pytest.fixture(scope="module")
def other_vocab_data(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy corpus ingested with a smaller vocabulary: another tokenizer.json."""
    out = tmp_path_factory.mktemp("other") / "data"
    ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=12), out)
    return out


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_refuses_another_vocabulary(toy_model: Path, toy_checkpoint: Path, toy_data: Path,
                                    other_vocab_data: Path, backend: str) -> None:
    """A model trained on one vocabulary is not scored on token ids of another."""
    assert read_manifest(other_vocab_data, "data")["vocab_size"] != \
        read_manifest(toy_data, "data")["vocab_size"]
    with pytest.raises(PocketLMError, match="another vocabulary") as info:
        evaluate(toy_model, other_vocab_data, backend=backend, checkpoint_dir=toy_checkpoint)
    assert str(other_vocab_data) in str(info.value)


def test_backend_arguments(toy_model: Path, toy_checkpoint: Path, toy_data: Path) -> None:
    """Each backend needs its folder, and an unknown backend is refused."""
    with pytest.raises(PocketLMError, match="--model"):
        evaluate(None, toy_data, backend="onnx", checkpoint_dir=toy_checkpoint)
    with pytest.raises(PocketLMError, match="--checkpoint"):
        evaluate(toy_model, toy_data, backend="torch")
    with pytest.raises(PocketLMError, match="onnx or torch"):
        evaluate(toy_model, toy_data, backend="tensorflow")


def test_unknown_split(toy_model: Path, toy_data: Path) -> None:
    """An unknown split is refused, listing the splits."""
    with pytest.raises(PocketLMError, match="train, valid, test"):
        evaluate(toy_model, toy_data, split="dev")
