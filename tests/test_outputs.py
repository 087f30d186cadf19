"""pipeline/outputs.py, the regularisation in pipeline/model.py and pipeline/recipe.py: every
output layer gives exact normalised log-probabilities, learns, and refuses bad settings in one
line naming the option."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pocketlm.pipeline.batches import LineWindows, TokenRows
from pocketlm.pipeline.model import RNNLM, ModelConfig, locked_dropout
from pocketlm.pipeline.outputs import OUTPUTS, check_frequency_order, get_output
from pocketlm.pipeline.recipe import WeightAverage, lr_at
from pocketlm.pipeline.config import TrainConfig
from pocketlm.pipeline.recipe import window_length
from pocketlm.pipeline.train import train
from pocketlm.runtime.artifact import PocketLMError
from pocketlm.runtime.cli import cli

V = 50
SETTINGS = {"full": {}, "adaptive": {"output": "adaptive", "cutoffs": (10, 25)}}


def make(output: str, tied: bool = True, **kwargs: object) -> RNNLM:
    torch.manual_seed(0)
    return RNNLM(ModelConfig(vocab_size=V, embedding_size=12, hidden_size=16, layers=1,
                             tied=tied, **SETTINGS[output], **kwargs))  # type: ignore[arg-type]


def test_registry() -> None:
    """Both output layers are registered under their names; an unknown one is refused with the
    alternatives listed."""
    assert set(OUTPUTS) == {"full", "adaptive"}
    for name, entry in OUTPUTS.items():
        assert get_output(name) is entry and entry.name == name
    with pytest.raises(PocketLMError, match="full, adaptive"):
        get_output("sampled")


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("output", sorted(SETTINGS))
def test_exact_normalised_logprobs(output: str, tied: bool) -> None:
    """log_probs sums to 1 over the vocabulary; target_logprob and loss agree with it exactly,
    for targets in the head and in every tail cluster."""
    model = make(output, tied).eval()
    h = torch.randn(40, 12 if tied else 16)
    targets = torch.arange(40) % V
    full = model.decoder.log_probs(h)
    assert full.shape == (40, V)
    torch.testing.assert_close(full.exp().sum(1), torch.ones(40), rtol=0, atol=1e-5)
    picked = full.gather(1, targets.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(model.decoder.target_logprob(h, targets), picked,
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(model.decoder.loss(h, targets), -picked, rtol=0, atol=1e-5)


def test_adaptive_ties_head_rows() -> None:
    """Tied, the adaptive head's word rows are the embedding's first rows (same storage); the
    cluster entries are the layer's own."""
    model = make("adaptive", tied=True)
    head = model.decoder.head_weight()
    assert torch.equal(head[:10], model.embedding.weight[:10])
    assert not hasattr(model.decoder, "head_words")
    with torch.no_grad():
        model.embedding.weight[3, 0] = 42.0
    assert model.decoder.head_weight()[3, 0].item() == 42.0
    assert "decoder.head_words" in dict(make("adaptive", tied=False).named_parameters())


def test_adaptive_ties_tail_words() -> None:
    """Tied, a tail cluster's word vectors are its words' embedding rows mapped down: a change to
    a tail word's embedding row changes that word's output vector and no other; a tail target's
    loss reaches the embedding rows of its cluster (through the cluster's softmax) and of no
    other tail cluster. Untied, the tails are plain linear layers."""
    model = make("adaptive", tied=True)
    tail = model.decoder.tails[0][1]                      # words 10..24, size 12 // 4 = 3
    before = tail.weight().detach().clone()
    assert before.shape == (15, 3)
    with torch.no_grad():
        model.embedding.weight[12] += 1.0                 # word 12 = row 2 of tail cluster 1
    changed = (tail.weight().detach() != before).any(dim=1)
    assert changed.tolist() == [i == 2 for i in range(15)]
    model.zero_grad()
    model.loss(torch.randn(4, 1, 12), torch.tensor([[12], [12], [3], [3]])).backward()
    grad = model.embedding.weight.grad.abs().sum(dim=1)
    assert (grad[10:25] > 0).all() and (grad[25:] == 0).all()
    untied = make("adaptive", tied=False)
    assert isinstance(untied.decoder.tails[0][1], torch.nn.Linear)


def test_export_ready_folds_tied_tails() -> None:
    """export_ready replaces each tied tail by a plain linear layer with the product computed
    once, and the log-probabilities stay the same; the full softmax is already export-ready."""
    model = make("adaptive", tied=True).eval()
    h = torch.randn(6, 12)
    expected = model.decoder.log_probs(h)
    ready = model.decoder.export_ready()
    assert all(isinstance(t[1], torch.nn.Linear) for t in ready.tails)
    assert torch.allclose(ready.log_probs(h), expected, atol=1e-6)
    full = make("full")
    assert full.decoder.export_ready() is full.decoder


