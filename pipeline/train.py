"""Stage 2, train: fit a recurrent LM on the token ids an ingest folder holds. This module is the
loop; beside it are the config and presets (``config.py``), the device (``device.py``), the
torchrun processes (``distributed.py``), checkpoint writing and resuming (``saving.py``) and
reading (``checkpoint.py``), the recipe (``recipe.py``), the windows (``batches.py``) and the
``--minutes`` plan (``budget.py``).

Reads only the data folder (manifest, ``tokenizer.json``, memory-mapped ``*.bin``), so it runs
on GPU hosts without ``datasets``. Writes the checkpoint folder in place while it runs, so a run
killed at any moment resumes with ``pocketlm train --resume DIR``. One optimiser step::

    length  = window_length(step, config)                       tokens in this window
    lr      = learning_rate(step, config, decays, total, length) warmup, cosine or plateau
    x, y    = rows.window(position, length, device, ...)        (B, T) int64 each, copied per step
    loss, state = window_loss(net, x, y, state, bf16, ar)       mean nats per target (+ AR)

``rows`` is a :class:`~pocketlm.pipeline.batches.TokenRows` (``windows="stream"``: state carried
from window to window) or a :class:`~pocketlm.pipeline.batches.LineWindows` (``"verse"``: every
window starts at line boundaries from the zero state, as sentence scoring does). A
:class:`Trainer` holds one run (model, optimiser, windows, :class:`RunState`, carried state):
``fit`` is the loop, ``evaluate`` and ``save`` what it does between steps.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketlm.runtime.artifact import (PocketLMError, atomic_folder, check_output_folder,
                                       read_manifest)

from . import distributed
from .distributed import SAVE_DUE, TIME_UP
from .batches import training_windows
from .budget import Budget, Probe, log_plan, plan_run, step_time
from .cells import State
from .checkpoint import TOKENIZER, WEIGHTS, SavedRun, perplexity, save_weights
from .config import TrainConfig
from .device import autocast_bf16, progress_bar, synchronize
from .evaluate import best_test_perplexity, stream_nll_torch
from .ingest import load_split
from .model import RNNLM, detach_state
from .outputs import FREQUENCY_ORDER, UNUSED_PARAMETERS, check_frequency_order, get_output
from .recipe import LossNet, WeightAverage, learning_rate, make_optimizer, window_length
from .saving import CheckpointWriter, RunState, resume_run
from .vocabulary import copy_tokenizer

log = logging.getLogger(__name__)



def split_ids(data_dir: str | os.PathLike[str], split: str, data: dict[str, Any],
              reverse: bool) -> np.ndarray:
    """A split's token ids, memory-mapped; with ``reverse`` a reversed copy (each line read
    backwards, ``<eos>`` still before every line)."""
    ids = load_split(data_dir, split, data)
    return np.ascontiguousarray(ids[::-1]) if reverse else ids


class TrainingStopped(PocketLMError):
    """Training stopped on a non-finite loss; the folder keeps the last good checkpoint."""


def window_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, state: State,
                use_bf16: bool, ar: float = 0.0) -> tuple[torch.Tensor, State]:
    """Mean negative log-likelihood (nats per target) of one window, plus ``ar`` times the mean
    squared feature (activation regularisation), and the state after it. ``net`` is a
    :class:`LossNet`, or DistributedDataParallel around one."""
    return net(x, y, state, use_bf16, ar)


class Trainer:
    """One training run into the checkpoint folder ``out``; see :func:`train`."""

    def __init__(self, config: TrainConfig, data_dir: str | os.PathLike[str], out: Path,
                 overwrite: bool, saved: SavedRun | None, progress: bool | None) -> None:
        self.entered = time.perf_counter()
        self.config, self.data_dir, self.out, self.progress = config, data_dir, out, progress
        data = read_manifest(data_dir, "data")
        vocab_size = int(data["vocab_size"])
        self.model_config = config.model_config(vocab_size)   # bad settings fail before writes
        output = get_output(self.model_config.output)
        train_ids = split_ids(data_dir, "train", data, config.reverse)  # memory-mapped
        if output.has(FREQUENCY_ORDER):
            check_frequency_order(np.bincount(train_ids, minlength=vocab_size),
                                  output=output.name)
        self.procs = procs = distributed.start(config.device)
        self.device = device = procs.device
        if saved is not None:
            saved.check(config.to_dict(), data_dir, vocab_size)
        else:
            check_output_folder(out, overwrite)
            distributed.barrier(procs)
            if procs.main:
                with atomic_folder(out, overwrite) as tmp:
                    copy_tokenizer(Path(data_dir) / data["tokenizer"], tmp / TOKENIZER)
            distributed.barrier(procs)
        self.data, self.valid_ids = data, split_ids(data_dir, "valid", data, config.reverse)
        self.use_bf16 = autocast_bf16(config.precision, device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.model = model = RNNLM(self.model_config).to(device)
        if procs.rank:
            torch.manual_seed(config.seed + 7919 * procs.rank)    # own dropout masks per process
        self.net = distributed.wrap(LossNet(model), procs, output.has(UNUSED_PARAMETERS))
        self.optimizer = make_optimizer(model, config)
        self.average = WeightAverage(model, config.ema) if config.ema else None
        self.rows = training_windows(train_ids, config.windows, config.batch_size, config.seed,
                                     shard=procs.rank, shards=procs.world)
        self.have_valid = len(self.valid_ids) // config.eval_batch_size >= 2
        if not self.have_valid:
            log.warning("validation split too small to evaluate; keeping the last weights")
        self.run = RunState()
        self.carried: State | None = None
        self.saved_steps: list[int] = []
        if saved is not None:
            self.run, self.carried, self.average = resume_run(saved, model, self.optimizer,
                                                              self.average, self.rows.rows, procs)
            self.saved_steps.append(self.run.step)
        self.segment: dict[str, Any] = {"startup_seconds": None}   # call → end of first step
        self.writer = CheckpointWriter(out, config, self.model_config, data_dir, data, model,
                                       self.optimizer, self.average, procs, self.use_bf16,
                                       self.segment)
        self.segment_start = self.last_save = time.perf_counter()
        self.elapsed_before = self.run.elapsed

    def elapsed(self) -> float:  # wall time of the run, resumed segments included
        return self.elapsed_before + time.perf_counter() - self.segment_start

    def evaluate(self, epoch_end: bool) -> bool:
        """Close a metrics record (train loss since the last one, validation perplexity);
        keep the best weights; return whether validation improved."""
        run, config, model = self.run, self.config, self.model
        if self.procs.main:
            t0 = time.perf_counter()
            record: dict[str, Any] = {"epoch": run.epoch, "step": run.step,
                                      "steps": run.loss_steps}
            train_loss = run.loss_sum / max(1, run.loss_steps)
            record.update(train_loss=train_loss, train_ppl=perplexity(train_loss),
                          lr=self.optimizer.param_groups[0]["lr"],
                          seconds=round(run.since_seconds, 3),
                          tokens_per_s=round(run.since_tokens / max(run.since_seconds, 1e-9), 1))
            evaluated = self.average.averaged() if self.average is not None else model
            if self.have_valid:
                nll, count = stream_nll_torch(evaluated, self.valid_ids, config.eval_batch_size,
                                              device=self.device, max_tokens=config.eval_tokens)
                record["valid_ppl"] = math.exp(nll / count)
                model.train()
            score = record.get("valid_ppl", -float(run.step))
            improved = run.best is None or score < run.best
            if improved:
                run.best, run.best_step, run.best_epoch = score, run.step, run.epoch
                run.stale_evals = 0
                save_weights(evaluated, self.out / WEIGHTS)
            else:
                run.stale_evals += 1
            if epoch_end and not improved:
                run.plateau_decays += 1
            run.eval_seconds += time.perf_counter() - t0
            run.elapsed = self.elapsed()
            record["elapsed"] = round(run.elapsed, 3)
            run.history.append(record)
            run.loss_sum, run.loss_steps, run.since_tokens, run.since_seconds = 0.0, 0, 0, 0.0
            run.evaluated_step = run.step
            log.info("epoch %d step %d: train ppl %.2f, valid ppl %s, %.0f tokens/s", run.epoch,
                     run.step, record["train_ppl"],
                     f"{record.get('valid_ppl', float('nan')):.2f}", record["tokens_per_s"])
        self.run = distributed.share(run, self.procs)
        return self.run.best_step == self.run.step

    def budget_stop(self) -> str | None:
        last = self.run.history[-1] if self.run.history else {}
        if self.config.target_ppl and last.get("valid_ppl", math.inf) <= self.config.target_ppl:
            return "target_ppl"
        if self.config.patience and self.run.stale_evals >= self.config.patience:
            return "plateau"
        return None

    def save(self, status: str, reason: str | None = None, curve: bool = False,
             final_metrics: dict[str, Any] | None = None, state: bool = True) -> None:
        if state:
            self.saved_steps.append(self.run.step)
        if self.procs.main:
            self.run.elapsed = self.elapsed()
        assert self.carried is not None
        self.writer.write(self.run, self.carried, status, reason, curve, final_metrics, state)
        self.last_save = time.perf_counter()

    def _pause(self, t_mark: float) -> None:
        """Book the training time since ``t_mark`` before an evaluation or a save."""
        synchronize(self.device)
        self.run.since_seconds += time.perf_counter() - t_mark
        self.run.train_seconds += time.perf_counter() - t_mark

    def step(self) -> tuple[float, int]:
        """One optimiser step on the next window; returns (loss, rank 0's flags). A non-finite
        loss leaves the weights and the carried state as they were."""
        run, config, model, rows = self.run, self.config, self.model, self.rows
        length = window_length(run.step, config)
        lr = learning_rate(run.step, config, run.plateau_decays, self.total_steps, length)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = rows.window(run.position, length, self.device, index=run.epoch_steps,
                           epoch=run.epoch)
        assert self.carried is not None
        state_in = (model.init_state(rows.rows, self.device) if rows.resets
                    else detach_state(self.carried))
        loss, new_state = window_loss(self.net, x, y, state_in, self.use_bf16, config.ar)
        flags = distributed.rank0_flags(self.procs, self.elapsed(),
                                        time.perf_counter() - self.last_save,
                                        config.max_minutes, config.save_minutes)
        loss_value, flags = distributed.step_sync(loss, flags, self.procs)
        if not math.isfinite(loss_value):
            return loss_value, flags
        self.carried = new_state
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        if self.segment["startup_seconds"] is None:
            synchronize(self.device)
            self.segment["startup_seconds"] = round(time.perf_counter() - self.entered, 3)
        run.position += y.shape[1]
        run.step += 1
        run.epoch_steps += 1
        run.loss_sum += loss_value
        run.loss_steps += 1
        run.tokens += y.numel() * self.procs.world
        run.since_tokens += y.numel() * self.procs.world
        return loss_value, flags

    def plan(self, per_epoch: int, step_seconds: float) -> None:
        """Fix a ``--minutes`` run's length (:func:`~pocketlm.pipeline.budget.plan_run`). From
        here on the run is the run ``--max-steps N`` is (``N`` recorded in the manifest)."""
        config, run = self.config, self.run
        budget = Budget(config.minutes, run.step, 0.0, step_seconds, 0.0, 0.0, 0, 0)
        if self.procs.main:
            budget = plan_run(self.average.averaged() if self.average is not None else self.model,
                              self.valid_ids, self.data["splits"], minutes=config.minutes,
                              eval_batch_size=config.eval_batch_size,
                              eval_tokens=config.eval_tokens, eval_every=config.eval_every,
                              step=run.step, entered=self.entered, step_seconds=step_seconds,
                              per_epoch=per_epoch, device=self.device)
            self.model.train()
        budget = distributed.share(budget, self.procs)
        self.config = self.writer.config = config.replace(max_steps=budget.steps)
        self.total_steps = budget.steps
        self.segment["budget"] = budget.to_dict()
        log_plan(budget, config.schedule, config.warmup)

    def fit(self) -> tuple[str, float | None]:
        """Epochs of windows until a budget or the epochs end; returns (why it stopped, the
        non-finite loss if that was why)."""
        rows = self.rows
        per_epoch = rows.count_windows(self.config.bptt)
        probe = (Probe(self.config.warmup, self.config.schedule, self.run.step, self.out)
                 if self.config.minutes and not self.config.max_steps else None)
        # the schedule's length (a --minutes run: fixed when the probe is due, before it matters)
        self.total_steps = self.config.max_steps or per_epoch * self.config.epochs
        bar = progress_bar(self.progress, self.procs.main, initial=self.run.step,
                           total=min(self.config.max_steps or math.inf,
                                     self.config.epochs * per_epoch))
        stop: str | None = None
        try:
            while self.run.epoch <= self.config.last_epoch(per_epoch) and stop is None:
                config = self.config
                self.model.train()
                if self.run.position == 0 or self.carried is None or rows.resets:
                    self.carried = self.model.init_state(rows.rows, self.device)
                t_mark = time.perf_counter()
                while not rows.done(self.run.position):
                    run = self.run
                    if config.max_steps and run.step >= config.max_steps:
                        stop = "max_steps"       # a resumed run that had reached its budget
                        break
                    t_step = time.perf_counter()
                    loss_value, flags = self.step()
                    if not math.isfinite(loss_value):
                        return "nan", loss_value
                    if probe is not None:
                        synchronize(self.device)
                        if probe.timed(run.step, time.perf_counter() - t_step):
                            self._pause(t_mark)
                            self.plan(per_epoch, step_time(probe.seconds))
                            probe, config = None, self.config
                            t_mark = time.perf_counter()
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
                        self._pause(t_mark)
                        self.evaluate(epoch_end=False)
                        stop = stop or self.budget_stop()
                        t_mark = time.perf_counter()
                    if not at_end and (stop or flags & SAVE_DUE or (
                            config.save_every and self.run.step % config.save_every == 0)):
                        self._pause(t_mark)
                        if stop and self.run.evaluated_step != self.run.step:
                            self.evaluate(epoch_end=False)
                        self.save("running")
                        t_mark = time.perf_counter()
                    if stop:
                        break
                synchronize(self.device)
                if rows.done(self.run.position):
                    self._pause(t_mark)
                    if self.run.evaluated_step != self.run.step:
                        self.evaluate(epoch_end=True)
                    stop = stop or self.budget_stop()
                    self.run.epoch += 1
                    self.run.position = 0
                    self.run.epoch_steps = 0
                    self.save("running", curve=True)
        finally:
            if bar is not None:
                bar.close()
        return stop or "epochs", None

    def test_perplexity(self) -> float | None:
        """Stream perplexity of the best weights on the test split (rank 0; None elsewhere or
        when the split is too small)."""
        if not self.procs.main:
            return None
        t0, config, device = time.perf_counter(), self.config, self.device
        test_ids = split_ids(self.data_dir, "test", self.data, config.reverse)
        test_ppl = best_test_perplexity(self.model_config, self.out / WEIGHTS, test_ids,
                                        config.eval_batch_size, device, config.eval_tokens)
        self.run.eval_seconds += time.perf_counter() - t0
        return test_ppl


def train(config: TrainConfig, data_dir: str | os.PathLike[str], out: str | os.PathLike[str],
          overwrite: bool = False, resume: bool | SavedRun = False,
          progress: bool | None = None) -> dict[str, Any]:
    """Run the training stage into ``out``; return its manifest.

    ``resume=True`` continues the run whose checkpoint folder is ``out`` (same model shape and
    data folder, checked); a :class:`~pocketlm.pipeline.checkpoint.SavedRun` already read from
    ``out`` may be given instead. ``progress`` shows a progress bar (default: when stderr is a
    terminal and logging shows info). Raises :class:`TrainingStopped` when the loss becomes NaN
    or infinite, after writing the folder with the last good state.
    """
    out = Path(out)
    saved = SavedRun(out) if resume is True else resume or None
    trainer = Trainer(config, data_dir, out, overwrite, saved, progress)
    m, procs = trainer.model_config, trainer.procs
    log.info("train: %s %dx%d %s output (%.2fM parameters) on %s%s%s, %d %s windows of %dx%d "
             "per epoch", m.cell, m.layers, m.hidden_size, m.output,
             sum(p.numel() for p in trainer.model.parameters()) / 1e6, trainer.device,
             " bf16" if trainer.use_bf16 else "",
             f" x{procs.world} processes" if procs.world > 1 else "",
             trainer.rows.count_windows(config.bptt), config.windows, config.batch_size,
             config.bptt)
    reason, nan_loss = trainer.fit()
    run = trainer.run
    if reason == "nan":
        first_state = not trainer.saved_steps
        trainer.save("stopped", reason=f"loss became {nan_loss} at step {run.step + 1}",
                     curve=True, state=first_state)
        distributed.finish(procs)
        raise TrainingStopped(
            f"training stopped: the loss became {nan_loss} at step {run.step + 1} (epoch "
            f"{run.epoch}); {out} keeps the last good checkpoint (step "
            f"{trainer.saved_steps[-1]}{', saved now' if first_state else ''}); lower --lr or "
            f"--clip and continue with `pocketlm train --resume {out} --lr ...`, or start again")
    test_ppl = trainer.test_perplexity()
    if "budget" in trainer.segment:     # the budget's measure: this call, to the last save
        trainer.segment["budget"]["wall_seconds"] = round(time.perf_counter() - trainer.entered, 3)
    trainer.save("finished", reason=reason, curve=True, final_metrics={"test_ppl": test_ppl})
    manifest = read_manifest(out, "checkpoint", verify=False)
    distributed.finish(procs)
    metrics = manifest["metrics"]
    log.info("train: stopped by %s at step %d; best valid ppl %s at step %d; test ppl %s",
             reason, run.step, metrics["valid_ppl"], run.best_step, test_ppl)
    return manifest
