"""The training stage's configuration, declared once: :class:`TrainConfig` holds the model's
shape (a :class:`~pocketlm.pipeline.model.ModelConfig`) and the recipe; every field carries its
help text and limits, from which ``pocketlm train`` generates its options. Named starting points
are :data:`PRESETS`; :func:`preset` applies overrides to one.

In a checkpoint manifest the config is one flat JSON object (model fields and recipe fields side
by side, :meth:`TrainConfig.to_dict`); :meth:`TrainConfig.of` builds a config from such flat
fields, so ``TrainConfig.of(cell="gru", hidden_size=256, epochs=2)`` reads as the command line.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from pocketlm.runtime.artifact import PocketLMError

from .budget import probe_end
from .model import ModelConfig
from pocketlm.runtime.options import option
from .options import check_fields

_FRACTION = {"minimum": 0.0, "maximum": 1.0, "max_open": True}
_COUNT = {"minimum": 0}
#: The model fields a training config sets (the vocabulary size comes from the data folder).
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size")


@dataclass(frozen=True)
class TrainConfig:
    """Model shape and training recipe. ``max_steps`` > 0 is the run's length in steps (the
    schedule is laid over it; more epochs than ``epochs`` if it needs them); ``minutes`` > 0
    (and no ``max_steps``) chooses that length from the wall-time budget
    (:mod:`pocketlm.pipeline.budget`);
    ``precision`` is ``auto`` (bf16 autocast on CUDA and on CPUs with hardware bf16, fp32
    elsewhere), ``fp32`` or ``bf16``.

    Long runs: validation every ``eval_every`` steps (0: at each epoch end) on a fixed sample of
    ``eval_tokens`` tokens (0: the whole split; the end-of-run test figure uses the same bound);
    a checkpoint every ``save_every`` steps and every ``save_minutes`` minutes (and at each
    epoch end); stop after ``max_minutes`` of wall time, when validation perplexity reaches
    ``target_ppl``, or after ``patience`` evaluations without improvement."""

    model: ModelConfig = field(default_factory=ModelConfig)
    batch_size: int = field(default=32, metadata=option("Parallel token streams", minimum=1))
    bptt: int = field(default=35, metadata=option("Truncated-BPTT window length", minimum=1))
    epochs: int = field(default=4, metadata=option("Passes over the train split", minimum=1))
    optimizer: str = field(default="adamw", metadata=option(
        "Optimizer", choices=("adamw", "sgd")))
    lr: float = field(default=3e-3, metadata=option(
        "Learning rate", minimum=0, min_open=True))
    weight_decay: float = field(default=0.01, metadata=option(
        "AdamW weight decay (matrices only)", minimum=0))
    clip: float = field(default=0.25, metadata=option(
        "Gradient-norm clip, 0 to disable", minimum=0))
    lr_decay: float = field(default=0.5, metadata=option(
        "Plateau schedule: learning-rate factor per epoch without improvement",
        minimum=0, maximum=1, min_open=True))
    seed: int = field(default=1234, metadata=option("Random seed"))
    device: str = field(default="auto", metadata=option(
        "auto (CUDA when present), cpu, cuda, cuda:N"))
    precision: str = field(default="auto", metadata=option(
        "auto: bf16 autocast on CUDA and on CPUs with hardware bf16 (AVX512-BF16, AMX), fp32 "
        "elsewhere", choices=("auto", "fp32", "bf16")))
    max_steps: int = field(default=0, metadata=option(
        "Train exactly this many steps, the schedule laid over them (0: --epochs decides)",
        **_COUNT))
    eval_batch_size: int = field(default=10, metadata=option(
        "Parallel streams of the validation and test evaluation", minimum=1))
    log_every: int = field(default=200, metadata=option(
        "Log the train loss every N steps when there is no progress bar (0: never)", **_COUNT))
    # long runs: evaluation, checkpoints, budgets (0 turns each off)
    eval_every: int = field(default=0, metadata=option(
        "Validate every N steps (0: at each epoch end)", **_COUNT))
    eval_tokens: int = field(default=100_000, metadata=option(
        "Tokens of the fixed validation (and final test) sample (0: the whole split)", **_COUNT))
    save_every: int = field(default=0, metadata=option(
        "Write a checkpoint every N steps (0: off); also at each epoch end", **_COUNT))
    save_minutes: float = field(default=10.0, metadata=option(
        "Write a checkpoint every M minutes (0: off)", **_COUNT))
    max_minutes: float = field(default=0.0, metadata=option(
        "Stop after M minutes of wall time (0: no limit)", **_COUNT))
    minutes: float = field(default=0.0, metadata=option(
        "Fit the run in M minutes: the schedule is laid over the steps that fit at the speed "
        "of the first steps; the number is recorded as max_steps (0: off; a given "
        "--max-steps wins)", **_COUNT))
    target_ppl: float = field(default=0.0, metadata=option(
        "Stop when validation perplexity reaches this (0: never)", **_COUNT))
    patience: int = field(default=0, metadata=option(
        "Stop after N evaluations without improvement (0: never)", **_COUNT))
    # recipe (recipe.py) and windows (batches.py)
    ar: float = field(default=0.0, metadata=option(
        "Activation regularisation weight", **_COUNT))
    windows: str = field(default="stream", metadata=option(
        "BPTT windows: carried stream or zero-state line starts", choices=("stream", "verse")))
    vary_bptt: bool = field(default=False, metadata=option(
        "Vary the window length around --bptt", flag="--vary-bptt/--fixed-bptt"))
    schedule: str = field(default="plateau", metadata=option(
        "Learning-rate schedule after warmup", choices=("plateau", "cosine")))
    warmup: int = field(default=0, metadata=option("Linear warmup steps", **_COUNT))
    lr_floor: float = field(default=0.0, metadata=option(
        "Cosine ends at this fraction of --lr", **_FRACTION))
    ema: float = field(default=0.0, metadata=option(
        "Weight averaging decay per step, 0 to disable", **_FRACTION))
    reverse: bool = field(default=False, metadata=option(
        "Read every line backwards: a backward language model, for a tagger's or classifier's "
        "--init-backward-from", flag="--reverse/--forward"))

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise PocketLMError("TrainConfig.model must be a ModelConfig; use TrainConfig.of("
                                "cell=..., hidden_size=..., ...) to give model fields flat")
        check_fields(self)
        if self.minutes and not self.max_steps:
            probe_end(self.warmup, self.schedule)    # a cosine needs warmup steps to time

    @classmethod
    def of(cls, **fields: Any) -> TrainConfig:
        """A config from flat fields: model fields (``cell``, ``hidden_size``, ...) and recipe
        fields side by side, as the command line and the checkpoint manifest have them."""
        model = {k: fields.pop(k) for k in list(fields) if k in MODEL_FIELDS}
        return cls(model=ModelConfig(**model), **fields)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> TrainConfig:
        """The config of a checkpoint manifest (unknown keys ignored, missing ones default)."""
        names = {*MODEL_FIELDS, *(f.name for f in dataclasses.fields(cls))} - {"model"}
        return cls.of(**{k: v for k, v in fields.items() if k in names})

    def replace(self, **fields: Any) -> TrainConfig:
        """This config with some flat fields replaced."""
        model = {k: fields.pop(k) for k in list(fields) if k in MODEL_FIELDS}
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **model),
                                   **fields)

    def to_dict(self) -> dict[str, Any]:
        """Flat fields (what checkpoint manifests store)."""
        fields = {name: getattr(self.model, name) for name in MODEL_FIELDS}
        fields.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                      if f.name != "model")
        return fields

    def last_epoch(self, per_epoch: int) -> int:
        """The epoch a run of ``per_epoch`` windows an epoch ends in: ``epochs``, or as many as
        ``max_steps`` needs (a ``--minutes`` run before its plan: no limit)."""
        if self.minutes and not self.max_steps:
            return sys.maxsize
        return max(self.epochs, math.ceil(self.max_steps / per_epoch))

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The model's shape for a vocabulary of ``vocab_size`` words (checks that need the
        size, such as adaptive cutoffs below it, run here)."""
        return dataclasses.replace(self.model, vocab_size=vocab_size,
                                   input_dropout=self.model.locked_input_dropout)


