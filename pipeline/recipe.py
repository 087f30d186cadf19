"""Training-recipe pieces that do not touch the model's shape: the learning-rate schedule (a pure
function of the step) and weight averaging.

The pieces of one step that a recipe replaces: the window length (:func:`window_length`), the
learning rate (:func:`learning_rate`), the optimiser (:func:`make_optimizer`) and the loss
(:class:`LossNet`). The BPTT windows themselves (carried stream or line starts) are cut by
:mod:`pocketlm.pipeline.batches`.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .cells import State

if TYPE_CHECKING:
    from .config import TrainConfig
    from .model import RNNLM


def lr_at(step: int, total: int, peak: float, warmup: int = 0, schedule: str = "plateau",
          floor: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warmup over ``warmup`` steps, then
    constant (``plateau``: the loop decays it when validation stalls) or a cosine from ``peak``
    down to ``floor * peak`` at ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return peak


class WeightAverage:
    """Exponential moving average of a model's parameters (``decay`` per step); ``averaged()``
    is a copy of the model carrying the averaged weights, for evaluation and saving."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = model
        self.shadow = [p.detach().clone().float() for p in model.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        params = [p.detach().float() for p in self.model.parameters()]
        torch._foreach_lerp_(self.shadow, params, 1.0 - self.decay)

    @torch.no_grad()
    def averaged(self) -> nn.Module:
        copy_ = copy.deepcopy(self.model)
        for p, s in zip(copy_.parameters(), self.shadow):
            p.copy_(s)
        return copy_


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


def make_optimizer(model: RNNLM, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (weight decay on matrices only; torch's fused kernel) or plain SGD, at
    ``config.lr``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.lr, betas=(0.9, 0.99), fused=True)


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
