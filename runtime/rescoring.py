"""N-best rescoring: re-rank a recogniser's hypotheses by base score + weight x LM log-probability
+ word penalty x words, every hypothesis of every list scored in the same batches::

    n-best lists ─flatten─▶ hypotheses ─Scorer.predicted─▶ LM log-prob each
                 ─▶ base + weight * LM + penalty * words ─▶ each list sorted best first
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .artifact import InputError
from .results import Rescored
from .core import SessionCore
from .scoring import Scorer


class Rescorer:
    """``rescore`` and ``rescore_batch`` for the model folder ``core``, scored by ``scorer``."""

    def __init__(self, core: SessionCore, scorer: Scorer) -> None:
        self.core, self.scorer = core, scorer

    def rescore(self, hypotheses: Sequence[str], base_scores: Sequence[float] | None = None, *,
                weight: float = 1.0, word_penalty: float = 0.0, bos: bool = True,
                eos: bool = True, batch_size: int = 64) -> list[Rescored]:
        """Re-rank one n-best list: best first by ``base + weight * LM log-prob + word_penalty *
        words`` (ties keep input order). ``base_scores`` are the recogniser's scores (default
        0); the LM log-probability is :meth:`score` with ``bos`` and ``eos``."""
        return self.rescore_batch([hypotheses], None if base_scores is None else [base_scores],
                                  weight=weight, word_penalty=word_penalty, bos=bos, eos=eos,
                                  batch_size=batch_size)[0]

    def rescore_batch(self, nbest_lists: Sequence[Sequence[str]],
                      base_scores: Sequence[Sequence[float]] | None = None, *,
                      weight: float = 1.0, word_penalty: float = 0.0, bos: bool = True,
                      eos: bool = True, batch_size: int = 64) -> list[list[Rescored]]:
        """:meth:`rescore` for many n-best lists, all hypotheses scored in the same batches."""
        for name, value in (("weight", weight), ("word_penalty", word_penalty)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"rescore: {name} must be a finite number, got {value!r}")
        if base_scores is None:
            base_scores = [[0.0] * len(h) for h in nbest_lists]
        if len(base_scores) != len(nbest_lists):
            raise InputError(f"rescore: {len(nbest_lists)} n-best lists but "
                             f"{len(base_scores)} lists of base scores")
        flat: list[str] = []
        for i, (hyps, base) in enumerate(zip(nbest_lists, base_scores)):
            if isinstance(hyps, str):
                raise InputError("rescore: hypotheses must be a list of strings, not a string")
            if len(hyps) != len(base):
                raise InputError(f"rescore: list {i} has {len(hyps)} hypotheses but "
                                 f"{len(base)} base scores")
            for b in base:
                if isinstance(b, bool) or not isinstance(b, (int, float, np.floating,
                                                             np.integer)) \
                        or not math.isfinite(float(b)):
                    raise InputError(f"rescore: base scores must be finite numbers, got {b!r}")
            flat.extend(hyps)
        id_lists = self.core.encode_batch(flat)
        logprobs = self.scorer.predicted(id_lists, batch_size, bos)
        out: list[list[Rescored]] = []
        pos = 0
        for hyps, base in zip(nbest_lists, base_scores):
            items = []
            for j, (hyp, b) in enumerate(zip(hyps, base)):
                ids, lp = id_lists[pos], logprobs[pos]
                pos += 1
                lm_lp = float(lp.sum() if eos else lp[:-1].sum())
                words = len(ids)
                items.append(Rescored(hyp, float(b) + weight * lm_lp + word_penalty * words,
                                      float(b), lm_lp, words,
                                      sum(1 for t in ids if t == self.core.unk_id), j))
            out.append(sorted(items, key=lambda r: -r.score))
        return out
