"""Supervised training of a labelled task (classify, tag, or any registered labelled task):
the encoder and the task's head (:mod:`.encoder`) fitted on a labelled data folder's
``{split}.jsonl``, sentence batches (:mod:`.task_batches`), AdamW. One step::

    batch  = tokens, shapes, suffixes, lengths [B, L] / [B], targets [B] or [B, L]
    logp   = model(tokens, shapes, suffixes, lengths)          [B, C] or [B, L, T]
    loss   = NLL(logp, targets, class weights), -100 targets ignored
    grads of frozen weights dropped (task_batches.trains), clip, AdamW step

The checkpoint folder has the language model's layout (:mod:`.checkpoint`) and is written the
same way, in place, one atomic file at a time, the manifest last, at each epoch end and every
``save_minutes``; ``last.safetensors`` holds the weights, the optimiser, the RNG and the run
(epoch, batch position, metrics), so a run killed at any moment resumes with
``pocketlm train --resume DIR``. Its manifest adds the task section (task, labels, features).
The best weights by the task's first metric on the valid split are ``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from pocketlm.runtime.artifact import (PocketLMError, atomic_folder, check_output_folder,
                                       package_versions, read_manifest, sha256_file,
                                       write_manifest)

from . import distributed
from .distributed import SAVE_DUE, TIME_UP
from .checkpoint import (CURVE, LAST, METRICS, TOKENIZER, WEIGHTS, SavedRun, optimizer_state,
                         restore_optimizer, restore_rng, rng_state, save_training_state,
                         save_weights, weight_tensors, write_bytes_atomic, write_curve)
from .device import autocast_bf16, environment, progress_bar
from .encoder import SAVED_DEFAULTS, EncoderConfig, TaskModel
from .labelled import load_examples, read_labels
from pocketlm.runtime.options import option
from .options import check_fields
from .saving import data_reference
from .task_batches import IGNORE, Encoded, class_weights, epoch_batches, eval_batches, trains
from .task_init import init_encoder
from .tasks import Task, get_task
from .vocabulary import copy_tokenizer

log = logging.getLogger(__name__)
_COUNT = {"minimum": 0}
ENCODER_FIELDS = tuple(f.name for f in dataclasses.fields(EncoderConfig)
                       if f.name not in ("vocab_size", "labels", "head"))
#: Fields a resume may not change.
FIXED_ON_RESUME = ("task", "cell", "layers", "embedding_size", "hidden_size", "bidirectional",
                   "pooling", "suffix_size", "batch_size")


@dataclass(frozen=True)
class TaskTrainConfig:
    """The encoder's shape and the recipe of a labelled task's training. Options shared with
    the language model (``--lr``, ``--epochs``, ...) mean the same; those below ``task`` are
    the labelled tasks' own."""

    model: EncoderConfig = field(default_factory=EncoderConfig)
    task: str = "classify"
    batch_size: int = 32
    epochs: int = 5
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 1234
    device: str = "auto"
    precision: str = "auto"
    max_steps: int = 0
    max_minutes: float = 0.0
    save_minutes: float = 10.0
    patience: int = 3
    eval_batch_size: int = 64
    log_every: int = 200
    init_from: str = field(default="", metadata=option(
        "Start the encoder from this language model's checkpoint (same vocabulary file: "
        "ingest with --vocab-from its data folder)", metavar="CHECKPOINT"))
    init_backward_from: str = field(default="", metadata=option(
        "Start the backward cells (--bidirectional) from a language model trained on reversed "
        "lines", metavar="CHECKPOINT"))
    freeze: str = field(default="none", metadata=option(
        "Weights kept frozen for the whole run", choices=("none", "embedding", "encoder")))
    unfreeze_epochs: int = field(default=0, metadata=option(
        "Gradual unfreezing: N epochs head only, N more with the top layer, then all (0: off)",
        **_COUNT))
    class_weights: str = field(default="none", metadata=option(
        "Weigh the loss by inverse label frequency (skewed labels)", choices=("none", "auto")))
    encoder_lr: float = field(default=1.0, metadata=option(
        "Learning-rate factor of the word embedding and the cells (a pretrained encoder: < 1)",
        minimum=0, min_open=True))

    def __post_init__(self) -> None:
        check_fields(self)
        check_fields(self.model)
        if not get_task(self.task).labelled:
            raise PocketLMError(f"task {self.task!r} is not trained on labelled examples")

    @classmethod
    def of(cls, **fields: Any) -> TaskTrainConfig:
        """A config from flat fields (encoder and recipe side by side, as the manifest)."""
        model = {k: fields.pop(k) for k in list(fields) if k in ENCODER_FIELDS}
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(model=EncoderConfig(**model),
                   **{k: v for k, v in fields.items() if k in names and k != "model"})

    def to_dict(self) -> dict[str, Any]:
        fields = {name: getattr(self.model, name) for name in ENCODER_FIELDS}
        fields.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                      if f.name != "model")
        return fields


