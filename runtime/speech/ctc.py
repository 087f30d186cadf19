"""A ``pyctcdecode`` language model backed by pocketlm's state API.

pyctcdecode's beam search asks its language model four things; here is how each is answered::

    get_start_state()               a new utterance: the cache is emptied, begin() is the root
    score_partial_token("lig")      0, or unk_score_offset when no vocabulary word starts so
    score(state, "light", last)     alpha * ln P(light | history) + beta  (+ ln P(end) if last)
    order                           how many words pyctcdecode's history pruning compares

States are cached by word history. Scoring a word is a lookup in its history's next-token
distribution; the step that feeds the word runs only when that history is extended again
(most scored words are pruned before). pyctcdecode asks for one word at a time, so a batch can
only be made of *pending* histories, stepped together with the one needed (``batch``): on KJV
verses that stepped 7x more rows (most of them never extended) and was slower than stepping
each history alone (``batch=1``, the default). With ``hidden`` punctuation a history also keeps
its likely punctuated continuations, computed in one batch (:mod:`.wordstep`).

>>> from pyctcdecode import BeamSearchDecoderCTC, Alphabet            # doctest: +SKIP
>>> lm = PocketLMForCTC(LanguageModel("runs/kjv/model"), labels)      # doctest: +SKIP
>>> decoder = BeamSearchDecoderCTC(Alphabet.build_alphabet(labels), lm)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifact import InputError, PocketLMError
from ..model import LanguageModel
from .wordstep import DEFAULT_HIDDEN, Prepared, WordStepper, stack

try:
    from pyctcdecode.language_model import AbstractLanguageModel
except ImportError:  # the base class only; the model works without it for tests of spelling
    AbstractLanguageModel = object  # type: ignore[misc,assignment]


class _History:
    """One word history: its words, the log-probability of its last word, and (once stepped)
    the prepared state it lives in."""

    __slots__ = ("words", "lp", "parent", "context", "token", "prep", "row")

    def __init__(self, words: tuple[str, ...], lp: float, parent: _History | None = None,
                 context: int = 0, token: int = -1) -> None:
        self.words, self.lp, self.parent = words, lp, parent
        self.context, self.token = context, token
        self.prep: Prepared | None = None
        self.row = 0


def spellable(lm: LanguageModel, labels: Sequence[str]) -> list[str]:
    """The vocabulary words the alphabet ``labels`` can spell; raises :class:`InputError` when
    it cannot spell most of them (naming the characters it lacks)."""
    chars = {c for label in labels for c in label if label}
    words: list[str] = []
    missing: dict[str, int] = {}
    for token in lm.tokenizer.get_vocab():
        if not any(c.isalpha() for c in token) or token.startswith("<"):
            continue
        lacking = {c for c in token if c not in chars}
        if lacking:
            for c in lacking:
                missing[c] = missing.get(c, 0) + 1
        else:
            words.append(token)
    letters = sum(1 for t in lm.tokenizer.get_vocab() if any(c.isalpha() for c in t))
    if len(words) < letters / 2:
        top = ", ".join(repr(c) for c, _ in sorted(missing.items(), key=lambda x: -x[1])[:8])
        raise InputError(f"labels: the alphabet spells only {len(words):,} of the "
                         f"{letters:,} words of {lm.path}; it lacks {top}; give labels in the "
                         f"model's case and script (see `pocketlm info`)")
    return words


class PocketLMForCTC(AbstractLanguageModel):
    """pocketlm for ``pyctcdecode.BeamSearchDecoderCTC`` (see the module docstring).

    ``alpha`` weighs ln P, ``beta`` is added per word, ``unk_score_offset`` is added for a word
    outside the vocabulary and for a partial word no vocabulary word starts with; ``hidden``
    (default: the tokens of ``DEFAULT_HIDDEN`` the vocabulary has) as in :class:`WordStepper`."""

    def __init__(self, lm: LanguageModel, labels: Sequence[str], alpha: float = 0.5,
                 beta: float = 1.0, unk_score_offset: float = -10.0,
                 hidden: Sequence[str] | None = None, floor: float = -3.0,
                 order: int = 3, batch: int = 1) -> None:
        if AbstractLanguageModel is object:
            raise PocketLMError("PocketLMForCTC needs pyctcdecode: pip install --no-deps "
                                "'pyctcdecode>=0.5,<0.6' pygtrie")
        self.lm = lm
        words = spellable(lm, labels)
        if hidden is None:  # the default punctuation the vocabulary has
            hidden = [t for t in DEFAULT_HIDDEN if t in lm]
        self.stepper = WordStepper(lm, hidden, floor)
        self._prefixes = {w[:i] for w in words for i in range(1, len(w) + 1)}
        self.alpha, self.beta, self.unk_score_offset = float(alpha), float(beta), \
            float(unk_score_offset)
        self._order, self.batch = int(order), int(batch)
        self._cache: dict[tuple[str, ...], _History] = {}
        self._pending: list[_History] = []
        #: step-graph rows run and batches made since the last start state
        self.rows_stepped = 0
        self.batches = 0

    @property
    def order(self) -> int:
        return self._order

    def reset_params(self, **params: Any) -> None:
        for key in ("alpha", "beta", "unk_score_offset"):
            if params.get(key) is not None:
                setattr(self, key, float(params[key]))

    def get_start_state(self) -> Any:  # pyctcdecode calls it a list of kenlm states
        root = _History((), 0.0)
        root.prep = self.stepper.prepare(self.lm.begin(1))
        self._cache = {(): root}
        self._pending = []
        self.rows_stepped = self.batches = 0
        return root

    def score_partial_token(self, partial_token: str) -> float:
        if not partial_token or partial_token in self._prefixes:
            return 0.0
        return self.unk_score_offset * max(1.0, len(partial_token) / 6)

    def _ready(self, node: _History) -> None:
        """Step ``node`` (and every other pending history, in one batch)."""
        if node.prep is not None:
            return
        others = [h for h in self._pending if h.prep is None and h is not node]
        pending = [node] + others[:self.batch - 1]
        self._pending = others[self.batch - 1:]
        groups: dict[int, tuple[Prepared, list[int], list[int]]] = {}
        for i, h in enumerate(pending):
            assert h.parent is not None and h.parent.prep is not None
            entry = groups.setdefault(id(h.parent.prep), (h.parent.prep, [], []))
            entry[1].append(h.context)
            entry[2].append(i)
        order = [i for _, _, where in groups.values() for i in where]
        pending = [pending[i] for i in order]
        contexts = stack([prep.contexts(np.array(index, dtype=np.int64))
                          for prep, index, _ in groups.values()])
        _, stepped = self.lm.advance_batch(contexts, np.array([h.token for h in pending]))
        prep = self.stepper.prepare(stepped)
        for i, h in enumerate(pending):
            h.prep, h.row = prep, i
        self.rows_stepped += len(pending)
        self.batches += 1

    def _child(self, parent: _History, word: str) -> _History:
        key = parent.words + (word,)
        node = self._cache.get(key)
        if node is not None:
            return node
        self._ready(parent)
        assert parent.prep is not None
        ids = self.stepper.ids(word)
        if len(ids) == 1:
            lp, chosen = self.stepper.lookup(parent.prep, np.array([parent.row]),
                                             np.array(ids, dtype=np.int64))
            node = _History(key, float(lp[0]), parent, int(chosen[0]), ids[0])
            if ids[0] == self.lm.unk_id:
                node.lp += self.unk_score_offset
            self._pending.append(node)
        else:  # several tokens (or none): stepped now, exactly
            lp, state = self.stepper.advance(parent.prep.state, [parent.row], [word])
            node = _History(key, float(lp[0]))
            node.prep = self.stepper.prepare(state)
        self._cache[key] = node
        return node

    def score(self, prev_state: _History, word: str, is_last_word: bool = False
              ) -> tuple[float, _History]:
        node = self._child(prev_state, word) if word else prev_state
        lp = node.lp if word else 0.0
        if is_last_word:
            self._ready(node)
            assert node.prep is not None
            end, _ = self.stepper.lookup(node.prep, np.array([node.row]),
                                         np.array([-1], dtype=np.int64))
            lp += float(end[0])
        return self.alpha * lp + (self.beta if word else 0.0), node
