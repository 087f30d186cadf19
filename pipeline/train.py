"""Stage 2, train: fit a recurrent LM on the token ids an ingest folder holds.

Reads only the data folder (its manifest, ``tokenizer.json`` and ``*.bin``, memory-mapped) with
numpy and torch, so it runs on GPU hosts without ``datasets``. Writes the checkpoint folder in
place while it runs (layout in :mod:`pocketlm.pipeline.checkpoint` and docs/artifacts.md), so a
run killed at any moment resumes with ``pocketlm train --resume DIR``.

One optimiser step, the pieces other recipes replace::

    length  = window_length(step, config)                       tokens in this window
    lr      = learning_rate(step, config, decays, total, length) warmup, cosine or plateau
    x, y    = rows.window(position, length, device, ...)        (B, T) int64 each, copied per step
    loss, state = window_loss(net, x, y, state, bf16, ar)       mean nats per target (+ AR)
    extra   = extra_state(...)  /  restore_extra_state(...)     EMA weights in checkpoints

``rows`` is a :class:`~pocketlm.pipeline.batches.TokenRows` (``windows="stream"``: state carried
from window to window) or a :class:`~pocketlm.pipeline.batches.LineWindows` (``"verse"``: every
window starts at line boundaries from the zero state, as sentence scoring does). The output
layer (``pipeline/outputs.py``) computes the loss without the ``[B, T, V]`` distribution.

With torchrun (``WORLD_SIZE`` > 1) every process trains a contiguous block of
``batch_size / WORLD_SIZE`` rows under DistributedDataParallel (NCCL on GPUs, gloo on the CPU),
so N processes take the same optimiser steps as one process with the whole batch; rank 0
evaluates and writes the folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketlm.runtime.artifact import (EOS_ID, PocketLMError, atomic_folder, check_output_folder,
                                       package_versions, read_manifest, sha256_file,
                                       write_manifest)

from .batches import LineWindows, TokenRows
from .cells import CELLS, State
from .checkpoint import (CURVE, LAST, METRICS, TOKENIZER, WEIGHTS, check_resume,
                         load_checkpoint, load_state_into, load_training_state,
                         load_weights, optimizer_state, perplexity, restore_optimizer,
                         restore_rng, rng_state, save_training_state, save_weights,
                         weight_tensors, write_bytes_atomic, write_curve)
from .evaluate import stream_nll_torch
from .ingest import load_split
from .model import RNNLM, ModelConfig, detach_state
from .outputs import check_frequency_order, get_output
from .recipe import WeightAverage, lr_at

log = logging.getLogger(__name__)

__all__ = ["PRESETS", "TrainConfig", "TrainingStopped", "learning_rate", "load_checkpoint",
           "load_weights", "preset", "resolve_device", "save_weights", "train",
           "window_length", "window_loss"]


class TrainingStopped(PocketLMError):
    """Training stopped on a non-finite loss; the folder keeps the last good checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    """Model shape and training recipe. ``max_steps`` > 0 stops early (smoke runs);
    ``precision`` is ``auto`` (bf16 autocast on CUDA and on CPUs with hardware bf16, fp32
    elsewhere), ``fp32`` or ``bf16``.

    Long runs: validation every ``eval_every`` steps (0: at each epoch end) on a fixed sample of
    ``eval_tokens`` tokens (0: the whole split; the end-of-run test figure uses the same bound);
    a checkpoint every ``save_every`` steps and every ``save_minutes`` minutes (and at each
    epoch end); stop after ``max_minutes`` of wall time, when validation perplexity reaches
    ``target_ppl``, or after ``patience`` evaluations without improvement."""

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
    # long runs: evaluation, checkpoints, budgets (0 turns each off)
    eval_every: int = 0
    eval_tokens: int = 100_000
    save_every: int = 0
    save_minutes: float = 10.0
    max_minutes: float = 0.0
    target_ppl: float = 0.0
    patience: int = 0
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
        if min(self.eval_every, self.eval_tokens, self.save_every, self.save_minutes,
               self.max_minutes, self.target_ppl, self.patience) < 0:
            raise PocketLMError("eval_every, eval_tokens, save_every, save_minutes, "
                                "max_minutes, target_ppl and patience must be >= 0 (0: off)")

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
#:   number of steps (14 epochs x 381 verse windows), so it is deterministic, not wall-clock
#:   bound.
#: * ``small``: the 2x200 LSTM of pytorch/examples' CPU default, with pocketlm's recipe.
#: * ``medium``: GPU, fast: aims at validation stream perplexity 29.4 within 9 s on an H100.
#: * ``large``: GPU, quality: <= 25M parameters, the AWD-style regularised recipe, aiming at
#:   test perplexity <= 19.5 within 5 minutes on an H100.
_ADAPTIVE = dict(output="adaptive", cutoffs=(1000, 4000), div_value=4.0)
PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(layers=1, embedding_size=128, hidden_size=208, dropout=0.35,
                        input_dropout=0.2, batch_size=64, bptt=35, epochs=14, lr=8e-3,
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


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 autocast
    trains about 1.5x (two threads) to 1.9x (one thread) faster than fp32 with the same
    perplexity (docs/stages.md, "GPU" paragraph of the train stage)."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None),
              getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def autocast_bf16(precision: str, device: torch.device) -> bool:
    """``auto``: bf16 autocast on CUDA and on CPUs with hardware bf16, fp32 elsewhere."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())
    return precision == "bf16"


def environment(device: torch.device) -> dict[str, Any]:
    """Where training ran: device name and torch/CUDA/cuDNN versions."""
    env: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


# --- the pieces of one step ----------------------------------------------------------------------


def learning_rate(step: int, config: TrainConfig, plateau_decays: int, total_steps: int,
                  length: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``total_steps``: linear warmup over
    ``warmup`` steps, then ``schedule`` (``plateau``: ``lr`` times ``lr_decay`` for every epoch
    whose validation perplexity did not improve; ``cosine``: down to ``lr_floor * lr`` at the
    last step). With ``vary_bptt`` it is scaled by ``length / bptt`` so every token weighs the
    same."""
    peak = config.lr * (config.lr_decay ** plateau_decays if config.schedule == "plateau" else 1)
    lr = lr_at(step, total_steps, peak, config.warmup, config.schedule, config.lr_floor)
    return lr * length / config.bptt if config.vary_bptt else lr


def window_length(step: int, config: TrainConfig) -> int:
    """Tokens in the window of step ``step`` (the last window of a pass may be shorter): ``bptt``
    or, with ``vary_bptt``, drawn around it (Merity et al., 2018: ``bptt`` with probability 0.95
    else ``bptt / 2``, plus normal noise of sd 5, at least 5) from a generator seeded by
    (seed, step), so a resumed run draws the same lengths."""
    if not config.vary_bptt:
        return config.bptt
    rng = np.random.default_rng([config.seed, step])
    base = config.bptt if rng.random() < 0.95 else config.bptt / 2
    return max(5, int(round(rng.normal(base, 5))))


class LossNet(nn.Module):
    """The model with its training loss as ``forward``, so DistributedDataParallel (which syncs
    the gradients of what its ``forward`` computed) wraps the whole step."""

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, state: State, use_bf16: bool, ar: float
                ) -> tuple[torch.Tensor, State]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            features, state = self.model.features(x, state)                # (B, T, D)
            loss = self.model.loss(features, y)
        if ar:
            loss = loss + ar * features.float().pow(2).mean()
        return loss, state


