"""Generation: sample continuations word by word through the step graph.

One sampling loop, :class:`Sampler`, serves :meth:`~Generating.samples` (several rows at once),
:meth:`~Generating.generate` (their text) and :meth:`~Generating.stream` (one row, a word at a
time). Each round draws one token per active row and feeds the rows that go on::

    state [rows] ─pick─▶ token per row ─┬─ <eos>: row done, state kept (``<eos>`` not fed)
                                        └─ word: kept ─step graph─▶ state [rows still going]
                                                       stop word or max_words: row done

The sampler knows the model only through a narrow step interface (``feed(ids, state) ->
state``, ``token_text(id)``, the ``<eos>``/``<unk>`` ids), so it never imports the model class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .artifact import InputError
from .results import Generation, detokenize
from .state import State, StateAPI


def pick_tokens(logprobs: np.ndarray, rng: np.random.Generator, temperature: float,
                top_k: int, top_p: float, banned: int | None) -> np.ndarray:
    """One sampled token id per row of ``logprobs`` [rows, vocab] (one uniform draw per row, so
    a seed gives the same words however the rows are batched); ``banned`` (``<unk>``) is never
    picked."""
    logits = logprobs.astype(np.float32)          # a copy: the state's array stays intact
    if banned is not None:
        logits[:, banned] = -np.inf
    if temperature == 0:
        greedy: np.ndarray = np.argmax(logits, axis=1).astype(np.int64)
        return greedy
    if temperature != 1:
        logits /= np.float32(temperature)
    vocab = logits.shape[1]
    if 0 < top_k < vocab:  # top_k >= vocabulary size keeps every word
        kth = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
        logits[logits < kth] = -np.inf
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))   # unnormalised
    if top_p < 1.0:
        probs = probs.astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")
        ordered = np.take_along_axis(probs, order, axis=1)
        keep = np.cumsum(ordered, axis=1) - ordered < top_p
        mask = np.zeros_like(probs, dtype=bool)
        np.put_along_axis(mask, order, keep, axis=1)
        probs = np.where(mask, probs, 0.0)
    return _inverse_cdf(probs, 1.0 - rng.random(len(probs)))


def _inverse_cdf(probs: np.ndarray, draws: np.ndarray, block: int = 128) -> np.ndarray:
    """Per row, the first index whose cumulative (unnormalised) probability reaches
    ``draws * total`` (draws in (0, 1]), never an index of probability 0.

    Two levels instead of one long cumulative sum: block sums first, then one block::

        probs [rows, vocab] -> blocks [rows, nblocks, block] -> cumsum of block sums -> block b
                                                    cumsum inside block b -> index
    """
    rows, vocab = probs.shape
    nblocks = -(-vocab // block)
    padded = np.zeros((rows, nblocks * block), dtype=np.float64)
    padded[:, :vocab] = probs
    blocks = padded.reshape(rows, nblocks, block)
    sums = np.cumsum(blocks.sum(axis=2), axis=1)                    # [rows, nblocks]
    targets = draws * sums[:, -1]                                   # in (0, total]
    chosen = np.minimum((sums < targets[:, None]).sum(axis=1), nblocks - 1)
    r = np.arange(rows)
    before = np.where(chosen > 0, sums[r, chosen - 1], 0.0)
    inside = blocks[r, chosen]                                      # [rows, block]
    index = (before[:, None] + np.cumsum(inside, axis=1) < targets[:, None]).sum(axis=1)
    last = block - 1 - np.argmax(inside[:, ::-1] > 0, axis=1)       # rounding guard
    picked: np.ndarray = (chosen * block + np.minimum(index, last)).astype(np.int64)
    return picked


class Sampler:
    """The sampling loop: ``rows`` samples continued from one-row-per-sample ``state``.

    :meth:`round` draws one token per active row and returns ``(sample, word, logprob)`` for each
    word produced; after it, ``words``, ``logprobs``, ``finish`` and ``states`` describe every
    sample so far (a finished sample's state is final; an active one's follows its last word)."""

    def __init__(self, feed: Callable[[np.ndarray, State], State],
                 token_text: Callable[[int], str], eos_id: int, banned: int | None,
                 state: State, max_words: int, temperature: float, top_k: int, top_p: float,
                 rng: np.random.Generator, stop_ids: set[int]) -> None:
        self._feed, self._token_text, self._eos_id, self._banned = feed, token_text, eos_id, banned
        self._settings = (temperature, top_k, top_p)
        self._rng, self._max_words, self._stop_ids = rng, max_words, stop_ids
        rows = len(state)
        self.words: list[list[str]] = [[] for _ in range(rows)]
        self.logprobs: list[list[float]] = [[] for _ in range(rows)]
        self.finish: list[str | None] = [None if max_words else "max_words"] * rows
        self.states: list[State] = list(state)
        self._current = state
        self._active = np.arange(rows) if max_words else np.arange(0)

    @property
    def done(self) -> bool:
        return len(self._active) == 0

    def round(self) -> list[tuple[int, str, float]]:
        """One token for every active sample (nothing once all are done)."""
        if self.done:
            return []
        current, active = self._current, self._active
        tokens = pick_tokens(current.logprobs, self._rng, *self._settings, self._banned)
        chosen = current.logprobs[np.arange(len(active)), tokens]
        produced, keep = [], []
        for row, (sample, token) in enumerate(zip(active, tokens)):
            if token == self._eos_id:
                self.finish[sample] = "eos"
                continue
            word = self._token_text(int(token))
            self.words[sample].append(word)
            self.logprobs[sample].append(float(chosen[row]))
            produced.append((int(sample), word, float(chosen[row])))
            if token in self._stop_ids:
                self.finish[sample] = "stop"
            elif len(self.words[sample]) == self._max_words:
                self.finish[sample] = "max_words"
            keep.append(row)
        if keep:
            current = self._feed(tokens[keep], current.select(keep))
            active = active[keep]
            for i, sample in enumerate(active):
                self.states[sample] = current.select([i])
        going = [i for i, sample in enumerate(active) if self.finish[sample] is None] \
            if keep else []
        self._current = current.select(going) if going else current
        self._active = active[going] if going else np.arange(0)
        return produced

    def results(self) -> list[Generation]:
        """Every sample, run to its end."""
        while not self.done:
            self.round()
        return [Generation(detokenize(w), tuple(w), tuple(lp), str(f), s)
                for w, lp, f, s in zip(self.words, self.logprobs, self.finish, self.states)]


class GenerationStream(Iterator[Any]):
    """The iterator :meth:`Generating.stream` returns: one sample, a word per ``next``; see
    there. ``state``, ``words``, ``logprobs`` and ``finish`` describe what was produced so far."""

    def __init__(self, sampler: Sampler, with_logprobs: bool) -> None:
        self._sampler, self._with_logprobs = sampler, with_logprobs

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> Any:
        produced = self._sampler.round()
        if not produced:
            raise StopIteration
        _, word, logprob = produced[0]
        return (word, logprob) if self._with_logprobs else word

    @property
    def state(self) -> State:
        """The state after the last produced word (``<eos>`` is not fed)."""
        return self._sampler.states[0]

    @property
    def words(self) -> list[str]:
        return self._sampler.words[0]

    @property
    def logprobs(self) -> list[float]:
        return self._sampler.logprobs[0]

    @property
    def finish(self) -> str | None:
        """``"eos"``, ``"stop"``, ``"max_words"``, or ``None`` while it may go on."""
        return self._sampler.finish[0]

    @property
    def text(self) -> str:
        """The words so far, detokenised."""
        return detokenize(self.words)


class Generating(StateAPI):
    """``samples``, ``generate`` and ``stream``."""

    def _sampler(self, prompt: str, max_words: int, temperature: float, top_k: int,
                 top_p: float, seed: int | None, allow_unk: bool, num_samples: int,
                 stop: Iterable[str], state: State | None) -> Sampler:
        if not (max_words >= 0 and temperature >= 0 and top_k >= 0 and 0 < top_p <= 1):
            raise InputError("generate needs max_words >= 0, temperature >= 0, top_k >= 0 "
                             "and 0 < top_p <= 1")
        if num_samples < 1:
            raise InputError(f"num_samples must be at least 1, got {num_samples}")
        stop_ids = self._stop_ids(stop)
        rng = np.random.default_rng(seed)
        if state is None:
            state = self.begin(1)
        elif not isinstance(state, State) or len(state) != 1:
            raise InputError("generation continues from a one-row State")
        for token in self.tokenize(prompt):
            state = self._step_state(np.array([token], dtype=np.int64), state)
        return Sampler(self._step_state, self.token_text, self.eos_id,
                       None if allow_unk else self.unk_id,
                       state.select(np.zeros(num_samples, np.int64)), max_words, temperature,
                       top_k, top_p, rng, stop_ids)

    def _stop_ids(self, stop: Iterable[str]) -> set[int]:
        if isinstance(stop, str):
            stop = [stop]
        ids = set()
        for word in stop:
            got = self.tokenize(word)
            if len(got) != 1:
                raise InputError(f"stop word {word!r} is {len(got)} tokens; give single words")
            ids.add(got[0])
        return ids

    def samples(self, prompt: str = "", max_words: int = 30, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                allow_unk: bool = False, *, num_samples: int = 1, stop: Iterable[str] = (),
                state: State | None = None) -> list[Generation]:
        """``num_samples`` continuations of ``prompt``, sampled together through the step graph
        (the prompt is fed once), each a :class:`Generation` with words, log-probabilities and
        the state to continue from. ``stop``: words that end a sample (and are kept);
        ``state``: continue from a one-row state instead of a new sentence. Other arguments as
        :meth:`generate`."""
        return self._sampler(prompt, max_words, temperature, top_k, top_p, seed, allow_unk,
                             num_samples, stop, state).results()

    def generate(self, prompt: str = "", max_words: int = 30, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 allow_unk: bool = False, *, num_samples: int = 1, stop: Iterable[str] = (),
                 state: State | None = None) -> str | list[str]:
        """Continue ``prompt`` word by word until ``<eos>``, a ``stop`` word or ``max_words``.

        Returns the continuation only (not the prompt), detokenised: one string, or a list of
        ``num_samples`` strings when ``num_samples > 1``. ``temperature=0`` is greedy; ``top_k``
        keeps the k likeliest words (0: all); ``top_p`` keeps the smallest set whose probability
        reaches p; ``seed`` makes sampling repeatable; ``<unk>`` is never produced unless
        ``allow_unk``. :meth:`samples` gives words, log-probabilities and states;
        :meth:`stream` yields words as they come.
        """
        texts = [g.text for g in self.samples(prompt, max_words, temperature, top_k, top_p,
                                              seed, allow_unk, num_samples=num_samples,
                                              stop=stop, state=state)]
        return texts[0] if num_samples == 1 else texts

    def stream(self, prompt: str = "", max_words: int = 30, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
               allow_unk: bool = False, *, stop: Iterable[str] = (), state: State | None = None,
               logprobs: bool = False) -> GenerationStream:
        """Like :meth:`generate` for one sample, but an iterator that yields each word as soon
        as it is produced (``(word, logprob)`` pairs with ``logprobs=True``). The same seed gives
        the same words as :meth:`generate`. After (or during) the loop the iterator's ``state``,
        ``words``, ``logprobs`` and ``finish`` describe what was produced so far."""
        return GenerationStream(self._sampler(prompt, max_words, temperature, top_k, top_p,
                                              seed, allow_unk, 1, stop, state), logprobs)
