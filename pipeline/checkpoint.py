"""Checkpoint folders: writing them during training, reading them back, resuming from them.

Training, evaluation and export import this module; none of them imports another stage. A
checkpoint folder is written in place while training runs, one file at a time, each file
replaced atomically (written to a temporary sibling, then renamed), the manifest last::

    checkpoint/
      manifest.json       model + training config, data reference, metrics, status, hashes
      model.safetensors   best weights so far (by validation perplexity); what export reads
      last.safetensors    everything needed to continue: weights, optimiser tensors, carried
                          RNN state, RNG states, extra named tensors; JSON metadata holds the
                          step, epoch, window position, metrics so far, config, data hash
      tokenizer.json      copy of the data folder's vocabulary
      metrics.jsonl       one JSON object per evaluation
      curve.png           train and validation perplexity against step and wall time

``last.safetensors`` is complete by itself: a ``kill -9`` at any moment leaves either the
previous one or the new one, never a mixture, and ``pocketlm train --resume DIR`` starts from
it. No file is a pickle.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pocketlm.runtime.artifact import (CHECKPOINT_FILES, PocketLMError, atomic_path, read_manifest,
                                       sha256_file)

from .model import RNNLM, ModelConfig

WEIGHTS = CHECKPOINT_FILES["weights"]
LAST = CHECKPOINT_FILES["last"]
TOKENIZER = CHECKPOINT_FILES["tokenizer"]
METRICS = CHECKPOINT_FILES["metrics"]
CURVE = CHECKPOINT_FILES["curve"]

#: Version of the ``last.safetensors`` layout; a resume refuses another one.
STATE_VERSION = 1

#: Fields of the training config a resume may not change: the model's shape, and the batch
#: size (it decides how the stream is cut into rows, so the saved window position and state).
FIXED_ON_RESUME = ("cell", "layers", "embedding_size", "hidden_size", "tied", "batch_size")

JSON = Any


# --- files ---------------------------------------------------------------------------------------


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def weight_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the weights (cuDNN packs RNN weights into one shared buffer,
    which safetensors refuses), a tied decoder weight stored once (as ``embedding.weight``)."""
    tied = getattr(getattr(model, "config", None), "tied", False)
    return {name: t.detach().to("cpu", copy=True).contiguous()
            for name, t in model.state_dict().items()
            if not (tied and name == "decoder.weight")}


def save_weights(model: RNNLM, path: Path) -> None:
    """Write the weights as safetensors (atomically)."""
    from safetensors.torch import save_file

    with atomic_path(Path(path)) as tmp:
        save_file(weight_tensors(model), str(tmp),
                  metadata={"format": "pt", "producer": "pocketlm"})


def load_state_into(model: RNNLM, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Load weights named as :func:`weight_tensors` names them; refuse any mismatch."""
    result = model.load_state_dict(dict(tensors), strict=False)
    missing = set(result.missing_keys)
    # A tied matrix is stored under one of its two names (safetensors' save_model keeps
    # decoder.weight, save_weights embedding.weight): one may be absent, not both.
    shared = {"decoder.weight", "embedding.weight"}
    if model.config.tied and len(missing & shared) == 1:
        missing -= shared
    if missing or result.unexpected_keys:
        raise PocketLMError(f"{source}: weights do not match the model (missing "
                            f"{sorted(missing)}, unexpected {sorted(result.unexpected_keys)})")


def load_weights(model: RNNLM, path: Path) -> None:
    """Load weights written by :func:`save_weights` into ``model`` (on any device)."""
    from safetensors.torch import load_file

    load_state_into(model, load_file(str(path)), str(path))


def load_checkpoint(checkpoint_dir: str | os.PathLike[str],
                    device: str | torch.device = "cpu") -> tuple[RNNLM, dict[str, Any]]:
    """Rebuild the model a checkpoint folder describes and load its weights (no pickle)."""
    manifest = read_manifest(checkpoint_dir, "checkpoint")
    # checkpoints written before tied tails existed hold plain tail matrices
    model = RNNLM(ModelConfig(**{"tied_tails": False, **manifest["model"]}))
    try:
        load_weights(model, Path(checkpoint_dir) / WEIGHTS)
    except Exception as exc:
        raise PocketLMError(f"{Path(checkpoint_dir) / WEIGHTS}: weights do not fit the model "
                            f"in its manifest ({exc}); re-run pocketlm train") from exc
    model.to(device).eval()
    return model, manifest


# --- the training state --------------------------------------------------------------------------


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], JSON]:
    """An optimiser's state as named CPU tensors plus JSON (hyper-parameters, scalars)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, JSON] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}/{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                      meta: JSON) -> None:
    """Inverse of :func:`optimizer_state`; the implementation flags (fused, foreach) of the
    optimiser at hand are kept, so a CUDA state resumes on the CPU and back."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = tensor
    for name, value in meta["scalars"].items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = []
    for saved, current in zip(meta["param_groups"], optimizer.state_dict()["param_groups"]):
        group = dict(saved)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        for flag in ("fused", "foreach", "capturable", "differentiable"):
            if flag in current:
                group[flag] = current[flag]
        groups.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The torch generators training draws from (dropout): CPU, and the CUDA device's."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device).cpu()
    return states


def restore_rng(states: Mapping[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def save_training_state(path: Path, groups: Mapping[str, Mapping[str, torch.Tensor]],
                        meta: Mapping[str, JSON]) -> None:
    """Write named groups of tensors (``model``, ``optimizer``, ``carried``, ``rng``,
    ``extra``, ...) and JSON ``meta`` into one safetensors file, atomically."""
    from safetensors.torch import save_file

    flat = {f"{group}/{name}": t.detach().to("cpu").contiguous()
            for group, tensors in groups.items() for name, t in tensors.items()}
    header = {"format": "pt", "producer": "pocketlm", "state_version": str(STATE_VERSION),
              "meta": json.dumps(meta, allow_nan=True)}
    with atomic_path(Path(path)) as tmp:
        save_file(flat, str(tmp), metadata=header)


def load_training_state(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], JSON]:
    """Read what :func:`save_training_state` wrote: ``(groups of tensors, meta)``."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise PocketLMError(f"{path.parent}: no {path.name}, so there is no training state to "
                            f"resume from; train again without --resume")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            groups: dict[str, dict[str, torch.Tensor]] = {}
            for key in fh.keys():
                group, name = key.split("/", 1)
                groups.setdefault(group, {})[name] = fh.get_tensor(key)
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise PocketLMError(f"{path}: unreadable training state ({exc}); train again without "
                            f"--resume") from exc
    if header.get("state_version") != str(STATE_VERSION):
        raise PocketLMError(f"{path}: training state version {header.get('state_version')!r} "
                            f"is not {STATE_VERSION}; train again without --resume")
    return groups, json.loads(header["meta"])


