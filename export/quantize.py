"""int8 variants of the exported graphs: int8 weights (embedding table included), and
activation scales fixed once at export, so the step and the score graph compute one function.

``quantize_dynamic`` writes graphs that pick each activation's scale at run time, from the tensor
at hand: the score graph from all the tokens of a batch, the step graph from one row, so a
sentence stepped with ``advance`` and the same sentence scored differed (0.46 nats on the run
model). :func:`quantize_graphs` starts from its graphs and removes every run-time choice::

    DynamicQuantizeLinear(x)        ─▶ QuantizeLinear(x, scale, zero point)   constants from
    MatMulInteger ─▶ Cast ─▶ Mul    ─▶ MatMulIntegerToFloat                    the calibration
    DynamicQuantizeLSTM(W, R int8)  ─▶ LSTM(DequantizeLinear(W), DequantizeLinear(R))

The calibration runs the score graph once on training text (:func:`calibration_tokens`,
[rows, length] token ids) and takes each quantised activation's range; activations that feed
the same weights get the same scale in both graphs (the adaptive output's head and tails read
one). onnxruntime's ``DynamicQuantizeLSTM`` cannot take fixed scales, so LSTM weights are stored
int8 and multiplied in float (the runtime's session folds the dequantisation at load).

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

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import EOS_ID

log = logging.getLogger(__name__)

#: Operators whose weights become int8. GRU and vanilla RNN nodes have no integer kernels in
#: onnxruntime and stay fp32; their embedding and decoder are still quantised.
QUANTIZED_OPS = ["MatMul", "Gemm", "LSTM", "Gather"]

#: The options of ``quantize_dynamic`` that export uses: per-tensor 7-bit signed weights.
QUANTIZE_OPTIONS: dict[str, Any] = dict(op_types_to_quantize=QUANTIZED_OPS, per_channel=False,
                                        reduce_range=True)

#: Calibration text: rows of this many tokens, each from the zero state.
CALIBRATION_ROWS, CALIBRATION_LENGTH = 128, 48

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
    ``[rows, length]`` and where they come from: :func:`calibration_tokens`), and written as
    constants into every graph (see the module docstring). Returns what the manifest records:
    where the calibration text came from, its shape, and each activation range."""
    import onnx

    folder = Path(folder)
    models = {name: _quantize_dynamic(folder / source) for name, (source, _) in files.items()}
    groups = _activation_groups(models.values())
    tokens, origin = calibration
    ranges = calibrate(models[graphs.SCORE], groups, tokens)
    for name, model in models.items():
        fix_activation_scales(model, groups, ranges)
        fuse_integer_matmuls(model)
        source, target = (folder / f for f in files[name])
        _check_saturation(model, target)
        onnx.save(model, str(target))
        log.info("quantised %s: %d -> %d bytes", source.name, os.path.getsize(source),
                 os.path.getsize(target))
    return {"calibration": {"text": origin, "tokens": list(tokens.shape)},
            "activation_ranges": sorted([round(lo, 6), round(hi, 6)] for lo, hi in
                                        ranges.values())}


def quantize_graph(source: Path, target: Path) -> None:
    """Write an int8 copy of the one graph at ``source`` (a classifier's or a tagger's) to
    ``target``: ``quantize_dynamic`` with its run-time activation scales and integer LSTM
    layers, which are right for a model folder with a single graph (nothing to agree with),
    without the intermediate shapes the quantiser records (7 KB of a tagger's graph)."""
    import onnx

    model = _quantize_dynamic(source, integer_lstm=True)
    del model.graph.value_info[:]   # shapes the quantiser inferred: onnxruntime infers its own
    _check_saturation(model, target)
    onnx.save(model, str(target))


def _check_saturation(model: Any, target: Path) -> None:
    unsafe = saturating_weights(model)
    if unsafe:  # quantize_dynamic changed how it honours reduce_range: refuse, do not guess
        raise RuntimeError(f"{target}: int8 weights outside [-{SAFE_INT8_WEIGHT}, "
                           f"{SAFE_INT8_WEIGHT}] ({', '.join(unsafe)}); integer kernels "
                           f"without VNNI could saturate on them")


