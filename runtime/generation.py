"""Generation: sample continuations word by word through the step graph.

One sampling loop, :class:`Sampler`, serves :meth:`~Generator.samples` (several rows at once),
:meth:`~Generator.generate` (their text) and :meth:`~Generator.stream` (one row, a word at a
time). Each round draws one token per active row and feeds the rows that go on::

    state [rows] ─pick─▶ token per row ─┬─ <eos>: row done, state kept (``<eos>`` not fed)
                                        └─ word: kept ─step graph─▶ state [rows still going]
                                                       stop word or max_words: row done

The sampler knows the model only through a narrow step interface (``feed(ids, state) ->
state``, ``token_text(id)``, the ``<eos>``/``<unk>`` ids), so it never imports the model class.
:class:`Generator` builds it from a :class:`~pocketlm.runtime.core.SessionCore` and a
:class:`~pocketlm.runtime.state.Stepper`. The settings' defaults and limits are
:class:`~pocketlm.runtime.sampling.SamplingConfig`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .artifact import InputError
from .core import SessionCore
from .results import Generation, detokenize
from .sampling import DEFAULTS, SamplingConfig, SplitMix64, generators, pick
from .state import State, Stepper


class Sampler:
    """The sampling loop: ``rows`` samples continued from one-row-per-sample ``state``.

    :meth:`round` draws one token per active row and returns ``(sample, word, logprob)`` for each
    word produced; after it, ``words``, ``logprobs``, ``finish`` and ``states`` describe every
    sample so far (a finished sample's state is final; an active one's follows its last word)."""

    def __init__(self, feed: Callable[[np.ndarray, State], State],
                 token_text: Callable[[int], str], eos_id: int, banned: int | None,
                 state: State, max_words: int, temperature: float, top_k: int, top_p: float,
                 rngs: list[SplitMix64], stop_ids: set[int]) -> None:
        self._feed, self._token_text, self._eos_id, self._banned = feed, token_text, eos_id, banned
        self._settings = (temperature, top_k, top_p)
        self._rngs, self._max_words, self._stop_ids = rngs, max_words, stop_ids
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
        tokens = np.array([pick(current.logprobs[row], self._rngs[sample], *self._settings,
                                banned=self._banned) for row, sample in enumerate(active)],
                          dtype=np.int64)
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
    """The iterator :meth:`Generator.stream` returns: one sample, a word per ``next``; see
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


class Generator:
    """``samples``, ``generate`` and ``stream`` for the model folder ``core``, stepping with
    ``stepper``."""

    def __init__(self, core: SessionCore, stepper: Stepper) -> None:
        self.core, self.stepper = core, stepper

    def sampler(self, prompt: str, max_words: int, temperature: float, top_k: int,
                top_p: float, seed: int | None, allow_unk: bool, num_samples: int,
                stop: Iterable[str], state: State | None) -> Sampler:
        """The sampling loop for these settings (checked against :class:`SamplingConfig`),
        the prompt already fed."""
        SamplingConfig(max_words=max_words, temperature=temperature, top_k=top_k, top_p=top_p,
                       num_samples=num_samples)
        core, stepper = self.core, self.stepper
        stop_ids = self.stop_ids(stop)
        rngs = generators(seed, num_samples)   # sample i draws from its own generator
        if state is None:
            state = stepper.begin(1)
        elif not isinstance(state, State) or len(state) != 1:
            raise InputError("generation continues from a one-row State")
        for token in core.tokenize(prompt):
            state = stepper.feed(np.array([token], dtype=np.int64), state)
        return Sampler(stepper.feed, core.token_text, core.eos_id,
                       None if allow_unk else core.unk_id,
                       state.select(np.zeros(num_samples, np.int64)), max_words, temperature,
                       top_k, top_p, rngs, stop_ids)

    def stop_ids(self, stop: Iterable[str]) -> set[int]:
        """The token ids of the stop words (a string is one word); each must be one token."""
        if isinstance(stop, str):
            stop = [stop]
        ids = set()
        for word in stop:
            got = self.core.tokenize(word)
            if len(got) != 1:
                raise InputError(f"stop word {word!r} is {len(got)} tokens; give single words")
            ids.add(got[0])
        return ids

    def samples(self, prompt: str = "", max_words: int = DEFAULTS.max_words,
                temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
                top_p: float = DEFAULTS.top_p, seed: int | None = DEFAULTS.seed,
                allow_unk: bool = DEFAULTS.allow_unk, *,
                num_samples: int = DEFAULTS.num_samples, stop: Iterable[str] = DEFAULTS.stop,
                state: State | None = None) -> list[Generation]:
        """``num_samples`` continuations of ``prompt``, sampled together through the step graph
        (the prompt is fed once), each a :class:`Generation` with words, log-probabilities and
        the state to continue from. ``stop``: words that end a sample (and are kept);
        ``state``: continue from a one-row state instead of a new sentence. Other arguments as
        :meth:`generate`."""
        return self.sampler(prompt, max_words, temperature, top_k, top_p, seed, allow_unk,
                            num_samples, stop, state).results()

    def generate(self, prompt: str = "", max_words: int = DEFAULTS.max_words,
                 temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
                 top_p: float = DEFAULTS.top_p, seed: int | None = DEFAULTS.seed,
                 allow_unk: bool = DEFAULTS.allow_unk, *,
                 num_samples: int = DEFAULTS.num_samples, stop: Iterable[str] = DEFAULTS.stop,
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

    def stream(self, prompt: str = "", max_words: int = DEFAULTS.max_words,
               temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
               top_p: float = DEFAULTS.top_p, seed: int | None = DEFAULTS.seed,
               allow_unk: bool = DEFAULTS.allow_unk, *, stop: Iterable[str] = DEFAULTS.stop,
               state: State | None = None, logprobs: bool = False) -> GenerationStream:
        """Like :meth:`generate` for one sample, but an iterator that yields each word as soon
        as it is produced (``(word, logprob)`` pairs with ``logprobs=True``). The same seed gives
        the same words as :meth:`generate`. After (or during) the loop the iterator's ``state``,
        ``words``, ``logprobs`` and ``finish`` describe what was produced so far."""
        return GenerationStream(self.sampler(prompt, max_words, temperature, top_k, top_p,
                                             seed, allow_unk, 1, stop, state), logprobs)
