"""Sentence batches and the freezing schedule: every example once per epoch, the same order for
the same (seed, epoch), disjoint equal shares per process; gradual unfreezing in three stages."""

from __future__ import annotations

import numpy as np
import torch

from pocketlm.pipeline.labelled import Example
from pocketlm.pipeline.task_batches import (IGNORE, Encoded, class_weights, epoch_batches,
                                            trains)


def test_every_example_once_and_reproducible() -> None:
    lengths = [int(n) for n in np.random.default_rng(0).integers(1, 30, 203)]
    batches = epoch_batches(lengths, 8, seed=1, epoch=2)
    assert sorted(i for b in batches for i in b) == list(range(203))
    assert batches == epoch_batches(lengths, 8, seed=1, epoch=2)
    assert batches != epoch_batches(lengths, 8, seed=1, epoch=3)
    # sorted pools: a batch's lengths are close together
    assert np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b)
                    for b in batches]) < 3


def test_process_shares_are_disjoint_and_equal() -> None:
    lengths = list(range(1, 100))
    shares = [epoch_batches(lengths, 4, 0, 1, shard=r, shards=3) for r in range(3)]
    assert len({len(s) for s in shares}) == 1
    seen = [i for s in shares for b in s for i in b]
    assert len(seen) == len(set(seen))


def test_padded_batch() -> None:
    data = Encoded.of([Example(["The", "Lord"], [5, 6], tags=[0, 1]),
                       Example(["amen"], [7], tags=[0])], [[0, 1], [0]])
    b = data.batch([0, 1], "cpu", per_piece=True)
    assert b["tokens"].tolist() == [[5, 6], [7, 0]] and b["lengths"].tolist() == [2, 1]
    assert b["shapes"].tolist() == [[2, 2], [1, 0]]
    assert b["targets"].tolist() == [[0, 1], [0, IGNORE]]


def test_class_weights_balance_the_labels() -> None:
    weights = class_weights(np.array([90, 10, 0]))
    assert torch.allclose(weights, torch.tensor([100 / 180, 100 / 20, 1.0]))


def test_gradual_unfreezing() -> None:
    names = ["head.linear.weight", "encoder.suffix_embedding.weight", "encoder.embedding.weight",
             "encoder.rnn.weight_hh_l0", "encoder.rnn.weight_hh_l1",
             "encoder.rnn_backward.weight_hh_l1"]
    stage = {epoch: [n for n in names if trains(n, epoch, "none", 2, layers=2)]
             for epoch in (1, 2, 3, 4, 5)}
    assert stage[1] == stage[2] == names[:2]
    assert stage[3] == stage[4] == [*names[:2], *names[4:]]
    assert stage[5] == names
    assert [n for n in names if trains(n, 9, "embedding", 0, 2)] == \
        [n for n in names if n != "encoder.embedding.weight"]
    assert [n for n in names if trains(n, 9, "encoder", 0, 2)] == names[:2]
