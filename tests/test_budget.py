"""pipeline/budget.py: how many steps fit a --minutes budget, and when the plan is made."""

from __future__ import annotations

import pytest

from pocketlm.pipeline.budget import (MARGIN, PROBE_SKIP, PROBE_STEPS, Probe, evaluations,
                                      plan_steps,
                                      probe_end, step_time)
from pocketlm.runtime.artifact import PocketLMError


def test_evaluations_count_epoch_ends_and_the_last_step() -> None:
    assert evaluations(100, per_epoch=50, eval_every=0) == 2      # two epoch ends
    assert evaluations(120, per_epoch=50, eval_every=0) == 3      # ... and the last step
    assert evaluations(1, per_epoch=50, eval_every=0) == 1
    assert evaluations(100, per_epoch=1000, eval_every=30) == 4   # 30, 60, 90 and 100


def test_plan_fills_the_budget_and_no_more() -> None:
    """The plan is the largest step count whose steps, evaluations and final evaluation fit
    the budget less the margin; one step more would not."""
    kwargs = dict(spent=7.0, done=45, step_seconds=0.1, eval_seconds=2.0, final_seconds=3.0,
                  per_epoch=400)
    steps = plan_steps(3.0, **kwargs)
    available = 180 * (1 - MARGIN) - 7.0 - 3.0

    def cost(n: int) -> float:
        return (n - 45) * 0.1 + evaluations(n, 400, 0) * 2.0

    assert cost(steps) <= available < cost(steps + 1)
    assert 1580 < steps < 1700
    assert plan_steps(6.0, **kwargs) > 2 * steps - 100            # twice the time, ~twice


def test_plan_without_time_left_takes_one_more_step() -> None:
    assert plan_steps(0.01, spent=30.0, done=45, step_seconds=0.1, eval_seconds=1.0,
                      final_seconds=1.0, per_epoch=100) == 46


def test_probe_ends_before_the_cosine_depends_on_the_length() -> None:
    assert probe_end(warmup=100, schedule="cosine") == PROBE_SKIP + PROBE_STEPS
    assert probe_end(warmup=20, schedule="cosine") == 20
    assert probe_end(warmup=0, schedule="plateau") == PROBE_SKIP + PROBE_STEPS
    with pytest.raises(PocketLMError, match="--warmup"):
        probe_end(warmup=8, schedule="cosine")


def test_step_time_is_the_mean_without_pauses() -> None:
    """Step times are skewed to the slow side and the run is their sum: the mean, not the
    median; a pause of the machine (over 4x the median) is left out."""
    times = [0.09] * 60 + [0.13] * 30
    assert step_time(times) == pytest.approx(sum(times) / len(times))
    assert step_time(times + [2.0]) == pytest.approx(sum(times) / len(times))


def test_probe_times_the_steps_after_the_first_few_and_says_when_the_plan_is_due() -> None:
    probe = Probe(warmup=0, schedule="constant", step=0, out="ckpt")
    due = [probe.timed(step, 0.1 * step) for step in range(1, probe.at + 1)]
    assert due == [False] * (probe.at - 1) + [True] and probe.at == PROBE_SKIP + PROBE_STEPS
    assert probe.seconds[0] == pytest.approx(0.1 * (PROBE_SKIP + 1))
    assert len(probe.seconds) == PROBE_STEPS


def test_a_run_past_its_probe_without_a_plan_cannot_go_on() -> None:
    with pytest.raises(PocketLMError, match="ckpt: this --minutes run stopped before"):
        Probe(warmup=0, schedule="constant", step=PROBE_SKIP + PROBE_STEPS, out="ckpt")
