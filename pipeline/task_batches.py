"""Sentence batches of a labelled split, and the schedule of which weights train when.

Examples become padded ``[B, L]`` tensors (0 beyond each length) in length buckets: each epoch
the train split is shuffled (seeded by seed and epoch, so a resumed run draws the same order),
cut into pools of ``POOL`` batches, each pool sorted by length and cut into batches, and the
batches shuffled::

    examples ─shuffle(seed, epoch)─▶ pools of 50 batches ─sort by length─▶ batches ─shuffle─▶
    batch i: tokens, shapes, suffixes [B, L] int64, lengths [B] int64, targets [B] or [B, L]
             (-100 beyond each length: ignored by the loss)

With several processes, process r takes batches r, r + world, ... (each the same count).

Freezing (``--freeze``, ``--unfreeze-epochs N``, ULMFiT's gradual unfreezing kept simple): the
head and the word features' weights (shape and suffix tables, suffix projection) always train;
for the first N epochs the word embedding and the cells are frozen, for the next N the top layer
of cells (each direction) trains too, then everything does, except what ``--freeze`` keeps frozen
(``embedding``: the word embedding, ``encoder``: the embedding and all cells).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pocketlm.runtime.features import features

from .encoder import FEATURE_WEIGHTS, recurrent_layer

#: Batches per length-sorted pool.
POOL = 50
#: Target of the positions beyond a sentence's length (ignored by the loss).
IGNORE = -100


@dataclass
class Encoded:
    """A split as arrays: ids, shapes and suffixes per sentence, and the targets."""

    ids: list[list[int]]
    shapes: list[list[int]]
    suffixes: list[list[int]]
    targets: list[Any]

    @classmethod
    def of(cls, examples: Sequence[Any], targets: Sequence[Any]) -> Encoded:
        ids, shapes, suffixes, kept = [], [], [], []
        for example, target in zip(examples, targets):
            if not example.ids:
                continue                       # an empty sentence has nothing to classify
            shape, suffix = features(example.words)
            ids.append(list(example.ids))
            shapes.append(shape)
            suffixes.append(suffix)
            kept.append(target)
        return cls(ids, shapes, suffixes, kept)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, index: Sequence[int], device: torch.device | str,
              per_piece: bool) -> dict[str, torch.Tensor]:
        """The padded tensors of the examples at ``index``."""
        lengths = [len(self.ids[i]) for i in index]
        steps = max(lengths)
        out = {name: np.zeros((len(index), steps), dtype=np.int64)
               for name in ("tokens", "shapes", "suffixes")}
        targets = (np.full((len(index), steps), IGNORE, dtype=np.int64) if per_piece
                   else np.array([self.targets[i] for i in index], dtype=np.int64))
        for row, i in enumerate(index):
            n = lengths[row]
            out["tokens"][row, :n] = self.ids[i]
            out["shapes"][row, :n] = self.shapes[i]
            out["suffixes"][row, :n] = self.suffixes[i]
            if per_piece:
                targets[row, :n] = self.targets[i]
        tensors = {k: torch.from_numpy(v).to(device) for k, v in out.items()}
        tensors["lengths"] = torch.tensor(lengths, dtype=torch.long, device=device)
        tensors["targets"] = torch.from_numpy(targets).to(device)
        return tensors

    def label_counts(self, n_labels: int, per_piece: bool) -> np.ndarray:
        flat = [t for ts in self.targets for t in ts] if per_piece else list(self.targets)
        return np.bincount(np.asarray(flat, dtype=np.int64), minlength=n_labels)


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  shard: int = 0, shards: int = 1) -> list[list[int]]:
    """This process's batches (example indices) of one epoch; see the module docstring."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = batch_size * POOL
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool].tolist(), key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    batches = [batches[i] for i in rng.permutation(len(batches))]
    usable = len(batches) - len(batches) % shards if len(batches) >= shards else len(batches)
    return batches[shard:usable:shards]


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of similar lengths, every example once (evaluation)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def class_weights(counts: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the labels that occur (others 1)."""
    seen = counts > 0
    weights = np.ones(len(counts), dtype=np.float64)
    weights[seen] = counts[seen].sum() / (seen.sum() * counts[seen])
    return torch.tensor(weights, dtype=torch.float32)


def trains(name: str, epoch: int, freeze: str, unfreeze_epochs: int, layers: int) -> bool:
    """Whether parameter ``name`` of a task model trains in ``epoch`` (1-based)."""
    if not name.startswith("encoder.") or any(part in name for part in FEATURE_WEIGHTS):
        return True                                           # the head and the feature tables
    is_embedding = name == "encoder.embedding.weight"
    if freeze == "encoder" or (freeze == "embedding" and is_embedding):
        return False
    if unfreeze_epochs and epoch <= unfreeze_epochs:
        return False                                          # head only
    if unfreeze_epochs and epoch <= 2 * unfreeze_epochs:
        return recurrent_layer(name) == layers - 1            # + the top layer of cells
    return True
