"""A run that fits the time it is given (``--minutes M``): how many optimiser steps fit.

The schedule (warmup, then cosine down to its floor) needs its length before the first step
whose learning rate depends on it. So a ``--minutes`` run times its first steps while the
learning rate still only ramps up (warmup steps do not depend on the length), times one
evaluation on a slice of the validation split, and then fixes the number of steps ``N``:
the largest that fits the budget with the evaluations and the final test evaluation it implies.
From then on the run is exactly the run ``--max-steps N`` would be; ``N`` is recorded in the
checkpoint manifest (``config.max_steps`` and ``budget``), so ``train --max-steps N`` reproduces
it, weight for weight. The trainer uses it in three calls::

    probe = Probe(warmup, schedule, step, out)   # before the first step: when the plan is due
    probe.timed(step, seconds) -> due            # after each step, until due
    budget = plan_run(model, valid_ids, ...)     # rank 0, at that step: times an evaluation,
                                                 # returns the Budget (steps = the run's max_steps)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pocketlm.runtime.artifact import PocketLMError

from .evaluate import stream_nll_torch

if TYPE_CHECKING:
    import torch

    from .model import RNNLM

log = logging.getLogger(__name__)

#: Steps timed before the plan is made: the first ``PROBE_SKIP`` (allocation, first-call costs)
#: are left out; the plan is made after ``PROBE_SKIP + PROBE_STEPS`` steps, or at the end of a
#: shorter warmup (see :func:`step_time`).
PROBE_SKIP, PROBE_STEPS = 5, 90
#: The fewest timed steps a plan may rest on (a cosine run needs a warmup at least this long).
MIN_PROBE_STEPS = 10
#: Share of the budget kept free for what is not planned (checkpoint writes). Small: the plan's
#: error is the machine's speed drifting after it, either way (seven 3- and 6-minute runs on a
#: 2-core AVX2 machine: later steps -4.0% to +8.0% slower than the timed ones, +2% on average),
#: so a larger margin mostly ends runs early.
MARGIN = 0.01


@dataclass(frozen=True)
class Budget:
    """What the plan was made from, and the plan (recorded in the checkpoint manifest)."""

    minutes: float
    planned_at_step: int
    spent_seconds: float
    step_seconds: float
    eval_seconds: float
    final_seconds: float
    evaluations: int
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def step_time(seconds: list[float]) -> float:
    """The plan's seconds per step from the timed steps: their mean, leaving out steps over 4x
    the median (a pause of the machine, not the step). Not the median itself: step times are
    skewed to the slow side, and the run's length is their sum."""
    ordered = sorted(seconds)
    median = ordered[len(ordered) // 2]
    kept = [s for s in ordered if s <= 4 * median]
    return sum(kept) / len(kept)


def probe_end(warmup: int, schedule: str) -> int:
    """The step after which the plan is made: ``PROBE_SKIP + PROBE_STEPS``, or the end of the
    warmup when that comes first (a cosine's learning rate depends on the run's length once
    the warmup is over). A cosine schedule with too short a warmup cannot be planned."""
    end = PROBE_SKIP + PROBE_STEPS
    if schedule != "cosine":
        return end
    if warmup - PROBE_SKIP < MIN_PROBE_STEPS:
        raise PocketLMError(f"--minutes with a cosine schedule needs --warmup >= "
                            f"{PROBE_SKIP + MIN_PROBE_STEPS} (the run times its warmup steps "
                            f"to choose its length); got --warmup {warmup}")
    return min(end, warmup)


def evaluations(steps: int, per_epoch: int, eval_every: int) -> int:
    """Validation runs a run of ``steps`` steps makes: one at each epoch end and every
    ``eval_every`` steps, and one at the last step (counted once where they coincide)."""
    ends = steps // per_epoch
    extra = (steps - 1) // eval_every if eval_every else 0
    last = 0 if steps % per_epoch == 0 else 1
    return ends + extra + last


def plan_steps(minutes: float, spent: float, done: int, step_seconds: float,
               eval_seconds: float, final_seconds: float, per_epoch: int, eval_every: int = 0,
               margin: float = MARGIN) -> int:
    """The most steps (at least ``done + 1``) such that the time already ``spent`` plus the
    remaining steps, the evaluations and the final evaluation fit ``minutes`` (less
    ``margin``)."""
    if min(step_seconds, per_epoch) <= 0:
        raise ValueError("step_seconds and per_epoch must be positive")
    available = minutes * 60 * (1 - margin) - spent - final_seconds

    def cost(steps: int) -> float:
        return ((steps - done) * step_seconds
                + evaluations(steps, per_epoch, eval_every) * eval_seconds)

    high = done + max(1, math.floor(available / step_seconds))   # steps alone: an upper bound
    low = done + 1
    if cost(low) > available:
        return low
    while low < high:                                               # largest steps that fit
        mid = (low + high + 1) // 2
        if cost(mid) <= available:
            low = mid
        else:
            high = mid - 1
    return low


class Probe:
    """The steps a ``--minutes`` run times before its plan: those after the first
    ``PROBE_SKIP``, up to :func:`probe_end`."""

    def __init__(self, warmup: int, schedule: str, step: int,
                 out: str | os.PathLike[str]) -> None:
        self.at = probe_end(warmup, schedule)
        if step >= self.at:
            raise PocketLMError(f"{out}: this --minutes run stopped before it fixed its "
                                f"length; start it again")
        self.seconds: list[float] = []

    def timed(self, step: int, seconds: float) -> bool:
        """Record that step ``step`` (1-based) took ``seconds``; return whether the plan is due."""
        if step > PROBE_SKIP:
            self.seconds.append(seconds)
        return step == self.at


def plan_run(model: RNNLM, valid_ids: np.ndarray, splits: Mapping[str, Any], *, minutes: float,
             eval_batch_size: int, eval_tokens: int, eval_every: int, step: int, entered: float,
             step_seconds: float, per_epoch: int, device: torch.device) -> Budget:
    """The plan at step ``step``: an evaluation timed on a slice of the validation split (no
    random draws), then the steps that fit ``minutes`` counted from ``entered`` (the
    ``perf_counter`` when the run's ``train()`` call began). ``splits`` is the data manifest's
    ``splits`` (their token counts); ``model`` is the model the evaluations will read."""
    valid, test = splits["valid"]["tokens"], splits["test"]["tokens"]
    sample = min(valid, 20 * eval_batch_size * 70)
    t0 = time.perf_counter()
    stream_nll_torch(model, valid_ids, eval_batch_size, device=device, max_tokens=sample)
    per_token = (time.perf_counter() - t0) / sample
    limit = eval_tokens or math.inf
    eval_seconds = per_token * min(valid, limit)
    final_seconds = per_token * min(test, limit) + eval_seconds       # test and last save
    spent = time.perf_counter() - entered
    steps = plan_steps(minutes, spent, step, step_seconds, eval_seconds, final_seconds,
                       per_epoch, eval_every)
    return Budget(minutes, step, spent, step_seconds, eval_seconds, final_seconds,
                  evaluations(steps, per_epoch, eval_every), steps)


def log_plan(budget: Budget, schedule: str, warmup: int) -> None:
    """Say what the plan fixed, and warn when it leaves a cosine schedule no room."""
    log.info("--minutes %g: %d steps fit (%.1f ms a step, %.2f s an evaluation); the same "
             "run: --max-steps %d", budget.minutes, budget.steps, 1000 * budget.step_seconds,
             budget.eval_seconds, budget.steps)
    if schedule == "cosine" and budget.steps <= warmup:
        log.warning("--minutes %g fits only %d steps, no more than the %d warmup steps: the "
                    "cosine never starts; give more minutes", budget.minutes, budget.steps,
                    warmup)
