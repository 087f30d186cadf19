"""Keyboard suggestions and corrections: a next-word distribution filtered by what is typed.

Any next-word model can serve (:class:`NextWordModel`: pocketlm's :class:`LMSource`, or an
n-gram or unigram model in the bench), so only the language model differs between them. The
vocabulary's word entries are indexed once, sorted, so a typed prefix is a contiguous range::

    vocabulary [V]  ──sort──▶  words  ["a", "aaron", "abase", ..., "lord", "lords", ...]
                               ids    [ 18,   412,    7311,  ...,   19,     620,  ...]
    prefix "lor"  ──bisect──▶  words[lo:hi] = "lord", "lordly", "lords", ...
    logprobs [V] (ln P(next word | context))  ─▶  logprobs[ids[lo:hi]]  ─argpartition─▶  top k

``suggest(context, prefix, k)`` is exact over the vocabulary (no sampling): the k likeliest
entries that start with the lower-cased prefix, ties in alphabetical order. Specials
(``<unk>``, ``<eos>``, ...) and punctuation are left out unless asked for.

``correct(context, typed, k)`` is a noisy channel: every word within two plain edits of the
typed letters (a length and letter-count filter first, over a [V, 27] count matrix, then
:func:`~pocketlm.runtime.qwerty.channel_logprob`) ranked by ln P_LM(word | context) + ln
P(typed | word). The typed word itself is always a candidate with channel cost 0 (an unknown
one scored ln P(<unk>) + :data:`UNKNOWN_SPELLING_LOGPROB`), so a likely typed word is kept.

Both read the context as a typist leaves it, without punctuation: where one word follows another
with no mark between them, the likeliest left-out marks are inferred
(:mod:`~pocketlm.runtime.punctuation`: the context advanced through a mark when it makes the next
word likelier, and the next word ranked by its probability marginalised over the marks).
``Keyboard(source, infer_punctuation=False)`` reads the context exactly as typed.
"""

from __future__ import annotations

import bisect
import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .artifact import InputError
from .core import clean_text
from .punctuation import Context, PunctuationInference, is_special
from .qwerty import channel_logprob

#: Letters with their own column in the letter-count filter; anything else counts in column 26.
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: Most plain edits (substitution, transposition, missing or extra letter) a correction may be.
MAX_EDITS = 2
#: ln P of one particular spelling among the unknown words: an unknown typed word is scored
#: ln P(<unk> | context) + this, so a close known word usually wins over a misspelling.
UNKNOWN_SPELLING_LOGPROB = -6.0


class NextWordModel(Protocol):
    """What the keyboard needs from a language model: a vocabulary and, per context state,
    the next-word distribution ``ln P [V]`` over it."""

    vocabulary: Sequence[str]   # the entry of each id
    unk_id: int                 # the id unknown words get

    def normalize(self, text: str) -> str:
        """``text`` as the vocabulary spells it (lower-cased for pocketlm)."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Ids of the tokens of ``text``."""
        ...

    def begin(self) -> Any:
        """The state at the start of a sentence."""
        ...

    def advance(self, state: Any, token: int) -> Any:
        """The state after one more token."""
        ...

    def logprobs(self, state: Any) -> np.ndarray:
        """ln P(next token | state), ``[V]``."""
        ...


class LMSource:
    """A :class:`~pocketlm.runtime.LanguageModel` as a :class:`NextWordModel`, through the
    state API: ``begin()`` then one ``advance`` per token; a state's ``logprobs[0]`` is the
    next-word distribution (the full ``[V]``: the step graph computes every output cluster)."""

    def __init__(self, lm: Any) -> None:
        self.lm = lm
        self.vocabulary: Sequence[str] = [lm.token_text(i) for i in range(lm.vocab_size)]
        self.unk_id = int(lm.unk_id)
        self._normalizer = lm.tokenizer.normalizer

    def normalize(self, text: str) -> str:
        text = clean_text(text)
        return str(self._normalizer.normalize_str(text)) if self._normalizer else text

    def tokenize(self, text: str) -> list[int]:
        return [int(i) for i in self.lm.tokenize(text)]

    def begin(self) -> Any:
        return self.lm.begin()

    def advance(self, state: Any, token: int) -> Any:
        return self.lm.advance(state, int(token))[1]

    def logprobs(self, state: Any) -> np.ndarray:
        return np.asarray(state.logprobs[0])


@dataclass(frozen=True)
class Suggestion:
    """A word offered to the user: ``logprob`` is ln P(word | context) (for a correction, plus
    ``channel``, the ln P of the typing errors that turn it into what was typed)."""

    word: str
    logprob: float
    channel: float = 0.0

    @property
    def score(self) -> float:
        """The ranking score: ``logprob + channel``."""
        return self.logprob + self.channel


def is_word(entry: str) -> bool:
    """A vocabulary entry a keyboard offers by default: it has a letter and is not a special
    like ``<unk>``."""
    return not is_special(entry) and any(ch.isalpha() for ch in entry)


