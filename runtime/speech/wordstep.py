"""Feed whole words to many hypotheses at once, optionally through hidden punctuation.

A recogniser writes ``and god said let there be light``; a pocketlm model trained on written
text expects ``and god said , let there be light .``. With ``hidden=(",", ".", ...)`` each word
boundary may carry one unspoken token, and its probability is summed in::

    P(w | h) ≈ P(w | h) + Σ_p P(p | h) · P(w | h p)        p ∈ hidden, P(p | h) > e^floor

The context kept for the next word is the likeliest of those paths (``h`` or ``h p``). The
same holds for the sentence end (``<eos>``). With ``hidden=()`` the scores are exactly
:meth:`LanguageModel.score`'s. A word that is several tokens (``lord's`` → ``lord ' s``) is fed
token by token; rows are always stepped together (``advance_batch``)::

    state [rows] ──select(parent rows)──▶ [n] ──(+ hidden rows)──▶ advance_batch(first tokens)
        ──▶ advance_batch(second tokens of the longer words) ... ──▶ state [n]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..artifact import InputError
from ..model import LanguageModel, State

#: Punctuation a speech transcript leaves out that pocketlm's KJV vocabulary has.
DEFAULT_HIDDEN = (",", ".", ":", ";", "?", "!")


class WordStepper:
    """Batched word-level scoring on top of the state API (see the module docstring)."""

    def __init__(self, lm: LanguageModel, hidden: Sequence[str] = (), floor: float = -3.0) -> None:
        self.lm = lm
        self.floor = float(floor)
        ids = []
        for token in hidden:
            got = lm.tokenize(token)
            if len(got) != 1 or got[0] == lm.unk_id:
                raise InputError(f"hidden token {token!r} is not one vocabulary token of "
                                 f"{lm.path}")
            ids.append(got[0])
        self.hidden = np.asarray(ids, dtype=np.int64)
        self._cache: dict[str, tuple[int, ...]] = {}

    def ids(self, word: str) -> tuple[int, ...]:
        """The token ids of one word (cached)."""
        got = self._cache.get(word)
        if got is None:
            got = self._cache[word] = tuple(self.lm.tokenize(word))
        return got

    def start(self, rows: int = 1) -> State:
        """``rows`` hypotheses at the start of a sentence."""
        return self.lm.begin(rows)

    def _contexts(self, parent: State, first: np.ndarray) -> tuple[np.ndarray, State]:
        """Per row, ln P of its next token ``first`` (-1: the end) summed over the hidden
        paths, and the likeliest context to read it from."""
        n = len(parent)
        rows = np.arange(n)
        target = np.where(first < 0, self.lm.eos_id, first)
        direct = parent.logprobs[rows, target].astype(np.float64)
        if not len(self.hidden) or not n:
            return direct, parent
        pick = parent.logprobs[:, self.hidden] > self.floor            # [n, H]
        r, h = np.nonzero(pick)
        if not len(r):
            return direct, parent
        lp_p, via = self.lm.advance_batch(parent.select(r), self.hidden[h])
        through = lp_p + via.logprobs[np.arange(len(r)), target[r]]
        options = np.full((n, len(self.hidden) + 1), -np.inf)
        options[:, 0] = direct
        options[r, h + 1] = through
        total = np.logaddexp.reduce(options, axis=1)
        best = np.argmax(options, axis=1)
        slot = np.full((n, len(self.hidden)), -1, dtype=np.int64)
        slot[r, h] = np.arange(len(r))
        chosen = np.where(best == 0, rows, n + slot[rows, np.maximum(best - 1, 0)])
        return total, State.concat([parent, via]).select(chosen)

    def advance(self, state: State, rows: Sequence[int] | np.ndarray,
                words: Sequence[str]) -> tuple[np.ndarray, State]:
        """From row ``rows[i]`` of ``state``, feed ``words[i]``: returns (ln P of each word,
        float64 [n], the n new rows). A word that is no token at all scores 0."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) != len(words):
            raise InputError(f"advance: {len(rows)} rows but {len(words)} words")
        if not len(rows):
            return np.zeros(0), state.select(np.zeros(0, dtype=np.int64))
        tokens = [self.ids(w) for w in words]
        parent = state.select(rows)
        live = np.array([i for i, t in enumerate(tokens) if t], dtype=np.int64)
        out = np.zeros(len(rows))
        if not len(live):
            return out, parent
        sub = parent.select(live)
        first = np.array([tokens[i][0] for i in live], dtype=np.int64)
        lp, context = self._contexts(sub, first)
        _, sub = self.lm.advance_batch(context, first)
        k = 1
        while True:
            more = np.array([j for j, i in enumerate(live) if len(tokens[i]) > k],
                            dtype=np.int64)
            if not len(more):
                break
            ids = np.array([tokens[live[j]][k] for j in more], dtype=np.int64)
            step_lp, stepped = self.lm.advance_batch(sub.select(more), ids)
            lp[more] += step_lp
            sub = _replace(sub, more, stepped)
            k += 1
        out[live] = lp
        return out, _replace(parent, live, sub)

    def end(self, state: State, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """ln P(<eos>) of the given rows (all rows by default), hidden paths summed in."""
        sub = state if rows is None else state.select(np.asarray(rows, dtype=np.int64))
        lp, _ = self._contexts(sub, np.full(len(sub), -1, dtype=np.int64))
        return lp

    def score(self, words: Sequence[str]) -> float:
        """ln P of one word sequence as a sentence (start and end included)."""
        state, total = self.start(1), 0.0
        for word in words:
            lp, state = self.advance(state, [0], [word])
            total += float(lp[0])
        return total + float(self.end(state)[0])


def _replace(state: State, rows: np.ndarray, new: State) -> State:
    """``state`` with ``rows`` replaced by the rows of ``new`` (a copy)."""
    arrays = {}
    for key, value in state.arrays.items():
        value = value.copy()
        value[:, rows] = new.arrays[key]
        arrays[key] = value
    logprobs = state.logprobs.copy()
    logprobs[rows] = new.logprobs
    return State(arrays, logprobs)
