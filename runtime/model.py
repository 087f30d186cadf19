"""`LanguageModel`: score, rank and generate with an exported pocketlm model folder.

Needs only onnxruntime, numpy and tokenizers. The scoring convention (natural logs, zero start
state, ``<eos>`` as the start-of-sentence context, the final ``<eos>`` predicted) is the one every
pocketlm tool uses; see docs/runtime.md.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import ArtifactError, PocketLMError, read_manifest

_NO_SPACE_BEFORE = re.compile(r"^[.,;:!?)\]}'\"]+$")
_NO_SPACE_AFTER = {"(", "[", "{", "'"}


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
    """A scored sentence. ``logprob`` is in nats and counts the final ``<eos>``; ``tokens`` is
    the number of predicted tokens (words + 1); ``oov`` how many words were ``<unk>``."""

    sentence: str
    logprob: float
    tokens: int
    oov: int

    @property
    def perplexity(self) -> float:
        """exp(-logprob / tokens)."""
        return math.exp(-self.logprob / self.tokens)


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


class LanguageModel:
    """A word-level RNN language model read from a pocketlm model folder.

    All log-probabilities are natural logs (nats). A sentence is scored from the zero state with
    ``<eos>`` as its first input; each word and then the final ``<eos>`` are predicted, so::

        score("a b") = ln P(a | <eos>) + ln P(b | <eos> a) + ln P(<eos> | <eos> a b)

    Words outside the vocabulary are scored as ``<unk>``; :meth:`analyze` says how many there
    were. The empty sentence is valid: its score is ln P(<eos> | <eos>), the probability that a
    sentence ends at once.

    >>> lm = LanguageModel("runs/kjv/model")                    # doctest: +SKIP
    >>> lm.score("in the beginning god created the heaven")     # doctest: +SKIP
    -21.7...
    >>> lm.rank(["the apple and pear salad", "the apple and pair salad"])[0].sentence  # +SKIP

    ``precision="int8"`` uses the quantised graphs when the folder has them; ``threads`` sets
    onnxruntime's intra-op threads (default: onnxruntime's choice).
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
        precisions = sorted(m["graphs"]["score"]["files"])
        if precision not in precisions:
            raise PocketLMError(f"{self.path}: no {precision!r} graphs; this folder has "
                                f"{', '.join(precisions)}")
        self.precision = precision
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path / m["tokenizer"]))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ArtifactError(f"{self.path / m['tokenizer']}: cannot load tokenizer "
                                f"({exc}); re-export the model") from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = int(threads)
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

    def __contains__(self, word: str) -> bool:
        """True when ``word`` (after the tokenizer's normalisation) is in the vocabulary."""
        ids = self.tokenizer.encode(word).ids
        return len(ids) == 1 and ids[0] != self.unk_id

    def tokenize(self, sentence: str) -> list[int]:
        """Token ids of a sentence, without the ``<eos>`` markers."""
        return self.tokenizer.encode(sentence).ids

    # -- scoring ------------------------------------------------------------------------------

    def _token_logprobs(self, id_lists: Sequence[Sequence[int]],
                        batch_size: int = 64) -> list[np.ndarray]:
        """Per predicted token log-probabilities for each id list (len(ids) + 1 values)."""
        results: list[np.ndarray] = [np.empty(0)] * len(id_lists)
        order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
        session = self._sessions["score"]
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            lengths = np.array([len(id_lists[i]) + 1 for i in chunk], dtype=np.int64)
            tokens = np.full((len(chunk), int(lengths.max())), self.eos_id, dtype=np.int64)
            for row, i in enumerate(chunk):
                tokens[row, :len(id_lists[i])] = id_lists[i]
            (logprobs,) = session.run(None, {"tokens": tokens, "lengths": lengths})
            for row, i in enumerate(chunk):
                results[i] = logprobs[row, :lengths[row]].astype(np.float64)
        return results

    def full_scores(self, sentence: str) -> list[WordScore]:
        """One :class:`WordScore` per predicted token, the final ``<eos>`` last."""
        enc = self.tokenizer.encode(sentence)
        logprobs = self._token_logprobs([enc.ids])[0]
        words = [sentence[a:b] for a, b in enc.offsets] + ["<eos>"]
        tokens = [self.tokenizer.id_to_token(i) for i in enc.ids] + ["<eos>"]
        ids = list(enc.ids) + [self.eos_id]
        return [WordScore(w, t, float(lp), i == self.unk_id)
                for w, t, lp, i in zip(words, tokens, logprobs, ids)]

    def analyze(self, sentences: Iterable[str], batch_size: int = 64) -> list[SentenceScore]:
        """Score many sentences at once, with token and out-of-vocabulary counts."""
        sentences = list(sentences)
        id_lists = [enc.ids for enc in self.tokenizer.encode_batch(sentences)]
        logprobs = self._token_logprobs(id_lists, batch_size)
        return [SentenceScore(s, float(lp.sum()), len(ids) + 1,
                              sum(1 for i in ids if i == self.unk_id))
                for s, ids, lp in zip(sentences, id_lists, logprobs)]

    def score(self, sentence: str) -> float:
        """Natural-log probability of one sentence, final ``<eos>`` included.

        >>> lm.score("and god said")                 # doctest: +SKIP
        -12.3...
        >>> lm.score("said god and") < lm.score("and god said")   # doctest: +SKIP
        True
        """
        return self.analyze([sentence])[0].logprob

    def score_batch(self, sentences: Iterable[str], batch_size: int = 64) -> list[float]:
        """Natural-log probabilities of many sentences, scored in padded batches."""
        return [s.logprob for s in self.analyze(sentences, batch_size)]

    def perplexity(self, text: str | Iterable[str]) -> float:
        """Perplexity over sentences (a string is split into lines; blank lines are skipped):
        exp(-total log-probability / total predicted tokens), each line's ``<eos>`` counted."""
        lines = text.splitlines() if isinstance(text, str) else list(text)
        lines = [line for line in lines if line.strip()]
        if not lines:
            raise PocketLMError("perplexity needs at least one non-blank line")
        scored = self.analyze(lines)
        return math.exp(-sum(s.logprob for s in scored) / sum(s.tokens for s in scored))

    def rank(self, candidates: Iterable[str]) -> list[SentenceScore]:
        """Candidates sorted best first (highest log-probability; ties keep input order)."""
        scored = self.analyze(candidates)
        return sorted(scored, key=lambda s: -s.logprob)

    # -- generation ---------------------------------------------------------------------------

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero recurrent state for the step graph, keyed by its input names."""
        state = {}
        for spec in self.state_spec:
            shape = [batch if d == "batch" else int(d) for d in spec["shape"]]
            state[spec["input"]] = np.zeros(shape, dtype=np.float32)
        return state

    def step(self, tokens: Sequence[int],
             state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One step of the recurrent model for a batch of token ids: returns the next-token
        log-probabilities ``[batch, vocab]`` and the new state."""
        feeds = {"token": np.asarray(tokens, dtype=np.int64), **state}
        outputs = self._sessions["step"].run(None, feeds)
        new_state = {spec["input"]: out for spec, out in zip(self.state_spec, outputs[1:])}
        return outputs[0], new_state

    def generate(self, prompt: str = "", max_words: int = 30, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 allow_unk: bool = False) -> str:
        """Continue ``prompt`` word by word until ``<eos>`` or ``max_words`` words.

        Returns the continuation only (not the prompt), detokenised. ``temperature=0`` is greedy;
        ``top_k`` keeps the k likeliest words (0: all); ``top_p`` keeps the smallest set whose
        probability reaches p; ``seed`` makes sampling repeatable; ``<unk>`` is never produced
        unless ``allow_unk``.
        """
        if max_words < 0 or temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
            raise PocketLMError("generate needs max_words >= 0, temperature >= 0, top_k >= 0 "
                                "and 0 < top_p <= 1")
        rng = np.random.default_rng(seed)
        state = self.initial_state(1)
        logprobs = None
        for token in [self.eos_id, *self.tokenize(prompt)]:
            logprobs, state = self.step([token], state)
        words: list[str] = []
        for _ in range(max_words):
            assert logprobs is not None
            token = self._sample(logprobs[0].astype(np.float64), rng, temperature, top_k,
                                 top_p, allow_unk)
            if token == self.eos_id:
                break
            words.append(self.tokenizer.id_to_token(token))
            logprobs, state = self.step([token], state)
        return detokenize(words)

    def _sample(self, logprobs: np.ndarray, rng: np.random.Generator, temperature: float,
                top_k: int, top_p: float, allow_unk: bool) -> int:
        if not allow_unk:
            logprobs[self.unk_id] = -np.inf
        if temperature == 0:
            return int(np.argmax(logprobs))
        logits = logprobs / temperature
        if 0 < top_k < len(logits):  # top_k >= vocabulary size keeps every word
            kth = np.partition(logits, -top_k)[-top_k]
            logits = np.where(logits < kth, -np.inf, logits)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        if top_p < 1.0:
            order = np.argsort(-probs)
            keep = np.cumsum(probs[order]) - probs[order] < top_p
            mask = np.zeros_like(probs, dtype=bool)
            mask[order[keep]] = True
            probs = np.where(mask, probs, 0.0)
            probs /= probs.sum()
        return int(rng.choice(len(probs), p=probs))
