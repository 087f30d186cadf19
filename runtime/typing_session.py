"""A typing session: suggestions at keystroke speed, and the user's own words learned.

The language model runs once per finished word; a keystroke only filters the distribution
already computed through the keyboard's prefix index::

    type("a") type("n") type("d")   partial "and"      suggestions(): top k of logprobs
                                                        among words starting "and" (no model run)
    space() / accept("and")         units += "and"     state = advance(state, "and")  (model run)
                                                        logprobs = P(. | <eos> ... and)
    backspace() at a word's start   re-opens "and"     state, logprobs restored (no model run)

Punctuation the user leaves out is inferred as the keyboard's context strings infer it
(:mod:`~pocketlm.runtime.punctuation`, on unless the keyboard was built with
``infer_punctuation=False``): a finished word also advances the model through the likeliest
marks after it (at most ``PUNCTUATION_CANDIDATES`` more steps, once per finished word), the
next word is ranked by its probability marginalised over them, and when it is finished it is
advanced from the mark's state if the mark made it likelier. A mark the user types is taken as
typed, and nothing is inferred next to it. Keystrokes cost the same: they filter the kept
distribution.

Learning (a unigram cache model, interpolated with the language model): the session counts the
last :data:`CACHE_WINDOW` words the user finished, vocabulary words and unknown ones (a name, a
place) alike, and the next-word distribution (P_LM: the one above, marks inferred) becomes::

    P(w) = (1 - λ) P_LM(w) + λ c(w) / C                        w in the vocabulary
    P(u) = (1 - λ) P_LM(<unk>) c(u) / U + λ c(u) / C           u a word the vocabulary lacks

with λ = :data:`CACHE_WEIGHT`, c the counts in the window, C their sum and U the sum over the
unknown words (c(w) = 0 for a word not in the window). Words seen lately gain probability
whatever the context; the others keep their order. Top k stays exact without sorting the
vocabulary: the true k best lie within the language model's k best for the prefix and the
window's words that start with it (a word outside both is beaten by the model's k best, whose
scores only grow). Backspace into a finished word takes it out of the window again.

λ and the window were chosen on the valid split's books, each typed as one user's text
(bench/keyboard.py, docs/keyboard.md): of λ ∈ {0.01, 0.05, 0.1, 0.2} × window ∈ {100, 300,
1000} words, λ = 0.05 with 100 words saved the most keystrokes (58.74% → 59.08%); the window
hardly mattered, λ = 0.2 gave most of the gain back.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifact import InputError
from .keyboard import Keyboard, PrefixIndex, Suggestion, is_word, keyboard
from .punctuation import Context

#: λ, the cache model's weight in the mixture with the language model (module docstring).
CACHE_WEIGHT = 0.05
#: How many of the last finished words the cache model counts.
CACHE_WINDOW = 100


@dataclass(frozen=True)
class _Unit:
    text: str             # what was typed for it (a word or one punctuation mark)
    context: Context      # the context before it (state, distributions)
    cached: str | None    # the entry it added to the cache window
    evicted: tuple[str, int] | None  # the entry (and its id) that fell out for it


class _Mixture:
    """The cache's words under the mixture, for one distribution: an index over them (a prefix
    is a range, :meth:`PrefixIndex.near` finds the close ones) and their ln P."""

    def __init__(self, index: PrefixIndex, logprobs: np.ndarray) -> None:
        self.index = index
        self.logprobs = logprobs
        self.score = dict(zip(index.words, logprobs[index.ids].tolist()))


class Typing:
    """One user typing: ``type``/``backspace``/``space``/``accept`` edit the text, and
    ``suggestions(k)`` / ``corrections(k)`` read the current word against the distribution of
    the words before it, mixed with the cache model of the user's last words.

    >>> t = Typing(LanguageModel("runs/kjv/model"))       # doctest: +SKIP
    >>> for ch in "and the lord sa": t.type(ch)            # doctest: +SKIP
    >>> [s.word for s in t.suggestions(3)]                 # doctest: +SKIP
    ['said', 'saw', 'saith']

    ``learn=False`` keeps the cache empty: the language model alone (for comparisons).
    ``cache_weight`` (λ) and ``cache_window`` default to :data:`CACHE_WEIGHT` and
    :data:`CACHE_WINDOW`.
    """

    def __init__(self, model: Any, learn: bool = True, cache_weight: float = CACHE_WEIGHT,
                 cache_window: int = CACHE_WINDOW) -> None:
        if isinstance(cache_weight, bool) or not isinstance(cache_weight, (int, float)) \
                or not 0 <= cache_weight < 1:
            raise InputError(f"cache_weight must be a number in [0, 1), got {cache_weight!r}")
        if isinstance(cache_window, bool) or not isinstance(cache_window, int) or cache_window < 1:
            raise InputError(f"cache_window must be a whole number >= 1, got {cache_window!r}")
        self.keyboard = model if isinstance(model, Keyboard) else keyboard(model)
        self.source = self.keyboard.source
        self.learn = learn
        self.cache_weight = float(cache_weight)
        self.cache_window = cache_window
        self.window: deque[str] = deque()     # the cached entries, oldest first
        self.cache: Counter[str] = Counter()  # their counts
        self._ids: dict[str, int] = {}        # entry → vocabulary id (unk_id: unknown word)
        self._index: PrefixIndex | None = None
        self._mixture: _Mixture | None = None
        self.units: list[_Unit] = []
        self.partial = ""
        self.context = self.keyboard.inference.begin()

    @property
    def state(self) -> Any:
        """The source's state after the finished words (left-out marks inferred)."""
        return self.context.state

    @property
    def logprobs(self) -> np.ndarray:
        """The language model's next-word distribution after the finished words, marginalised
        over the left-out marks (before the cache model is mixed in)."""
        return self.context.ranked

    @property
    def user_words(self) -> Counter[str]:
        """The words in the cache window that the vocabulary lacks, with their counts."""
        unk = self.source.unk_id
        return Counter({w: c for w, c in self.cache.items() if self._ids[w] == unk})

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
        """Delete the last character; at a word's start, re-open the word before it (and take
        it out of the cache window)."""
        if self.partial:
            self.partial = self.partial[:-1]
        elif self.units:
            unit = self.units.pop()
            self.context = unit.context
            self.partial = unit.text[:-1]
            if unit.cached is not None:
                self.window.pop()
                self._count(unit.cached, -1)
            if unit.evicted is not None:
                entry, vocab_id = unit.evicted
                self.window.appendleft(entry)
                self._ids.setdefault(entry, vocab_id)
                self._count(entry, 1)
            self._mixture = None

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
        """Start a new text (the cache window is kept)."""
        self.units, self.partial = [], ""
        self.context = self.keyboard.inference.begin()
        self._mixture = None

    def _commit(self, word: str) -> None:
        tokens = self.source.tokenize(word)
        normal = self.source.normalize(word)
        cached: str | None = None
        evicted: tuple[str, int] | None = None
        if self.learn and is_word(normal) and " " not in normal:
            known = len(tokens) == 1 and tokens[0] != self.source.unk_id
            cached = self.source.vocabulary[tokens[0]] if known else normal
            self._ids.setdefault(cached, tokens[0] if known else self.source.unk_id)
            self.window.append(cached)
            self._count(cached, 1)
            if len(self.window) > self.cache_window:
                entry = self.window.popleft()
                evicted = (entry, self._ids[entry])
                self._count(entry, -1)
        self.units.append(_Unit(word, self.context, cached, evicted))
        for token in tokens:
            self.context = self.keyboard.inference.advance(self.context, token)
        self._mixture = None

    def _count(self, entry: str, step: int) -> None:
        count = self.cache[entry] + step
        if count <= 0:
            del self.cache[entry], self._ids[entry]
        else:
            self.cache[entry] = count
        if count <= 0 or count == step:  # the window's set of words changed
            self._index = None

    # -- reading ------------------------------------------------------------------------------

    def _mixed(self) -> _Mixture:
        """The cache's words with their ln P under the mixture (module docstring), for the
        current distribution; computed once per finished word."""
        if self._mixture is None:
            if self._index is None:  # rebuilt when a word enters or leaves the window
                self._index = PrefixIndex(list(self.cache))
            index = self._index
            counts = np.asarray([self.cache[w] for w in index.words], dtype=np.float64)
            ids = np.asarray([self._ids[w] for w in index.words], dtype=np.int64)
            lm = np.exp(np.asarray(self.logprobs, dtype=np.float64)[ids])
            unknown = ids == self.source.unk_id
            if unknown.any():  # the unknown words share P_LM(<unk>) by their counts
                lm[unknown] *= counts[unknown] / counts[unknown].sum()
            lam = self.cache_weight
            logprobs = np.full(len(self.cache), -np.inf)
            with np.errstate(divide="ignore"):
                logprobs[index.ids] = np.log((1 - lam) * lm + lam * counts / len(self.window))
            self._mixture = _Mixture(index, logprobs)
        return self._mixture

    def suggestions(self, k: int = 3) -> list[Suggestion]:
        """The ``k`` likeliest words that start with the current word, under the mixture of the
        language model and the cache model."""
        found = self.keyboard.complete(self.logprobs, self.partial, k)
        if not self.cache:
            return found
        mix, scale = self._mixed(), math.log1p(-self.cache_weight)
        best = {s.word: Suggestion(s.word, mix.score.get(s.word, s.logprob + scale))
                for s in found}
        for s in mix.index.top(mix.logprobs, self.source.normalize(self.partial), k):
            best[s.word] = s
        return sorted(best.values(), key=lambda s: (-s.score, s.word))[:k]

    def corrections(self, k: int = 3) -> list[Suggestion]:
        """The ``k`` likeliest words meant by the current word (noisy channel, see
        :meth:`Keyboard.correct`) under the mixture, the cache's words within two edits
        included."""
        found = self.keyboard.corrections(self.logprobs, self.partial, k)
        if not self.cache or not found:
            return found
        mix, scale = self._mixed(), math.log1p(-self.cache_weight)
        best = {s.word: Suggestion(s.word, mix.score.get(s.word, s.logprob + scale), s.channel)
                for s in found}
        typed = self.source.normalize(self.partial).strip()
        for pos, channel in mix.index.near(typed):
            word = mix.index.words[pos]
            best[word] = Suggestion(word, mix.score[word], channel)
        return sorted(best.values(), key=lambda s: (-s.score, s.word))[:k]
