"""Starting a task model's encoder from language models (``--init-from``,
``--init-backward-from``)::

    LM checkpoint/ model.safetensors  embedding.weight [V, E], rnn.* ─▶ encoder.embedding, .rnn
    reversed-LM checkpoint/           rnn.*                            ─▶ encoder.rnn_backward

The vocabulary must be the same: the checkpoint's ``tokenizer.json`` and the data folder's must
hold the same vocabulary (:func:`~pocketlm.pipeline.vocabulary.same_vocabulary`; ingest the
labelled data with ``--vocab-from`` the LM's data folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pocketlm.runtime.artifact import PocketLMError, read_manifest, sha256_file

from .checkpoint import TOKENIZER, WEIGHTS
from .encoder import TaskModel, load_lm_weights
from .vocabulary import same_vocabulary


def _load(model: TaskModel, checkpoint: str, vocab: Path, data_dir: str | os.PathLike[str],
          backward: bool) -> dict[str, Any]:
    from safetensors.torch import load_file

    option = "--init-backward-from" if backward else "--init-from"
    ckpt = read_manifest(checkpoint, "checkpoint")
    if ckpt.get("task", "lm") != "lm":
        raise PocketLMError(f"{option} {checkpoint}: a {ckpt['task']!r} checkpoint, not a "
                            f"language model's; give a `pocketlm train` (LM) checkpoint")
    if not same_vocabulary(Path(checkpoint) / TOKENIZER, vocab):
        raise PocketLMError(f"{option} {checkpoint}: its vocabulary is not {data_dir}'s "
                            f"tokenizer.json; ingest the labelled data with --vocab-from the "
                            f"language model's data folder")
    if ckpt["model"]["cell"] != model.config.cell:
        raise PocketLMError(f"{option} {checkpoint}: a {ckpt['model']['cell']} model; train "
                            f"with --cell {ckpt['model']['cell']}")
    loaded = load_lm_weights(model, load_file(str(Path(checkpoint) / WEIGHTS)), backward,
                             f"{option} {checkpoint}")
    return {"path": str(Path(checkpoint).resolve()),
            "manifest_sha256": sha256_file(Path(checkpoint) / "manifest.json"),
            "loaded": loaded}


def init_encoder(model: TaskModel, data_dir: str | os.PathLike[str], data: dict[str, Any],
                 init_from: str, init_backward_from: str) -> dict[str, Any]:
    """Load the language models named (empty: none); what the manifest records of them."""
    vocab = Path(data_dir) / data.get("tokenizer", TOKENIZER)
    record: dict[str, Any] = {}
    if init_from:
        record["forward"] = _load(model, init_from, vocab, data_dir, backward=False)
    if init_backward_from:
        record["backward"] = _load(model, init_backward_from, vocab, data_dir,
                                   backward=True)
    return record
