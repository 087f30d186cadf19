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
from ..model import LanguageModel
from ..state import State

#: Punctuation a speech transcript leaves out that pocketlm's KJV vocabulary has.
DEFAULT_HIDDEN = (",", ".", ":", ";", "?", "!")


def rows_of(state: State, rows: np.ndarray) -> State:
    """The recurrent state of ``rows`` without their next-token distributions (a read-only
    placeholder instead): all :meth:`LanguageModel.advance_batch` needs to step them, at a
    fraction of :meth:`State.select`'s copying."""
    arrays = {k: v[:, rows] for k, v in state.arrays.items()}
    return State(arrays, np.broadcast_to(np.zeros((1, 1), np.float32),
                                         (len(rows), state.logprobs.shape[1])))


def stack(states: Sequence[State]) -> State:
    """The rows of several states, recurrent arrays only (see :func:`rows_of`)."""
    arrays = {k: np.concatenate([s.arrays[k] for s in states], axis=1) for k in states[0].arrays}
    rows = sum(len(s) for s in states)
    return State(arrays, np.broadcast_to(np.zeros((1, 1), np.float32),
                                         (rows, states[0].logprobs.shape[1])))


class Prepared:
    """A state with its rows' hidden-token continuations (see :meth:`WordStepper.prepare`):
    continuation c is row ``rows[c]`` followed by hidden token number ``kinds[c]``, whose
    probability was ``lp[c]``; ``via`` holds their states."""

    __slots__ = ("state", "via", "rows", "kinds", "lp", "width", "_slots")

    def __init__(self, state: State, via: State | None, rows: np.ndarray, kinds: np.ndarray,
                 lp: np.ndarray, width: int) -> None:
        self.state, self.via, self.rows, self.kinds, self.lp = state, via, rows, kinds, lp
        self.width = width
        self._slots: np.ndarray | None = None

    def slots(self) -> np.ndarray:
        """[rows, hidden] index of each continuation, -1 where there is none."""
        if self._slots is None:
            slot = np.full((len(self.state), max(self.width, 1)), -1, dtype=np.int64)
            slot[self.rows, self.kinds] = np.arange(len(self.rows))
            self._slots = slot
        return self._slots

    def contexts(self, index: np.ndarray) -> State:
        """Rows by :meth:`WordStepper.lookup`'s context index (a row, or the number of rows +
        a continuation), without distributions (see :func:`rows_of`)."""
        n = len(self.state)
        if self.via is None or not (index >= n).any():
            return rows_of(self.state, index)
        arrays = {}
        for key, value in self.state.arrays.items():
            both = np.concatenate([value, self.via.arrays[key]], axis=1)
            arrays[key] = both[:, index]
        return State(arrays, np.broadcast_to(np.zeros((1, 1), np.float32),
                                             (len(index), self.state.logprobs.shape[1])))


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

    def prepare(self, state: State | Prepared) -> Prepared:
        """The hidden-token continuations of every row whose P(hidden token) > e^floor, run
        in one batch, so :meth:`lookup` can then score any next token without a step."""
        if isinstance(state, Prepared):
            return state
        empty = np.zeros(0, np.int64)
        if not len(self.hidden) or not len(state):
            return Prepared(state, None, empty, empty, np.zeros(0), len(self.hidden))
        r, h = np.nonzero(state.logprobs[:, self.hidden] > self.floor)
        if not len(r):
            return Prepared(state, None, r, h, np.zeros(0), len(self.hidden))
        lp_p, via = self.lm.advance_batch(rows_of(state, r), self.hidden[h])
        lp_p = state.logprobs[r, self.hidden[h]].astype(np.float64)
        return Prepared(state, via, r, h, lp_p, len(self.hidden))

    def lookup(self, prep: Prepared, rows: np.ndarray, first: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Per i: ln P of token ``first[i]`` (-1: the end) after row ``rows[i]``, summed over
        the hidden paths, and the context it is best read from (an index for
        :meth:`Prepared.contexts`)."""
        n = len(prep.state)
        target = np.where(first < 0, self.lm.eos_id, first)
        direct = prep.state.logprobs[rows, target].astype(np.float64)
        if prep.via is None:
            return direct, rows
        options = np.full((len(rows), len(self.hidden) + 1), -np.inf)
        options[:, 0] = direct
        slot = prep.slots()
        for j in range(len(self.hidden)):
            cont = slot[rows, j]
            has = cont >= 0
            if has.any():
                c = cont[has]
                options[has, j + 1] = prep.lp[c] + prep.via.logprobs[c, target[has]]
        total = np.logaddexp.reduce(options, axis=1)
        best = np.argmax(options, axis=1)
        chosen = np.where(best == 0, rows, n + slot[rows, np.maximum(best - 1, 0)])
        return total, chosen

    def advance(self, state: State | Prepared, rows: Sequence[int] | np.ndarray,
                words: Sequence[str]) -> tuple[np.ndarray, State]:
        """From row ``rows[i]`` of ``state`` (or of a prepared state, to share the hidden
        continuations between calls), feed ``words[i]``: returns (ln P of each word, float64
        [n], the n new rows). A word that is no token at all scores 0 and keeps its context."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) != len(words):
            raise InputError(f"advance: {len(rows)} rows but {len(words)} words")
        prep = self.prepare(state)
        tokens = [self.ids(w) for w in words]
        if not all(tokens):  # rare: a word that tokenises to nothing
            live = np.array([i for i, t in enumerate(tokens) if t], dtype=np.int64)
            out = np.zeros(len(rows))
            if not len(live):
                return out, prep.state.select(rows)
            lp, sub = self.advance(prep, rows[live], [words[i] for i in live])
            out[live] = lp
            return out, _replace(prep.state.select(rows), live, sub)
        first = np.array([t[0] for t in tokens], dtype=np.int64)
        lp, chosen = self.lookup(prep, rows, first)
        _, new = self.lm.advance_batch(prep.contexts(chosen), first)
        k = 1
        while True:
            more = np.array([i for i, t in enumerate(tokens) if len(t) > k], dtype=np.int64)
            if not len(more):
                break
            ids = np.array([tokens[i][k] for i in more], dtype=np.int64)
            lp[more] += new.logprobs[more, ids]
            _, stepped = self.lm.advance_batch(rows_of(new, more), ids)
            new = _replace(new, more, stepped)
            k += 1
        return lp, new

    def end(self, state: State | Prepared,
            rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """ln P(<eos>) of the given rows (all rows by default), hidden paths summed in."""
        prep = self.prepare(state)
        rows = np.arange(len(prep.state)) if rows is None else np.asarray(rows, dtype=np.int64)
        lp, _ = self.lookup(prep, rows, np.full(len(rows), -1, dtype=np.int64))
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
    logprobs = np.array(state.logprobs)
    logprobs[rows] = new.logprobs
    return State(arrays, logprobs)