def _quantize_dynamic(source: Path, integer_lstm: bool = False) -> Any:
    """``quantize_dynamic``'s int8 graph of ``source``, a tied matrix stored once and LSTM
    layers computing in float from their int8 weights (unless ``integer_lstm``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / source.name
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, **QUANTIZE_OPTIONS)
            model = onnx.load(str(target))
    finally:
        root.setLevel(level)
    share_tied_matrix(model)
    if not integer_lstm:
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


def _activation_groups(models: Any) -> dict[str, str]:
    """One key per activation that the graphs quantise, shared by all graphs: the
    ``DynamicQuantizeLinear`` nodes whose ``MatMulInteger`` weights hold the same values (in
    any graph) form one group and get one scale. Maps a weight's bytes digest to its group."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for model in models:
        for keys in _quantizer_weights(model).values():
            for key in keys[1:]:
                parent[find(key)] = find(keys[0])
            find(keys[0])
    return {key: find(key) for key in parent}


def _quantizer_weights(model: Any) -> dict[str, list[str]]:
    """Per ``DynamicQuantizeLinear`` (by its input), the digests of the weights of the
    ``MatMulInteger`` nodes it feeds."""
    inits = {i.name: i for i in model.graph.initializer}
    feeds: dict[str, list[str]] = {}
    quantized = {n.output[0]: n.input[0] for n in model.graph.node
                 if n.op_type == "DynamicQuantizeLinear"}
    for node in model.graph.node:
        if node.op_type == "MatMulInteger" and node.input[0] in quantized:
            weight = inits[node.input[1]]
            digest = hashlib.sha256(weight.raw_data or weight.SerializeToString()).hexdigest()
            key = f"{tuple(weight.dims)}:{digest}"
            feeds.setdefault(quantized[node.input[0]], []).append(key)
    return feeds


