"""What the runtime returns: per-word and per-sentence scores, rescored hypotheses and generated
samples, and ``detokenize``, which joins generated words into text."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import State

_NO_SPACE_BEFORE = re.compile(r"^[.,;:!?)\]}'\"]+$")
_NO_SPACE_AFTER = {"(", "[", "{", "'"}


def detokenize(tokens: Sequence[str]) -> str:
    """Join word tokens with spaces, without a space before closing punctuation.

    >>> detokenize(["and", "god", "said", ",", "let", "there", "be", "light", "."])
    'and god said, let there be light.'
    """
    out: list[str] = []
    glue = True
    for tok in tokens:
        if out and not glue and not _NO_SPACE_BEFORE.match(tok):
            out.append(" ")
        out.append(tok)
        glue = tok in _NO_SPACE_AFTER
    return "".join(out)


@dataclass(frozen=True)
class WordScore:
    """One predicted token of a sentence: the word as written, the vocabulary token it became,
    its natural-log probability given everything before it, and whether it was out of vocabulary."""

    word: str
    token: str
    logprob: float
    oov: bool


@dataclass(frozen=True)
class SentenceScore:
    """A scored sentence. ``logprob`` is in nats; ``tokens`` is the number of predicted tokens
    (words + 1 with the default ``bos=True, eos=True``); ``oov`` how many words were ``<unk>``."""

    sentence: str
    logprob: float
    tokens: int
    oov: int

    @property
    def perplexity(self) -> float:
        """exp(-logprob / tokens); NaN when nothing was predicted."""
        return math.exp(-self.logprob / self.tokens) if self.tokens else float("nan")


@dataclass(frozen=True)
class Rescored:
    """One hypothesis of an n-best list after rescoring.

    ``score = base_score + weight * lm_logprob + word_penalty * words``; ``index`` is its position
    in the input list, ``words`` the number of tokens it became (``<eos>`` not counted)."""

    sentence: str
    score: float
    base_score: float
    lm_logprob: float
    words: int
    oov: int
    index: int


@dataclass(frozen=True)
class Generation:
    """One generated sample. ``words`` are vocabulary tokens and ``logprobs`` their natural-log
    probabilities under the model (before temperature, top-k or top-p); ``finish`` is ``"eos"``,
    ``"stop"`` (a stop word was produced; it is included) or ``"max_words"``; ``state`` follows
    the last produced word (``<eos>`` is not fed), ready to continue from."""

    text: str
    words: tuple[str, ...]
    logprobs: tuple[float, ...]
    finish: str
    state: State = field(repr=False)
