"""`LanguageModel`: score, rescore, advance word by word and generate with a pocketlm model folder.

Needs only onnxruntime, numpy and tokenizers. The class is assembled from one module per job,
each building on the ones below it::

    core.py        ModelCore     the folder: manifest, tokenizer, one session per graph
    state.py       StateAPI      State, begin/advance/end (+ batch forms); initial_state/step
    scoring.py     Scoring       score, analyze, full_scores, perplexity, rank
    rescoring.py   Rescoring     rescore, rescore_batch
    generation.py  Generating    samples, generate, stream (one sampling loop)
    results.py                   WordScore, SentenceScore, Rescored, Generation, detokenize
    graphs.py                    graph and state names, session options (shared with export)

The scoring convention (natural logs, zero start state, ``<eos>`` as the start-of-sentence
context, the final ``<eos>`` predicted) is the one every pocketlm tool uses; see docs/runtime.md.
"""

from __future__ import annotations

from .core import clean_text
from .generation import Generating, GenerationStream
from .graphs import session_options
from .rescoring import Rescoring
from .results import Generation, Rescored, SentenceScore, WordScore, detokenize
from .scoring import BATCH_FLOATS, SCORE_BUDGET
from .state import State

__all__ = ["BATCH_FLOATS", "SCORE_BUDGET", "Generation", "GenerationStream", "LanguageModel",
           "Rescored", "SentenceScore", "State", "WordScore", "clean_text", "detokenize",
           "session_options"]


class LanguageModel(Rescoring, Generating):
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
    onnxruntime's intra-op threads (default: onnxruntime's choice). One object can be used from
    several threads at once.
    """
