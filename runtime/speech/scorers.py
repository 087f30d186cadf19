"""Language models as batched word scorers for lattice expansion and n-best rescoring.

Both kinds share one small interface; a *batch* is an opaque object holding the contexts of
several hypotheses (rows)::

    start()                       -> batch of 1 row: the start of a sentence
    advance(batch, rows, words)   -> (ln P of words[i] after rows[i], float64 [n]), new batch [n]
    end(batch, rows)              -> ln P(end of sentence | rows[i]), float64 [n]
    gather([(batch, rows), ...])  -> one batch of those rows, in that order

* :class:`PocketLMScorer`: pocketlm's state API (a batch is a :class:`State`), words fed through
  :class:`~.wordstep.WordStepper` (hidden punctuation optional).
* :class:`NGramScorer`: an ARPA or KenLM binary through the ``kenlm`` module (the
  ``pocketlm[kenlm]`` extra); a batch is a list of ``kenlm.State``; log10 becomes ln.

All scores are natural logs, the sentence start is context and the end is predicted, as in
:meth:`LanguageModel.score`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import InputError, PocketLMError
from ..model import LanguageModel
from ..state import State
from .wordstep import WordStepper

LN10 = math.log(10.0)


class PocketLMScorer:
    """pocketlm as a scorer; ``hidden`` punctuation as in :class:`WordStepper`."""

    def __init__(self, lm: LanguageModel, hidden: Sequence[str] = (), floor: float = -3.0,
                 name: str = "pocketlm") -> None:
        self.name = name
        self.stepper = WordStepper(lm, hidden, floor)

    def start(self) -> State:
        return self.stepper.start(1)

    def advance(self, batch: State, rows: Sequence[int], words: Sequence[str]
                ) -> tuple[np.ndarray, State]:
        return self.stepper.advance(batch, rows, words)

    def end(self, batch: State, rows: Sequence[int]) -> np.ndarray:
        return self.stepper.end(batch, rows)

    def gather(self, parts: Sequence[tuple[State, Sequence[int]]]) -> State:
        return State.concat([batch.select(np.asarray(rows, dtype=np.int64))
                             for batch, rows in parts])


def load_kenlm(path: str | os.PathLike[str]) -> Any:
    """A ``kenlm.Model``; one-line errors for a missing module or an unreadable file."""
    try:
        import kenlm
    except ImportError as exc:
        raise PocketLMError("n-gram scoring needs the kenlm module: pip install "
                            "'pocketlm[kenlm]'") from exc
    if not Path(path).is_file():
        raise InputError(f"{path}: no such n-gram file (an ARPA or KenLM binary)")
    try:
        return kenlm.Model(str(path))
    except Exception as exc:  # kenlm raises OSError or RuntimeError with C++ text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: kenlm cannot read it ({first}); give an ARPA file or a "
                         f"KenLM binary") from exc


class NGramScorer:
    """A KenLM model as a scorer (also usable whole-sentence through :meth:`score`)."""

    def __init__(self, model: Any, name: str = "ngram") -> None:
        import kenlm

        self._kenlm = kenlm
        self.model = load_kenlm(model) if isinstance(model, (str, os.PathLike)) else model
        self.name = name

    def start(self) -> list[Any]:
        state = self._kenlm.State()
        self.model.BeginSentenceWrite(state)
        return [state]

    def advance(self, batch: list[Any], rows: Sequence[int], words: Sequence[str]
                ) -> tuple[np.ndarray, list[Any]]:
        out, new = np.zeros(len(rows)), []
        for i, (r, word) in enumerate(zip(rows, words)):
            state = self._kenlm.State()
            out[i] = self.model.BaseScore(batch[r], word, state) * LN10
            new.append(state)
        return out, new

    def end(self, batch: list[Any], rows: Sequence[int]) -> np.ndarray:
        scratch = self._kenlm.State()
        return np.array([self.model.BaseScore(batch[r], "</s>", scratch) * LN10 for r in rows])

    def gather(self, parts: Sequence[tuple[list[Any], Sequence[int]]]) -> list[Any]:
        return [batch[r] for batch, rows in parts for r in rows]

    def score(self, sentences: Sequence[Sequence[str] | str]) -> list[float]:
        """ln P of whole sentences (start context, end predicted)."""
        return [self.model.score(s if isinstance(s, str) else " ".join(s), bos=True, eos=True)
                * LN10 for s in sentences]
