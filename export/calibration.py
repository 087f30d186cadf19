"""Activation scales fixed once at export: int8 graphs that compute one function, whatever
their batch, graph or runtime.

``quantize_dynamic`` (export/quantize.py) writes graphs that pick each activation's scale at run
time, from the tensor at hand: a language model's score graph from all the tokens of a batch,
its step graph from one row. So a sentence stepped with ``advance`` and the same sentence scored
differed (0.46 nats on the run model). :func:`calibrate_graphs` removes every run-time choice::

    DynamicQuantizeLinear(x)        ─▶ QuantizeLinear(x, scale, zero point)   constants from
    MatMulInteger ─▶ Cast ─▶ Mul    ─▶ MatMulIntegerToFloat                    the calibration

The calibration runs one graph (with its dynamic scales) once on real inputs, a feeds dict of
the graph's input names (a language model's: rows of training text, :func:`calibration_tokens`,
``[rows, length]`` token ids) and takes each quantised activation's range [min(0, lowest),
max(0, highest)]; scale = (high − low) / 255. Activations that feed the same weights get the
same scale in every graph (a language model's step and score graphs; the adaptive output's head
and tails read one). onnxruntime's ``DynamicQuantizeLSTM``
cannot take fixed scales, so the graphs are calibrated after :func:`.quantize.float_lstm` made
their LSTM layers multiply int8 weights in float.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import EOS_ID

log = logging.getLogger(__name__)

#: A language model's calibration text: rows of this many tokens, each from the zero state.
CALIBRATION_ROWS, CALIBRATION_LENGTH = 128, 48


def calibrate_graphs(models: dict[str, Any], reference: str, feeds: dict[str, np.ndarray]
                     ) -> dict[str, Any]:
    """Fix the activation scales of every graph of ``models`` (dynamically quantised, by name;
    rewritten in place) from one run of ``models[reference]`` on ``feeds`` (its inputs by
    name), then fuse their integer products. Returns the activation ranges the manifest
    records, ``{"activation_ranges": [[low, high], ...]}``."""
    groups = activation_groups(models.values())
    ranges = calibrate(models[reference], groups, feeds)
    for model in models.values():
        fix_activation_scales(model, groups, ranges)
        fuse_integer_matmuls(model)
    return {"activation_ranges": sorted([round(lo, 6), round(hi, 6)]
                                        for lo, hi in ranges.values())}


def activation_groups(models: Any) -> dict[str, str]:
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
        if node.op_type == "MatMulInteger" and node.input[0] in quantized \
                and node.input[1] in inits:
            weight = inits[node.input[1]]
            digest = hashlib.sha256(weight.raw_data or weight.SerializeToString()).hexdigest()
            key = f"{tuple(weight.dims)}:{digest}"
            feeds.setdefault(quantized[node.input[0]], []).append(key)
    return feeds


def calibrate(model: Any, groups: dict[str, str], feeds: dict[str, np.ndarray]
              ) -> dict[str, tuple[float, float]]:
    """Run ``model`` (with its dynamic scales) on ``feeds`` (its inputs by name) and return
    each activation group's range [min(0, lowest), max(0, highest)]."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    quantized = _quantizer_weights(probe)
    del probe.graph.output[:]
    for name in quantized:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                    None))
    session = ort.InferenceSession(probe.SerializeToString(), graphs.session_options(),
                                   providers=["CPUExecutionProvider"])
    values = session.run(None, feeds)
    ranges: dict[str, tuple[float, float]] = {}
    for keys, value in zip(quantized.values(), values):
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