class SavedRun:
    """A run's training state (``last.safetensors``), read once for a resume: the tensors by
    group, the JSON ``meta`` (config, run state, data reference), and where it came from."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(checkpoint_dir)
        self.groups, self.meta = load_training_state(self.folder / LAST)

    @property
    def data_dir(self) -> str:
        """The data folder the run was trained on."""
        return str(self.meta["data"]["path"])

    def config_fields(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The saved config's flat fields with ``overrides`` (options given again; ``None``:
        not given) applied; :meth:`check` refuses a change of shape or batch size."""
        fields = dict(self.meta["config"])
        fields.update((k, v) for k, v in overrides.items() if v is not None)
        return fields

    def check(self, config_fields: Mapping[str, Any], data_dir: str | os.PathLike[str],
              vocab_size: int) -> None:
        """Refuse, in one line, a resume on other data or with another model shape."""
        meta, folder = self.meta, self.folder
        if sha256_file(Path(data_dir) / "manifest.json") != meta["data"]["manifest_sha256"]:
            raise PocketLMError(f"{folder} was trained on another data folder than "
                                f"{data_dir} (data manifest hash differs); resume with the data "
                                f"folder it was trained on, or train into a new --out")
        for key in FIXED_ON_RESUME:
            if meta["config"][key] != config_fields[key]:
                raise PocketLMError(f"{folder} was trained with {key}="
                                    f"{meta['config'][key]!r}, not {config_fields[key]!r}: "
                                    f"resume with the same model shape and batch size, or "
                                    f"train into a new --out")
        if meta["model"]["vocab_size"] != vocab_size:
            raise PocketLMError(f"{folder} has a vocabulary of {meta['model']['vocab_size']} "
                                f"words, {data_dir} of {vocab_size}; resume on its own data "
                                f"folder")


def perplexity(nll_per_token: float) -> float:
    """exp of a mean negative log-likelihood, capped so a diverged run still prints."""
    return math.exp(min(nll_per_token, 50.0))


# --- the curve -----------------------------------------------------------------------------------


def write_curve(history: list[dict[str, Any]], path: Path,
                series: tuple[tuple[str, str], ...] = (("train_ppl", "train"),
                                                       ("valid_ppl", "valid")),
                ylabel: str = "perplexity", log_scale: bool = True) -> bool:
    """Draw ``series`` (record key, legend; default: train and validation perplexity) against
    step and against wall time into a PNG.

    Returns False (and writes nothing) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "step", "step"),
                           (axes[1], "elapsed", "wall time (minutes)")):
        scale = 60.0 if key == "elapsed" else 1.0
        for (metric, legend), style in zip(series, ("-o", "-s", "-^", "-v")):
            points = [(r[key] / scale, r[metric]) for r in history if r.get(metric) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, markersize=3, label=legend)
        ax.set_xlabel(label)
        if log_scale:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return True
