"""The state API: advance hypotheses word by word, for incremental scoring and beam search.

A :class:`State` is the step graph's recurrent state for B hypotheses (rows) plus each row's
next-token distribution (``logprobs`` [B, V]), so ``advance`` looks a word's log-probability up
and then runs one step::

    begin()      = zero state, <eos> fed          logprobs = P(. | <eos>)
    null_state() = zero state, nothing fed        logprobs = 0 (the first token is context)
    advance(state, w)        -> (state.logprobs[w], step(w, state))        one row
    advance_batch(state, ws) -> one token per row, one step-graph run      B rows
    end(state) / end_batch(state) -> state.logprobs[<eos>]

Under it sits the low-level raw-array layer, :meth:`Stepper.initial_state` and
:meth:`Stepper.step`: the step graph itself, with the state as a dict of arrays keyed by the
graph's input names and no distribution kept. Use it to drive the graph from your own loop; use
``begin``/``advance``/``end`` for everything else. :class:`Stepper` does all this over one
:class:`~pocketlm.runtime.core.SessionCore`; :meth:`Stepper.feed` is what the scorer and the
generator step with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from . import graphs
from .artifact import InputError
from .core import SessionCore


class State:
    """The recurrent state of one or more hypotheses (rows), with each row's next-token
    distribution. Immutable: :meth:`LanguageModel.advance` returns a new one.

    ``arrays`` maps the step graph's state input names (``state_h`` [, ``state_c``]) to float32
    ``[layers, rows, hidden]``; ``logprobs`` is float32 ``[rows, vocab]``, ln P(next token | the
    row's context). A null-context row has all-zero ``logprobs``: its first token is context and
    scores 0.

    ``len(state)`` is the number of rows; ``state.select(rows)`` (or ``state[rows]``) picks,
    repeats and reorders rows, as beam search needs; :meth:`concat` stacks states.
    """

    __slots__ = ("arrays", "logprobs")

    def __init__(self, arrays: dict[str, np.ndarray], logprobs: np.ndarray) -> None:
        self.arrays = arrays
        self.logprobs = logprobs

    def __len__(self) -> int:
        return int(self.logprobs.shape[0])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in self.arrays.items())
        return f"State(rows={len(self)}, {shapes})"

    def select(self, rows: int | Sequence[int] | np.ndarray) -> State:
        """A state made of the given rows, in that order (rows may repeat)."""
        index = np.atleast_1d(np.asarray(rows))
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise InputError("State.select takes a row number or a 1-D list of row numbers")
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise InputError(f"State.select: row out of range for a state of {len(self)} rows")
        index = index.astype(np.int64)
        return State({k: v[:, index] for k, v in self.arrays.items()}, self.logprobs[index])

    __getitem__ = select

    def __iter__(self) -> Iterator[State]:
        """The rows, one one-row state each."""
        return (self.select([i]) for i in range(len(self)))

    @staticmethod
    def concat(states: Sequence[State]) -> State:
        """The rows of several states (of the same model), one after another."""
        if not states:
            raise InputError("State.concat needs at least one state")
        keys = list(states[0].arrays)
        if any(list(s.arrays) != keys for s in states):
            raise InputError("State.concat: the states come from different models")
        return State({k: np.concatenate([s.arrays[k] for s in states], axis=1) for k in keys},
                     np.concatenate([s.logprobs for s in states], axis=0))


class Stepper:
    """``begin``/``advance``/``end`` and their batch forms over :class:`State`, on top of the raw
    step graph (``initial_state``/``step``), for the model folder ``core``."""

    def __init__(self, core: SessionCore) -> None:
        self.core = core

    # -- the raw-array layer ------------------------------------------------------------------

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero recurrent state for the step graph, keyed by its input names (low level: see
        :meth:`begin` for the state API)."""
        state = {}
        for spec in self.core.state_spec:
            shape = [batch if d == graphs.BATCH else int(d) for d in spec["shape"]]
            state[spec["input"]] = np.zeros(shape, dtype=np.float32)
        return state

    def step(self, tokens: Sequence[int] | np.ndarray,
             state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One run of the step graph for a batch of token ids: returns the next-token
        log-probabilities ``[batch, vocab]`` and the new state (low level: see :meth:`advance`).
        Ids outside the vocabulary or a state of the wrong shape raise :class:`InputError`."""
        core = self.core
        ids = core.check_ids(np.atleast_1d(np.asarray(tokens)), "step")
        if ids.ndim != 1:
            raise InputError(f"step: tokens must be 1-D (one id per row), got shape "
                             f"{list(ids.shape)}")
        if not isinstance(state, dict) or sorted(state) != sorted(core.state_names):
            raise InputError(f"step: state must be a dict with keys {core.state_names} (from "
                             f"initial_state)")
        feeds: dict[str, np.ndarray] = {graphs.TOKEN: ids}
        for spec in core.state_spec:
            value = np.asarray(state[spec["input"]], dtype=np.float32)
            expected = [len(ids) if d == graphs.BATCH else int(d) for d in spec["shape"]]
            if list(value.shape) != expected:
                raise InputError(f"step: {spec['input']} has shape {list(value.shape)}, "
                                 f"expected {expected} for {len(ids)} tokens")
            feeds[spec["input"]] = value
        outputs = core.run(graphs.STEP, feeds)
        new_state = {spec["input"]: out for spec, out in zip(core.state_spec, outputs[1:])}
        return outputs[0], new_state

    def feed(self, ids: np.ndarray, state: State) -> State:
        """Feed one token per row (int64 ids already checked, one per row of ``state``): the
        state after it, with its distribution."""
        feeds: dict[str, np.ndarray] = {graphs.TOKEN: ids, **state.arrays}
        outputs = self.core.run(graphs.STEP, feeds)
        return State({n: o for n, o in zip(self.core.state_names, outputs[1:])}, outputs[0])

    # -- the state API ------------------------------------------------------------------------

    def null_state(self, rows: int = 1) -> State:
        """``rows`` hypotheses with no context at all (zero state, nothing fed): the first token
        advanced from it is context and scores 0, as with ``score(..., bos=False)``."""
        if rows < 1:
            raise InputError(f"a state needs at least one row, got {rows}")
        return State(self.initial_state(rows),
                     np.zeros((rows, self.core.vocab_size), dtype=np.float32))

    def begin(self, rows: int = 1) -> State:
        """``rows`` hypotheses at the start of a sentence (zero state, ``<eos>`` fed), as
        :meth:`score` starts with ``bos=True``."""
        return self.feed(np.full(rows, self.core.eos_id, dtype=np.int64), self.null_state(rows))

    def word_ids(self, word: str | int, where: str) -> list[int]:
        """The token ids of ``word`` (a string, tokenised, or a checked token id)."""
        if isinstance(word, (int, np.integer)) and not isinstance(word, bool):
            return [int(self.core.check_ids(np.asarray([word]), where)[0])]
        if isinstance(word, str):
            return self.core.tokenize(word)
        raise InputError(f"{where}: a word is a str or a token id (int), got "
                         f"{type(word).__name__}")

    def advance(self, state: State, word: str | int) -> tuple[float, State]:
        """Feed one word to a one-row state: returns (ln P(word | state), the new state).

        ``word`` is a token id or a string; a string is tokenised, and when it becomes several
        tokens (``"don't"``) they are all fed and their log-probabilities added (no token: 0 and
        the same state). Summed along a sentence's tokens plus :meth:`end`, this equals
        :meth:`score` with the same ``bos`` (:meth:`begin` or :meth:`null_state`)."""
        if not isinstance(state, State) or len(state) != 1:
            raise InputError("advance takes a one-row State (from begin(), null_state() or "
                             "advance); use advance_batch for several rows")
        total = 0.0
        for token in self.word_ids(word, "advance"):
            total += float(state.logprobs[0, token])
            state = self.feed(np.array([token], dtype=np.int64), state)
        return total, state

    def advance_batch(self, state: State,
                      words: Sequence[str | int] | np.ndarray) -> tuple[np.ndarray, State]:
        """Feed one token per row in one step-graph run: returns (ln P of each row's token,
        float64 [rows], the new state). A string must be exactly one token here. Use
        ``state.select(rows)`` first to expand, prune or reorder hypotheses (beam search)."""
        if not isinstance(state, State):
            raise InputError("advance_batch takes a State (from begin(), null_state() or "
                             "advance)")
        if isinstance(words, np.ndarray):
            ids = self.core.check_ids(words.reshape(-1), "advance_batch")
        else:
            flat = []
            for w in words:
                got = self.word_ids(w, "advance_batch")
                if len(got) != 1:
                    raise InputError(f"advance_batch: {w!r} is {len(got)} tokens; give one "
                                     f"token per row (or use advance for one row)")
                flat.extend(got)
            ids = np.asarray(flat, dtype=np.int64)
        if len(ids) != len(state):
            raise InputError(f"advance_batch: {len(ids)} tokens for a state of {len(state)} "
                             f"rows")
        logps = state.logprobs[np.arange(len(ids)), ids].astype(np.float64)
        return logps, self.feed(ids, state)

    def end(self, state: State) -> float:
        """ln P(<eos> | a one-row state): the end of the sentence."""
        if not isinstance(state, State) or len(state) != 1:
            raise InputError("end takes a one-row State; use end_batch for several rows")
        return float(state.logprobs[0, self.core.eos_id])

    def end_batch(self, state: State) -> np.ndarray:
        """ln P(<eos> | each row), float64 [rows]."""
        return state.logprobs[:, self.core.eos_id].astype(np.float64)
