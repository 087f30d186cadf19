"""Where training runs: the torch device a ``--device`` name means, whether to autocast to bf16
there, the environment a checkpoint records, and the progress bar on the terminal."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import torch

from pocketlm.runtime.artifact import PocketLMError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; an unavailable CUDA request is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PocketLMError(f"--device {name}: CUDA is not available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise PocketLMError(f"--device {name!r} is not a torch device; use auto, cpu or "
                            f"cuda") from exc


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 autocast
    trains about 1.5x (two threads) to 1.9x (one thread) faster than fp32 with the same
    perplexity (docs/stages.md, "GPU" paragraph of the train stage)."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None),
              getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def autocast_bf16(precision: str, device: torch.device) -> bool:
    """``auto``: bf16 autocast on CUDA and on CPUs with hardware bf16, fp32 elsewhere."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())
    return precision == "bf16"


def environment(device: torch.device) -> dict[str, Any]:
    """Where training ran: device name and torch/CUDA/cuDNN versions."""
    env: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def progress_bar(progress: bool | None, main: bool, total: float, initial: int) -> Any:
    """A tqdm bar of steps on stderr (``progress=None``: when stderr is a terminal and logging
    shows info; never on other ranks than 0 or without tqdm)."""
    if progress is None:
        progress = sys.stderr.isatty() and logging.getLogger("pocketlm").isEnabledFor(
            logging.INFO)
    if not progress or not main:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=None if math.isinf(total) else int(total), initial=initial, unit="step",
                file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
