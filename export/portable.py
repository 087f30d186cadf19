"""The model folder for other runtimes: weights stored once, and ORT-format graphs for
onnxruntime's minimal (mobile) builds.

**Weights once.** The score and step graphs hold the same weights (the embedding, the recurrent
layers, the output layer). :func:`share_weights` moves every initializer of at least
``MIN_SHARED_BYTES`` into one ONNX external-data file per precision, each distinct tensor
(same type, shape and bytes) stored once, and points both graphs at it::

    score.onnx ─┐                          score.int8.onnx ─┐
                ├─▶ weights.onnx.data                       ├─▶ weights.int8.onnx.data
    step.onnx ──┘                          step.int8.onnx ──┘

onnxruntime reads the file beside the graph (Python, C, Java, Node); onnxruntime-web is given
its bytes (``externalData``); the manifest's ``weights`` field names it per precision.

**ORT format.** :func:`write_ort` converts the graphs with ``onnxruntime.tools`` (optimisation
style ``Fixed``, target platform ``arm``: no x86-only layouts) to ``*.ort`` files, which embed
their weights, plus ``required_operators.config``, the operator list a minimal onnxruntime
build is compiled with.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pocketlm.runtime.graphs import REQUIRED_OPERATORS

#: Initializers smaller than this stay inside the graph (shapes, small constants).
MIN_SHARED_BYTES = 1024
#: Offsets in the data file are multiples of this (onnxruntime can map aligned tensors).
ALIGN = 4096
#: The offsets of a labelled task's data file: a few megabytes, read whole, where up to a page
#: of padding per tensor is a cost (14 KB of the int8 tagger's) and mapping gains nothing.
SMALL_ALIGN = 64


def share_weights(folder: Path, graph_files: list[str], data_name: str,
                  align: int = ALIGN) -> dict[str, int]:
    """Rewrite ``graph_files`` (in ``folder``) so their large initializers live once in
    ``folder/data_name``, each at an offset that is a multiple of ``align``; returns the bytes
    of the files before (``before``) and after."""
    import onnx
    from onnx import external_data_helper

    before = sum((folder / f).stat().st_size for f in graph_files)
    models = [onnx.load(str(folder / f)) for f in graph_files]
    placed: dict[str, tuple[int, int]] = {}
    with open(folder / data_name, "wb") as data:
        for model in models:
            for tensor in model.graph.initializer:
                raw = tensor.raw_data if tensor.HasField("raw_data") else \
                    onnx.numpy_helper.to_array(tensor).tobytes()
                if len(raw) < MIN_SHARED_BYTES:
                    continue
                key = hashlib.sha256(
                    f"{tensor.data_type}:{list(tensor.dims)}:".encode() + raw).hexdigest()
                if key not in placed:
                    offset = -(-data.tell() // align) * align
                    data.write(b"\0" * (offset - data.tell()))
                    data.write(raw)
                    placed[key] = (offset, len(raw))
                offset, length = placed[key]
                external_data_helper.set_external_data(tensor, data_name, offset, length)
                tensor.ClearField("raw_data")
                for field in ("float_data", "int32_data", "int64_data", "double_data"):
                    tensor.ClearField(field)
                tensor.data_location = onnx.TensorProto.EXTERNAL
    for model, name in zip(models, graph_files):
        onnx.save(model, str(folder / name))
    after = sum((folder / f).stat().st_size for f in [*graph_files, data_name])
    return {"before": before, "after": after}


def write_ort(folder: Path, graph_files: list[str]) -> dict[str, str]:
    """Convert ``graph_files`` to ORT format beside them and write ``required_operators.config``;
    returns ``{graph file: ort file}``. Raises ``RuntimeError`` with the tool's message."""
    with tempfile.TemporaryDirectory(prefix="pocketlm-ort-") as tmp:
        work = Path(tmp)
        for name in graph_files:
            shutil.copy2(folder / name, work / name)
        for data in {p.name for p in folder.glob("*.onnx.data")}:
            shutil.copy2(folder / data, work / data)
        done = subprocess.run(
            [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(work),
             "--optimization_style", "Fixed", "--target_platform", "arm"],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError((done.stderr or done.stdout).strip().splitlines()[-1])
        out = {}
        for name in graph_files:
            ort_name = name[: -len(".onnx")] + ".ort"
            shutil.copy2(work / ort_name, folder / ort_name)
            out[name] = ort_name
        config = (work / REQUIRED_OPERATORS).read_text(encoding="utf-8")
        # the tool writes the temporary paths of the models; keep only the file names
        lines = [line.replace(f"{work}/", "") for line in config.splitlines()]
        (folder / REQUIRED_OPERATORS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def ort_card(body: dict[str, Any]) -> str:
    """The model card's section on the ORT-format graphs and a minimal onnxruntime build."""
    files = sorted(f for g in body["graphs"].values() for f in g.get("ort_files", {}).values())
    if not files:
        return ""
    listed = ", ".join(f"`{f}`" for f in files)
    return (
        "\n## Mobile and minimal builds: ORT format\n\n"
        f"{listed} are the graphs in ORT format (optimised at export, weights embedded); "
        f"`{REQUIRED_OPERATORS}` lists the operators they use. Build an onnxruntime that "
        "holds only those operators and reads only ORT files, from an onnxruntime source "
        "checkout of the version in `versions.onnxruntime`:\n\n"
        "```bash\n"
        "./build.sh --config MinSizeRel --minimal_build --disable_ml_ops \\\n"
        f"    --include_ops_by_config /path/to/this/folder/{REQUIRED_OPERATORS} \\\n"
        "    --build_shared_lib --parallel\n"
        "# Android: add --android --android_abi arm64-v8a --android_api 24 \\\n"
        "#     --android_sdk_path $ANDROID_HOME --android_ndk_path $ANDROID_NDK_HOME\n"
        "# iOS: add --ios --apple_sysroot iphoneos --osx_arch arm64 --apple_deploy_target 15.0\n"
        "```\n\n"
        "The int8 graphs need onnxruntime's `com.microsoft` operators (listed in the config); a "
        "build for the fp32 graphs alone can drop them. Any onnxruntime also loads the `.ort` "
        "files: `LanguageModel(folder, graph_format='ort')`.\n")