@dataclass
class TaskRun:
    """Where a run stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 1
    position: int = 0
    best: float | None = None
    best_step: int = 0
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    stale_evals: int = 0
    elapsed: float = 0.0
    train_seconds: float = 0.0
    loss_sum: float = 0.0
    loss_steps: int = 0
    resumes: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def predict(model: TaskModel, data: Encoded, batch_size: int, device: torch.device,
            task: Task, labels: Sequence[str]) -> list[Any]:
    """Each sentence's label (or each piece's tag), decoded as the runtime decodes them
    (``task.decode``), in the split's order."""
    model.eval()
    preds: list[Any] = [None] * len(data)
    with torch.no_grad():
        for index in eval_batches([len(i) for i in data.ids], batch_size):
            b = data.batch(index, device, task.per_piece)
            out_t = model(b["tokens"], b["shapes"], b["suffixes"], b["lengths"])
            logp = out_t.float().cpu().numpy()
            for row, i in enumerate(index):
                out = logp[row, :len(data.ids[i])] if task.per_piece else logp[row]
                preds[i] = task.decode(out, labels)
    return preds


class TaskTrainer:
    """One labelled training run into ``out``; see :func:`train_task`."""

    def __init__(self, config: TaskTrainConfig, data_dir: str | os.PathLike[str], out: Path,
                 overwrite: bool, saved: SavedRun | None, progress: bool | None) -> None:
        self.entered = time.perf_counter()
        self.config, self.data_dir, self.out, self.progress = config, data_dir, out, progress
        self.task: Task = get_task(config.task)
        self.data = data = read_manifest(data_dir, "data")
        if data.get("task", "lm") != self.task.name:
            raise PocketLMError(f"{data_dir} holds {data.get('task', 'lm')!r} data, not "
                                f"{self.task.name!r}; ingest it with --task {self.task.name}")
        self.labels = read_labels(data_dir)
        self.model_config = dataclasses.replace(config.model, vocab_size=int(data["vocab_size"]),
                                                labels=len(self.labels), head=self.task.head)
        self.train_set = self._split("train")
        self.valid_set = self._split("valid")
        self.procs = procs = distributed.start(config.device)
        self.device = procs.device
        torch.manual_seed(config.seed)
        self.model = TaskModel(self.model_config).to(self.device)
        self.init: dict[str, Any] = {}
        if saved is None:
            self.init = init_encoder(self.model, data_dir, data, config.init_from,
                                     config.init_backward_from)
            check_output_folder(out, overwrite)
            distributed.barrier(procs)
            if procs.main:
                with atomic_folder(out, overwrite) as tmp:
                    copy_tokenizer(Path(data_dir) / data.get("tokenizer", TOKENIZER),
                                   tmp / TOKENIZER)
            distributed.barrier(procs)
        if procs.rank:
            torch.manual_seed(config.seed + 7919 * procs.rank)
        self.net: torch.nn.Module = self.model
        if procs.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)
        encoder = [p for n, p in self.model.named_parameters()
                   if n == "encoder.embedding.weight" or n.startswith("encoder.rnn")]
        ids = {id(p) for p in encoder}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        self.optimizer = torch.optim.AdamW(
            [{"params": encoder, "lr_scale": config.encoder_lr},
             {"params": rest, "lr_scale": 1.0}],
            lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
        counts = self.train_set.label_counts(len(self.labels), self.task.per_piece)
        self.weights = (class_weights(counts).to(self.device) if config.class_weights == "auto"
                        else None)
        self.use_bf16 = autocast_bf16(config.precision, self.device)
        self.run = TaskRun()
        if saved is not None:
            self._restore(saved)

    def _split(self, split: str) -> Encoded:
        examples = load_examples(self.data_dir, split)
        return Encoded.of(examples, [self.task.target(e) for e in examples])

    def _restore(self, saved: SavedRun) -> None:
        meta, groups = saved.meta, saved.groups
        if sha256_file(Path(self.data_dir) / "manifest.json") != \
                meta["data"]["manifest_sha256"]:
            raise PocketLMError(f"{saved.folder} was trained on another data folder than "
                                f"{self.data_dir}; resume with the one it was trained on")
        for key in FIXED_ON_RESUME:
            saved_value = {**SAVED_DEFAULTS, **meta["config"]}.get(key)
            if saved_value != self.config.to_dict()[key]:
                raise PocketLMError(f"{saved.folder} was trained with {key}="
                                    f"{saved_value!r}: resume with the same shape "
                                    f"and batch size, or train into a new --out")
        self.model.load_state_dict(groups["model"])
        restore_optimizer(self.optimizer, groups.get("optimizer", {}), meta["optimizer"])
        self.run = TaskRun(**meta["run"])
        self.run.resumes += 1
        self.init = meta.get("init", {})
        rng = groups.get(f"rng{self.procs.rank}")
        if rng is not None and meta["world"] == self.procs.world:
            restore_rng(rng, self.device)
        log.info("resume: %s at step %d (epoch %d, batch %d)", self.out, self.run.step,
                 self.run.epoch, self.run.position)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            logp = self.net(batch["tokens"], batch["shapes"], batch["suffixes"],
                            batch["lengths"])
        logp = logp.float()
        return F.nll_loss(logp.reshape(-1, logp.shape[-1]), batch["targets"].reshape(-1),
                          weight=self.weights, ignore_index=IGNORE)

    def evaluate(self) -> bool:
        """Measure the valid split, keep the best weights; whether it improved."""
        run = self.run
        if self.procs.main:
            record: dict[str, Any] = {"epoch": run.epoch, "step": run.step,
                                      "train_loss": run.loss_sum / max(1, run.loss_steps)}
            preds = predict(self.model, self.valid_set, self.config.eval_batch_size,
                            self.device, self.task, self.labels)
            assert self.task.measure is not None
            scores = self.task.measure(self.valid_set.targets, preds, self.labels)
            record.update({f"valid_{k}": v for k, v in scores.items()})
            self.model.train()
            score = scores[self.task.metrics[0]] if len(self.valid_set) else -run.step
            if run.best is None or score > run.best:
                run.best, run.best_step, run.best_epoch = score, run.step, run.epoch
                run.best_metrics, run.stale_evals = scores, 0
                save_weights(self.model, self.out / WEIGHTS)    # type: ignore[arg-type]
            else:
                run.stale_evals += 1
            record["elapsed"] = round(self.elapsed(), 3)      # save() books it into run
            run.history.append(record)
            run.loss_sum, run.loss_steps = 0.0, 0
            log.info("epoch %d step %d: train loss %.4f, valid %s", run.epoch, run.step,
                     record["train_loss"], ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        self.run = distributed.share(run, self.procs)
        return self.run.best_step == self.run.step

    def elapsed(self) -> float:
        return self.run.elapsed + time.perf_counter() - self.segment_start

    def save(self, status: str, reason: str | None = None,
             test: dict[str, float] | None = None) -> None:
        """One checkpoint (rank 0 writes; every process hands in its RNG state)."""
        rngs = distributed.gather_objects(rng_state(self.device), self.procs)
        if self.procs.main:
            self.run.elapsed = self.elapsed()
            self.segment_start = time.perf_counter()
            run, out = self.run, self.out
            if not (out / WEIGHTS).exists():
                save_weights(self.model, out / WEIGHTS)        # type: ignore[arg-type]
            opt_tensors, opt_meta = optimizer_state(self.optimizer)
            groups = {"model": weight_tensors(self.model), "optimizer": opt_tensors,
                      **{f"rng{r}": s for r, s in enumerate(rngs)}}
            meta = {"config": self.config.to_dict(), "model": asdict(self.model_config),
                    "data": data_reference(self.data_dir, self.data), "run": asdict(run),
                    "optimizer": opt_meta, "world": self.procs.world, "init": self.init}
            save_training_state(out / LAST, groups, meta)
            write_bytes_atomic(out / METRICS, "".join(json.dumps(r) + "\n"
                                                      for r in run.history).encode())
            files = [WEIGHTS, LAST, TOKENIZER, METRICS]
            key = f"valid_{self.task.metrics[0]}"
            if run.history and write_curve(run.history, out / CURVE,
                                           (("train_loss", "train loss"), (key, key)), key,
                                           log_scale=False):
                files.append(CURVE)
            write_manifest(out, "checkpoint", {
                **self.task.manifest_section(self.labels),
                "model": asdict(self.model_config), "config": self.config.to_dict(),
                "data": data_reference(self.data_dir, self.data), "init": self.init,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "status": {"state": status, "reason": reason, "step": run.step,
                           "epoch": run.epoch, "resumes": run.resumes,
                           "processes": self.procs.world},
                "metrics": {"valid": run.best_metrics, "test": test, "best_step": run.best_step,
                            "best_epoch": run.best_epoch, "steps": run.step,
                            "train_seconds": round(run.train_seconds, 3),
                            "elapsed": round(run.elapsed, 3)},
                "environment": environment(self.device),
                "precision": "bf16" if self.use_bf16 else "fp32",
                "versions": package_versions("torch", "safetensors", "numpy")}, files)
        self.last_save = time.perf_counter()
        distributed.barrier(self.procs)

    def fit(self) -> str:
        """Epochs of batches until a budget, early stopping or the epochs end."""
        config, run, task = self.config, self.run, self.task
        self.segment_start = self.last_save = time.perf_counter()
        lengths = [len(i) for i in self.train_set.ids]
        per_epoch = len(epoch_batches(lengths, config.batch_size, config.seed, 1,
                                      self.procs.rank, self.procs.world))
        if per_epoch == 0:
            raise PocketLMError(f"{self.data_dir}: the train split has no examples")
        bar = progress_bar(self.progress, self.procs.main, initial=self.run.step,
                           total=config.max_steps or config.epochs * per_epoch)
        stop: str | None = None
        try:
            while self.run.epoch <= config.epochs and stop is None:
                run = self.run
                names = [n for n, _ in self.model.named_parameters()]
                frozen = {n for n in names if not trains(n, run.epoch, config.freeze,
                                                         config.unfreeze_epochs,
                                                         self.model_config.layers)}
                params = dict(self.model.named_parameters())
                batches = epoch_batches(lengths, config.batch_size, config.seed, run.epoch,
                                        self.procs.rank, self.procs.world)
                self.model.train()
                while run.position < len(batches):
                    t0 = time.perf_counter()
                    batch = self.train_set.batch(batches[run.position], self.device,
                                                 task.per_piece)
                    loss = self.loss(batch)
                    flags = distributed.rank0_flags(   # rank 0 decides; every process follows
                        self.procs, self.elapsed(), time.perf_counter() - self.last_save,
                        config.max_minutes, config.save_minutes)
                    value, flags = distributed.step_sync(loss, flags, self.procs)
                    if not math.isfinite(value):
                        raise PocketLMError(f"training stopped: the loss became {value} at step "
                                            f"{run.step + 1}; lower --lr and train again")
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    for name in frozen:
                        params[name].grad = None               # AdamW skips them
                    if config.clip > 0:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip)
                    for group in self.optimizer.param_groups:
                        group["lr"] = config.lr * group["lr_scale"]
                    self.optimizer.step()
                    run.step += 1
                    run.position += 1
                    run.loss_sum += value
                    run.loss_steps += 1
                    run.train_seconds += time.perf_counter() - t0
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=run.epoch, loss=f"{value:.3f}", refresh=False)
                    elif config.log_every and run.step % config.log_every == 0:
                        log.info("epoch %d step %d: loss %.4f", run.epoch, run.step, value)
                    if config.max_steps and run.step >= config.max_steps:
                        stop = "max_steps"
                    elif flags & TIME_UP:
                        stop = "max_minutes"
                    if stop:
                        break
                    if flags & SAVE_DUE:
                        self.save("running")
                if run.position >= len(batches):
                    run.epoch, run.position = run.epoch + 1, 0
                self.evaluate()
                if config.patience and self.run.stale_evals >= config.patience:
                    stop = stop or "patience"
                self.save("running")
        finally:
            if bar is not None:
                bar.close()
        return stop or "epochs"

    def test_metrics(self) -> dict[str, float] | None:
        """The best weights measured on the test split (rank 0)."""
        if not self.procs.main:
            return None
        test = self._split("test")
        if not len(test):
            return None
        from safetensors.torch import load_file

        best = TaskModel(self.model_config).to(self.device)
        best.load_state_dict(load_file(str(self.out / WEIGHTS)))
        preds = predict(best, test, self.config.eval_batch_size, self.device, self.task,
                        self.labels)
        assert self.task.measure is not None
        return self.task.measure(test.targets, preds, self.labels)


