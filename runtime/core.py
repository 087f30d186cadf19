"""What every part of :class:`~pocketlm.runtime.model.LanguageModel` stands on: the model folder
read and checked, its tokenizer, and one onnxruntime session per graph (names from
:mod:`pocketlm.runtime.graphs`). The stepper, scorer and generator each hold one
:class:`SessionCore` and use only its public interface::

    folder/manifest.json ─read_manifest─▶ manifest, vocab_size, unk_id, eos_id, state_spec
    folder/tokenizer.json ─tokenizers─▶   tokenize / encode_batch / token_text / contains
    folder/score*.onnx, step*.onnx ─▶     run(graph, feeds) -> the graph's outputs
"""

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


class SessionCore:
    """A model folder opened for inference: manifest, vocabulary, special ids, sessions.

    ``precision="int8"`` uses the quantised graphs when the folder has them; ``threads`` sets
    onnxruntime's intra-op threads (default: onnxruntime's choice); ``verify`` checks every
    file's SHA-256 against the manifest; ``graph_format="ort"`` loads the ORT-format graphs
    that ``pocketlm export --ort`` writes (the ones onnxruntime's minimal builds read)."""

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32",
                 threads: int | None = None, verify: bool = True,
                 graph_format: str = "onnx") -> None:
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
        if graph_format not in graphs.GRAPH_FORMATS:
            raise InputError(f"graph_format must be one of {', '.join(graphs.GRAPH_FORMATS)}, "
                             f"got {graph_format!r}")
        key = "files" if graph_format == "onnx" else "ort_files"
        if any(precision not in m["graphs"][name].get(key, {}) for name in graphs.GRAPHS):
            raise PocketLMError(f"{self.path}: no ORT-format {precision} graphs; re-export the "
                                f"model with `pocketlm export --ort`")
        self.precision = precision
        self.graph_format = graph_format
        self.threads = threads
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path / m["tokenizer"]))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ArtifactError(f"{self.path / m['tokenizer']}: cannot load tokenizer "
                                f"({exc}); re-export the model") from exc
        self._sessions: dict[str, Any] = {}
        for name in graphs.GRAPHS:
            file = self.path / m["graphs"][name][key][precision]
            try:
                self._sessions[name] = graphs.open_session(file, threads)
            except Exception as exc:
                raise ArtifactError(f"{file}: onnxruntime cannot load it ({exc}); "
                                    f"re-export the model") from exc

    def session(self, graph: str) -> Any:
        """The onnxruntime ``InferenceSession`` of ``graph`` (``graphs.SCORE`` or
        ``graphs.STEP``), for benchmarks that drive it directly."""
        return self._sessions[graph]

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One run of ``graph`` (``graphs.SCORE`` or ``graphs.STEP``): its outputs in the
        graph's order. ``feeds`` are not checked here (see :meth:`check_ids`)."""
        return list(self._sessions[graph].run(None, feeds))

    # -- vocabulary ---------------------------------------------------------------------------

    def contains(self, word: object) -> bool:
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

    def encode_batch(self, sentences: Sequence[str]) -> list[list[int]]:
        """Token ids of many sentences (no ``<eos>`` markers), tokenised in one call."""
        # encode_batch_fast skips character offsets (a third of the tokenizer's time here)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        return [enc.ids for enc in encode([clean_text(s) for s in sentences])]

    def check_ids(self, ids: np.ndarray, where: str) -> np.ndarray:
        """``ids`` as int64 when they are integer ids inside the vocabulary, else
        :class:`InputError` naming ``where``."""
        if ids.size and ids.dtype.kind not in "iu":
            raise InputError(f"{where}: token ids must be integers, got {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise InputError(f"{where}: token id {int(bad)} is outside the vocabulary "
                             f"(0..{self.vocab_size - 1})")
        return ids
