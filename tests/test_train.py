"""pipeline/train.py: the model really learns, the checkpoint folder is complete and pickle-free,
presets and config checks, device resolution, early stopping and seeded reproducibility.

The quality and folder checks read the session's ``toy_checkpoint``; the runs made here are cut
to a few steps of a 1x16 LSTM and take about a second each."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pocketlm.pipeline.checkpoint import load_checkpoint
from pocketlm.pipeline.config import PRESETS, TrainConfig, preset
from pocketlm.pipeline.device import autocast_bf16, native_bf16_cpu, resolve_device
from pocketlm.pipeline.batches import batchify
from pocketlm.pipeline.evaluate import stream_nll_torch
from pocketlm.pipeline.ingest import load_split
from pocketlm.pipeline.model import RNNLM, ModelConfig
from pocketlm.pipeline.recipe import lr_at
from pocketlm.pipeline.train import train
from pocketlm.runtime.artifact import ArtifactError, PocketLMError, read_manifest, write_manifest

from .conftest import TOY_TRAIN

#: A very small run on the toy data: seconds, not minutes.
QUICK: dict[str, Any] = dict(TOY_TRAIN, embedding_size=16, hidden_size=16, batch_size=16,
                             epochs=3)


def windows_per_epoch(data_dir: Path, batch_size: int, bptt: int) -> int:
    tokens = read_manifest(data_dir, "data")["splits"]["train"]["tokens"]
    return len(range(0, tokens // batch_size - 1, bptt))


def metrics_lines(checkpoint: Path) -> list[dict[str, Any]]:
    text = (checkpoint / "metrics.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


# --- learning ------------------------------------------------------------------------------------


def test_beats_every_unigram_model(toy_checkpoint: Path, toy_data: Path) -> None:
    """The trained model's validation perplexity is below what any unigram model can reach.

    Over the predicted tokens of the validation stream, a unigram distribution q scores
    exp(cross-entropy(p, q)) >= exp(H(p)), p being the empirical distribution of those very
    tokens, so exp(H(p)) bounds every unigram model from below, the one fitted on the train
    counts included (checked too)."""
    manifest = read_manifest(toy_data, "data")
    targets = batchify(load_split(toy_data, "valid", manifest), 10)[:, 1:].ravel()
    counts = np.bincount(targets)
    p = counts[counts > 0] / targets.size
    oracle_unigram_ppl = math.exp(-float((p * np.log(p)).sum()))

    train_counts = np.bincount(load_split(toy_data, "train", manifest),
                               minlength=manifest["vocab_size"]) + 1   # add-one smoothing
    q = train_counts / train_counts.sum()
    train_unigram_ppl = math.exp(-float(np.log(q[targets]).mean()))
    assert train_unigram_ppl >= oracle_unigram_ppl

    valid_ppl = read_manifest(toy_checkpoint, "checkpoint")["metrics"]["valid_ppl"]
    assert valid_ppl < oracle_unigram_ppl
    # the figure is the saved weights' own: re-evaluating them gives it back
    model, _ = load_checkpoint(toy_checkpoint)
    nll, count = stream_nll_torch(model, load_split(toy_data, "valid", manifest), 10)
    assert math.exp(nll / count) == pytest.approx(valid_ppl, rel=1e-9)


def test_validation_improves_over_epochs(toy_checkpoint: Path) -> None:
    """Validation perplexity of the toy run falls from the first epoch to the best one, and the
    manifest reports the best epoch."""
    lines = metrics_lines(toy_checkpoint)
    metrics = read_manifest(toy_checkpoint, "checkpoint")["metrics"]
    best = min(lines, key=lambda r: r["valid_ppl"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["valid_ppl"] == best["valid_ppl"]
    assert best["valid_ppl"] < lines[0]["valid_ppl"]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]


# --- the checkpoint folder -----------------------------------------------------------------------


def test_checkpoint_folder(toy_checkpoint: Path, toy_data: Path) -> None:
    """The folder holds exactly the manifest, best weights, training state, tokenizer, metrics
    and curve; the manifest is a finished checkpoint with the model config, data reference and
    one metrics line per epoch."""
    manifest = read_manifest(toy_checkpoint, "checkpoint")
    assert manifest["kind"] == "checkpoint"
    files = ["curve.png", "last.safetensors", "metrics.jsonl", "model.safetensors",
             "tokenizer.json"]
    assert sorted(p.name for p in toy_checkpoint.iterdir()) == sorted(["manifest.json", *files])
    assert sorted(manifest["files"]) == files
    assert manifest["status"]["state"] == "finished"
    assert manifest["status"]["reason"] == "epochs"
    assert (toy_checkpoint / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = read_manifest(toy_data, "data")
    assert manifest["model"] == {"vocab_size": data["vocab_size"], "cell": "lstm", "layers": 1,
                                 "embedding_size": 24, "hidden_size": 24, "dropout": 0.0,
                                 "tied": True, "output": "full", "cutoffs": [],
                                 "div_value": 4.0, "input_dropout": 0.0, "embed_dropout": 0.0,
                                 "weight_dropout": 0.0, "tied_tails": True}
    assert manifest["config"] == json.loads(json.dumps(TrainConfig.of(**TOY_TRAIN).to_dict()))
    assert manifest["data"]["path"] == str(toy_data.resolve())
    assert manifest["data"]["manifest_sha256"] == hashlib.sha256(
        (toy_data / "manifest.json").read_bytes()).hexdigest()
    assert manifest["state"] == {"names": ["h", "c"], "shape": [1, "batch", 24]}
    lines = metrics_lines(toy_checkpoint)
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert manifest["metrics"]["epochs"] == 3
    assert manifest["metrics"]["steps"] == sum(r["steps"] for r in lines)
    assert (toy_checkpoint / "tokenizer.json").read_bytes() == \
        (toy_data / "tokenizer.json").read_bytes()


def test_weights_load_without_pickle(toy_checkpoint: Path) -> None:
    """model.safetensors opens with safetensors, and load_checkpoint rebuilds an RNNLM (eval
    mode, tied weights intact) holding exactly those tensors."""
    tensors = load_file(str(toy_checkpoint / "model.safetensors"))
    with safe_open(str(toy_checkpoint / "model.safetensors"), framework="pt") as fh:
        assert set(fh.keys()) == set(tensors)
    model, manifest = load_checkpoint(toy_checkpoint)
    assert isinstance(model, RNNLM)
    assert not model.training
    assert model.config.vocab_size == manifest["model"]["vocab_size"]
    assert model.decoder.weight is model.embedding.weight
    state = model.state_dict()
    for name, tensor in tensors.items():
        assert torch.equal(state[name], tensor), name
    assert sum(t.numel() for t in tensors.values()) == manifest["parameters"]


def test_no_pickle_files(toy_checkpoint: Path) -> None:
    """Nothing in the checkpoint is a pickle or a torch.save zip: no such extension and no
    pickle (0x80) or zip (PK) header."""
    for path in toy_checkpoint.iterdir():
        assert path.suffix not in {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", path.name


def test_load_checkpoint_refuses_mismatched_weights(toy_checkpoint: Path, tmp_path: Path) -> None:
    """Weights that do not fit the manifest's model are refused with the fix, not loaded."""
    folder = tmp_path / "ckpt"
    shutil.copytree(toy_checkpoint, folder)
    manifest = read_manifest(folder, "checkpoint")
    other = RNNLM(ModelConfig(**{**manifest["model"], "hidden_size": 8, "embedding_size": 8}))
    save_file({name: t.contiguous() for name, t in other.state_dict().items()
               if name != "decoder.weight"}, str(folder / "model.safetensors"))
    body = {k: v for k, v in manifest.items() if k not in
            ("format", "format_version", "kind", "special_tokens", "files")}
    write_manifest(folder, "checkpoint", body, list(manifest["files"]))
    with pytest.raises(PocketLMError, match="do not fit"):
        load_checkpoint(folder)


