"""Stream perplexity: the split as one token stream, state carried across lines.

The stream (every line already followed by ``<eos>``) is cut into ``batch`` equal columns, the
tail that does not fill a column dropped; each column is read left to right from the zero state,
and every token after a column's first is predicted::

    stream  a b c <eos> d e <eos> f g h i <eos> ...        (N tokens)
    batchify(stream, 3) ->  [a b c <eos>]                  (3, N // 3)
                            [d e <eos> f]
                            [g h i <eos>]
    inputs  [:, :-1]   targets [:, 1:]     ->  3 * (N // 3 - 1) predictions

Training reads the same rows window by window (``batches.TokenRows``, which draws the windows and
the carried state); the torch backend here reads them through the same helper.

The ONNX backend feeds the step graph one column position at a time; the torch backend runs
windows of ``bptt`` steps. Both see exactly the same predictions, so their figures agree.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pocketlm.runtime.artifact import PocketLMError, read_manifest

from .batches import TokenRows, batchify
from .vocabulary import same_vocabulary

if TYPE_CHECKING:
    import torch

    from pocketlm.runtime import LanguageModel

    from .model import RNNLM, ModelConfig


def stream_nll_torch(model: RNNLM, stream: np.ndarray, batch: int = 10, bptt: int = 70,
                     device: str | torch.device = "cpu", max_tokens: int = 0
                     ) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and prediction count of a stream, with torch.

    ``max_tokens`` > 0 reads only the first ``max_tokens // batch`` columns of every row: a
    fixed sample of about that many tokens spread over ``batch`` places of the split."""
    import torch

    device = torch.device(device)
    rows = TokenRows(stream, batch, max_columns=max_tokens // batch if max_tokens else 0)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    state = model.init_state(batch, device)
    with torch.no_grad():
        start = 0
        while not rows.done(start):
            x, y = rows.window(start, bptt, device)                   # (B, T), (B, T)
            features, state = model.features(x, state)                 # (B, T, D)
            total -= model.target_logprob(features, y).double().sum()
            start += y.shape[1]
    model.train(was_training)
    return float(total), rows.predictions


def best_test_perplexity(model_config: ModelConfig, weights: Path, test_ids: np.ndarray,
                         batch: int, device: torch.device, max_tokens: int = 0) -> float | None:
    """Stream perplexity of the weights file ``weights`` on the test split (None when the split
    has fewer than two columns); builds the model without touching the RNG state."""
    import torch

    from .checkpoint import load_weights
    from .model import RNNLM

    if len(test_ids) // batch < 2:
        return None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = RNNLM(model_config).to(device)
    load_weights(model, weights)
    nll, count = stream_nll_torch(model, test_ids, batch, device=device, max_tokens=max_tokens)
    return math.exp(nll / count)


def stream_nll_onnx(lm: LanguageModel, stream: np.ndarray, batch: int = 10) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and prediction count, through the step graph."""
    rows = batchify(stream, batch)
    state = lm.initial_state(batch)
    total = 0.0
    index = np.arange(batch)
    for t in range(rows.shape[1] - 1):
        logprobs, state = lm.step(rows[:, t], state)
        total -= float(logprobs[index, rows[:, t + 1]].astype(np.float64).sum())
    return total, batch * (rows.shape[1] - 1)


def evaluate(model_dir: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str],
             split: str = "test", backend: str = "onnx",
             checkpoint_dir: str | os.PathLike[str] | None = None, batch: int = 10,
             precision: str = "fp32", threads: int | None = None) -> dict[str, Any]:
    """Stream perplexity of a data split, through onnxruntime (``model_dir``) or torch
    (``checkpoint_dir``). Refuses a model whose vocabulary differs from the data's."""
    from .ingest import load_split

    data = read_manifest(data_dir, "data")
    stream = load_split(data_dir, split, data)
    if backend == "onnx":
        if model_dir is None:
            raise PocketLMError("--backend onnx needs --model DIR (an export folder)")
        from pocketlm.runtime import LanguageModel

        lm = LanguageModel(model_dir, precision=precision, threads=threads)
        vocab = Path(model_dir) / lm.manifest["tokenizer"]
        source = str(model_dir)
    elif backend == "torch":
        if checkpoint_dir is None:
            raise PocketLMError("--backend torch needs --checkpoint DIR (a train folder)")
        from .checkpoint import TOKENIZER, load_checkpoint

        model, ckpt = load_checkpoint(checkpoint_dir)
        vocab = Path(checkpoint_dir) / TOKENIZER
        source = str(checkpoint_dir)
    else:
        raise PocketLMError(f"unknown backend {backend!r}; use onnx or torch")
    if not same_vocabulary(vocab, Path(data_dir) / data["tokenizer"]):
        raise PocketLMError(f"{source} was trained with another vocabulary than {data_dir}; "
                            f"evaluate on the data folder it was trained on")
    if backend == "onnx":
        nll, count = stream_nll_onnx(lm, stream, batch)
    else:
        nll, count = stream_nll_torch(model, stream, batch)
    return {"split": split, "backend": backend, "precision": precision if backend == "onnx"
            else "fp32", "tokens": count, "nll": nll, "perplexity": math.exp(nll / count)}
