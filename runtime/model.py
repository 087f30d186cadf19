"""`LanguageModel`: score, rescore, advance word by word and generate with a pocketlm model folder.

Needs only onnxruntime, numpy and tokenizers. The class holds one part per job, each its own
object that talks to the others through their public methods only::

    LanguageModel ─┬─ core       SessionCore  (core.py)       the folder: manifest, tokenizer,
                   │                                           sessions, vocabulary lookups
                   ├─ stepper    Stepper      (state.py)      State, begin/advance/end (+ batch
                   │                                           forms); initial_state/step
                   ├─ scorer     Scorer       (scoring.py)    score, analyze, full_scores,
                   │                                           perplexity, rank
                   ├─ rescorer   Rescorer     (rescoring.py)  rescore, rescore_batch
                   └─ generator  Generator    (generation.py) samples, generate, stream

    results.py    WordScore, SentenceScore, Rescored, Generation, detokenize
    sampling.py   SamplingConfig (the generation settings' defaults and limits), SplitMix64, pick
    graphs.py     graph and state names, session options (shared with export)

Each method of the class hands its arguments to one part; its docstring is that part's.
The scoring convention (natural logs, zero start state, ``<eos>`` as the start-of-sentence
context, the final ``<eos>`` predicted) is the one every pocketlm tool uses; see docs/runtime.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from .core import SessionCore
from .generation import GenerationStream, Generator
from .keyboard import Keyboard, Suggestion, keyboard
from .rescoring import Rescorer
from .results import Generation, Rescored, SentenceScore, WordScore
from .sampling import DEFAULTS
from .scoring import Scorer
from .state import State, Stepper


F = TypeVar("F", bound=Callable[..., Any])


def _doc(source: Callable[..., Any]) -> Callable[[F], F]:
    """Give the decorated method the docstring of the part's method it hands over to."""
    def decorate(method: F) -> F:
        method.__doc__ = source.__doc__
        return method
    return decorate


