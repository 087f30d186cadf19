"""Stage 2, train: fit a recurrent LM on the token ids an ingest folder holds.

Reads only the data folder (its manifest, ``tokenizer.json`` and ``*.bin``) with numpy and torch,
so it runs on GPU hosts without ``datasets``. Output folder (see docs/artifacts.md)::

    checkpoint/
      manifest.json       model + training config, data reference, metrics, hashes
      model.safetensors   weights of the epoch with the best validation perplexity
      tokenizer.json      copy of the data folder's vocabulary
      metrics.jsonl       one JSON object per epoch
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketlm.runtime.artifact import (EOS_ID, PocketLMError, atomic_folder,
                                       check_output_folder, package_versions, read_manifest,
                                       sha256_file, umask_mode, write_manifest)

from .cells import CELLS
from .evaluate import batchify, stream_nll_torch
from .ingest import load_split
from .model import RNNLM, ModelConfig, detach_state
from .outputs import check_frequency_order, get_output
from .recipe import WeightAverage, epoch_windows, lr_at, stream_windows, verse_windows

log = logging.getLogger(__name__)
WEIGHTS, METRICS, TOKENIZER = "model.safetensors", "metrics.jsonl", "tokenizer.json"


@dataclass(frozen=True)
class TrainConfig:
    """Model shape and training recipe. ``max_steps`` > 0 stops early (smoke runs);
    ``precision`` is ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32`` or ``bf16``."""

    cell: str = "lstm"
    layers: int = 2
    embedding_size: int = 200
    hidden_size: int = 200
    dropout: float = 0.2
    tied: bool = True
    batch_size: int = 32
    bptt: int = 35
    epochs: int = 4
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 0.25
    lr_decay: float = 0.5
    seed: int = 1234
    device: str = "auto"
    precision: str = "auto"
    max_steps: int = 0
    eval_batch_size: int = 10
    log_every: int = 200
    # output layer (pipeline/outputs.py), regularisation (model.py) and recipe (recipe.py)
    output: str = "full"
    cutoffs: tuple[int, ...] = ()
    div_value: float = 4.0
    input_dropout: float | None = None
    embed_dropout: float = 0.0
    weight_dropout: float = 0.0
    ar: float = 0.0
    windows: str = "stream"
    vary_bptt: bool = False
    schedule: str = "plateau"
    warmup: int = 0
    lr_floor: float = 0.0
    ema: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(int(c) for c in self.cutoffs))
        get_output(self.output)
        if self.windows not in ("stream", "verse"):
            raise PocketLMError(f"--windows {self.windows!r}: use stream or verse")
        if self.schedule not in ("plateau", "cosine"):
            raise PocketLMError(f"--schedule {self.schedule!r}: use plateau or cosine")
        for option, value in (("--ar", self.ar), ("--warmup", self.warmup)):
            if value < 0:
                raise PocketLMError(f"{option} {value} must be >= 0")
        for option, value in (("--lr-floor", self.lr_floor), ("--ema", self.ema)):
            if not 0.0 <= value < 1.0:
                raise PocketLMError(f"{option} {value} must be in [0, 1)")
        if self.cell not in CELLS:
            raise PocketLMError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise PocketLMError(f"unknown optimizer {self.optimizer!r}; use adamw or sgd")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise PocketLMError(f"unknown precision {self.precision!r}; use auto, fp32 or bf16")
        if min(self.batch_size, self.bptt, self.epochs, self.eval_batch_size) < 1:
            raise PocketLMError("batch size, bptt, epochs and eval batch size must be >= 1")
        if self.lr <= 0:
            raise PocketLMError(f"learning rate {self.lr} must be > 0")
        if self.max_steps < 0 or self.clip < 0 or not 0 < self.lr_decay <= 1:
            raise PocketLMError("max_steps and clip must be >= 0 and lr_decay in (0, 1]")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, cell=self.cell, layers=self.layers,
                           embedding_size=self.embedding_size, hidden_size=self.hidden_size,
                           dropout=self.dropout, tied=self.tied, output=self.output,
                           cutoffs=self.cutoffs, div_value=self.div_value,
                           input_dropout=(self.dropout if self.input_dropout is None
                                          else self.input_dropout),
                           embed_dropout=self.embed_dropout,
                           weight_dropout=self.weight_dropout)


#: Named starting points (figures and wall times: docs/stages.md, "Presets").
#:
#: * ``tiny``: what ``pocketlm run`` trains; sized for a 2-core CPU and a few minutes. A fixed
#:   number of steps (9 epochs x 381 verse windows), so it is deterministic, not wall-clock bound.
#: * ``small``: the 2x200 LSTM of pytorch/examples' CPU default, with pocketlm's recipe.
#: * ``medium``: GPU, fast: aims at validation stream perplexity 29.4 within 9 s on an H100.
#: * ``large``: GPU, quality: <= 25M parameters, the AWD-style regularised recipe, aiming at
#:   test perplexity <= 19.5 within 5 minutes on an H100.
_ADAPTIVE = dict(output="adaptive", cutoffs=(1000, 4000), div_value=4.0)
PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(layers=1, embedding_size=128, hidden_size=256, dropout=0.25,
                        input_dropout=0.15, batch_size=64, bptt=35, epochs=9, lr=4e-3,
                        windows="verse", schedule="cosine", warmup=100, **_ADAPTIVE),
    "small": TrainConfig(layers=2, embedding_size=200, hidden_size=200, dropout=0.25,
                         input_dropout=0.15, batch_size=64, bptt=35, epochs=6, lr=4e-3,
                         schedule="cosine", warmup=100, **_ADAPTIVE),
    "medium": TrainConfig(layers=2, embedding_size=650, hidden_size=650, dropout=0.4,
                          input_dropout=0.3, batch_size=128, bptt=35, epochs=10, lr=3e-3,
                          schedule="cosine", warmup=50, **_ADAPTIVE),
    "large": TrainConfig(layers=2, embedding_size=400, hidden_size=1150, dropout=0.4,
                         input_dropout=0.4, embed_dropout=0.1, weight_dropout=0.4, ar=1.0,
                         batch_size=64, bptt=70, vary_bptt=True, epochs=40, lr=2e-3,
                         schedule="cosine", warmup=200, lr_floor=0.02,
                         output="adaptive", cutoffs=(2000, 5000), div_value=4.0),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A preset with some fields replaced (``None`` values are ignored)."""
    if name not in PRESETS:
        raise PocketLMError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name],
                               **{k: v for k, v in overrides.items() if v is not None})


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; an unavailable CUDA request is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PocketLMError(f"--device {name}: CUDA is not available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise PocketLMError(f"--device {name!r} is not a torch device; use auto, cpu or "
                            f"cuda") from exc