def calibrate(model: Any, groups: dict[str, str], tokens: np.ndarray
              ) -> dict[str, tuple[float, float]]:
    """Run the score graph ``model`` (with its dynamic scales) on ``tokens [rows, length]`` and
    return each activation group's range [min(0, lowest), max(0, highest)]."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    feeds = _quantizer_weights(probe)
    del probe.graph.output[:]
    for name in feeds:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                    None))
    session = ort.InferenceSession(probe.SerializeToString(), graphs.session_options(),
                                   providers=["CPUExecutionProvider"])
    tokens = np.asarray(tokens, dtype=np.int64)
    values = session.run(None, {graphs.TOKENS: tokens, graphs.LENGTHS: np.full(
        len(tokens), tokens.shape[1], dtype=np.int64)})
    ranges: dict[str, tuple[float, float]] = {}
    for keys, value in zip(feeds.values(), values):
        if not value.size:
            continue
        group = groups[keys[0]]
        lo, hi = ranges.get(group, (0.0, 0.0))
        ranges[group] = (min(lo, float(value.min())), max(hi, float(value.max())))
    return ranges


def fix_activation_scales(model: Any, groups: dict[str, str],
                          ranges: dict[str, tuple[float, float]]) -> None:
    """Replace each ``DynamicQuantizeLinear`` of ``model`` (in place) by a ``QuantizeLinear``
    with its group's calibrated scale and zero point, stored under the names of the outputs
    it replaces (so the nodes that read the scale and zero point stay as they are)."""
    from onnx import helper, numpy_helper

    feeds = _quantizer_weights(model)
    for node in list(model.graph.node):
        if node.op_type != "DynamicQuantizeLinear":
            continue
        keys = feeds.get(node.input[0])
        group = groups[keys[0]] if keys else None
        if group not in ranges:
            raise RuntimeError(f"no calibrated range for the activation {node.input[0]!r}: the "
                               f"calibration text never reached it")
        lo, hi = ranges[group]
        scale = max((hi - lo) / 255.0, 1e-12)
        zero = int(np.clip(np.round(-lo / scale), 0, 255))
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, np.float32), node.output[1]),
            numpy_helper.from_array(np.array(zero, np.uint8), node.output[2])])
        position = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(position, helper.make_node(
            "QuantizeLinear", [node.input[0], node.output[1], node.output[2]], [node.output[0]],
            name=node.name or f"{node.output[0]}_static"))


def fuse_integer_matmuls(model: Any) -> int:
    """Rewrite (in place) each ``MatMulInteger`` → ``Cast`` → ``Mul`` by the product of two
    constant scales, fed by a ``QuantizeLinear``, into one ``MatMulIntegerToFloat`` (the node
    onnxruntime fuses for dynamic scales but not once the scale product is a constant). Returns
    how many were fused."""
    from onnx import TensorProto, helper

    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    fused = 0
    for node in list(graph.node):
        source = producers.get(node.input[0]) if node.op_type == "MatMulInteger" else None
        if source is None or source.op_type != "QuantizeLinear" or len(node.input) < 4:
            continue
        cast = consumers.get(node.output[0], [])
        if len(cast) != 1 or cast[0].op_type != "Cast" or helper.get_attribute_value(
                cast[0].attribute[0]) != TensorProto.FLOAT:
            continue
        mul = consumers.get(cast[0].output[0], [])
        if len(mul) != 1 or mul[0].op_type != "Mul":
            continue
        scale = [i for i in mul[0].input if i != cast[0].output[0]]
        scales = producers.get(scale[0]) if len(scale) == 1 else None
        if scales is None or scales.op_type != "Mul" or source.input[1] not in scales.input \
                or any(i not in inits for i in scales.input):
            continue
        a_scale = source.input[1]
        b_scale = [i for i in scales.input if i != a_scale] or [a_scale]
        position = list(graph.node).index(node)
        for old in (node, cast[0], mul[0]):
            graph.node.remove(old)
        graph.node.insert(position, helper.make_node(
            "MatMulIntegerToFloat", [node.input[0], node.input[1], a_scale, b_scale[0],
                                     node.input[2], node.input[3]],
            [mul[0].output[0]], name=f"{node.name or node.output[0]}_to_float",
            domain="com.microsoft"))
        consumers[scale[0]].remove(mul[0])
        if not consumers[scale[0]] and scales in graph.node:
            graph.node.remove(scales)
        fused += 1
    return fused


def calibration_tokens(model: Any, data_dir: str | os.PathLike[str] | None, seed: int = 0,
                       rows: int = CALIBRATION_ROWS, length: int = CALIBRATION_LENGTH
                       ) -> tuple[np.ndarray, str]:
    """``[rows, length]`` token ids to calibrate on, and where they come from: the training
    split of ``data_dir``, each row starting after an ``<eos>`` at evenly spaced places; when
    that folder is gone, text sampled from ``model`` (an :class:`RNNLM`) from ``<eos>``."""
    import torch

    from pocketlm.pipeline.ingest import load_split

    if data_dir is not None and (Path(data_dir) / "manifest.json").is_file():
        ids = load_split(data_dir, "train")
        starts = np.flatnonzero(np.asarray(ids[:-length]) == EOS_ID) + 1
        if len(starts):
            picks = starts[np.linspace(0, len(starts) - 1, rows).round().astype(int)]
            return (np.stack([np.asarray(ids[s:s + length], dtype=np.int64) for s in picks]),
                    "train")
    gen = torch.Generator().manual_seed(seed)
    token = torch.full((rows, 1), EOS_ID, dtype=torch.long)
    state, out = None, []
    with torch.no_grad():
        for _ in range(length):
            features, state = model.features(token, state)
            probs = model.decoder.log_probs(features[:, 0]).exp()
            token = torch.multinomial(probs, 1, generator=gen)
            out.append(token)
    return torch.cat(out, dim=1).numpy().astype(np.int64), "sampled"


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