class LanguageModel:
    """A word-level RNN language model read from a pocketlm model folder.

    All log-probabilities are natural logs (nats). A sentence is scored from the zero state with
    ``<eos>`` as its first input; each word and then the final ``<eos>`` are predicted, so::

        score("a b") = ln P(a | <eos>) + ln P(b | <eos> a) + ln P(<eos> | <eos> a b)

    Words outside the vocabulary are scored as ``<unk>``; :meth:`analyze` says how many there
    were. The empty sentence is valid: its score is ln P(<eos> | <eos>), the probability that a
    sentence ends at once. Any string can be scored (lone surrogates count as unknown
    characters); invalid arguments raise :class:`InputError`, a ``ValueError``.

    >>> lm = LanguageModel("runs/kjv/model")                    # doctest: +SKIP
    >>> lm.score("in the beginning god created the heaven")     # doctest: +SKIP
    -21.7...
    >>> lm.rank(["the apple and pear salad", "the apple and pair salad"])[0].sentence  # +SKIP

    ``precision="int8"`` uses the quantised graphs when the folder has them; ``threads`` sets
    onnxruntime's intra-op threads (default: onnxruntime's choice); ``verify`` checks every
    file's SHA-256 against the manifest; ``graph_format="ort"`` loads the ORT-format graphs. One
    object can be used from several threads at once.

    The folder's facts are attributes: ``path``, ``manifest``, ``vocab_size``, ``unk_id``,
    ``eos_id``, ``state_spec``, ``state_names``, ``precision``, ``graph_format``, ``threads``,
    ``tokenizer``; the parts are ``core``, ``stepper``, ``scorer``, ``rescorer`` and
    ``generator``.
    """

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32",
                 threads: int | None = None, verify: bool = True,
                 graph_format: str = "onnx") -> None:
        core = SessionCore(path, precision=precision, threads=threads, verify=verify,
                           graph_format=graph_format)
        self.core = core
        self.stepper = Stepper(core)
        self.scorer = Scorer(core, self.stepper)
        self.rescorer = Rescorer(core, self.scorer)
        self.generator = Generator(core, self.stepper)
        self.path, self.manifest, self.tokenizer = core.path, core.manifest, core.tokenizer
        self.vocab_size, self.unk_id, self.eos_id = core.vocab_size, core.unk_id, core.eos_id
        self.state_spec, self.state_names = core.state_spec, core.state_names
        self.precision, self.graph_format, self.threads = (core.precision, core.graph_format,
                                                           core.threads)

    # -- vocabulary (SessionCore) -------------------------------------------------------------

    @_doc(SessionCore.contains)
    def __contains__(self, word: object) -> bool:
        return self.core.contains(word)

    @_doc(SessionCore.tokenize)
    def tokenize(self, sentence: str) -> list[int]:
        return self.core.tokenize(sentence)

    @_doc(SessionCore.token_text)
    def token_text(self, token: int) -> str:
        return self.core.token_text(token)

    # -- the state API (Stepper) --------------------------------------------------------------

    @_doc(Stepper.initial_state)
    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        return self.stepper.initial_state(batch)

    @_doc(Stepper.step)
    def step(self, tokens: Sequence[int] | np.ndarray,
             state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.stepper.step(tokens, state)

    @_doc(Stepper.null_state)
    def null_state(self, rows: int = 1) -> State:
        return self.stepper.null_state(rows)

    @_doc(Stepper.begin)
    def begin(self, rows: int = 1) -> State:
        return self.stepper.begin(rows)

    @_doc(Stepper.advance)
    def advance(self, state: State, word: str | int) -> tuple[float, State]:
        return self.stepper.advance(state, word)

    @_doc(Stepper.advance_batch)
    def advance_batch(self, state: State,
                      words: Sequence[str | int] | np.ndarray) -> tuple[np.ndarray, State]:
        return self.stepper.advance_batch(state, words)

    @_doc(Stepper.end)
    def end(self, state: State) -> float:
        return self.stepper.end(state)

    @_doc(Stepper.end_batch)
    def end_batch(self, state: State) -> np.ndarray:
        return self.stepper.end_batch(state)

    # -- scoring (Scorer, Rescorer) -----------------------------------------------------------

    @_doc(Scorer.full_scores)
    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> list[WordScore]:
        return self.scorer.full_scores(sentence, bos, eos)

    @_doc(Scorer.analyze)
    def analyze(self, sentences: Iterable[str], batch_size: int = 64, bos: bool = True,
                eos: bool = True) -> list[SentenceScore]:
        return self.scorer.analyze(sentences, batch_size, bos, eos)

    @_doc(Scorer.score)
    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        return self.scorer.score(sentence, bos, eos)

    @_doc(Scorer.score_batch)
    def score_batch(self, sentences: Iterable[str], batch_size: int = 64, bos: bool = True,
                    eos: bool = True) -> list[float]:
        return self.scorer.score_batch(sentences, batch_size, bos, eos)

    @_doc(Scorer.perplexity)
    def perplexity(self, text: str | Iterable[str]) -> float:
        return self.scorer.perplexity(text)

    @_doc(Scorer.rank)
    def rank(self, candidates: Iterable[str]) -> list[SentenceScore]:
        return self.scorer.rank(candidates)

    @_doc(Rescorer.rescore)
    def rescore(self, hypotheses: Sequence[str], base_scores: Sequence[float] | None = None, *,
                weight: float = 1.0, word_penalty: float = 0.0, bos: bool = True,
                eos: bool = True, batch_size: int = 64) -> list[Rescored]:
        return self.rescorer.rescore(hypotheses, base_scores, weight=weight,
                                     word_penalty=word_penalty, bos=bos, eos=eos,
                                     batch_size=batch_size)

    @_doc(Rescorer.rescore_batch)
    def rescore_batch(self, nbest_lists: Sequence[Sequence[str]],
                      base_scores: Sequence[Sequence[float]] | None = None, *,
                      weight: float = 1.0, word_penalty: float = 0.0, bos: bool = True,
                      eos: bool = True, batch_size: int = 64) -> list[list[Rescored]]:
        return self.rescorer.rescore_batch(nbest_lists, base_scores, weight=weight,
                                           word_penalty=word_penalty, bos=bos, eos=eos,
                                           batch_size=batch_size)

    # -- generation (Generator; defaults and limits from SamplingConfig) ----------------------

    @_doc(Generator.samples)
    def samples(self, prompt: str = "", max_words: int = DEFAULTS.max_words,
                temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
                top_p: float = DEFAULTS.top_p, seed: int | None = DEFAULTS.seed,
                allow_unk: bool = DEFAULTS.allow_unk, *,
                num_samples: int = DEFAULTS.num_samples, stop: Iterable[str] = DEFAULTS.stop,
                state: State | None = None) -> list[Generation]:
        return self.generator.samples(prompt, max_words, temperature, top_k, top_p, seed,
                                      allow_unk, num_samples=num_samples, stop=stop, state=state)

    @_doc(Generator.generate)
    def generate(self, prompt: str = "", max_words: int = DEFAULTS.max_words,
                 temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
                 top_p: float = DEFAULTS.top_p, seed: int | None = DEFAULTS.seed,
                 allow_unk: bool = DEFAULTS.allow_unk, *,
                 num_samples: int = DEFAULTS.num_samples, stop: Iterable[str] = DEFAULTS.stop,
                 state: State | None = None) -> str | list[str]:
        return self.generator.generate(prompt, max_words, temperature, top_k, top_p, seed,
                                       allow_unk, num_samples=num_samples, stop=stop,
                                       state=state)

    @_doc(Generator.stream)
    def stream(self, prompt: str = "", max_words: int = DEFAULTS.max_words,
               temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
               top_p: float = DEFAULTS.top_p, seed: int | None = DEFAULTS.seed,
               allow_unk: bool = DEFAULTS.allow_unk, *, stop: Iterable[str] = DEFAULTS.stop,
               state: State | None = None, logprobs: bool = False) -> GenerationStream:
        return self.generator.stream(prompt, max_words, temperature, top_k, top_p, seed,
                                     allow_unk, stop=stop, state=state, logprobs=logprobs)

    @_doc(Keyboard.suggest)
    def suggest(self, context: str, prefix: str = "", k: int = 3) -> list[Suggestion]:
        return keyboard(self).suggest(context, prefix, k)

    @_doc(Keyboard.correct)
    def correct(self, context: str, typed: str, k: int = 3) -> list[Suggestion]:
        return keyboard(self).correct(context, typed, k)
