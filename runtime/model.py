"""`LanguageModel`: score, rescore, advance word by word and generate with a pocketlm model folder.

Needs only onnxruntime, numpy and tokenizers. The scoring convention (natural logs, zero start
state, ``<eos>`` as the start-of-sentence context, the final ``<eos>`` predicted) is the one every
pocketlm tool uses; see docs/runtime.md.

Two graphs do all the work::

    score.onnx   tokens [B, L] + lengths [B]  ->  logprobs [B, L]      whole sentences, from zero
    step.onnx    token [B] + state_* [layers, B, hidden]
                     ->  logprobs [B, V] + new_state_* [layers, B, hidden]        one step

A :class:`State` is the step graph's state for B hypotheses plus the distribution of each one's
next token (``logprobs`` [B, V]), so ``advance`` looks up a word's log-probability and then runs
one step::

    begin()  = zero state, <eos> fed         logprobs = P(. | <eos>)
    advance(state, w) -> (state.logprobs[w], step(w, state))
    end(state)        ->  state.logprobs[<eos>]
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ArtifactError, InputError, PocketLMError, read_manifest

_NO_SPACE_BEFORE = re.compile(r"^[.,;:!?)\]}'\"]+$")
_NO_SPACE_AFTER = {"(", "[", "{", "'"}
_SURROGATE = re.compile("[\ud800-\udfff]")

#: Floats (batch x length x vocabulary) one score-graph run may produce: batches are cut to it
#: (for a 10,000-word vocabulary about 24 sentences of 35 words: 10-20% faster than fixed
#: batches of 64 in bench/runtime_speed.py on one noisy core).
BATCH_FLOATS = 1 << 23
#: A sentence whose (length x vocabulary) exceeds this runs through the step graph instead, so
#: memory stays bounded whatever its length.
SCORE_BUDGET = 1 << 25


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (which cannot be UTF-8 encoded) replaced by U+FFFD, the
    length unchanged so offsets still match. Raises ``TypeError`` for a non-string."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


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


class State:
    """The recurrent state of one or more hypotheses (rows), with each row's next-token
    distribution. Immutable: :meth:`LanguageModel.advance` returns a new one.

    ``arrays`` maps the step graph's state input names (``state_h`` [, ``state_c``]) to float32
    ``[layers, rows, hidden]``; ``logprobs`` is float32 ``[rows, vocab]``, ln P(next token | the
    row's context). A null-context row has all-zero ``logprobs``: its first token is context and
    scores 0.

    ``len(state)`` is the number of rows; ``state.select(rows)`` (or ``state[rows]``) picks,
    repeats and reorders rows, as beam search needs; :meth:`concat` stacks states.
    """

    __slots__ = ("arrays", "logprobs")

    def __init__(self, arrays: dict[str, np.ndarray], logprobs: np.ndarray) -> None:
        self.arrays = arrays
        self.logprobs = logprobs

    def __len__(self) -> int:
        return int(self.logprobs.shape[0])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in self.arrays.items())
        return f"State(rows={len(self)}, {shapes})"

    def select(self, rows: int | Sequence[int] | np.ndarray) -> State:
        """A state made of the given rows, in that order (rows may repeat)."""
        index = np.atleast_1d(np.asarray(rows))
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise InputError("State.select takes a row number or a 1-D list of row numbers")
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise InputError(f"State.select: row out of range for a state of {len(self)} rows")
        index = index.astype(np.int64)
        return State({k: v[:, index] for k, v in self.arrays.items()}, self.logprobs[index])

    __getitem__ = select

    def __iter__(self) -> Iterator[State]:
        """The rows, one one-row state each."""
        return (self.select([i]) for i in range(len(self)))

    @staticmethod
    def concat(states: Sequence[State]) -> State:
        """The rows of several states (of the same model), one after another."""
        if not states:
            raise InputError("State.concat needs at least one state")
        keys = list(states[0].arrays)
        if any(list(s.arrays) != keys for s in states):
            raise InputError("State.concat: the states come from different models")
        return State({k: np.concatenate([s.arrays[k] for s in states], axis=1) for k in keys},
                     np.concatenate([s.logprobs for s in states], axis=0))


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


def session_options(threads: int | None = None) -> Any:
    """The onnxruntime session options the runtime uses: all graph optimisations (the levels
    measured within noise of each other, bench/runtime_speed.py), sequential execution, one
    inter-op thread, ``threads`` intra-op threads (``None``: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


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
    onnxruntime's intra-op threads (default: onnxruntime's choice). One object can be used from
    several threads at once.
    """

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32",
                 threads: int | None = None, verify: bool = True) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.manifest = read_manifest(self.path, "model", verify=verify)
        m = self.manifest
        self.vocab_size: int = int(m["vocab_size"])
        self.unk_id: int = int(m["special_tokens"]["unk"]["id"])
        self.eos_id: int = int(m["special_tokens"]["eos"]["id"])
        self.state_spec: list[dict] = m["state"]
        self.state_names: list[str] = [spec["input"] for spec in self.state_spec]
        precisions = sorted(m["graphs"]["score"]["files"])
        if precision not in precisions:
            raise PocketLMError(f"{self.path}: no {precision!r} graphs; this folder has "
                                f"{', '.join(precisions)}")
        self.precision = precision
        self.threads = threads
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path / m["tokenizer"]))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ArtifactError(f"{self.path / m['tokenizer']}: cannot load tokenizer "
                                f"({exc}); re-export the model") from exc
        options = session_options(threads)
        self._sessions = {}
        for name in ("score", "step"):
            file = self.path / m["graphs"][name]["files"][precision]
            try:
                self._sessions[name] = ort.InferenceSession(
                    str(file), options, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ArtifactError(f"{file}: onnxruntime cannot load it ({exc}); "
                                    f"re-export the model") from exc

    # -- vocabulary ---------------------------------------------------------------------------

    def __contains__(self, word: object) -> bool:
        """True when ``word`` (after the tokenizer's normalisation) is in the vocabulary."""
        if not isinstance(word, str):
            return False
        ids = self.tokenizer.encode(clean_text(word)).ids
        return len(ids) == 1 and ids[0] != self.unk_id

    def tokenize(self, sentence: str) -> list[int]:
        """Token ids of a sentence, without the ``<eos>`` markers."""
        return self.tokenizer.encode(clean_text(sentence)).ids

    def _encode_batch(self, sentences: Sequence[str]) -> list[list[int]]:
        # encode_batch_fast skips character offsets (a third of the tokenizer's time here)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        return [enc.ids for enc in encode([clean_text(s) for s in sentences])]

    def _check_ids(self, ids: np.ndarray, where: str) -> np.ndarray:
        if ids.size and ids.dtype.kind not in "iu":
            raise InputError(f"{where}: token ids must be integers, got {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise InputError(f"{where}: token id {int(bad)} is outside the vocabulary "
                             f"(0..{self.vocab_size - 1})")
        return ids

    # -- whole-sentence scoring ---------------------------------------------------------------

    def _predicted(self, id_lists: Sequence[Sequence[int]], batch_size: int,
                   bos: bool) -> list[np.ndarray]:
        """ln P of each predicted token of each id list: len(ids) + 1 values, the final
        ``<eos>`` last. With ``bos=False`` the first value (the first word, or the ``<eos>`` of
        an empty list) is context and 0."""
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        results: list[np.ndarray] = [np.empty(0)] * len(id_lists)
        order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
        long_rows = [i for i in order if (len(id_lists[i]) + 1) * self.vocab_size > SCORE_BUDGET]
        if not bos:
            long_rows = order
        long_set = set(long_rows)
        short = [i for i in order if i not in long_set]
        start = 0
        while start < len(short):
            end = start + 1
            while (end < len(short) and end - start < batch_size
                   and (end + 1 - start) * (len(id_lists[short[end]]) + 1) * self.vocab_size
                   <= BATCH_FLOATS):
                end += 1
            chunk = short[start:end]
            start = end
            lengths = np.array([len(id_lists[i]) + 1 for i in chunk], dtype=np.int64)
            tokens = np.full((len(chunk), int(lengths.max())), self.eos_id, dtype=np.int64)
            for row, i in enumerate(chunk):
                tokens[row, :len(id_lists[i])] = id_lists[i]
            (logprobs,) = self._sessions["score"].run(None, {"tokens": tokens,
                                                              "lengths": lengths})
            for row, i in enumerate(chunk):
                results[i] = logprobs[row, :lengths[row]].astype(np.float64)
        # rows of similar length step together, at most batch_size at a time
        for start in range(0, len(long_rows), batch_size):
            chunk = long_rows[start:start + batch_size]
            for i, values in zip(chunk, self._by_steps([id_lists[i] for i in chunk], bos)):
                results[i] = values
        return results

    def _by_steps(self, id_lists: Sequence[Sequence[int]], bos: bool) -> list[np.ndarray]:
        """What :meth:`_predicted` returns, computed with the step graph (rows in lockstep)."""
        rows = len(id_lists)
        targets = [list(ids) + [self.eos_id] for ids in id_lists]
        width = max(len(t) for t in targets)
        padded = np.full((rows, width), self.eos_id, dtype=np.int64)
        for r, t in enumerate(targets):
            padded[r, :len(t)] = t
        out = np.zeros((rows, width), dtype=np.float64)
        state = self.begin(rows) if bos else self.null_state(rows)
        for t in range(width):
            out[:, t] = state.logprobs[np.arange(rows), padded[:, t]]
            if t + 1 < width:
                state = self._step_state(padded[:, t], state)
        return [out[r, :len(t)] for r, t in enumerate(targets)]

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> list[WordScore]:
        """One :class:`WordScore` per token, the final ``<eos>`` last (when ``eos``).

        With ``bos=False`` the first token has no context to be predicted from and scores 0."""
        text = clean_text(sentence)
        enc = self.tokenizer.encode(text)
        logprobs = self._predicted([enc.ids], 1, bos)[0]
        words = [text[a:b] for a, b in enc.offsets] + ["<eos>"]
        tokens = [self.tokenizer.id_to_token(i) for i in enc.ids] + ["<eos>"]
        ids = list(enc.ids) + [self.eos_id]
        scores = [WordScore(w, t, float(lp), i == self.unk_id)
                  for w, t, lp, i in zip(words, tokens, logprobs, ids)]
        return scores if eos else scores[:-1]

    def analyze(self, sentences: Iterable[str], batch_size: int = 64, bos: bool = True,
                eos: bool = True) -> list[SentenceScore]:
        """Score many sentences at once, with predicted-token and out-of-vocabulary counts.

        ``bos=True`` starts each sentence from the start context ``<eos>``; ``bos=False`` from
        no context, so its first word is context and not predicted (a fragment). ``eos=True``
        adds ln P(<eos> | sentence); ``eos=False`` leaves the sentence open (a prefix)."""
        sentences = list(sentences)
        id_lists = self._encode_batch(sentences)
        logprobs = self._predicted(id_lists, batch_size, bos)
        out = []
        for s, ids, lp in zip(sentences, id_lists, logprobs):
            if not eos:
                lp = lp[:-1]
            predicted = len(lp) - (0 if bos or not len(lp) else 1)
            out.append(SentenceScore(s, float(lp.sum()), predicted,
                                     sum(1 for i in ids if i == self.unk_id)))
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

    # -- n-best rescoring ---------------------------------------------------------------------

    def rescore(self, hypotheses: Sequence[str], base_scores: Sequence[float] | None = None, *,
                weight: float = 1.0, word_penalty: float = 0.0, bos: bool = True,
                eos: bool = True, batch_size: int = 64) -> list[Rescored]:
        """Re-rank one n-best list: best first by ``base + weight * LM log-prob + word_penalty *
        words`` (ties keep input order). ``base_scores`` are the recogniser's scores (default
        0); the LM log-probability is :meth:`score` with ``bos`` and ``eos``."""
        return self.rescore_batch([hypotheses], None if base_scores is None else [base_scores],
                                  weight=weight, word_penalty=word_penalty, bos=bos, eos=eos,
                                  batch_size=batch_size)[0]

    def rescore_batch(self, nbest_lists: Sequence[Sequence[str]],
                      base_scores: Sequence[Sequence[float]] | None = None, *,
                      weight: float = 1.0, word_penalty: float = 0.0, bos: bool = True,
                      eos: bool = True, batch_size: int = 64) -> list[list[Rescored]]:
        """:meth:`rescore` for many n-best lists, all hypotheses scored in the same batches."""
        for name, value in (("weight", weight), ("word_penalty", word_penalty)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"rescore: {name} must be a finite number, got {value!r}")
        if base_scores is None:
            base_scores = [[0.0] * len(h) for h in nbest_lists]
        if len(base_scores) != len(nbest_lists):
            raise InputError(f"rescore: {len(nbest_lists)} n-best lists but "
                             f"{len(base_scores)} lists of base scores")
        flat: list[str] = []
        for i, (hyps, base) in enumerate(zip(nbest_lists, base_scores)):
            if isinstance(hyps, str):
                raise InputError("rescore: hypotheses must be a list of strings, not a string")
            if len(hyps) != len(base):
                raise InputError(f"rescore: list {i} has {len(hyps)} hypotheses but "
                                 f"{len(base)} base scores")
            for b in base:
                if isinstance(b, bool) or not isinstance(b, (int, float, np.floating,
                                                             np.integer)) \
                        or not math.isfinite(float(b)):
                    raise InputError(f"rescore: base scores must be finite numbers, got {b!r}")
            flat.extend(hyps)
        id_lists = self._encode_batch(flat)
        logprobs = self._predicted(id_lists, batch_size, bos)
        out: list[list[Rescored]] = []
        pos = 0
        for hyps, base in zip(nbest_lists, base_scores):
            items = []
            for j, (hyp, b) in enumerate(zip(hyps, base)):
                ids, lp = id_lists[pos], logprobs[pos]
                pos += 1
                lm_lp = float(lp.sum() if eos else lp[:-1].sum())
                words = len(ids)
                items.append(Rescored(hyp, float(b) + weight * lm_lp + word_penalty * words,
                                      float(b), lm_lp, words,
                                      sum(1 for t in ids if t == self.unk_id), j))
            out.append(sorted(items, key=lambda r: -r.score))
        return out

    # -- incremental scoring ------------------------------------------------------------------

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero recurrent state for the step graph, keyed by its input names."""
        state = {}
        for spec in self.state_spec:
            shape = [batch if d == "batch" else int(d) for d in spec["shape"]]
            state[spec["input"]] = np.zeros(shape, dtype=np.float32)
        return state

    def step(self, tokens: Sequence[int] | np.ndarray,
             state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One step of the recurrent model for a batch of token ids: returns the next-token
        log-probabilities ``[batch, vocab]`` and the new state. Ids outside the vocabulary or a
        state of the wrong shape raise :class:`InputError`."""
        ids = self._check_ids(np.atleast_1d(np.asarray(tokens)), "step")
        if ids.ndim != 1:
            raise InputError(f"step: tokens must be 1-D (one id per row), got shape "
                             f"{list(ids.shape)}")
        if not isinstance(state, dict) or sorted(state) != sorted(self.state_names):
            raise InputError(f"step: state must be a dict with keys {self.state_names} (from "
                             f"initial_state)")
        feeds: dict[str, np.ndarray] = {"token": ids}
        for spec in self.state_spec:
            value = np.asarray(state[spec["input"]], dtype=np.float32)
            expected = [len(ids) if d == "batch" else int(d) for d in spec["shape"]]
            if list(value.shape) != expected:
                raise InputError(f"step: {spec['input']} has shape {list(value.shape)}, "
                                 f"expected {expected} for {len(ids)} tokens")
            feeds[spec["input"]] = value
        outputs = self._sessions["step"].run(None, feeds)
        new_state = {spec["input"]: out for spec, out in zip(self.state_spec, outputs[1:])}
        return outputs[0], new_state

    def _step_state(self, ids: np.ndarray, state: State) -> State:
        feeds: dict[str, np.ndarray] = {"token": ids, **state.arrays}
        outputs = self._sessions["step"].run(None, feeds)
        return State({n: o for n, o in zip(self.state_names, outputs[1:])}, outputs[0])

    def null_state(self, rows: int = 1) -> State:
        """``rows`` hypotheses with no context at all (zero state, nothing fed): the first token
        advanced from it is context and scores 0, as with ``score(..., bos=False)``."""
        if rows < 1:
            raise InputError(f"a state needs at least one row, got {rows}")
        return State(self.initial_state(rows),
                     np.zeros((rows, self.vocab_size), dtype=np.float32))

    def begin(self, rows: int = 1) -> State:
        """``rows`` hypotheses at the start of a sentence (zero state, ``<eos>`` fed), as
        :meth:`score` starts with ``bos=True``."""
        return self._step_state(np.full(rows, self.eos_id, dtype=np.int64),
                                self.null_state(rows))

    def _word_ids(self, word: str | int, where: str) -> list[int]:
        if isinstance(word, (int, np.integer)) and not isinstance(word, bool):
            return [int(self._check_ids(np.asarray([word]), where)[0])]
        if isinstance(word, str):
            return self.tokenize(word)
        raise InputError(f"{where}: a word is a str or a token id (int), got "
                         f"{type(word).__name__}")

    def advance(self, state: State, word: str | int) -> tuple[float, State]:
        """Feed one word to a one-row state: returns (ln P(word | state), the new state).

        ``word`` is a token id or a string; a string is tokenised, and when it becomes several
        tokens (``"don't"``) they are all fed and their log-probabilities added (no token: 0 and
        the same state). Summed along a sentence's tokens plus :meth:`end`, this equals
        :meth:`score` with the same ``bos`` (:meth:`begin` or :meth:`null_state`)."""
        if not isinstance(state, State) or len(state) != 1:
            raise InputError("advance takes a one-row State (from begin(), null_state() or "
                             "advance); use advance_batch for several rows")
        total = 0.0
        for token in self._word_ids(word, "advance"):
            total += float(state.logprobs[0, token])
            state = self._step_state(np.array([token], dtype=np.int64), state)
        return total, state

    def advance_batch(self, state: State,
                      words: Sequence[str | int] | np.ndarray) -> tuple[np.ndarray, State]:
        """Feed one token per row in one step-graph run: returns (ln P of each row's token,
        float64 [rows], the new state). A string must be exactly one token here. Use
        ``state.select(rows)`` first to expand, prune or reorder hypotheses (beam search)."""
        if not isinstance(state, State):
            raise InputError("advance_batch takes a State (from begin(), null_state() or "
                             "advance)")
        if isinstance(words, np.ndarray):
            ids = self._check_ids(words.reshape(-1), "advance_batch")
        else:
            flat = []
            for w in words:
                got = self._word_ids(w, "advance_batch")
                if len(got) != 1:
                    raise InputError(f"advance_batch: {w!r} is {len(got)} tokens; give one "
                                     f"token per row (or use advance for one row)")
                flat.extend(got)
            ids = np.asarray(flat, dtype=np.int64)
        if len(ids) != len(state):
            raise InputError(f"advance_batch: {len(ids)} tokens for a state of {len(state)} "
                             f"rows")
        logps = state.logprobs[np.arange(len(ids)), ids].astype(np.float64)
        return logps, self._step_state(ids, state)

    def end(self, state: State) -> float:
        """ln P(<eos> | a one-row state): the end of the sentence."""
        if not isinstance(state, State) or len(state) != 1:
            raise InputError("end takes a one-row State; use end_batch for several rows")
        return float(state.logprobs[0, self.eos_id])

    def end_batch(self, state: State) -> np.ndarray:
        """ln P(<eos> | each row), float64 [rows]."""
        return state.logprobs[:, self.eos_id].astype(np.float64)

    # -- generation ---------------------------------------------------------------------------

    def _prompt_state(self, prompt: str, state: State | None) -> State:
        if state is None:
            state = self.begin(1)
        elif not isinstance(state, State) or len(state) != 1:
            raise InputError("generation continues from a one-row State")
        for token in self.tokenize(prompt):
            state = self._step_state(np.array([token], dtype=np.int64), state)
        return state

    @staticmethod
    def _check_sampling(max_words: int, temperature: float, top_k: int, top_p: float) -> None:
        if not (max_words >= 0 and temperature >= 0 and top_k >= 0 and 0 < top_p <= 1):
            raise InputError("generate needs max_words >= 0, temperature >= 0, top_k >= 0 "
                             "and 0 < top_p <= 1")

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
        self._check_sampling(max_words, temperature, top_k, top_p)
        if num_samples < 1:
            raise InputError(f"num_samples must be at least 1, got {num_samples}")
        stop_ids = self._stop_ids(stop)
        rng = np.random.default_rng(seed)
        current = self._prompt_state(prompt, state).select(np.zeros(num_samples, np.int64))
        active = np.arange(num_samples)
        words: list[list[str]] = [[] for _ in range(num_samples)]
        logps: list[list[float]] = [[] for _ in range(num_samples)]
        finish = ["max_words"] * num_samples
        final: list[State | None] = [None] * num_samples
        if max_words == 0:
            final = [current.select([r]) for r in range(num_samples)]
        for n in range(max_words):
            tokens = self._pick(current.logprobs, rng, temperature, top_k, top_p, allow_unk)
            chosen = current.logprobs[np.arange(len(active)), tokens]
            keep = []
            for row, (sample, token) in enumerate(zip(active, tokens)):
                if token == self.eos_id:
                    finish[sample] = "eos"
                    final[sample] = current.select([row])
                    continue
                words[sample].append(self.tokenizer.id_to_token(int(token)))
                logps[sample].append(float(chosen[row]))
                if token in stop_ids:
                    finish[sample] = "stop"
                keep.append(row)
            if not keep:
                break
            current = self._step_state(tokens[keep], current.select(keep))
            active = active[keep]
            done = [i for i, sample in enumerate(active)
                    if finish[sample] == "stop" or n + 1 == max_words]
            for i in done:
                final[active[i]] = current.select([i])
            if done:
                left = [i for i in range(len(active)) if i not in set(done)]
                if not left:
                    break
                current, active = current.select(left), active[left]
        return [Generation(detokenize(w), tuple(w), tuple(lp), f, s)  # type: ignore[arg-type]
                for w, lp, f, s in zip(words, logps, finish, final)]

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
        self._check_sampling(max_words, temperature, top_k, top_p)
        return GenerationStream(self, self._prompt_state(prompt, state), max_words,
                                temperature, top_k, top_p, np.random.default_rng(seed),
                                allow_unk, self._stop_ids(stop), logprobs)

    def _pick(self, logprobs: np.ndarray, rng: np.random.Generator, temperature: float,
              top_k: int, top_p: float, allow_unk: bool) -> np.ndarray:
        """One sampled token id per row of ``logprobs`` [rows, vocab] (one uniform draw per
        row, so a seed gives the same words however the rows are batched)."""
        logits = logprobs.astype(np.float32)          # a copy: the state's array stays intact
        if not allow_unk:
            logits[:, self.unk_id] = -np.inf
        if temperature == 0:
            return np.argmax(logits, axis=1).astype(np.int64)
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
    return (chosen * block + np.minimum(index, last)).astype(np.int64)


class GenerationStream(Iterator[Any]):
    """The iterator :meth:`LanguageModel.stream` returns; see there."""

    def __init__(self, lm: LanguageModel, state: State, max_words: int, temperature: float,
                 top_k: int, top_p: float, rng: np.random.Generator, allow_unk: bool,
                 stop_ids: set[int], with_logprobs: bool) -> None:
        self._lm, self.state = lm, state
        self._settings = (rng, temperature, top_k, top_p, allow_unk)
        self._max_words, self._stop_ids, self._with_logprobs = max_words, stop_ids, with_logprobs
        self.words: list[str] = []
        self.logprobs: list[float] = []
        self.finish: str | None = None if max_words else "max_words"

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> Any:
        if self.finish is not None:
            raise StopIteration
        lm = self._lm
        rng, temperature, top_k, top_p, allow_unk = self._settings
        token = int(lm._pick(self.state.logprobs, rng, temperature, top_k, top_p,
                             allow_unk)[0])
        if token == lm.eos_id:
            self.finish = "eos"
            raise StopIteration
        word, logprob = lm.tokenizer.id_to_token(token), float(self.state.logprobs[0, token])
        self.state = lm._step_state(np.array([token], dtype=np.int64), self.state)
        self.words.append(word)
        self.logprobs.append(logprob)
        if token in self._stop_ids:
            self.finish = "stop"
        elif len(self.words) == self._max_words:
            self.finish = "max_words"
        return (word, logprob) if self._with_logprobs else word

    @property
    def text(self) -> str:
        """The words so far, detokenised."""
        return detokenize(self.words)
