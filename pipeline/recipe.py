"""Training-recipe pieces that do not touch the model's shape: the learning-rate schedule (a pure
function of the step) and weight averaging.

The BPTT windows themselves (carried stream or line starts) are cut by
:mod:`pocketlm.pipeline.batches`, their lengths drawn by ``train.window_length``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


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
