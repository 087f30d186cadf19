"""Long runs: a run killed with SIGKILL resumes to the same weights, torchrun with two gloo
processes matches one process, NaN stops cleanly, budgets stop where they say, and resume
refuses another model shape or data folder in one line.

Every run is a 1x16 LSTM on the toy corpus: a second or two each (subprocesses add the torch
import)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from pocketlm.pipeline import distributed, saving
from pocketlm.pipeline import train as train_module
from pocketlm.pipeline.batches import TokenRows
from pocketlm.pipeline.checkpoint import load_checkpoint, load_training_state
from pocketlm.pipeline.evaluate import stream_nll_torch
from pocketlm.pipeline.ingest import IngestConfig, ingest, load_split
from pocketlm.pipeline.config import TrainConfig
from pocketlm.pipeline.train import TrainingStopped, train
from pocketlm.runtime.artifact import read_manifest
from pocketlm.runtime.cli import cli

from .conftest import TOY_TRAIN

#: 3 epochs of about 17 windows, dropout on (so the RNG state must be restored too), a
#: checkpoint every 4 steps and a validation every 5.
RUN: dict[str, Any] = dict(TOY_TRAIN, embedding_size=16, hidden_size=16, batch_size=16,
                           dropout=0.1, epochs=3, save_every=4, eval_every=5, save_minutes=0)

#: Runs ``train`` in a fresh process on one thread; with KILL_AT > 0 the process SIGKILLs itself
#: when the loss of that window (1-based) is about to be computed.
SCRIPT = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
from pocketlm.pipeline import train as T
from pocketlm.pipeline.config import TrainConfig
config, data, out, kill_at, resume = json.loads(sys.argv[1])
if kill_at:
    original, calls = T.window_loss, [0]
    def window_loss(*args):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args)
    T.window_loss = window_loss
T.train(TrainConfig.of(**config), data, out, resume=resume, progress=False)
"""


