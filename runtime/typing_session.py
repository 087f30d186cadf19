"""A typing session: suggestions at keystroke speed, and the user's own words learned.

The language model runs once per finished word; a keystroke only filters the distribution
already computed through the keyboard's prefix index::

    type("a") type("n") type("d")   partial "and"      suggestions(): top k of logprobs
                                                        among words starting "and" (no model run)
    space() / accept("and")         units += "and"     state = advance(state, "and")  (model run)
                                                        logprobs = P(. | <eos> ... and)
    backspace() at a word's start   re-opens "and"     state, logprobs restored (no model run)

Learning: a finished word the vocabulary lacks (a name, a place) joins the session's user words
with a count. Once there are user words, the next-word distribution is a mixture::

    P(w)      = (1 - λ) P_LM(w)                                 w in the vocabulary
    P(u)      = (1 - λ) P_LM(<unk>) c(u) / C  +  λ c(u) / C     u a user word, C = Σ c

with λ = :data:`CACHE_WEIGHT`: the unknown-word mass split among the user words by their counts,
plus a cache probability that does not depend on the context. Vocabulary words keep their order.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifact import InputError
from .keyboard import Keyboard, Suggestion, is_word, keyboard
from .qwerty import channel_logprob

#: λ, the cache probability's weight in the mixture with the language model (module docstring).
CACHE_WEIGHT = 0.01


@dataclass(frozen=True)
class _Unit:
    text: str            # what was typed for it (a word or one punctuation mark)
    state: Any           # the source's state before it
    logprobs: np.ndarray  # and that state's distribution


class Typing:
    """One user typing: ``type``/``backspace``/``space``/``accept`` edit the text, and
    ``suggestions(k)`` / ``corrections(k)`` read the current word against the distribution of
    the words before it.

    >>> t = Typing(LanguageModel("runs/kjv/model"))       # doctest: +SKIP
    >>> for ch in "and the lord sa": t.type(ch)            # doctest: +SKIP
    >>> [s.word for s in t.suggestions(3)]                 # doctest: +SKIP
    ['said', 'saw', 'saith']

    ``learn=False`` keeps the user-word list empty (for comparisons).
    """

    def __init__(self, model: Any, learn: bool = True) -> None:
        self.keyboard = model if isinstance(model, Keyboard) else keyboard(model)
        self.source = self.keyboard.source
        self.learn = learn
        self.user_words: Counter[str] = Counter()
        self.units: list[_Unit] = []
        self.partial = ""
        self.state = self.source.begin()
        self.logprobs = self.source.logprobs(self.state)

    # -- editing ------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The text so far: the finished words, then the word being typed."""
        return " ".join([u.text for u in self.units] + ([self.partial] if self.partial else []))

    def type(self, char: str) -> None:
        """One keystroke: a letter extends the current word; a space finishes it; another
        mark (``,`` ``.`` ...) finishes it and is fed as its own token."""
        if not isinstance(char, str) or len(char) != 1:
            raise InputError(f"type takes one character, got {char!r}")
        if char.isspace():
            self.space()
        elif char.isalnum() or char in "'-" or not self.source.tokenize(char):
            self.partial += char
        else:
            self.space()
            self._commit(char)

    def backspace(self) -> None:
        """Delete the last character; at a word's start, re-open the word before it."""
        if self.partial:
            self.partial = self.partial[:-1]
        elif self.units:
            unit = self.units.pop()
            self.state, self.logprobs = unit.state, unit.logprobs
            self.partial = unit.text[:-1]

    def space(self) -> None:
        """Finish the current word (nothing when none is being typed)."""
        if self.partial.strip():
            self._commit(self.partial.strip())
        self.partial = ""

    def accept(self, word: str) -> None:
        """Take ``word`` (a suggestion) in place of the current word, and finish it."""
        if not isinstance(word, str) or not word.strip():
            raise InputError(f"accept takes a word, got {word!r}")
        self.partial = ""
        self._commit(word.strip())

    def reset(self) -> None:
        """Start a new text (user words are kept)."""
        self.units, self.partial = [], ""
        self.state = self.source.begin()
        self.logprobs = self.source.logprobs(self.state)

    def _commit(self, word: str) -> None:
        self.units.append(_Unit(word, self.state, self.logprobs))
        tokens = self.source.tokenize(word)
        normal = self.source.normalize(word)
        if (self.learn and is_word(normal) and " " not in normal
                and (len(tokens) != 1 or tokens[0] == self.source.unk_id)):
            self.user_words[normal] += 1
        for token in tokens:
            self.state = self.source.advance(self.state, token)
        self.logprobs = self.source.logprobs(self.state)

    # -- reading ------------------------------------------------------------------------------

    def _user_logprob(self, word: str) -> float:
        share = self.user_words[word] / sum(self.user_words.values())
        unk = math.exp(float(self.logprobs[self.source.unk_id]))
        return math.log((1 - CACHE_WEIGHT) * unk * share + CACHE_WEIGHT * share)

    def suggestions(self, k: int = 3) -> list[Suggestion]:
        """The ``k`` likeliest words that start with the current word (user words included once
        a letter of the word is typed)."""
        found = self.keyboard.complete(self.logprobs, self.partial, k)
        if not self.user_words or not self.partial:
            return found
        prefix = self.source.normalize(self.partial)
        scale = math.log1p(-CACHE_WEIGHT)
        found = [Suggestion(s.word, s.logprob + scale) for s in found]
        found += [Suggestion(u, self._user_logprob(u)) for u in self.user_words
                  if u.startswith(prefix)]
        return sorted(found, key=lambda s: (-s.score, s.word))[:k]

    def corrections(self, k: int = 3) -> list[Suggestion]:
        """The ``k`` likeliest words meant by the current word (noisy channel, see
        :meth:`Keyboard.correct`), user words within two edits included."""
        found = self.keyboard.corrections(self.logprobs, self.partial, k + len(self.user_words))
        if not self.user_words:
            return found[:k]
        typed = self.source.normalize(self.partial).strip()
        scale = math.log1p(-CACHE_WEIGHT)
        found = [Suggestion(s.word, s.logprob + scale, s.channel) for s in found
                 if s.word not in self.user_words]
        for word in self.user_words:
            channel = channel_logprob(typed, word)
            if channel > -math.inf:
                found.append(Suggestion(word, self._user_logprob(word), channel))
        return sorted(found, key=lambda s: (-s.score, s.word))[:k]
