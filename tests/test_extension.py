"""Adding a cell or an output layer is a change to one file: this one registers a new cell (a
stack of layer-normalised GRUs) and a new output layer (a low-rank softmax) from here alone, then
finds them in ``pocketlm train --help``, trains a few steps with them through the command line,
exports them with the graphs checked against torch, and scores through the runtime."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from pocketlm.pipeline.cells import CELLS, Cell
from pocketlm.pipeline.outputs import OUTPUTS, OutputLayer


class NormGRU(nn.Module):
    """``num_layers`` one-layer GRUs, each output layer-normalised; the cell-registry interface:
    ``(x [B, T, E], h [layers, B, H] | None) -> (out [B, T, H], h [layers, B, H])``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int,
                 batch_first: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.grus = nn.ModuleList(nn.GRU(input_size if i == 0 else hidden_size, hidden_size,
                                         batch_first=batch_first) for i in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        states = []
        for i, (gru, norm) in enumerate(zip(self.grus, self.norms)):
            x, state = gru(x, None if h is None else h[i:i + 1])       # (B, T, H), (1, B, H)
            x = norm(x)
            states.append(state)
        return x, torch.cat(states, dim=0)                              # (layers, B, H)


class LowRankSoftmax(nn.Module):
    """A full softmax behind a bottleneck of ``in_size / div_value`` units (never tied)."""

    def __init__(self, in_size: int, vocab_size: int, tied: nn.Embedding | None,
                 div_value: float = 4.0) -> None:
        super().__init__()
        rank = max(1, int(in_size // div_value))
        self.down = nn.Linear(in_size, rank, bias=False)
        self.up = nn.Linear(rank, vocab_size)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.up(self.down(h)).float(), dim=-1)         # (N, V)

    def target_logprob(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.log_probs(h).gather(1, targets.unsqueeze(1)).squeeze(1)  # (N,)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -self.target_logprob(h, targets)

    def export_ready(self) -> nn.Module:
        return self


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The new cell and output layer, registered for this test only."""
    monkeypatch.setitem(CELLS, "norm_gru", Cell("norm_gru", NormGRU, ("h",)))
    monkeypatch.setitem(OUTPUTS, "lowrank", OutputLayer(
        "lowrank", LowRankSoftmax, "a full softmax behind a low-rank bottleneck",
        settings=("div_value",)))
    yield


def test_a_new_cell_and_output_layer_from_one_file(registered: None, toy_data: Path,
                                                   tmp_path: Path) -> None:
    from pocketlm.export.config import ExportConfig
    from pocketlm.export.onnx_export import export
    from pocketlm.runtime import LanguageModel
    from pocketlm.runtime.cli import cli

    runner = CliRunner()
    help_text = runner.invoke(cli, ["train", "--help"]).output
    assert "norm_gru" in help_text and "lowrank" in help_text

    ckpt, model_dir = tmp_path / "checkpoint", tmp_path / "model"
    result = runner.invoke(cli, ["-q", "train", "--data", str(toy_data), "--out", str(ckpt),
                                 "--cell", "norm_gru", "--output", "lowrank", "--div-value", "2",
                                 "--layers", "2", "--embedding-size", "16", "--hidden-size",
                                 "16", "--batch-size", "8", "--bptt", "12", "--epochs", "1",
                                 "--max-steps", "6", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["model"]["cell"] == "norm_gru" and manifest["model"]["output"] == "lowrank"
    assert manifest["status"]["step"] == 6

    exported = export(ckpt, model_dir, ExportConfig(int8=False, tolerance=1e-4))
    assert exported["output"]["name"] == "lowrank"
    assert max(exported["export"]["max_abs_diff"]["fp32"].values()) <= 1e-4
    assert [s["name"] for s in exported["state"]] == ["h"]

    lm = LanguageModel(model_dir)
    sentence = "the cat sees the ball ."
    score = lm.score(sentence)
    assert math.isfinite(score) and score < 0
    total, state = 0.0, lm.begin()
    for word in sentence.split():
        logprob, state = lm.advance(state, word)
        total += logprob
    assert total + lm.end(state) == pytest.approx(score, abs=1e-4)
    assert isinstance(lm.generate("the cat", max_words=5, seed=0), str)