def run_script(config: dict[str, Any], data: Path, out: Path, kill_at: int = 0,
               resume: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT,
                           json.dumps([config, str(data), str(out), kill_at, resume])],
                          capture_output=True, text=True, timeout=300)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def metric_lines(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    timing = ("seconds", "tokens_per_s", "elapsed")
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


# --- kill -9 and resume --------------------------------------------------------------------------


#: The regularised recipe on top of RUN: adaptive output, line-start windows of varied length,
#: warmup and cosine, weight average, every dropout and activation regularisation.
RECIPE: dict[str, Any] = dict(RUN, output="adaptive", cutoffs=(8, 16), windows="verse",
                              vary_bptt=True, schedule="cosine", warmup=3, ema=0.9, ar=0.5,
                              input_dropout=0.1, embed_dropout=0.1, weight_dropout=0.2)


@pytest.mark.parametrize("config", [RUN, RECIPE], ids=["plain", "recipe"])
def test_sigkill_then_resume_gives_the_same_weights(config: dict[str, Any], toy_data: Path,
                                                    tmp_path: Path) -> None:
    """A run SIGKILLed at step 23 (last checkpoint at step 20) and resumed ends bit for bit
    where an uninterrupted run of the same config ends: best and last weights, optimiser
    state (and weight average), and every metrics line but the timings."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run_script(config, toy_data, whole)
    assert done.returncode == 0, done.stderr
    died = run_script(config, toy_data, killed, kill_at=23)
    assert died.returncode == -9, died.stderr
    _, meta = load_training_state(killed / "last.safetensors")
    assert meta["run"]["step"] == 20
    assert read_manifest(killed, "checkpoint")["status"]["state"] == "running"
    load_checkpoint(killed)                              # the interrupted folder is usable
    again = run_script(config, toy_data, killed, resume=True)
    assert again.returncode == 0, again.stderr
    assert_same_tensors(tensors(whole / "model.safetensors"),
                        tensors(killed / "model.safetensors"))
    assert_same_tensors(tensors(whole / "last.safetensors"),
                        tensors(killed / "last.safetensors"))
    assert metric_lines(whole) == metric_lines(killed)
    manifest = read_manifest(killed, "checkpoint")
    status = read_manifest(whole, "checkpoint")["status"]
    assert manifest["status"] == {**status, "resumes": 1,
                                  "startup_seconds": manifest["status"]["startup_seconds"]}
    assert manifest["metrics"]["test_ppl"] == read_manifest(whole, "checkpoint")["metrics"][
        "test_ppl"]


def test_resume_after_a_budget_continues_the_run(toy_data: Path, tmp_path: Path) -> None:
    """Stopped by --max-steps 10 and resumed with --max-steps 30, a run ends with the weights of
    a run that went to 30 at once (the extra evaluation at step 10 changes nothing)."""
    config = TrainConfig.of(**{**RUN, "max_steps": 30})
    train(config, toy_data, tmp_path / "once", progress=False)
    train(dataclasses.replace(config, max_steps=10), toy_data, tmp_path / "twice",
          progress=False)
    assert read_manifest(tmp_path / "twice", "checkpoint")["status"]["reason"] == "max_steps"
    train(config, toy_data, tmp_path / "twice", resume=True, progress=False)
    a = tensors(tmp_path / "once" / "last.safetensors")
    b = tensors(tmp_path / "twice" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model/"))


# --- resume refusals -----------------------------------------------------------------------------


def assert_one_line_error(result: Any, *words: str) -> None:
    assert result.exit_code != 0
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in message, message


@pytest.fixture(scope="module")
def stopped_run(toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stopped") / "ckpt"
    train(TrainConfig.of(**{**RUN, "max_steps": 6}), toy_data, out, progress=False)
    return out


@pytest.mark.parametrize("option, value, words", [("--hidden-size", "32", "hidden_size=16"),
                                                  ("--cell", "gru", "cell='lstm'"),
                                                  ("--batch-size", "8", "batch_size=16")])
def test_resume_with_another_shape_is_one_line(stopped_run: Path, option: str, value: str,
                                               words: str) -> None:
    result = CliRunner().invoke(cli, ["train", "--resume", str(stopped_run), option, value])
    assert_one_line_error(result, words, "same model shape and batch size")


def test_resume_on_other_data_is_one_line(stopped_run: Path, toy_corpus: Path,
                                          tmp_path: Path) -> None:
    other = tmp_path / "data"
    ingest(IngestConfig(data_files=(str(toy_corpus),), vocab_size=30), other)
    result = CliRunner().invoke(cli, ["train", "--resume", str(stopped_run), "--data",
                                      str(other)])
    assert_one_line_error(result, "another data folder")


def test_resume_without_state_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "empty")])
    assert_one_line_error(result, "without --resume")


def test_resume_cli_continues(stopped_run: Path, tmp_path: Path) -> None:
    """`pocketlm train --resume DIR --max-steps 8` goes on from step 6 to 8 and says where the
    curve is."""
    folder = tmp_path / "ckpt"
    import shutil

    shutil.copytree(stopped_run, folder)
    result = CliRunner().invoke(cli, ["-q", "train", "--resume", str(folder), "--max-steps", "8"])
    assert result.exit_code == 0, result.output
    assert f"curve: {folder / 'curve.png'}" in result.output
    manifest = read_manifest(folder, "checkpoint")
    assert manifest["metrics"]["steps"] == 8
    assert manifest["status"]["resumes"] == 1
    assert manifest["config"]["max_steps"] == 8


# --- NaN -----------------------------------------------------------------------------------------


def nan_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    original, calls = train_module.window_loss, [0]

    def window_loss(*args: Any) -> Any:
        calls[0] += 1
        loss, state = original(*args)
        return (loss * float("nan") if calls[0] == step else loss), state

    monkeypatch.setattr(train_module, "window_loss", window_loss)


@pytest.mark.parametrize("step", [1, 11])
def test_nan_stops_with_a_loadable_checkpoint(step: int, toy_data: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN loss at step 1 (before any checkpoint) or 11 (after the one of step 8) stops with a
    message naming the step and the fix; the folder loads, holds finite weights and the last
    good state, and says why it stopped."""
    nan_at(step, monkeypatch)
    out = tmp_path / "ckpt"
    with pytest.raises(TrainingStopped, match=f"became nan at step {step} .*--resume"):
        train(TrainConfig.of(**RUN), toy_data, out, progress=False)
    model, manifest = load_checkpoint(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert manifest["status"]["state"] == "stopped"
    assert "nan" in manifest["status"]["reason"]
    _, meta = load_training_state(out / "last.safetensors")
    assert meta["run"]["step"] == (0 if step == 1 else 8)


def test_nan_through_the_cli_is_one_line(toy_data: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    nan_at(3, monkeypatch)
    result = CliRunner().invoke(cli, ["-q", "train", "--data", str(toy_data), "--out",
                                      str(tmp_path / "c"), "--preset", "tiny", "--hidden-size",
                                      "16", "--embedding-size", "16", "--batch-size", "8",
                                      "--device", "cpu", "--output", "full"])
    assert_one_line_error(result, "loss became nan at step 3", "last good checkpoint")


# --- budgets -------------------------------------------------------------------------------------


def test_max_minutes_stops(toy_data: Path, tmp_path: Path) -> None:
    """A budget of 0.6 ms stops after the first step (the clock is read before each update)."""
    manifest = train(TrainConfig.of(**{**RUN, "max_minutes": 1e-5}), toy_data, tmp_path / "c",
                     progress=False)
    assert manifest["status"]["reason"] == "max_minutes"
    assert manifest["metrics"]["steps"] == 1


def test_target_ppl_stops(toy_data: Path, tmp_path: Path) -> None:
    """A target every validation meets stops at the first validation (step 5)."""
    manifest = train(TrainConfig.of(**{**RUN, "target_ppl": 1e9}), toy_data, tmp_path / "c",
                     progress=False)
    assert manifest["status"]["reason"] == "target_ppl"
    assert manifest["metrics"]["steps"] == 5


def test_patience_stops_on_a_plateau(toy_data: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With validation perplexity rising at every evaluation and --patience 2, the run stops at
    the third evaluation and keeps the weights of the first."""
    calls = [0]

    def rising(*args: Any, **kwargs: Any) -> tuple[float, int]:
        calls[0] += 1
        return float(calls[0]), 1

    monkeypatch.setattr(train_module, "stream_nll_torch", rising)
    manifest = train(TrainConfig.of(**{**RUN, "eval_every": 2, "patience": 2}), toy_data,
                     tmp_path / "c", progress=False)
    assert manifest["status"]["reason"] == "plateau"
    assert manifest["metrics"]["steps"] == 6
    assert manifest["metrics"]["best_step"] == 2


def test_save_minutes_and_save_every(toy_data: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint is written every --save-every steps, at the epoch end and at the stop; with
    a --save-minutes interval shorter than a step, after every step."""
    steps: list[int] = []
    original = saving.save_training_state

    def recording(path: Path, groups: Any, meta: Any) -> None:
        steps.append(meta["run"]["step"])
        original(path, groups, meta)

    monkeypatch.setattr(saving, "save_training_state", recording)
    per_epoch = TokenRows(load_split(toy_data, "train"), 16).count_windows(12)
    train(TrainConfig.of(**{**RUN, "eval_every": 0, "max_steps": per_epoch + 5}), toy_data,
          tmp_path / "a", progress=False)
    expected = sorted({*range(4, per_epoch, 4), per_epoch,
                       *range(per_epoch + 4 - per_epoch % 4, per_epoch + 5, 4),
                       per_epoch + 5})
    assert steps[:-1] == expected          # the last one again: the final, finished write
    steps.clear()
    train(TrainConfig.of(**{**RUN, "save_every": 0, "eval_every": 0, "save_minutes": 1e-9,
                         "max_steps": 5}), toy_data, tmp_path / "b", progress=False)
    assert steps == [1, 2, 3, 4, 5, 5]


def test_progress_bar(toy_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """progress=True draws a bar with the step count and loss on stderr; False draws none."""
    train(TrainConfig.of(**{**RUN, "max_steps": 4}), toy_data, tmp_path / "a", progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "loss=" in err
    train(TrainConfig.of(**{**RUN, "max_steps": 4}), toy_data, tmp_path / "b", progress=False)
    assert "loss=" not in capsys.readouterr().err


# --- windows and bounded evaluation --------------------------------------------------------------


def test_windows_read_the_memory_map(toy_data: Path) -> None:
    """Rows are a view of the memory-mapped split (nothing copied); a window copies only its
    own tokens, as int64; shards are contiguous blocks of rows."""
    stream = load_split(toy_data, "train")
    rows = TokenRows(stream, 8)
    assert isinstance(stream, np.memmap) and np.shares_memory(rows.view, stream)
    x, y = rows.window(5, 7, torch.device("cpu"))
    assert x.dtype == torch.int64 and x.shape == y.shape == (8, 7)
    assert torch.equal(x[:, 1:], y[:, :-1])
    half = TokenRows(stream, 8, shard=1, shards=2)
    assert np.array_equal(half.view, rows.view[4:])


def test_eval_tokens_bounds_the_sample(toy_checkpoint: Path, toy_data: Path) -> None:
    """max_tokens reads a fixed prefix of every row: a smaller, repeatable sample."""
    model, _ = load_checkpoint(toy_checkpoint)
    stream = load_split(toy_data, "valid")
    full = stream_nll_torch(model, stream, 10)
    part = stream_nll_torch(model, stream, 10, max_tokens=100)
    assert part[1] == 10 * 9 < full[1]
    assert part == stream_nll_torch(model, stream, 10, max_tokens=100)
    assert math.isfinite(part[0])


# --- torchrun ------------------------------------------------------------------------------------

#: DDP tolerance: the two processes average two half-batch gradients where one process takes
#: the mean over the whole batch, so sums are ordered differently (float32 rounding only; seen:
#: train loss within 3e-8 relative, weights within 2.4e-7 after 46 steps).
DDP_RTOL = 1e-4


def test_torchrun_two_processes_match_one(toy_data: Path, tmp_path: Path) -> None:
    """`pocketlm train --nproc 2` (torchrun, gloo, two CPU processes of 8 rows each) trains, and
    its loss curve and weights match one process with the same 16 rows within DDP_RTOL."""
    options = ["--preset", "tiny", "--hidden-size", "16", "--embedding-size", "16",
               "--dropout", "0", "--batch-size", "16", "--bptt", "12", "--epochs", "2",
               "--eval-every", "6", "--device", "cpu", "--quiet", "--output", "full",
               "--input-dropout", "0", "--precision", "fp32"]   # the tolerance is fp32's
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        out = tmp_path / name
        done = subprocess.run([sys.executable, "-m", "pocketlm.stages.cli", "train", "--data",
                               str(toy_data), "--out", str(out), *options, *extra],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = out
    one, two = (read_manifest(runs[n], "checkpoint") for n in ("one", "two"))
    assert (one["status"]["processes"], two["status"]["processes"]) == (1, 2)
    lines = [metric_lines(runs[n]) for n in ("one", "two")]
    assert [r["step"] for r in lines[0]] == [r["step"] for r in lines[1]]
    for a, b in zip(*lines):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=DDP_RTOL)
        assert b["valid_ppl"] == pytest.approx(a["valid_ppl"], rel=DDP_RTOL)
    wa, wb = (tensors(runs[n] / "model.safetensors") for n in ("one", "two"))
    for name in wa:
        assert torch.allclose(wa[name], wb[name], rtol=DDP_RTOL, atol=DDP_RTOL), name
    # the carried state of both processes is in the checkpoint, whole batch
    groups, _ = load_training_state(runs["two"] / "last.safetensors")
    assert groups["carried"]["h"].shape == (1, 16, 16)


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """NCCL when every local process has its own GPU; gloo on the CPU and when processes share
    a GPU (NCCL refuses two ranks on one device)."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.dist_backend(torch.device("cuda"), 2) == "nccl"
    assert distributed.dist_backend(torch.device("cuda"), 3) == "gloo"
    assert distributed.dist_backend(torch.device("cpu"), 1) == "gloo"
