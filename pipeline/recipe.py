"""Training-recipe pieces that do not touch the model's shape: the learning-rate schedule (a pure
function of the step), the BPTT windows a training epoch reads, and weight averaging.

Two ways to cut the training stream into windows (``TrainConfig.windows``)::

    stream   the split as ``batch`` columns, read left to right; state carried (detached)
             from one window to the next, zero only at the start of an epoch:
                 column  |-- w1 --|-- w2 --|-- w3 --| ...      state 0 → h1 → h2 → ...
    verse    each row starts at a random line boundary, with <eos> as its first input and the
             zero state, exactly as sentence scoring starts; rows may run on into the next line:
                 row b   <eos> w1 w2 ... <eos> v1 ...          state 0 every window

With ``vary_bptt`` the window length varies around ``bptt`` (Merity et al., 2018): ``bptt`` with
probability 0.95 else ``bptt / 2``, plus normal noise of sd 5, at least 5; the learning rate is
scaled by length / bptt so every token weighs the same.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
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


def window_lengths(steps_hint: int, bptt: int, vary: bool, rng: np.random.Generator
                   ) -> Iterator[int]:
    """An endless sequence of window lengths: ``bptt``, or varied around it."""
    while True:
        if not vary:
            yield bptt
            continue
        base = bptt if rng.random() < 0.95 else bptt / 2
        yield max(5, int(round(rng.normal(base, 5))))


def stream_windows(rows: torch.Tensor, bptt: int, vary: bool, rng: np.random.Generator
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
    """``(inputs [B, T], targets [B, T], reset)`` over the columns of ``rows [B, N]``; ``reset``
    is True only for the first window (state carried otherwise)."""
    i, first = 0, True
    lengths = window_lengths(0, bptt, vary, rng)
    while i < rows.shape[1] - 1:
        n = min(next(lengths), rows.shape[1] - 1 - i)
        yield rows[:, i:i + n], rows[:, i + 1:i + 1 + n], first
        i, first = i + n, False


def verse_windows(stream: torch.Tensor, starts: torch.Tensor, batch: int, bptt: int, vary: bool,
                  rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
    """One epoch of windows starting at line boundaries: ``len(stream) // (batch * bptt)``
    windows, each ``batch`` rows from random ``starts`` (positions of an ``<eos>``), zero state."""
    steps = max(1, len(stream) // (batch * bptt))
    order = torch.from_numpy(rng.permutation(len(starts))).to(starts.device)
    lengths = window_lengths(0, bptt, vary, rng)
    for s in range(steps):
        n = next(lengths)
        pick = order[(torch.arange(batch, device=starts.device) + s * batch) % len(order)]
        begin = starts[pick].clamp(max=len(stream) - n - 1)               # (B,)
        index = begin.unsqueeze(1) + torch.arange(n + 1, device=stream.device)   # (B, n+1)
        window = stream[index]
        yield window[:, :-1], window[:, 1:], True


def epoch_windows(stream_len: int, rows_columns: int, batch: int, bptt: int, mode: str) -> int:
    """Approximate windows per epoch (for the schedule's total step count)."""
    if mode == "verse":
        return max(1, stream_len // (batch * bptt))
    return max(1, math.ceil((rows_columns - 1) / bptt))


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