# --- presets, config, device ---------------------------------------------------------------------


def test_presets() -> None:
    """The four presets exist, grow in size (layers x hidden), and preset() applies overrides
    (ignoring None) without changing the preset itself."""
    assert list(PRESETS) == ["tiny", "small", "medium", "large"]
    sizes = [PRESETS[name].model.hidden_size * PRESETS[name].model.layers for name in PRESETS]
    assert sizes == sorted(sizes)
    config = preset("small", epochs=1, lr=None, device="cpu")
    assert config.epochs == 1
    assert config.device == "cpu"
    assert config.lr == PRESETS["small"].lr
    assert config.model.hidden_size == PRESETS["small"].model.hidden_size
    assert PRESETS["small"].epochs == 6
    assert preset("tiny") == PRESETS["tiny"]


def test_unknown_preset() -> None:
    """An unknown preset name is refused, listing the presets."""
    with pytest.raises(PocketLMError, match="tiny, small, medium, large"):
        preset("huge")


@pytest.mark.parametrize("kwargs, words", [
    ({"cell": "transformer"}, "unknown cell"),
    ({"optimizer": "adam"}, "unknown optimizer"),
    ({"precision": "fp16"}, "unknown precision"),
    ({"batch_size": 0}, ">= 1"),
    ({"bptt": 0}, ">= 1"),
    ({"epochs": 0}, ">= 1"),
    ({"eval_batch_size": 0}, ">= 1"),
    ({"lr": 0.0}, "must be > 0"),
])
def test_train_config_validation(kwargs: dict[str, Any], words: str) -> None:
    """Bad settings are refused with a message saying what is wrong."""
    with pytest.raises(PocketLMError, match=words):
        TrainConfig.of(**kwargs)