@pytest.mark.parametrize("output", sorted(SETTINGS))
def test_loss_falls_on_small_corpus(output: str, toy_data: Path, tmp_path: Path) -> None:
    """Training a few dozen steps on the toy corpus lowers the loss, for each output layer."""
    cutoffs = {"cutoffs": (6, 14)} if output == "adaptive" else {}
    config = TrainConfig.of(cell="lstm", layers=1, embedding_size=24, hidden_size=24, dropout=0.0,
                         batch_size=8, bptt=12, epochs=3, lr=1e-2, device="cpu", log_every=0,
                         output=output, **cutoffs)  # type: ignore[arg-type]
    manifest = train(config, toy_data, tmp_path / "checkpoint")
    history = [line for line in (tmp_path / "checkpoint" / "metrics.jsonl").read_text()
               .splitlines()]
    import json

    losses = [json.loads(line)["train_loss"] for line in history]
    assert losses[-1] < losses[0] < math.log(manifest["data"]["vocab_size"]) + 0.5
    assert manifest["metrics"]["valid_ppl"] < 20


@pytest.mark.parametrize("cutoffs, message", [
    ((25, 10), "strictly increasing"), ((10, 10), "strictly increasing"),
    ((10, 50), "below the vocabulary size 50"), ((), "needs --cutoffs"), ((0, 10), "positive")])
def test_bad_cutoffs(cutoffs: tuple[int, ...], message: str) -> None:
    """Cutoffs that are not increasing, reach the vocabulary size or are missing are refused in
    one line naming the option."""
    with pytest.raises(PocketLMError, match=message) as info:
        ModelConfig(vocab_size=V, output="adaptive", cutoffs=cutoffs)
    assert "--cutoffs" in str(info.value) and "\n" not in str(info.value)


def test_frequency_order() -> None:
    """A vocabulary whose word ids are not numbered by falling frequency is refused; ties and the
    special ids (0, 1) do not count."""
    check_frequency_order(np.array([0, 900, 50, 40, 40, 3]))
    with pytest.raises(PocketLMError, match="falling frequency") as info:
        check_frequency_order(np.array([0, 900, 50, 40, 41, 3]))
    assert "id 4" in str(info.value) and "--output full" in str(info.value)


def test_kjv_vocabulary_is_in_frequency_order(kjv_data: Path) -> None:
    """The ingest stage numbers words by falling train-split frequency (what adaptive needs)."""
    from pocketlm.pipeline.ingest import load_split

    ids = np.asarray(load_split(kjv_data, "train"))
    check_frequency_order(np.bincount(ids, minlength=10_000))


@pytest.mark.parametrize("kwargs, option", [
    ({"dropout": 1.0}, "--dropout"), ({"input_dropout": -0.1}, "--input-dropout"),
    ({"embed_dropout": 1.5}, "--embed-dropout"), ({"weight_dropout": 1.0}, "--weight-dropout")])
def test_bad_dropout(kwargs: dict[str, float], option: str) -> None:
    with pytest.raises(PocketLMError, match=option):
        ModelConfig(vocab_size=V, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, option", [
    ({"ar": -1.0}, "--ar"), ({"warmup": -5}, "--warmup"), ({"ema": 1.0}, "--ema"),
    ({"lr_floor": 1.0}, "--lr-floor"), ({"windows": "random"}, "--windows"),
    ({"schedule": "step"}, "--schedule"), ({"output": "sampled"}, "full, adaptive")])
