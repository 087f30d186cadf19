"""int8 variants of the exported graphs: onnxruntime dynamic quantisation (int8 weights,
activations quantised on the fly), embedding table included.

A tied model uses one matrix W [vocab, embedding] twice: as the embedding table (``Gather``) and,
transposed, as the decoder (``Gemm``). ``quantize_dynamic`` quantises each use on its own, so the
int8 graph would hold W twice (a uint8 copy for the Gather, an int8 transposed copy for the
decoder's ``MatMulInteger``). :func:`share_tied_matrix` keeps only the decoder's int8 copy and
feeds the embedding from it through a ``Transpose`` that onnxruntime folds when it loads the graph::

    before   W_quantized uint8 [V, E] ─▶ Gather ─▶ DequantizeLinear(W_scale, W_zero_point)
             W_T_quantized int8 [E, V] ─▶ MatMulInteger
    after    W_T_quantized int8 [E, V] ─▶ MatMulInteger
                       └──▶ Transpose ─▶ Gather ─▶ DequantizeLinear(W_T_scale, W_T_zero_point)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Operators whose weights become int8. GRU and vanilla RNN nodes have no integer kernels in
#: onnxruntime and stay fp32; their embedding and decoder are still quantised.
QUANTIZED_OPS = ["MatMul", "Gemm", "LSTM", "Gather"]


def quantize_graph(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Write an int8 copy of ``source`` to ``target`` (a tied matrix stored once)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
    try:
        quantize_dynamic(Path(source), Path(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=QUANTIZED_OPS, per_channel=False)
    finally:
        root.setLevel(level)
    model = onnx.load(str(target))
    shared = share_tied_matrix(model)
    if shared:
        onnx.save(model, str(target))
    log.info("quantised %s: %d -> %d bytes%s", Path(source).name, os.path.getsize(source),
             os.path.getsize(target), f" ({', '.join(shared)} stored once)" if shared else "")


def share_tied_matrix(model: Any) -> list[str]:
    """Rewrite a dynamically quantised graph in place so that an embedding table that is the
    transpose of a decoder weight is stored once (see the module docstring). Returns the names
    of the shared initializers (empty when the graph has no such pair).

    A pair is matched by values, not names: the Gather's table, dequantized, must equal the
    transposed decoder weight, dequantized, to within one quantisation step of each."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def array(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    decoders = []  # (int8 weight [E, V], its scale, its zero point)
    for node in graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4:
            continue
        weight = node.input[1]
        base = weight[:-len("_quantized")] if weight.endswith("_quantized") else None
        if base and weight in inits and f"{base}_scale" in inits and node.input[3] in inits:
            decoders.append((weight, f"{base}_scale", node.input[3]))

    shared: list[str] = []
    removable: set[str] = set()
    for node in list(graph.node):
        if node.op_type != "Gather" or node.input[0] not in inits:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "DequantizeLinear":
            continue
        dequant = users[0]
        if len(dequant.input) < 3 or any(n not in inits for n in dequant.input[1:3]):
            continue
        table = array(node.input[0])
        assert table is not None
        table_f = (table.astype(np.float32) - array(dequant.input[2]).astype(np.float32)) \
            * array(dequant.input[1])
        for weight, scale, zero in decoders:
            w = array(weight)
            if w is None or w.ndim != 2 or table.ndim != 2 or w.shape != table.shape[::-1]:
                continue
            step_w = float(np.max(array(scale)))
            w_f = (w.astype(np.float32) - array(zero).astype(np.float32)) * array(scale)
            if float(np.max(np.abs(w_f.T - table_f))) > step_w + float(
                    np.max(array(dequant.input[1]))) + 1e-7:
                continue
            transposed = f"{weight}_as_table"
            if not any(n.output and n.output[0] == transposed for n in graph.node):
                graph.node.insert(0, helper.make_node("Transpose", [weight], [transposed],
                                                      perm=[1, 0], name=transposed))
            removable.update([node.input[0], dequant.input[1], dequant.input[2]])
            node.input[0] = transposed
            dequant.input[1], dequant.input[2] = scale, zero
            shared.append(weight)
            break
    still_used = {name for n in graph.node for name in n.input}
    for name in removable - still_used:
        graph.initializer.remove(inits[name])
    return shared