def window_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, state: State,
                use_bf16: bool, ar: float = 0.0) -> tuple[torch.Tensor, State]:
    """Mean negative log-likelihood (nats per target) of one window, plus ``ar`` times the mean
    squared feature (activation regularisation), and the state after it. ``net`` is a
    :class:`LossNet`, or DistributedDataParallel around one."""
    return net(x, y, state, use_bf16, ar)


def extra_state(average: WeightAverage | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Further named tensors and JSON a checkpoint carries: the weight average, if any."""
    if average is None:
        return {}, {}
    return ({f"ema.{i}": t for i, t in enumerate(average.shadow)},
            {"ema": len(average.shadow)})


def restore_extra_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                        average: WeightAverage | None) -> None:
    """Inverse of :func:`extra_state`, called on resume."""
    if average is not None and meta.get("ema") == len(average.shadow):
        for i, shadow in enumerate(average.shadow):
            shadow.copy_(tensors[f"ema.{i}"])


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Processes:
    """Where this process sits among torchrun's (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_backend(device: torch.device, local_world: int) -> str:
    """NCCL when every local process has a GPU of its own, else gloo (CPU, or several
    processes sharing a GPU, which NCCL refuses)."""
    if device.type == "cuda" and local_world <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


def _processes(config: TrainConfig) -> Processes:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(config.device)
    if world == 1:
        return Processes(device=device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    backend = dist_backend(device, local_world)
    if device.type == "cuda":
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if rank:
        logging.getLogger("pocketlm").setLevel(logging.WARNING)
    return Processes(rank, world, device, backend)


def _gather_rows(tensor: torch.Tensor, procs: Processes) -> torch.Tensor:
    """Concatenate every process's ``[layers, rows, hidden]`` state along the rows."""
    if procs.world == 1:
        return tensor
    import torch.distributed as dist

    local = tensor.contiguous() if procs.backend == "nccl" else tensor.cpu().contiguous()
    parts = [torch.empty_like(local) for _ in range(procs.world)]
    dist.all_gather(parts, local)
    return torch.cat(parts, dim=1)


def _step_sync(loss: torch.Tensor, flags: int, procs: Processes) -> tuple[float, int]:
    """The loss averaged over processes and rank 0's stop/save flags, in one reduction."""
    if procs.world == 1:
        return float(loss.item()), flags
    import torch.distributed as dist

    buf = torch.stack([loss.detach().float(), torch.tensor(float(flags), device=loss.device)])
    if procs.backend == "gloo":
        buf = buf.cpu()
    dist.all_reduce(buf)
    return float(buf[0]) / procs.world, int(buf[1])


def _share(run: RunState, procs: Processes) -> RunState:
    """Rank 0's bookkeeping, given to every process (after an evaluation)."""
    if procs.world == 1:
        return run
    import torch.distributed as dist

    box = [asdict(run)]
    dist.broadcast_object_list(box, src=0)
    return RunState(**box[0])


def _barrier(procs: Processes) -> None:
    if procs.world > 1:
        import torch.distributed as dist

        dist.barrier()


# --- bookkeeping ---------------------------------------------------------------------------------


@dataclass
class RunState:
    """Where a run stands; saved as JSON in every checkpoint, so a resume continues it."""

    step: int = 0
    epoch: int = 1
    position: int = 0
    epoch_steps: int = 0
    plateau_decays: int = 0
    best: float | None = None
    best_step: int = 0
    best_epoch: int = 0
    stale_evals: int = 0
    elapsed: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    tokens: int = 0
    loss_sum: float = 0.0
    loss_steps: int = 0
    since_tokens: int = 0
    since_seconds: float = 0.0
    evaluated_step: int = -1
    resumes: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


SAVE_DUE, TIME_UP = 1, 2


def train(config: TrainConfig, data_dir: str | os.PathLike[str], out: str | os.PathLike[str],
          overwrite: bool = False, resume: bool = False,
          progress: bool | None = None) -> dict[str, Any]:
    """Run the training stage into ``out``; return its manifest.

    ``resume=True`` continues the run whose checkpoint folder is ``out`` (same model shape and
    data folder, checked). ``progress`` shows a progress bar (default: when stderr is a terminal
    and logging shows info). Raises :class:`TrainingStopped` when the loss becomes NaN or
    infinite, after writing the folder with the last good state.
    """
    entered = time.perf_counter()
    out = Path(out)
    data = read_manifest(data_dir, "data")
    vocab_size = int(data["vocab_size"])
    model_config = config.model_config(vocab_size)          # bad settings fail before any write
    train_ids = load_split(data_dir, "train", data)                # memory-mapped
    if get_output(model_config.output).uses_cutoffs:
        check_frequency_order(np.bincount(train_ids, minlength=vocab_size))
    procs = _processes(config)
    device = procs.device
    saved: tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None = None
    if resume:
        saved = load_training_state(out / LAST)
        check_resume(saved[1], asdict(config), data_dir, vocab_size, out)
    else:
        check_output_folder(out, overwrite)
        _barrier(procs)
        if procs.main:
            with atomic_folder(out, overwrite) as tmp:
                shutil.copyfile(Path(data_dir) / data["tokenizer"], tmp / TOKENIZER)
        _barrier(procs)
    valid_ids = load_split(data_dir, "valid", data)
    use_bf16 = autocast_bf16(config.precision, device)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = RNNLM(model_config).to(device)
    if procs.rank:
        torch.manual_seed(config.seed + 7919 * procs.rank)        # own dropout masks per process
    net: nn.Module = LossNet(model)
    if procs.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # an adaptive tail cluster without a target in a window gets no gradient
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                      else None,
                                      find_unused_parameters=get_output(
                                          model_config.output).uses_cutoffs)
    optimizer = _optimizer(model, config)
    average = WeightAverage(model, config.ema) if config.ema else None
    rows: TokenRows | LineWindows
    if config.windows == "verse":
        starts = np.flatnonzero(np.asarray(train_ids[:-1]) == EOS_ID)
        rows = LineWindows(train_ids, config.batch_size, starts, config.seed,
                           shard=procs.rank, shards=procs.world)
    else:
        rows = TokenRows(train_ids, config.batch_size, shard=procs.rank, shards=procs.world)
    have_valid = len(valid_ids) // config.eval_batch_size >= 2
    if not have_valid:
        log.warning("validation split too small to evaluate; keeping the last weights")
    run = RunState()
    carried: State | None = None
    if saved is not None:
        groups, meta = saved
        load_state_into(model, groups["model"], str(out / LAST))
        if average is not None:
            average = WeightAverage(model, config.ema)     # from the loaded weights
        restore_optimizer(optimizer, groups.get("optimizer", {}), meta["optimizer"])
        run = RunState(**meta["run"])
        run.resumes += 1
        per = rows.rows
        carried = tuple(groups["carried"][name][:, procs.rank * per:(procs.rank + 1) * per]
                        .to(device) for name in model.cell.state_names)
        rng = groups.get(f"rng{procs.rank}")
        if meta["world"] == procs.world and rng is not None:
            restore_rng(rng, device)
        else:
            log.warning("resuming with %d processes instead of %d: dropout draws differ from "
                        "the interrupted run", procs.world, meta["world"])
        restore_extra_state(groups.get("extra", {}), meta.get("extra", {}), average)
        log.info("resume: %s at step %d (epoch %d, window position %d)", out, run.step,
                 run.epoch, run.position)
    n_params = sum(p.numel() for p in model.parameters())
    per_epoch = rows.count_windows(config.bptt)
    total_steps = config.max_steps or per_epoch * config.epochs     # the schedule's length
    log.info("train: %s %dx%d %s output (%.2fM parameters) on %s%s%s, %d %s windows of %dx%d "
             "per epoch", config.cell, config.layers, config.hidden_size, config.output,
             n_params / 1e6, device, " bf16" if use_bf16 else "",
             f" x{procs.world} processes" if procs.world > 1 else "", per_epoch, config.windows,
             config.batch_size, config.bptt)

    saved_steps: list[int] = [run.step] if saved is not None else []
    segment: dict[str, Any] = {"startup_seconds": None}      # call → end of its first step
    segment_start = time.perf_counter()
    elapsed_before = run.elapsed
    last_save = segment_start

    def now_elapsed() -> float:
        return elapsed_before + time.perf_counter() - segment_start

    def sync_device() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def evaluate_now(epoch_end: bool) -> bool:
        """Close a metrics record (train loss since the last one, validation perplexity);
        keep the best weights; return whether validation improved."""
        nonlocal run
        improved = False
        if procs.main:
            t0 = time.perf_counter()
            record: dict[str, Any] = {"epoch": run.epoch, "step": run.step,
                                      "steps": run.loss_steps}
            train_loss = run.loss_sum / max(1, run.loss_steps)
            record.update(train_loss=train_loss, train_ppl=perplexity(train_loss),
                          lr=optimizer.param_groups[0]["lr"],
                          seconds=round(run.since_seconds, 3),
                          tokens_per_s=round(run.since_tokens / max(run.since_seconds, 1e-9), 1))
            evaluated = average.averaged() if average is not None else model
            if have_valid:
                nll, count = stream_nll_torch(evaluated, valid_ids, config.eval_batch_size,
                                              device=device, max_tokens=config.eval_tokens)
                record["valid_ppl"] = math.exp(nll / count)
                model.train()
            score = record.get("valid_ppl", -float(run.step))
            if run.best is None or score < run.best:
                improved = True
                run.best, run.best_step, run.best_epoch = score, run.step, run.epoch
                run.stale_evals = 0
                save_weights(evaluated, out / WEIGHTS)
            else:
                run.stale_evals += 1
            if epoch_end and not improved:
                run.plateau_decays += 1
            run.eval_seconds += time.perf_counter() - t0
            run.elapsed = now_elapsed()
            record["elapsed"] = round(run.elapsed, 3)
            run.history.append(record)
            run.loss_sum, run.loss_steps, run.since_tokens, run.since_seconds = 0.0, 0, 0, 0.0
            run.evaluated_step = run.step
            log.info("epoch %d step %d: train ppl %.2f, valid ppl %s, %.0f tokens/s", run.epoch,
                     run.step, record["train_ppl"],
                     f"{record.get('valid_ppl', float('nan')):.2f}", record["tokens_per_s"])
        run = _share(run, procs)
        return run.best_step == run.step

    def budget_stop() -> str | None:
        last = run.history[-1] if run.history else {}
        if config.target_ppl and last.get("valid_ppl", math.inf) <= config.target_ppl:
            return "target_ppl"
        if config.patience and run.stale_evals >= config.patience:
            return "plateau"
        return None

    def save(status: str, reason: str | None = None, curve: bool = False,
             final_metrics: dict[str, Any] | None = None, state: bool = True) -> None:
        nonlocal last_save
        if state:
            saved_steps.append(run.step)
        t0 = time.perf_counter()
        assert carried is not None
        groups_out: dict[str, dict[str, torch.Tensor]] = {}
        rngs = [rng_state(device)]
        if state:
            groups_out["carried"] = {name: _gather_rows(t, procs)
                                     for name, t in zip(model.cell.state_names, carried)}
            if procs.world > 1:
                import torch.distributed as dist

                rngs = [None] * procs.world  # type: ignore[list-item]
                dist.all_gather_object(rngs, rng_state(device))
        if procs.main:
            run.elapsed = now_elapsed()
            if not (out / WEIGHTS).exists():
                save_weights(model, out / WEIGHTS)          # no evaluation yet: the latest
            if state:
                opt_tensors, opt_meta = optimizer_state(optimizer)
                ex_tensors, ex_meta = extra_state(average)
                groups_out.update(model=weight_tensors(model), optimizer=opt_tensors,
                                  extra=ex_tensors)
                for rank, states in enumerate(rngs):
                    groups_out[f"rng{rank}"] = states
                meta = {"config": asdict(config), "model": asdict(model_config),
                        "data": _data_reference(data_dir, data), "run": asdict(run),
                        "optimizer": opt_meta, "extra": ex_meta, "world": procs.world}
                save_training_state(out / LAST, groups_out, meta)
            write_bytes_atomic(out / METRICS, "".join(json.dumps(r) + "\n"
                                                      for r in run.history).encode())
            files = [WEIGHTS, LAST, TOKENIZER, METRICS]
            if curve and run.history:
                write_curve(run.history, out / CURVE)
            if (out / CURVE).exists():
                files.append(CURVE)
            body = _manifest_body(config, model_config, data_dir, data, model, n_params, run,
                                  procs, use_bf16, status, reason, final_metrics, segment)
            write_manifest(out, "checkpoint", body, files)
            log.debug("saved %s at step %d (%.2f s)", out, run.step, time.perf_counter() - t0)
        last_save = time.perf_counter()
        _barrier(procs)

    bar = _progress_bar(progress, procs, total=min(config.max_steps or math.inf,
                                                   config.epochs * per_epoch), initial=run.step)
    stop: str | None = None
    nan_loss: float | None = None
    try:
        while run.epoch <= config.epochs and stop is None:
            model.train()
            if run.position == 0 or carried is None or rows.resets:
                carried = model.init_state(rows.rows, device)
            t_mark = time.perf_counter()
            while not rows.done(run.position):
                if config.max_steps and run.step >= config.max_steps:
                    stop = "max_steps"       # a resumed run that had reached its budget
                    break
                length = window_length(run.step, config)
                lr = learning_rate(run.step, config, run.plateau_decays, total_steps, length)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = rows.window(run.position, length, device, index=run.epoch_steps,
                                   epoch=run.epoch)
                state_in = (model.init_state(rows.rows, device) if rows.resets
                            else detach_state(carried))
                loss, new_state = window_loss(net, x, y, state_in, use_bf16, config.ar)
                flags = 0
                if procs.main:
                    if config.max_minutes and now_elapsed() >= config.max_minutes * 60:
                        flags |= TIME_UP
                    if config.save_minutes and (time.perf_counter() - last_save
                                                >= config.save_minutes * 60):
                        flags |= SAVE_DUE
                loss_value, flags = _step_sync(loss, flags, procs)
                if not math.isfinite(loss_value):
                    nan_loss, stop = loss_value, "nan"     # state and weights stay as before
                    break
                carried = new_state
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
                if average is not None:
                    average.update()
                if segment["startup_seconds"] is None:
                    sync_device()
                    segment["startup_seconds"] = round(time.perf_counter() - entered, 3)
                run.position += y.shape[1]
                run.step += 1
                run.epoch_steps += 1
                run.loss_sum += loss_value
                run.loss_steps += 1
                run.tokens += y.numel() * procs.world
                run.since_tokens += y.numel() * procs.world
                if bar is not None:
                    bar.update(1)
                    seconds = run.since_seconds + time.perf_counter() - t_mark
                    bar.set_postfix(epoch=run.epoch, loss=f"{loss_value:.3f}",
                                    tok_s=f"{run.since_tokens / max(seconds, 1e-9):.0f}",
                                    refresh=False)
                elif config.log_every and run.step % config.log_every == 0:
                    log.info("epoch %d step %d: train loss %.3f", run.epoch, run.step,
                             loss_value)
                if config.max_steps and run.step >= config.max_steps:
                    stop = "max_steps"
                elif flags & TIME_UP:
                    stop = "max_minutes"
                at_end = rows.done(run.position)
                if config.eval_every and run.step % config.eval_every == 0 and not at_end:
                    sync_device()
                    run.since_seconds += time.perf_counter() - t_mark
                    run.train_seconds += time.perf_counter() - t_mark
                    evaluate_now(epoch_end=False)
                    stop = stop or budget_stop()
                    t_mark = time.perf_counter()
                if not at_end and (stop or flags & SAVE_DUE or (
                        config.save_every and run.step % config.save_every == 0)):
                    sync_device()
                    run.since_seconds += time.perf_counter() - t_mark
                    run.train_seconds += time.perf_counter() - t_mark
                    if stop and run.evaluated_step != run.step:
                        evaluate_now(epoch_end=False)
                    save("running")
                    t_mark = time.perf_counter()
                if stop:
                    break
            if stop == "nan":
                break
            sync_device()
            if rows.done(run.position):
                run.since_seconds += time.perf_counter() - t_mark
                run.train_seconds += time.perf_counter() - t_mark
                if run.evaluated_step != run.step:
                    evaluate_now(epoch_end=True)
                stop = stop or budget_stop()
                run.epoch += 1
                run.position = 0
                run.epoch_steps = 0
                save("running", curve=True)
    finally:
        if bar is not None:
            bar.close()

    if stop == "nan":
        first_state = not saved_steps
        save("stopped", reason=f"loss became {nan_loss} at step {run.step + 1}", curve=True,
             state=first_state)
        saved_step = saved_steps[-1]
        _finish(procs)
        raise TrainingStopped(
            f"training stopped: the loss became {nan_loss} at step {run.step + 1} (epoch "
            f"{run.epoch}); {out} keeps the last good checkpoint (step {saved_step}"
            f"{', saved now' if first_state else ''}); lower --lr or --clip and continue with "
            f"`pocketlm train --resume {out} --lr ...`, or start again")

    test_ppl = None
    if procs.main:
        t0 = time.perf_counter()
        test_ids = load_split(data_dir, "test", data)
        if len(test_ids) // config.eval_batch_size >= 2:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                best_model = RNNLM(model_config).to(device)   # leaves the saved RNG as it was
            load_weights(best_model, out / WEIGHTS)
            nll, count = stream_nll_torch(best_model, test_ids, config.eval_batch_size,
                                          device=device, max_tokens=config.eval_tokens)
            test_ppl = math.exp(nll / count)
        run.eval_seconds += time.perf_counter() - t0
    reason = stop or "epochs"
    save("finished", reason=reason, curve=True, final_metrics={"test_ppl": test_ppl})
    manifest = read_manifest(out, "checkpoint", verify=False)
    _finish(procs)
    metrics = manifest["metrics"]
    log.info("train: stopped by %s at step %d; best valid ppl %s at step %d; test ppl %s",
             reason, run.step, metrics["valid_ppl"], run.best_step, test_ppl)
    return manifest


def _finish(procs: Processes) -> None:
    if procs.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def _progress_bar(progress: bool | None, procs: Processes, total: float, initial: int) -> Any:
    if progress is None:
        progress = sys.stderr.isatty() and logging.getLogger("pocketlm").isEnabledFor(
            logging.INFO)
    if not progress or not procs.main:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=None if math.isinf(total) else int(total), initial=initial, unit="step",
                file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


def _data_reference(data_dir: str | os.PathLike[str], data: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(Path(data_dir).resolve()),
            "manifest_sha256": sha256_file(Path(data_dir) / "manifest.json"),
            "vocab_size": data["vocab_size"],
            "splits": {s: {"tokens": v["tokens"]} for s, v in data["splits"].items()}}


def _manifest_body(config: TrainConfig, model_config: ModelConfig,
                   data_dir: str | os.PathLike[str], data: dict[str, Any], model: RNNLM,
                   n_params: int, run: RunState, procs: Processes, use_bf16: bool, status: str,
                   reason: str | None, final_metrics: dict[str, Any] | None,
                   segment: dict[str, Any]) -> dict[str, Any]:
    best = next((r for r in run.history if r["step"] == run.best_step), {})
    return {
        "model": asdict(model_config),
        "config": asdict(config),
        "data": _data_reference(data_dir, data),
        "state": {"names": list(model.cell.state_names),
                  "shape": [model_config.layers, "batch", model_config.hidden_size]},
        "parameters": n_params,
        "status": {"state": status, "reason": reason, "step": run.step, "epoch": run.epoch,
                   "resumes": run.resumes, "processes": procs.world, **segment},
        "metrics": {"best_epoch": run.best_epoch, "best_step": run.best_step,
                    "valid_ppl": best.get("valid_ppl"),
                    "test_ppl": (final_metrics or {}).get("test_ppl"),
                    "epochs": max((r["epoch"] for r in run.history), default=0),
                    "steps": run.step, "train_seconds": round(run.train_seconds, 3),
                    "eval_seconds": round(run.eval_seconds, 3),
                    "elapsed": round(run.elapsed, 3),
                    "tokens_per_s": round(run.tokens / max(run.train_seconds, 1e-9), 1)},
        "environment": environment(procs.device),
        "precision": "bf16" if use_bf16 else "fp32",
        "versions": package_versions("torch", "safetensors", "numpy"),
    }


if __name__ == "__main__":   # torchrun --nproc-per-node N -m pocketlm.pipeline.train ...
    from .cli import train_main

    train_main()
