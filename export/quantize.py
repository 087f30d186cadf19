"""int8 variants of the exported graphs: int8 weights (embedding table included), and
activation scales fixed once at export, so that each int8 graph computes one function (the same
numbers for a text alone or in any batch, from the step graph or the score graph).

``quantize_dynamic`` writes graphs that pick each activation's scale at run time, from the tensor
at hand, so a text's numbers would depend on its batch, its graph and its runtime.
:func:`quantize_graphs` (a language model's step and score graphs) and :func:`quantize_graph` (a
classifier's or a tagger's graph) start from its graphs and remove every run-time choice: LSTM
layers multiply their int8 weights in float (:func:`float_lstm`; onnxruntime's
``DynamicQuantizeLSTM`` cannot take fixed scales, and the runtime's session folds the
dequantisation at load), then every activation's scale is calibrated once on training data and
written as a constant (export/calibration.py)::

    DynamicQuantizeLSTM(W, R int8)  ─▶ LSTM(DequantizeLinear(W), DequantizeLinear(R))
    DynamicQuantizeLinear(x)        ─▶ QuantizeLinear(x, scale, zero point)
    MatMulInteger ─▶ Cast ─▶ Mul    ─▶ MatMulIntegerToFloat

Integer products' weights are quantised to 7 bits (``reduce_range``: signed values in [-64, 64])
so that no integer kernel can saturate. Activations are unsigned 8-bit (0..255); on x86 CPUs
without VNNI onnxruntime multiplies uint8 by int8 with ``vpmaddubsw``, which adds two products
into a *saturating* int16: with 8-bit weights 255*127 + 255*127 = 64770 overflows 32767 and the
result depends on the CPU. With 7-bit weights the largest pair is 2*255*64 = 32640 <= 32767, so
every kernel (AVX2, AVX-512, VNNI, ARM) computes the same exact int32 sums and the int8 graph is
one function on every CPU, up to float rounding (docs/artifacts.md, "int8 variants").

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
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime import graphs

from .calibration import calibrate_graphs

log = logging.getLogger(__name__)

#: Operators whose weights become int8. GRU and vanilla RNN nodes have no integer kernels in
#: onnxruntime and stay fp32; their embedding and decoder are still quantised.
QUANTIZED_OPS = ["MatMul", "Gemm", "LSTM", "Gather"]

#: The labelled tasks' graphs store these weights int8 and compute in float: their few matrix
#: products (a head, a projection) are too small for integer kernels to pay, and without a
#: quantised activation a text's numbers do not depend on its batch or on the runtime.
WEIGHT_ONLY_OPS = ["Gather", "LSTM"]

#: The options of ``quantize_dynamic`` that export uses: per-tensor 7-bit signed weights.
QUANTIZE_OPTIONS: dict[str, Any] = dict(op_types_to_quantize=QUANTIZED_OPS, per_channel=False,
                                        reduce_range=True)

#: The largest |int8 weight| that no kernel saturates on: uint8 activations (<= 255) times two
#: such weights sum to 2*255*64 = 32640, inside vpmaddubsw's int16 (<= 32767).
SAFE_INT8_WEIGHT = 64

#: Operators that multiply integers, with the positions of their int8 weight inputs.
INTEGER_WEIGHTS = {"MatMulInteger": (1,), "DynamicQuantizeLSTM": (1, 2),
                   "DynamicQuantizeMatMul": (1,), "MatMulIntegerToFloat": (1,)}


def quantize_graphs(folder: str | os.PathLike[str], files: dict[str, tuple[str, str]],
                    calibration: tuple[np.ndarray, str]) -> dict[str, Any]:
    """Write an int8 copy of each graph in ``folder``: ``files`` maps a graph name
    (:data:`pocketlm.runtime.graphs.GRAPHS`) to its (fp32 file, int8 file). The activation
    scales are calibrated once, by running the score graph on ``calibration`` (token ids
    ``[rows, length]`` and where they come from: :func:`.calibration.calibration_tokens`), and
    written as constants into every graph. Returns what the manifest records: where the
    calibration text came from, its shape, and each activation range."""
    folder = Path(folder)
    models = {name: _quantize_dynamic(folder / source) for name, (source, _) in files.items()}
    tokens, origin = calibration
    tokens = np.asarray(tokens, dtype=np.int64)
    lengths = np.full(len(tokens), tokens.shape[1], dtype=np.int64)
    ranges = calibrate_graphs(models, graphs.SCORE, {graphs.TOKENS: tokens,
                                                     graphs.LENGTHS: lengths})
    for name, model in models.items():
        _save(model, folder / files[name][0], folder / files[name][1])
    return {"calibration": {"text": origin, "tokens": list(tokens.shape)}, **ranges}


def quantize_graph(source: Path, target: Path) -> dict[str, Any]:
    """Write an int8 copy of the one graph at ``source`` (a classifier's or a tagger's) to
    ``target``: the embedding tables and the LSTM weights stored int8 (:data:`WEIGHT_ONLY_OPS`),
    every product computed in float from them, so no activation is quantised: a text gets the
    same numbers alone or in any batch, and every runtime computes what the fp32 graph would
    with those weights. Without the intermediate shapes the quantiser records (7 KB of a
    tagger's graph). Returns what the manifest records."""
    model = _quantize_dynamic(source, WEIGHT_ONLY_OPS)
    del model.graph.value_info[:]   # shapes the quantiser inferred: onnxruntime infers its own
    _save(model, source, target)
    return {"int8_weights": list(WEIGHT_ONLY_OPS), "activations": "float"}


def _save(model: Any, source: Path, target: Path) -> None:
    import onnx

    _check_saturation(model, target)
    onnx.save(model, str(target))
    log.info("quantised %s: %d -> %d bytes", source.name, os.path.getsize(source),
             os.path.getsize(target))


def _check_saturation(model: Any, target: Path) -> None:
    unsafe = saturating_weights(model)
    if unsafe:  # quantize_dynamic changed how it honours reduce_range: refuse, do not guess
        raise RuntimeError(f"{target}: int8 weights outside [-{SAFE_INT8_WEIGHT}, "
                           f"{SAFE_INT8_WEIGHT}] ({', '.join(unsafe)}); integer kernels "
                           f"without VNNI could saturate on them")


def _quantize_dynamic(source: Path, op_types: list[str] = QUANTIZED_OPS) -> Any:
    """``quantize_dynamic``'s int8 graph of ``source`` (the weights of ``op_types``), a tied
    matrix stored once and LSTM layers computing in float from their int8 weights."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / source.name
            quantize_dynamic(source, target, weight_type=QuantType.QInt8,
                             **{**QUANTIZE_OPTIONS, "op_types_to_quantize": op_types})
            model = onnx.load(str(target))
    finally:
        root.setLevel(level)
    share_tied_matrix(model)
    float_lstm(model)
    return model


def float_lstm(model: Any) -> int:
    """Replace each ``DynamicQuantizeLSTM`` of ``model`` (in place) by a standard ``LSTM`` whose
    weights are its int8 ones, dequantized by ``DequantizeLinear``: the LSTM then quantises no
    activations, so it computes the same for one step and for whole sentences. Returns how
    many nodes were replaced."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    replaced = 0
    for node in list(graph.node):
        if node.op_type != "DynamicQuantizeLSTM":
            continue
        ins = list(node.input) + [""] * (12 - len(node.input))
        new_nodes, weights = [], []
        for weight, scale, zero in ((ins[1], ins[8], ins[9]), (ins[2], ins[10], ins[11])):
            init = inits[weight]  # stored [directions, in, 4*hidden]; LSTM takes [.., 4*hidden, in]
            values = np.ascontiguousarray(numpy_helper.to_array(init).transpose(0, 2, 1))
            init.CopyFrom(numpy_helper.from_array(values, weight))
            new_nodes.append(helper.make_node("DequantizeLinear", [weight, scale, zero],
                                              [f"{weight}_float"], axis=0,
                                              name=f"{weight}_dequantize"))
            weights.append(f"{weight}_float")
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        lstm = helper.make_node("LSTM", [ins[0], *weights, *ins[3:8]], list(node.output),
                                name=node.name, **attributes)
        while lstm.input and not lstm.input[-1]:
            lstm.input.pop()
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate([*new_nodes, lstm]):
            graph.node.insert(position + offset, new)
        replaced += 1
    return replaced


def saturating_weights(model: Any) -> list[str]:
    """Names of the int8 weights of integer-arithmetic nodes that lie outside
    [-SAFE_INT8_WEIGHT, SAFE_INT8_WEIGHT], where a uint8 x int8 kernel without VNNI could
    saturate (uint8 weights cannot: onnxruntime widens uint8 x uint8 to int16 before adding).
    Empty for a graph that computes the same on every CPU."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    unsafe = []
    for node in model.graph.node:
        for position in INTEGER_WEIGHTS.get(node.op_type, ()):
            if position >= len(node.input) or node.input[position] not in inits:
                continue
            values = numpy_helper.to_array(inits[node.input[position]])
            if values.dtype == np.int8 and int(np.abs(values.astype(np.int16)).max(
                    initial=0)) > SAFE_INT8_WEIGHT:
                unsafe.append(node.input[position])
    return unsafe


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
