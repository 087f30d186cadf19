"""Whole-sentence scoring: the score graph over padded batches, the step graph for sentences too
long for it. The convention (natural logs, zero start state, ``<eos>`` as the start-of-sentence
context, the final ``<eos>`` predicted) is the one every pocketlm tool uses; see docs/runtime.md.

One score-graph run takes a batch of sentences of similar length::

    sentences ─sort by length─▶ chunks of <= batch_size rows and <= BATCH_FLOATS floats
              ─score.onnx─▶ logprobs [rows, longest + 1] ─▶ each row cut to its own length

:class:`Scorer` does this over a :class:`~pocketlm.runtime.core.SessionCore` and steps long
sentences with a :class:`~pocketlm.runtime.state.Stepper`; :meth:`Scorer.predicted` is what
rescoring builds on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from . import graphs
from .artifact import InputError
from .core import SessionCore, clean_text
from .results import SentenceScore, WordScore
from .state import Stepper

#: Floats (batch x length x vocabulary) one score-graph run may produce: batches are cut to it
#: (for a 10,000-word vocabulary about 24 sentences of 35 words: 10-20% faster than fixed
#: batches of 64 in bench/runtime_speed.py on one noisy core).
BATCH_FLOATS = 1 << 23
#: A sentence whose (length x vocabulary) exceeds this runs through the step graph instead, so
#: memory stays bounded whatever its length.
SCORE_BUDGET = 1 << 25


class Scorer:
    """``score``, ``analyze``, ``full_scores``, ``perplexity`` and ``rank`` for the model folder
    ``core``, stepping with ``stepper`` where the score graph would need too much memory."""

    def __init__(self, core: SessionCore, stepper: Stepper) -> None:
        self.core, self.stepper = core, stepper

    # -- whole-sentence scoring ---------------------------------------------------------------

    def predicted(self, id_lists: Sequence[Sequence[int]], batch_size: int,
                   bos: bool) -> list[np.ndarray]:
        """ln P of each predicted token of each id list: len(ids) + 1 values, the final
        ``<eos>`` last. With ``bos=False`` the first value (the first word, or the ``<eos>`` of
        an empty list) is context and 0."""
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        vocab_size, eos_id = self.core.vocab_size, self.core.eos_id
        results: list[np.ndarray] = [np.empty(0)] * len(id_lists)
        order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
        long_rows = [i for i in order if (len(id_lists[i]) + 1) * vocab_size > SCORE_BUDGET]
        if not bos:
            long_rows = order
        long_set = set(long_rows)
        short = [i for i in order if i not in long_set]
        start = 0
        while start < len(short):
            end = start + 1
            while (end < len(short) and end - start < batch_size
                   and (end + 1 - start) * (len(id_lists[short[end]]) + 1) * vocab_size
                   <= BATCH_FLOATS):
                end += 1
            chunk = short[start:end]
            start = end
            lengths = np.array([len(id_lists[i]) + 1 for i in chunk], dtype=np.int64)
            tokens = np.full((len(chunk), int(lengths.max())), eos_id, dtype=np.int64)
            for row, i in enumerate(chunk):
                tokens[row, :len(id_lists[i])] = id_lists[i]
            (logprobs,) = self.core.run(graphs.SCORE,
                                        {graphs.TOKENS: tokens, graphs.LENGTHS: lengths})
            for row, i in enumerate(chunk):
                results[i] = logprobs[row, :lengths[row]].astype(np.float64)
        # rows of similar length step together, at most batch_size at a time
        for start in range(0, len(long_rows), batch_size):
            chunk = long_rows[start:start + batch_size]
            for i, values in zip(chunk, self.by_steps([id_lists[i] for i in chunk], bos)):
                results[i] = values
        return results

    def by_steps(self, id_lists: Sequence[Sequence[int]], bos: bool) -> list[np.ndarray]:
        """What :meth:`predicted` returns, computed with the step graph (rows in lockstep)."""
        rows, eos_id, stepper = len(id_lists), self.core.eos_id, self.stepper
        targets = [list(ids) + [eos_id] for ids in id_lists]
        width = max(len(t) for t in targets)
        padded = np.full((rows, width), eos_id, dtype=np.int64)
        for r, target in enumerate(targets):
            padded[r, :len(target)] = target
        out = np.zeros((rows, width), dtype=np.float64)
        state = stepper.begin(rows) if bos else stepper.null_state(rows)
        for t in range(width):
            out[:, t] = state.logprobs[np.arange(rows), padded[:, t]]
            if t + 1 < width:
                state = stepper.feed(padded[:, t], state)
        return [out[r, :len(target)] for r, target in enumerate(targets)]

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> list[WordScore]:
        """One :class:`WordScore` per token, the final ``<eos>`` last (when ``eos``).

        With ``bos=False`` the first token has no context to be predicted from and scores 0."""
        text = clean_text(sentence)
        core = self.core
        enc = core.tokenizer.encode(text)
        logprobs = self.predicted([enc.ids], 1, bos)[0]
        words = [text[a:b] for a, b in enc.offsets] + ["<eos>"]
        tokens = [core.token_text(i) for i in enc.ids] + ["<eos>"]
        ids = list(enc.ids) + [core.eos_id]
        scores = [WordScore(w, t, float(lp), i == core.unk_id)
                  for w, t, lp, i in zip(words, tokens, logprobs, ids)]
        return scores if eos else scores[:-1]

    def analyze(self, sentences: Iterable[str], batch_size: int = 64, bos: bool = True,
                eos: bool = True) -> list[SentenceScore]:
        """Score many sentences at once, with predicted-token and out-of-vocabulary counts.

        ``bos=True`` starts each sentence from the start context ``<eos>``; ``bos=False`` from
        no context, so its first word is context and not predicted (a fragment). ``eos=True``
        adds ln P(<eos> | sentence); ``eos=False`` leaves the sentence open (a prefix)."""
        sentences = list(sentences)
        id_lists = self.core.encode_batch(sentences)
        logprobs = self.predicted(id_lists, batch_size, bos)
        out = []
        for s, ids, lp in zip(sentences, id_lists, logprobs):
            if not eos:
                lp = lp[:-1]
            predicted = len(lp) - (0 if bos or not len(lp) else 1)
            out.append(SentenceScore(s, float(lp.sum()), predicted,
                                     sum(1 for i in ids if i == self.core.unk_id)))
        return out

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """Natural-log probability of one sentence, as KenLM's ``score``.

        ``bos``: start from the start-of-sentence context (else the first word is context only
        and scores 0); ``eos``: add the probability that the sentence ends there.

        >>> lm.score("and god said")                 # doctest: +SKIP
        -12.3...
        >>> lm.score("said god and") < lm.score("and god said")   # doctest: +SKIP
        True
        """
        return self.analyze([sentence], bos=bos, eos=eos)[0].logprob

    def score_batch(self, sentences: Iterable[str], batch_size: int = 64, bos: bool = True,
                    eos: bool = True) -> list[float]:
        """Natural-log probabilities of many sentences, scored in padded batches."""
        return [s.logprob for s in self.analyze(sentences, batch_size, bos, eos)]

    def perplexity(self, text: str | Iterable[str]) -> float:
        """Perplexity over sentences (a string is split into lines; blank lines are skipped):
        exp(-total log-probability / total predicted tokens), each line's ``<eos>`` counted."""
        lines = text.splitlines() if isinstance(text, str) else list(text)
        lines = [line for line in lines if line.strip()]
        if not lines:
            raise InputError("perplexity needs at least one non-blank line")
        scored = self.analyze(lines)
        return math.exp(-sum(s.logprob for s in scored) / sum(s.tokens for s in scored))

    def rank(self, candidates: Iterable[str]) -> list[SentenceScore]:
        """Candidates sorted best first (highest log-probability; ties keep input order)."""
        scored = self.analyze(candidates)
        return sorted(scored, key=lambda s: -s.logprob)