def test_resolve_device_cuda_absent() -> None:
    """Asking for CUDA where there is none is an error naming the fix; auto falls back to CPU."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(PocketLMError, match="--device cpu"):
            resolve_device(name)
    assert resolve_device("auto") == torch.device("cpu")


def test_precision_auto() -> None:
    """auto autocasts to bf16 on CUDA and on CPUs with hardware bf16 (AVX512-BF16 or AMX),
    where it trains as well as fp32, faster; fp32 and bf16 are what they say everywhere. The
    checkpoint manifest records which one a run used."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_bf16("auto", cpu) == native_bf16_cpu()
    assert autocast_bf16("auto", cuda)
    for device in (cpu, cuda):
        assert autocast_bf16("bf16", device) and not autocast_bf16("fp32", device)


def test_resolve_device_names() -> None:
    """cpu resolves to the CPU; a name torch does not know is a PocketLMError."""
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(PocketLMError, match="not a torch device"):
        resolve_device("abacus")


def test_train_refuses_non_data_folder(toy_checkpoint: Path, tmp_path: Path) -> None:
    """Training from a folder that is not an ingest folder names the stage to run."""
    with pytest.raises(ArtifactError, match="pocketlm ingest"):
        train(TrainConfig.of(**QUICK), toy_checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- short runs ----------------------------------------------------------------------------------


def test_max_steps_stops_early(toy_data: Path, tmp_path: Path) -> None:
    """max_steps stops training after that many steps, across an epoch boundary: the first
    epoch runs whole, the second only the rest, and nothing further."""
    per_epoch = windows_per_epoch(toy_data, QUICK["batch_size"], QUICK["bptt"])
    out = tmp_path / "ckpt"
    manifest = train(TrainConfig.of(**QUICK, max_steps=per_epoch + 2), toy_data, out)
    lines = metrics_lines(out)
    assert [r["steps"] for r in lines] == [per_epoch, 2]
    assert manifest["metrics"]["steps"] == per_epoch + 2
    assert manifest["metrics"]["epochs"] == 2 < QUICK["epochs"]


def test_seed_makes_runs_identical(toy_data: Path, tmp_path: Path) -> None:
    """Two runs with the same seed give the same weights and metrics; another seed does not."""
    runs: dict[str, dict[str, torch.Tensor]] = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        manifest = train(TrainConfig.of(**QUICK, seed=seed, max_steps=5), toy_data, tmp_path / name)
        assert (manifest["metrics"]["steps"], manifest["metrics"]["epochs"]) == (5, 1)
        runs[name] = weights(tmp_path / name)
    assert runs["a"].keys() == runs["b"].keys()
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])
    loss = [[r["train_loss"] for r in metrics_lines(tmp_path / n)] for n in ("a", "b")]
    assert loss[0] == loss[1]


def test_minutes_run_records_its_steps_and_max_steps_reproduces_it(toy_data: Path,
                                                                  tmp_path: Path) -> None:
    """--minutes lays the cosine over the steps that fit the budget, records that number as
    max_steps (the plan under status.budget) and ends at it, the cosine at its floor; a run
    given --max-steps of that number has the same tensors, bit for bit (best weights and the
    resumable state)."""
    recipe = dict(QUICK, schedule="cosine", warmup=20, lr_floor=0.1)
    timed = train(TrainConfig.of(**recipe, minutes=0.15), toy_data, tmp_path / "timed")
    budget = timed["status"]["budget"]
    steps = budget["steps"]
    assert timed["config"]["max_steps"] == steps == timed["metrics"]["steps"]
    assert timed["config"]["minutes"] == 0.15 and timed["status"]["reason"] == "max_steps"
    assert budget["planned_at_step"] == 20 < steps and budget["step_seconds"] > 0
    assert lr_at(steps, steps, recipe["lr"], 20, "cosine", 0.1) == pytest.approx(0.1 * recipe["lr"])
    last = metrics_lines(tmp_path / "timed")[-1]
    assert last["step"] == steps and last["lr"] <= 0.1 * recipe["lr"] * 1.01
    again = train(TrainConfig.of(**recipe, max_steps=steps), toy_data, tmp_path / "again")
    assert "budget" not in again["status"] and again["metrics"]["steps"] == steps
    for name in ("model.safetensors", "last.safetensors"):
        a, b = load_file(str(tmp_path / "timed" / name)), load_file(str(tmp_path / "again" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_minutes_needs_a_warmup_to_time(toy_data: Path, tmp_path: Path) -> None:
    """A cosine --minutes run times its warmup steps; with too short a warmup it says so."""
    with pytest.raises(PocketLMError, match="--warmup"):
        train(TrainConfig.of(**QUICK, schedule="cosine", warmup=5, minutes=1), toy_data,
              tmp_path / "c")
