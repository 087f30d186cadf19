"""What every part of :class:`~pocketlm.runtime.LanguageModel` stands on: the model folder read
and checked, its tokenizer, and one onnxruntime session per graph (names from
:mod:`pocketlm.runtime.graphs`). Scoring, the state API and generation build on this class."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import graphs
from .artifact import ArtifactError, InputError, PocketLMError, read_manifest

_SURROGATE = re.compile("[\ud800-\udfff]")


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


class ModelCore:
    """A model folder opened for inference: manifest, vocabulary, special ids, sessions.

    ``precision="int8"`` uses the quantised graphs when the folder has them; ``threads`` sets
    onnxruntime's intra-op threads (default: onnxruntime's choice); ``verify`` checks every
    file's SHA-256 against the manifest."""

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32",
                 threads: int | None = None, verify: bool = True) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.manifest = read_manifest(self.path, "model", verify=verify)
        m = self.manifest
        self.vocab_size: int = int(m["vocab_size"])
        self.unk_id: int = int(m["special_tokens"]["unk"]["id"])
        self.eos_id: int = int(m["special_tokens"]["eos"]["id"])
        self.state_spec: list[dict[str, Any]] = m["state"]
        self.state_names: list[str] = [spec["input"] for spec in self.state_spec]
        precisions = sorted(m["graphs"][graphs.SCORE]["files"])
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
        self._sessions: dict[str, Any] = {}
        for name in graphs.GRAPHS:
            file = self.path / m["graphs"][name]["files"][precision]
            try:
                self._sessions[name] = graphs.open_session(file, threads)
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
        return list(self.tokenizer.encode(clean_text(sentence)).ids)

    def token_text(self, token: int) -> str:
        """The vocabulary entry of token id ``token``."""
        return str(self.tokenizer.id_to_token(int(token)))

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