@functools.lru_cache(maxsize=1 << 14)
def _letter_counts(word: str) -> np.ndarray:
    counts = np.zeros(len(LETTERS) + 1, dtype=np.int16)
    for ch in word:
        pos = LETTERS.find(ch)
        counts[pos if pos >= 0 else len(LETTERS)] += 1
    counts.flags.writeable = False  # shared through the cache
    return counts


def within_edits(typed: str, codes: np.ndarray, lengths: np.ndarray,
                 max_edits: int) -> np.ndarray:
    """``[N]`` bool: which words (``codes [N, L]`` code points, -1 beyond ``lengths``) are at
    most ``max_edits`` edits from ``typed`` (restricted Damerau-Levenshtein: insertions,
    deletions, substitutions, adjacent transpositions), all rows at once. A word the weighted
    channel model (:func:`~pocketlm.runtime.qwerty.channel_logprob`) accepts always passes, so
    this only spares it the words it would reject."""
    n, (rows, width) = len(typed), codes.shape
    t = [ord(ch) for ch in typed]
    before = None                                                    # row i-2
    prev = np.broadcast_to(np.arange(width + 1, dtype=np.int16), (rows, width + 1)).copy()
    for i in range(1, n + 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        for j in range(1, width + 1):
            best = np.minimum(prev[:, j - 1] + (codes[:, j - 1] != t[i - 1]),
                              np.minimum(prev[:, j], cur[:, j - 1]) + 1)
            if before is not None and j > 1 and t[i - 1] != t[i - 2]:
                swap = (codes[:, j - 2] == t[i - 1]) & (codes[:, j - 1] == t[i - 2])
                best = np.where(swap, np.minimum(best, before[:, j - 2] + 1), best)
            cur[:, j] = best
        before, prev = prev, cur
    close: np.ndarray = prev[np.arange(rows), lengths] <= max_edits
    return close


class PrefixIndex:
    """The offered entries of a vocabulary, sorted, with their ids: a prefix is a range. The
    letter counts that :meth:`near` filters with are built on its first call."""

    def __init__(self, vocabulary: Sequence[str], punctuation: bool = False,
                 specials: bool = False) -> None:
        chosen = [(w, i) for i, w in enumerate(vocabulary)
                  if is_word(w) or (punctuation and not w.startswith("<"))
                  or (specials and w.startswith("<") and w.endswith(">"))]
        chosen.sort()
        self.words = [w for w, _ in chosen]
        self.ids = np.asarray([i for _, i in chosen], dtype=np.int64)
        self.lengths = np.asarray([len(w) for w in self.words], dtype=np.int64)

    @functools.cached_property
    def counts(self) -> np.ndarray:
        """``[len(words), 27]``: each entry's letter counts (column 26: anything else)."""
        return (np.stack([_letter_counts(w) for w in self.words]) if self.words
                else np.zeros((0, len(LETTERS) + 1), dtype=np.int16))

    @functools.cached_property
    def codes(self) -> np.ndarray:
        """``[len(words), longest]``: each entry's code points, -1 beyond its length."""
        width = int(self.lengths.max()) if self.words else 0
        matrix = np.full((len(self.words), width), -1, dtype=np.int32)
        for row, word in enumerate(self.words):
            matrix[row, :len(word)] = [ord(ch) for ch in word]
        return matrix

    def __len__(self) -> int:
        return len(self.words)

    def span(self, prefix: str) -> tuple[int, int]:
        """``(lo, hi)``: ``words[lo:hi]`` are the entries that start with ``prefix``."""
        lo = bisect.bisect_left(self.words, prefix)
        hi = bisect.bisect_left(self.words, prefix + "\U0010ffff", lo)
        while hi < len(self.words) and self.words[hi].startswith(prefix):
            hi += 1  # an entry with U+10FFFF right after the prefix
        return lo, hi

    def top(self, logprobs: np.ndarray, prefix: str, k: int) -> list[Suggestion]:
        """The ``k`` likeliest entries starting with ``prefix`` under ``logprobs`` [V], best
        first, ties in alphabetical order; ``[]`` when none starts with it."""
        lo, hi = self.span(prefix)
        if k <= 0 or lo >= hi:
            return []
        scores = np.asarray(logprobs)[self.ids[lo:hi]].astype(np.float64)  # the range only
        if hi - lo > k:  # keep every entry tied with the k-th, then order exactly
            kth = np.partition(scores, hi - lo - k)[hi - lo - k]
            keep = np.flatnonzero(scores >= kth)
        else:
            keep = np.arange(hi - lo)
        order = keep[np.lexsort((keep, -scores[keep]))][:k]
        return [Suggestion(self.words[lo + j], float(scores[j])) for j in order]

    def near(self, typed: str, max_edits: int = MAX_EDITS) -> list[tuple[int, float]]:
        """(position in ``words``, ln P(typed | word)) of every entry within ``max_edits``
        plain edits of ``typed``."""
        if not self.words:
            return []
        close = np.abs(self.lengths - len(typed)) <= max_edits
        diff = self.counts[close] - _letter_counts(typed)  # [candidates, 27]
        bag = (np.clip(diff, 0, None).sum(axis=1) <= max_edits) & \
              (np.clip(-diff, 0, None).sum(axis=1) <= max_edits)
        found = np.flatnonzero(close)[bag]
        if len(found) > 8:  # many: drop those more than max_edits edits away, all at once
            width = int(self.lengths[found].max()) if len(found) else 0
            codes = self.codes[found, :width]
            found = found[within_edits(typed, codes, self.lengths[found], max_edits)]
        out = []
        for pos in found:
            channel = channel_logprob(typed, self.words[pos], max_edits)
            if channel > -np.inf:
                out.append((int(pos), channel))
        return out


class Keyboard:
    """Suggestions and corrections from one next-word model.

    >>> kb = Keyboard(LMSource(LanguageModel("runs/kjv/model")))   # doctest: +SKIP
    >>> [s.word for s in kb.suggest("and the lord", "sa")]          # doctest: +SKIP
    ['said', 'saith', 'sanctified']

    ``punctuation``/``specials`` offer those entries too; ``infer_punctuation`` (default on)
    infers the marks a typist leaves out between the context's words (module docstring).
    """

    def __init__(self, source: NextWordModel, punctuation: bool = False,
                 specials: bool = False, infer_punctuation: bool = True) -> None:
        self.source = source
        self.inference = PunctuationInference(source, infer_punctuation)
        self.index = PrefixIndex(source.vocabulary, punctuation, specials)
        self.corrections_index = (self.index if not (punctuation or specials)
                                  else PrefixIndex(source.vocabulary))

    def context(self, text: str) -> Context:
        """The :class:`~pocketlm.runtime.punctuation.Context` after ``text`` (from the start of
        a sentence), the marks left out between its words inferred unless
        ``infer_punctuation=False``; its ``ranked`` is what :meth:`suggest` ranks with."""
        context = self.inference.begin()
        for token in self.source.tokenize(_text(text, "context")):
            context = self.inference.advance(context, token)
        return context

    def state(self, context: str) -> Any:
        """The source's state after ``context`` (:meth:`context`'s)."""
        return self.context(context).state

    def complete(self, logprobs: np.ndarray, prefix: str, k: int = 3) -> list[Suggestion]:
        """:meth:`suggest` on a distribution already computed (a typing session's)."""
        return self.index.top(logprobs, self.source.normalize(_text(prefix, "prefix")),
                              _k(k))

    def suggest(self, context: str, prefix: str = "", k: int = 3) -> list[Suggestion]:
        """The ``k`` likeliest next words after ``context`` that start with ``prefix``."""
        _text(prefix, "prefix")
        return self.complete(self.context(context).ranked, prefix, k)

    def corrections(self, logprobs: np.ndarray, typed: str, k: int = 3) -> list[Suggestion]:
        """:meth:`correct` on a distribution already computed."""
        k = _k(k)
        word = self.source.normalize(_text(typed, "typed")).strip()
        if not word or k == 0:
            return []
        index = self.corrections_index
        found: dict[str, Suggestion] = {}
        for pos, channel in index.near(word):
            entry = index.words[pos]
            found[entry] = Suggestion(entry, float(logprobs[index.ids[pos]]), channel)
        if word not in found:  # the typed word itself, as <unk> when unknown
            ids = self.source.tokenize(word)
            known = len(ids) == 1 and ids[0] != self.source.unk_id
            lp = (float(logprobs[ids[0]]) if known else
                  float(logprobs[self.source.unk_id]) + UNKNOWN_SPELLING_LOGPROB)
            found[word] = Suggestion(word, lp, 0.0)
        ranked = sorted(found.values(), key=lambda s: (-s.score, s.word))
        return ranked[:k]

    def correct(self, context: str, typed: str, k: int = 3) -> list[Suggestion]:
        """The ``k`` likeliest words the user meant by ``typed`` after ``context``, best first:
        ln P_LM(word | context) + ln P(typed | word) (:mod:`~pocketlm.runtime.qwerty`)."""
        _text(typed, "typed")
        return self.corrections(self.context(context).ranked, typed, k)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a str, got {type(value).__name__}")
    return clean_text(value)


def _k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"k must be a whole number >= 0, got {k!r}")
    return int(k)


_KEYBOARDS: weakref.WeakKeyDictionary[Any, Keyboard] = weakref.WeakKeyDictionary()


def keyboard(lm: Any) -> Keyboard:
    """The :class:`Keyboard` of a ``LanguageModel``, built once per model and kept on it."""
    kb = _KEYBOARDS.get(lm)
    if kb is None:
        kb = _KEYBOARDS[lm] = Keyboard(LMSource(lm))
    return kb
