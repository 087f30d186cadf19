"""Helpers shared by the bench scripts: machine description, JSON-lines output, folder lookup.

Every script prints one JSON object per line; the ``record`` field says what the line holds
(``machine``, ``config``, a figure group, ...). Nothing here asserts: benchmarks report numbers.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def emit(record: str, **fields: Any) -> None:
    """Print one JSON line ``{"record": record, **fields}`` and flush."""
    print(json.dumps({"record": record, **fields}), flush=True)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine(torch_device: str | None = None) -> dict[str, Any]:
    """Platform, CPU count, Python and package versions (and the GPU when one is used)."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
    }
    for name in ("pocketlm", "numpy", "onnxruntime", "tokenizers", "torch"):
        info[name] = _version(name)
    if "torch" in sys.modules or torch_device:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available() and (torch_device is None or torch_device != "cpu"):
            info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version())
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):  # no /proc (macOS, Windows): fall back to platform
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


#: Flags that decide which kernels torch and onnxruntime run (x86 /proc/cpuinfo names).
_X86_FLAGS = ("avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags() -> dict[str, Any]:
    """The CPU features that change speed (and, for saturating int8 kernels, results): which
    of AVX2/FMA, AVX-512, VNNI, bf16 and AMX it has, and a short ``kind`` to group figures by
    (``"avx2"``, ``"avx512"``, ``"avx512+vnni"``, ``"avx512+vnni+bf16"``, ``"+amx"`` appended;
    ``"arm"`` with ``asimddp``/``bf16`` noted). Print it beside every CPU figure."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    if not flags:
        return {"kind": platform.machine() or "unknown", "flags": []}
    if "asimd" in flags:  # ARM: dot product and bf16 instructions
        arm = sorted(flags & {"asimd", "asimddp", "sve", "sve2", "bf16", "i8mm"})
        return {"kind": "arm" + "".join(f"+{f}" for f in ("asimddp", "bf16") if f in flags),
                "flags": arm}
    present = [f for f in _X86_FLAGS if f in flags]
    vnni = "avx_vnni" in flags or "avx512_vnni" in flags
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    kind = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "avx"
    kind += "+vnni" * vnni + "+bf16" * bf16 + "+amx" * ("amx_tile" in flags)
    return {"kind": kind, "avx2": "avx2" in flags, "avx512": "avx512f" in flags, "vnni": vnni,
            "bf16": bf16, "amx": "amx_tile" in flags, "flags": present}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def add_folder_arguments(parser: Any) -> None:
    """The ``--run``, ``--model`` and ``--data`` options every model benchmark takes."""
    parser.add_argument("--run", help="folder written by `pocketlm run --out DIR`")
    parser.add_argument("--model", help="model folder (pocketlm export)")
    parser.add_argument("--data", help="data folder (default: the model's training data)")


def run_folders(run: str | None, model: str | None, data: str | None,
                checkpoint: str | None) -> tuple[Path | None, Path | None, Path | None]:
    """Resolve (model, data, checkpoint) from ``--run DIR`` (a ``pocketlm run --out DIR``
    folder) and/or explicit paths; the data folder defaults to the one the model was trained
    on, the checkpoint to the model's sibling ``checkpoint/``."""
    m = Path(model) if model else (Path(run) / "model" if run else None)
    d = Path(data) if data else (Path(run) / "data" if run else None)
    c = Path(checkpoint) if checkpoint else (Path(run) / "checkpoint" if run else None)
    if m is not None and (d is None or c is None):
        manifest = json.loads((m / "manifest.json").read_text())
        if d is None:
            d = Path(manifest["training"]["data"]["path"])
        if c is None and (m.parent / "checkpoint" / "manifest.json").is_file():
            c = m.parent / "checkpoint"
    return m, d, c


def quick_run(out: Path, max_steps: int = 100) -> tuple[Path, Path, Path]:
    """Build data/, checkpoint/ and model/ under ``out``: the KJV, preset tiny cut to
    ``max_steps`` steps on the CPU. Quick and of poor quality: use ``pocketlm run`` for real
    figures."""
    import logging

    from pocketlm.export.onnx_export import export
    from pocketlm.pipeline.ingest import IngestConfig, ingest
    from pocketlm.pipeline.config import preset
    from pocketlm.pipeline.train import train

    logging.getLogger("pocketlm").setLevel(logging.WARNING)
    data, ckpt, model = out / "data", out / "checkpoint", out / "model"
    ingest(IngestConfig(), data)
    train(preset("tiny", max_steps=max_steps, device="cpu", log_every=0), data, ckpt)
    export(ckpt, model)
    return model, data, ckpt


def model_folders(args: Any) -> tuple[Path, Path, Path, Any]:
    """(model, data, checkpoint, temporary folder or None) from the ``--run``/``--model``/
    ``--data``/``--checkpoint`` options, or from a :func:`quick_run` in a temporary folder when
    no model is given (keep the returned folder object alive while the files are used)."""
    import logging
    import tempfile

    logging.getLogger("pocketlm").setLevel(logging.WARNING)
    tmp = None
    model, data, ckpt = run_folders(args.run, args.model, args.data, args.checkpoint)
    if model is None:
        tmp = tempfile.TemporaryDirectory(prefix="pocketlm-bench-")
        model, data, ckpt = quick_run(Path(tmp.name))
    assert data is not None and ckpt is not None, "pass --data and --checkpoint"
    return model, data, ckpt, tmp


def split_lines(data_dir: Path) -> dict[str, list[str]]:
    """The corpus lines of each split, as ingest made them (same config, same line rule)."""
    from pocketlm.pipeline.ingest import IngestConfig
    from pocketlm.runtime import read_manifest

    config = IngestConfig.from_manifest(read_manifest(data_dir, "data", verify=False)["config"])
    out: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for split, line in config.corpus().records():
        out[split].append(line)
    return out
