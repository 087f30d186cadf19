"""int8 variants of the exported graphs: onnxruntime dynamic quantisation (int8 weights,
activations quantised on the fly), embedding table included."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Operators whose weights become int8. GRU and vanilla RNN nodes have no integer kernels in
#: onnxruntime and stay fp32; their embedding and decoder are still quantised.
QUANTIZED_OPS = ["MatMul", "Gemm", "LSTM", "Gather"]


def quantize_graph(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Write an int8 copy of ``source`` to ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
    try:
        quantize_dynamic(Path(source), Path(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=QUANTIZED_OPS, per_channel=False)
    finally:
        root.setLevel(level)
    log.info("quantised %s: %d -> %d bytes", Path(source).name, os.path.getsize(source),
             os.path.getsize(target))