def test_bad_recipe(kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(PocketLMError, match=option):
        TrainConfig.of(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("args, expected", [
    (["--output", "adaptive", "--cutoffs", "20,10"], "--cutoffs 20,10"),
    (["--output", "adaptive", "--cutoffs", "1000,99999"], "below the vocabulary size"),
    (["--output", "adaptive", "--cutoffs", "ten"], "--cutoffs"),
    (["--embed-dropout", "1.2"], "--embed-dropout"),
    (["--ema", "2"], "--ema")])
def test_cli_one_line_errors(toy_data: Path, tmp_path: Path, args: list[str],
                             expected: str) -> None:
    """Bad output-layer or regularisation options end `pocketlm train` with a one-line error
    naming the option, and write nothing."""
    result = CliRunner().invoke(cli, ["train", "--data", str(toy_data), "--out",
                                      str(tmp_path / "ckpt"), "--preset", "tiny", *args])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert expected in result.output
    assert sum("Error" in line for line in lines) == 1
    assert not (tmp_path / "ckpt").exists()


def test_regularisation_is_training_only() -> None:
    """Embedding, input and output dropout change training-mode outputs but not eval-mode
    ones (so export sees the plain model); locked dropout shares one mask over time."""
    model = make("adaptive", dropout=0.5, input_dropout=0.5, embed_dropout=0.3,
                 weight_dropout=0.5)
    x = torch.randint(0, V, (2, 9))
    model.eval()
    a, _ = model.features(x)
    b, _ = model.features(x)
    assert torch.equal(a, b)
    model.train()
    c, _ = model.features(x)
    assert not torch.allclose(a, c)
    model.config = ModelConfig(**{**model.config.__dict__, "dropout": 0.0, "input_dropout": 0.0,
                                  "embed_dropout": 0.0})
    d, _ = model.features(x)           # weight dropout alone changes the training output
    assert not torch.allclose(a, d)
    d.sum().backward()
    assert model.rnn.weight_hh_l0.grad is not None and model.rnn.weight_hh_l0.grad.abs().sum() > 0
    ones = torch.ones(3, 7, 5)
    dropped = locked_dropout(ones, 0.5, True)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    assert torch.equal(locked_dropout(ones, 0.5, False), ones)


def test_lr_schedule() -> None:
    """Warmup rises linearly to the peak; cosine falls to the floor at the last step."""
    assert lr_at(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert lr_at(50, 100, 1.0, schedule="plateau") == 1.0
    assert lr_at(10, 100, 1.0, warmup=10, schedule="cosine") == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, warmup=10, schedule="cosine", floor=0.1) == pytest.approx(0.1)
    values = [lr_at(s, 100, 1.0, 10, "cosine") for s in range(10, 101)]
    assert all(b <= a for a, b in zip(values, values[1:]))


def test_windows() -> None:
    """Stream windows of varied lengths cover every column once and carry the state; line windows
    start at an <eos> from the zero state, targets shifted by one, the same for the same index."""
    config = TrainConfig.of(bptt=7, vary_bptt=True, seed=3)
    lengths = [window_length(step, config) for step in range(200)]
    assert min(lengths) >= 5 and len(set(lengths)) > 3
    assert lengths == [window_length(step, config) for step in range(200)]   # resumable
    stream = np.arange(2 * 50)
    rows, position, xs, ys = TokenRows(stream, 2), 0, [], []
    assert not rows.resets
    for step in range(1000):
        if rows.done(position):
            break
        x, y = rows.window(position, lengths[step], torch.device("cpu"))
        xs.append(x), ys.append(y)
        position += y.shape[1]
    assert torch.equal(torch.cat(xs, 1), torch.from_numpy(stream.reshape(2, 50)[:, :-1]))
    assert torch.equal(torch.cat(ys, 1), torch.from_numpy(stream.reshape(2, 50)[:, 1:]))
    stream = np.array([5, 6, 1, 7, 8, 9, 1, 4, 4, 1, 3, 3, 3, 1, 2, 2, 2, 2, 2, 2])
    starts = np.flatnonzero(stream[:-1] == 1)
    lines = LineWindows(stream, 3, starts, seed=0)
    assert lines.resets
    for index in range(4):
        x, y = lines.window(0, 4, torch.device("cpu"), index=index, epoch=2)
        assert x.shape == (3, 4) and torch.all(x[:, 0] == 1)
        assert torch.equal(x[:, 1:], y[:, :-1])
        again, _ = lines.window(0, 4, torch.device("cpu"), index=index, epoch=2)
        assert torch.equal(x, again)


def test_weight_average() -> None:
    """The average moves towards the current weights by (1 - decay) per update."""
    model = torch.nn.Linear(2, 2)
    average = WeightAverage(model, 0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()
    torch.testing.assert_close(average.averaged().weight, start + 0.1)


def test_dense_tails_match_gathered() -> None:
    """The masked all-rows tail computation (used on GPUs) gives the gathered one's values."""
    model = make("adaptive", tied=True).eval()
    h = torch.randn(40, 12)
    targets = torch.arange(40) % V
    head = model.decoder.head_log_probs(h)
    column = torch.where(targets < 10, targets, 10 + (targets >= 25).long())
    dense = head.gather(1, column.unsqueeze(1)).squeeze(1) + model.decoder._dense_tails(h, targets)
    torch.testing.assert_close(dense, model.decoder.target_logprob(h, targets), rtol=0, atol=1e-5)


def test_checkpoint_from_before_tied_tails_loads(kjv_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint folder written before tied tails existed (no ``tied_tails`` in its manifest,
    plain tail matrices in its weights) still loads, with plain tails, so it can be exported."""
    import dataclasses
    import shutil

    from pocketlm.pipeline.checkpoint import WEIGHTS, load_checkpoint, save_weights
    from pocketlm.runtime.artifact import read_manifest, write_manifest

    old = tmp_path / "old"
    shutil.copytree(kjv_checkpoint, old)
    manifest = read_manifest(old, "checkpoint")
    config = ModelConfig(**{**manifest["model"], "tied_tails": False})
    save_weights(RNNLM(config), old / WEIGHTS)
    body = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "kind",
                                                           "special_tokens", "files")}
    body["model"] = {k: v for k, v in dataclasses.asdict(config).items() if k != "tied_tails"}
    write_manifest(old, "checkpoint", body, list(manifest["files"]))
    model, _ = load_checkpoint(old)
    assert not model.config.tied_tails
    assert all(type(t[1]) is torch.nn.Linear for t in model.decoder.tails)
    assert all(type(t[1]).__name__ == "TiedTail"
               for t in load_checkpoint(kjv_checkpoint)[0].decoder.tails)
