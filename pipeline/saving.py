"""Writing the checkpoint folder while a run goes on (the layout: :mod:`.checkpoint`), and
picking a run up from it (:func:`resume_run`).

:class:`RunState` is where a run stands (step, epoch, window position, metrics so far); every
checkpoint stores it, so a resume continues it. :class:`CheckpointWriter` writes one checkpoint:
every process hands in its carried state rows and RNG state, rank 0 writes the files::

    best weights (if none yet) ─▶ last.safetensors (weights, optimiser, carried state, RNG, EMA,
    run state) ─▶ metrics.jsonl ─▶ curve.png ─▶ manifest.json (status, metrics, hashes) last
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import package_versions, sha256_file, write_manifest

from . import distributed
from .cells import State
from .checkpoint import (CURVE, LAST, METRICS, TOKENIZER, WEIGHTS, SavedRun, load_state_into,
                         optimizer_state, restore_optimizer, restore_rng, rng_state,
                         save_training_state, save_weights, weight_tensors, write_bytes_atomic,
                         write_curve)
from .config import TrainConfig
from .device import environment
from .model import RNNLM, ModelConfig
from .recipe import WeightAverage

log = logging.getLogger(__name__)


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


def resume_run(saved: SavedRun, model: RNNLM, optimizer: torch.optim.Optimizer,
               average: WeightAverage | None, rows: int, procs: distributed.Processes
               ) -> tuple[RunState, State, WeightAverage | None]:
    """Continue the saved run in a fresh process: its weights, optimiser, RNG and EMA go into
    ``model``, ``optimizer`` and a new weight average; returns its run state (one more resume),
    this process's ``rows`` of the carried state and the weight average."""
    groups, meta = saved.groups, saved.meta
    load_state_into(model, groups["model"], str(saved.folder / LAST))
    if average is not None:
        average = WeightAverage(model, average.decay)              # from the loaded weights
    restore_optimizer(optimizer, groups.get("optimizer", {}), meta["optimizer"])
    run = RunState(**meta["run"])
    run.resumes += 1
    carried = tuple(groups["carried"][name][:, procs.rank * rows:(procs.rank + 1) * rows]
                    .to(procs.device) for name in model.cell.state_names)
    rng = groups.get(f"rng{procs.rank}")
    if meta["world"] == procs.world and rng is not None:
        restore_rng(rng, procs.device)
    else:
        log.warning("resuming with %d processes instead of %d: dropout draws differ from "
                    "the interrupted run", procs.world, meta["world"])
    restore_extra_state(groups.get("extra", {}), meta.get("extra", {}), average)
    log.info("resume: %s at step %d (epoch %d, window position %d)", saved.folder, run.step,
             run.epoch, run.position)
    return run, carried, average


def data_reference(data_dir: str | os.PathLike[str], data: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of its data folder: path, manifest hash, sizes."""
    return {"path": str(Path(data_dir).resolve()),
            "manifest_sha256": sha256_file(Path(data_dir) / "manifest.json"),
            "vocab_size": data["vocab_size"],
            "splits": {s: {"tokens": v["tokens"]} for s, v in data["splits"].items()}}


@dataclass
class CheckpointWriter:
    """Writes the checkpoint folder ``out`` of one training run (see the module docstring)."""

    out: Path
    config: TrainConfig
    model_config: ModelConfig
    data_dir: str | os.PathLike[str]
    data: dict[str, Any]
    model: RNNLM
    optimizer: torch.optim.Optimizer
    average: WeightAverage | None
    procs: distributed.Processes
    use_bf16: bool
    segment: dict[str, Any]

    def write(self, run: RunState, carried: State, status: str, reason: str | None = None,
              curve: bool = False, final_metrics: dict[str, Any] | None = None,
              state: bool = True) -> None:
        """One checkpoint at ``run``; ``state=False`` leaves ``last.safetensors`` as it is
        (the last good one, when the loss became NaN)."""
        procs, out, model = self.procs, self.out, self.model
        groups: dict[str, dict[str, torch.Tensor]] = {}
        rngs = [rng_state(procs.device)]
        if state:
            groups["carried"] = {name: distributed.gather_rows(t, procs)
                                 for name, t in zip(model.cell.state_names, carried)}
            rngs = distributed.gather_objects(rng_state(procs.device), procs)
        if procs.main:
            if not (out / WEIGHTS).exists():
                save_weights(model, out / WEIGHTS)          # no evaluation yet: the latest
            if state:
                opt_tensors, opt_meta = optimizer_state(self.optimizer)
                ex_tensors, ex_meta = extra_state(self.average)
                groups.update(model=weight_tensors(model), optimizer=opt_tensors,
                              extra=ex_tensors)
                for rank, states in enumerate(rngs):
                    groups[f"rng{rank}"] = states
                meta = {"config": self.config.to_dict(), "model": asdict(self.model_config),
                        "data": data_reference(self.data_dir, self.data), "run": asdict(run),
                        "optimizer": opt_meta, "extra": ex_meta, "world": procs.world}
                save_training_state(out / LAST, groups, meta)
            write_bytes_atomic(out / METRICS, "".join(json.dumps(r) + "\n"
                                                      for r in run.history).encode())
            files = [WEIGHTS, LAST, TOKENIZER, METRICS]
            if curve and run.history:
                write_curve(run.history, out / CURVE)
            if (out / CURVE).exists():
                files.append(CURVE)
            write_manifest(out, "checkpoint", self.manifest_body(run, status, reason,
                                                                 final_metrics), files)
        distributed.barrier(procs)

    def manifest_body(self, run: RunState, status: str, reason: str | None,
                      final_metrics: dict[str, Any] | None) -> dict[str, Any]:
        """The checkpoint manifest (files and hashes are added by ``write_manifest``)."""
        cfg = self.model_config
        best = next((r for r in run.history if r["step"] == run.best_step), {})
        return {
            "model": asdict(cfg),
            "config": self.config.to_dict(),
            "data": data_reference(self.data_dir, self.data),
            "state": {"names": list(self.model.cell.state_names),
                      "shape": [cfg.layers, graphs.BATCH, cfg.hidden_size]},
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "status": {"state": status, "reason": reason, "step": run.step, "epoch": run.epoch,
                       "resumes": run.resumes, "processes": self.procs.world, **self.segment},
            "metrics": {"best_epoch": run.best_epoch, "best_step": run.best_step,
                        "valid_ppl": best.get("valid_ppl"),
                        "test_ppl": (final_metrics or {}).get("test_ppl"),
                        "epochs": max((r["epoch"] for r in run.history), default=0),
                        "steps": run.step, "train_seconds": round(run.train_seconds, 3),
                        "eval_seconds": round(run.eval_seconds, 3),
                        "elapsed": round(run.elapsed, 3),
                        "tokens_per_s": round(run.tokens / max(run.train_seconds, 1e-9), 1)},
            "environment": environment(self.procs.device),
            "precision": "bf16" if self.use_bf16 else "fp32",
            "versions": package_versions("torch", "safetensors", "numpy"),
        }