def _optimizer(model: RNNLM, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    kwargs: dict[str, Any] = {"fused": True} if next(model.parameters()).is_cuda else {}
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.lr, betas=(0.9, 0.99), **kwargs)


def environment(device: torch.device) -> dict[str, Any]:
    """Where training ran: device name and torch/CUDA/cuDNN versions."""
    env: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


def train(config: TrainConfig, data_dir: str | os.PathLike[str], out: str | os.PathLike[str],
          overwrite: bool = False) -> dict[str, Any]:
    """Run the training stage into ``out`` (written atomically); return the manifest."""
    check_output_folder(out, overwrite)
    data = read_manifest(data_dir, "data")
    train_ids = load_split(data_dir, "train", data)
    valid_ids = load_split(data_dir, "valid", data)
    device = resolve_device(config.device)
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model_config = config.model_config(int(data["vocab_size"]))
    if get_output(model_config.output).uses_cutoffs:
        check_frequency_order(np.bincount(train_ids, minlength=model_config.vocab_size))
    model = RNNLM(model_config).to(device)
    optimizer = _optimizer(model, config)
    rows = torch.from_numpy(batchify(train_ids, config.batch_size)).to(device)   # (B, N)
    stream = torch.from_numpy(np.asarray(train_ids, dtype=np.int64)).to(device)  # (N,)
    starts = torch.from_numpy(np.flatnonzero(np.asarray(train_ids)[:-1] == EOS_ID)).to(device)
    rng = np.random.default_rng(config.seed)
    have_valid = len(valid_ids) // config.eval_batch_size >= 2
    if not have_valid:
        log.warning("validation split too small to evaluate; keeping the last epoch")
    per_epoch = epoch_windows(len(train_ids), rows.shape[1], config.batch_size, config.bptt,
                              config.windows)
    total_steps = config.max_steps or per_epoch * config.epochs
    average = WeightAverage(model, config.ema) if config.ema else None
    n_params = sum(p.numel() for p in model.parameters())
    log.info("train: %s %dx%d %s output (%.2fM parameters) on %s%s, %d %s windows of %dx%d "
             "per epoch", config.cell, config.layers, config.hidden_size, config.output,
             n_params / 1e6, device, " bf16" if use_bf16 else "", per_epoch, config.windows,
             config.batch_size, config.bptt)
    history: list[dict[str, Any]] = []
    best: float = math.inf
    best_epoch = 0
    step = 0
    train_seconds = 0.0
    peak_lr = config.lr
    started = time.perf_counter()
    with atomic_folder(out, overwrite) as tmp:
        for epoch in range(1, config.epochs + 1):
            model.train()
            state = model.init_state(config.batch_size, device)
            loss_sum = torch.zeros((), device=device)
            tokens = epoch_steps = 0
            t0 = time.perf_counter()
            windows = (verse_windows(stream, starts, config.batch_size, config.bptt,
                                     config.vary_bptt, rng) if config.windows == "verse" else
                       stream_windows(rows, config.bptt, config.vary_bptt, rng))
            for x, y, reset in windows:                                   # (B, T) each
                state = model.init_state(x.shape[0], device) if reset else detach_state(state)
                lr = lr_at(step, total_steps, peak_lr, config.warmup, config.schedule,
                           config.lr_floor) * y.shape[1] / config.bptt
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, state = _window_loss(model, x, y, state, config.ar, use_bf16, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
                if average is not None:
                    average.update()
                loss_sum += loss.detach()
                tokens += y.numel()
                epoch_steps += 1
                step += 1
                if config.log_every and step % config.log_every == 0:
                    log.info("epoch %d step %d: train loss %.3f, %.0f tokens/s", epoch, step,
                             loss.item(), tokens / (time.perf_counter() - t0))
                if config.max_steps and step >= config.max_steps:
                    break
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            train_loss = float(loss_sum) / max(1, epoch_steps)
            record: dict[str, Any] = {
                "epoch": epoch, "steps": epoch_steps, "train_loss": train_loss,
                "train_ppl": math.exp(min(train_loss, 50)),
                "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
                "tokens_per_s": round(tokens / seconds, 1),
            }
            evaluated = average.averaged() if average is not None else model
            if have_valid:
                nll, count = stream_nll_torch(evaluated, valid_ids, config.eval_batch_size,
                                              device=device)
                record["valid_ppl"] = math.exp(nll / count)
            record["elapsed"] = round(time.perf_counter() - started, 3)
            history.append(record)
            log.info("epoch %d: train ppl %.2f, valid ppl %s, %.0f tokens/s, %.1f s", epoch,
                     record["train_ppl"], f"{record.get('valid_ppl', float('nan')):.2f}",
                     record["tokens_per_s"], seconds)
            score = record.get("valid_ppl", -epoch)
            if score < best:
                best, best_epoch = score, epoch
                save_weights(evaluated, tmp / WEIGHTS)
            elif config.schedule == "plateau":
                peak_lr *= config.lr_decay
            with open(tmp / METRICS, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if config.max_steps and step >= config.max_steps:
                break
        shutil.copyfile(Path(data_dir) / data["tokenizer"], tmp / TOKENIZER)
        test_ppl = None
        test_ids = load_split(data_dir, "test", data)
        if len(test_ids) // config.eval_batch_size >= 2:
            load_weights(model, tmp / WEIGHTS)
            nll, count = stream_nll_torch(model, test_ids, config.eval_batch_size, device=device)
            test_ppl = math.exp(nll / count)
        best_record = history[best_epoch - 1]
        body = {
            "model": asdict(model_config),
            "config": asdict(config),
            "data": {"path": str(Path(data_dir).resolve()),
                     "manifest_sha256": sha256_file(Path(data_dir) / "manifest.json"),
                     "vocab_size": data["vocab_size"], "splits": {
                         s: {"tokens": v["tokens"]} for s, v in data["splits"].items()}},
            "state": {"names": list(model.cell.state_names),
                      "shape": [model_config.layers, "batch", model_config.hidden_size]},
            "parameters": n_params,
            "metrics": {"best_epoch": best_epoch, "valid_ppl": best_record.get("valid_ppl"),
                        "test_ppl": test_ppl, "epochs": len(history), "steps": step,
                        "train_seconds": round(train_seconds, 3),
                        "tokens_per_s": round(sum(h["tokens_per_s"] * h["seconds"]
                                                  for h in history) / max(train_seconds, 1e-9),
                                              1)},
            "environment": environment(device),
            "precision": "bf16" if use_bf16 else "fp32",
            "versions": package_versions("torch", "safetensors", "numpy"),
        }
        manifest = write_manifest(tmp, "checkpoint", body, [WEIGHTS, TOKENIZER, METRICS])
    log.info("train: best valid ppl %s at epoch %d; test ppl %s", best_record.get("valid_ppl"),
             best_epoch, test_ppl)
    return manifest


def _window_loss(model: RNNLM, x: torch.Tensor, y: torch.Tensor, state: tuple[torch.Tensor, ...],
                 ar: float, use_bf16: bool, device: torch.device
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Mean NLL of one window (plus ``ar`` times the mean squared feature, if set) and the
    state after it."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        features, state = model.features(x, state)                      # (B, T, D)
        loss = model.loss(features, y)
    if ar:
        loss = loss + ar * features.float().pow(2).mean()
    return loss, state


def save_weights(model: RNNLM, path: Path) -> None:
    """Write the weights as safetensors: contiguous CPU copies (cuDNN packs RNN weights into one
    shared buffer, which safetensors refuses), the tied decoder weight stored once."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().to("cpu", copy=True).contiguous()
               for name, t in model.state_dict().items()
               if not (model.config.tied and name == "decoder.weight")}
    save_file(tensors, str(path), metadata={"format": "pt", "producer": "pocketlm"})
    os.chmod(path, umask_mode(0o666))  # safetensors creates 0600; match the folder's other files


def load_weights(model: RNNLM, path: Path) -> None:
    """Load weights written by :func:`save_weights` into ``model`` (on any device)."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    result = model.load_state_dict(tensors, strict=False)
    missing = set(result.missing_keys)
    # A tied matrix is stored under one of its two names (safetensors' save_model keeps
    # decoder.weight, save_weights embedding.weight): one may be absent, not both.
    shared = {"decoder.weight", "embedding.weight"}
    if model.config.tied and len(missing & shared) == 1:
        missing -= shared
    if missing or result.unexpected_keys:
        raise PocketLMError(f"{path}: weights do not match the model (missing "
                            f"{sorted(missing)}, unexpected {sorted(result.unexpected_keys)})")


def load_checkpoint(checkpoint_dir: str | os.PathLike[str],
                    device: str | torch.device = "cpu") -> tuple[RNNLM, dict[str, Any]]:
    """Rebuild the model a checkpoint folder describes and load its weights (no pickle)."""
    manifest = read_manifest(checkpoint_dir, "checkpoint")
    model = RNNLM(ModelConfig(**manifest["model"]))
    try:
        load_weights(model, Path(checkpoint_dir) / WEIGHTS)
    except Exception as exc:
        raise PocketLMError(f"{Path(checkpoint_dir) / WEIGHTS}: weights do not fit the model "
                            f"in its manifest ({exc}); re-run pocketlm train") from exc
    model.to(device).eval()
    return model, manifest