#: Named starting points (figures and wall times: docs/stages.md, "Presets").
#:
#: * ``tiny``: what ``pocketlm run`` trains; sized for a 2-core CPU and a few minutes. A fixed
#:   number of steps (8 epochs x 381 verse windows), so it is deterministic, not wall-clock
#:   bound. Higher learning rate and weight decay, less dropout: the quality of the earlier 14
#:   epochs in 8 (bench/README.md, "Fewer tokens").
#: * ``small``: the 2x200 LSTM of pytorch/examples' CPU default, with pocketlm's recipe.
#: * ``medium``: GPU, fast: aims at validation stream perplexity 29.4 within 9 s on an H100.
#: * ``large``: GPU, quality: <= 25M parameters, the AWD-style regularised recipe, aiming at
#:   test perplexity <= 19.5 within 5 minutes on an H100.
_ADAPTIVE: dict[str, Any] = dict(output="adaptive", cutoffs=(1000, 4000), div_value=4.0)
PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig.of(layers=1, embedding_size=128, hidden_size=208, dropout=0.25,
                           input_dropout=0.15, batch_size=64, bptt=35, epochs=8, lr=1.2e-2,
                           weight_decay=0.1, windows="verse", schedule="cosine", warmup=100,
                           **_ADAPTIVE),
    "small": TrainConfig.of(layers=2, embedding_size=200, hidden_size=200, dropout=0.25,
                            input_dropout=0.15, batch_size=64, bptt=35, epochs=6, lr=4e-3,
                            schedule="cosine", warmup=100, **_ADAPTIVE),
    "medium": TrainConfig.of(layers=2, embedding_size=650, hidden_size=650, dropout=0.4,
                             input_dropout=0.3, batch_size=128, bptt=35, epochs=10, lr=3e-3,
                             schedule="cosine", warmup=50, **_ADAPTIVE),
    "large": TrainConfig.of(layers=2, embedding_size=400, hidden_size=1150, dropout=0.4,
                            input_dropout=0.4, embed_dropout=0.1, weight_dropout=0.4, ar=1.0,
                            batch_size=64, bptt=70, vary_bptt=True, epochs=40, lr=2e-3,
                            schedule="cosine", warmup=200, lr_floor=0.02,
                            output="adaptive", cutoffs=(2000, 5000), div_value=4.0),
}


def preset_names() -> list[str]:
    """The presets' names (for the command line's choices)."""
    return list(PRESETS)


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A preset with some flat fields replaced (``None`` values are ignored)."""
    if name not in PRESETS:
        raise PocketLMError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**{k: v for k, v in overrides.items() if v is not None})