def train_task(config: TaskTrainConfig, data_dir: str | os.PathLike[str],
               out: str | os.PathLike[str], overwrite: bool = False,
               resume: bool | SavedRun = False, progress: bool | None = None) -> dict[str, Any]:
    """Train a labelled task into the checkpoint folder ``out``; return its manifest.
    ``resume=True`` continues the run in ``out`` (same task, shape, batch size and data)."""
    out = Path(out)
    saved = SavedRun(out) if resume is True else resume or None
    trainer = TaskTrainer(config, data_dir, out, overwrite, saved, progress)
    m = trainer.model_config
    log.info("train: task %s, %s %dx%d%s, %d labels, %.2fM parameters, %d train sentences",
             config.task, m.cell, m.layers, m.hidden_size, " bidirectional" if
             m.bidirectional else "", m.labels,
             sum(p.numel() for p in trainer.model.parameters()) / 1e6, len(trainer.train_set))
    reason = trainer.fit()
    test = trainer.test_metrics()
    trainer.save("finished", reason, test)
    distributed.finish(trainer.procs)
    manifest = read_manifest(out, "checkpoint", verify=False)
    log.info("train: stopped by %s at step %d; valid %s; test %s", reason, trainer.run.step,
             manifest["metrics"]["valid"], test)
    return manifest

