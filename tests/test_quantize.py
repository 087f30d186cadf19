"""export/quantize.py: int8 graphs of tied models hold the shared matrix once, their integer
arithmetic is exact (no kernel can saturate, so they compute the same on every CPU), their step
and score graphs share every activation scale (so stepping a sentence gives its score), and they
score like the fp32 graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pocketlm.runtime import LanguageModel

from .conftest import INT8_NATS_PER_TOKEN, toy_lines


def _big_initializers(path: Path, size: int) -> list[tuple[str, tuple[int, ...]]]:
    import onnx

    model = onnx.load(str(path))
    return [(i.name, tuple(i.dims)) for i in model.graph.initializer
            if int(np.prod(i.dims)) >= size]


@pytest.mark.parametrize("graph", ["score", "step"])
def test_tied_matrix_stored_once(kjv_model: Path, graph: str) -> None:
    """The KJV model is tied and dominated by its vocabulary x embedding matrix: the int8
    graphs hold that matrix once (as int8) and weigh at most 0.27x the fp32 graphs, as
    self-contained graphs and with each precision's weights shared by its two graphs."""
    lm = LanguageModel(kjv_model)
    assert lm.manifest["model"]["tied"]
    shared = lm.manifest["export"]["shared_weights"]
    for files in ("before", "after"):
        assert shared["int8"][files] <= 0.27 * shared["fp32"][files]
    cfg = lm.manifest["model"]
    matrix = cfg["vocab_size"] * cfg["embedding_size"]
    assert len(_big_initializers(kjv_model / f"{graph}.int8.onnx", matrix)) == 1
    assert len(_big_initializers(kjv_model / f"{graph}.onnx", matrix)) == 1


@pytest.mark.parametrize("which", ["toy", "kjv"])
def test_int8_scores_like_fp32(toy_model: Path, kjv_model: Path, which: str) -> None:
    """int8 against fp32 token by token: at most INT8_NATS_PER_TOKEN apart (a bound of the model:
    int8 is the same function on every CPU) and perplexity within 0.5%."""
    kjv_lines = ["and god said , let there be light", "in the beginning god created the heaven",
                 "and the lord spake unto moses , saying", "blessed are the meek"]
    folder, lines = {"toy": (toy_model, toy_lines(40, seed=3)),
                     "kjv": (kjv_model, kjv_lines)}[which]
    fp32 = LanguageModel(folder)
    int8 = LanguageModel(folder, precision="int8")
    for line in lines:
        a = np.array([w.logprob for w in fp32.full_scores(line)])
        b = np.array([w.logprob for w in int8.full_scores(line)])
        assert np.abs(a - b).max() <= INT8_NATS_PER_TOKEN[which], line
    assert int8.perplexity(lines) == pytest.approx(fp32.perplexity(lines), rel=0.005)


#: Largest |advance - score| allowed per predicted token of the int8 graphs.
STEP_SCORE_NATS_PER_TOKEN = 0.01


@pytest.mark.parametrize("which", ["toy", "kjv"])
def test_int8_advance_sums_equal_score(toy_model: Path, kjv_model: Path, which: str) -> None:
    """A sentence fed word by word through the int8 step graph (advance, end) gets the
    log-probabilities the int8 score graph gives it, alone (score, full_scores) and in a batch
    of sentences of other lengths (score_batch), within 0.01 nats per predicted token. (With
    scales picked at run time the run model's sentences were up to 0.46 nats apart.)"""
    folder, lines = {"toy": (toy_model, toy_lines(24, seed=5)),
                     "kjv": (kjv_model, ["and god said , let there be light",
                                         "in the beginning god created the heaven and the earth",
                                         "jesus wept", "and the lord spake unto moses , saying",
                                         "blessed are the meek : for they shall inherit the earth",
                                         "o"])}[which]
    lm = LanguageModel(folder, precision="int8")
    batch = lm.score_batch(lines)
    for line, batched in zip(lines, batch):
        state, stepped = lm.begin(), []
        for token in lm.tokenize(line):
            logprob, state = lm.advance(state, token)
            stepped.append(logprob)
        stepped.append(lm.end(state))
        scored = [w.logprob for w in lm.full_scores(line)]
        assert np.abs(np.array(stepped) - scored).max() <= STEP_SCORE_NATS_PER_TOKEN, line
        bound = STEP_SCORE_NATS_PER_TOKEN * len(stepped)
        assert sum(stepped) == pytest.approx(lm.score(line), abs=bound), line
        assert sum(stepped) == pytest.approx(batched, abs=bound), line


def test_graphs_share_activation_scales(toy_model: Path, kjv_model: Path) -> None:
    """The int8 graphs quantise no activation at run time: each int8 product reads a constant
    activation scale and zero point, the same in the step and the score graph for the same
    weight (the adaptive output's head and tails share one), and the manifest records the
    calibration on the training text."""
    import onnx
    from onnx import numpy_helper

    dynamic = {"DynamicQuantizeLinear", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul"}
    for folder in (toy_model, kjv_model):
        seen: dict[bytes, tuple[float, int]] = {}
        counts = []
        for graph in ("score", "step"):
            model = onnx.load(str(folder / f"{graph}.int8.onnx"))
            assert not {n.op_type for n in model.graph.node} & dynamic
            inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
            nodes = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
            counts.append(len(nodes))
            for node in nodes:
                weight = inits[node.input[1]].tobytes()
                scale = (float(inits[node.input[2]]), int(inits[node.input[4]]))
                assert seen.setdefault(weight, scale) == scale
        assert counts[0] >= 1 and counts[1] >= 1
        recorded = LanguageModel(folder).manifest["export"]["int8_activations"]
        assert recorded["calibration"]["text"] == "train"
        assert all(lo <= 0 <= hi and hi > lo for lo, hi in recorded["activation_ranges"])


def test_share_tied_matrix_leaves_untied_graphs(toy_model: Path, tmp_path: Path) -> None:
    """share_tied_matrix matches by values: on a graph whose table and decoder differ it changes
    nothing; on the toy model's (tied) fp32 graph quantised again it shares the matrix."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pocketlm.export.quantize import QUANTIZE_OPTIONS, share_tied_matrix

    target = tmp_path / "step.int8.onnx"
    quantize_dynamic(toy_model / "step.onnx", target, weight_type=QuantType.QInt8,
                     **QUANTIZE_OPTIONS)
    model = onnx.load(str(target))
    tampered = onnx.load(str(target))
    gather_table = next(n.input[0] for n in tampered.graph.node if n.op_type == "Gather"
                        and n.input[0].endswith("_quantized"))
    init = next(i for i in tampered.graph.initializer if i.name == gather_table)
    from onnx import numpy_helper

    values = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(values[::-1]), init.name))
    assert share_tied_matrix(tampered) == []
    assert len(share_tied_matrix(model)) == 1


def _integer_nodes(path: Path, op_type: str) -> list[tuple[Any, dict[str, np.ndarray]]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [(n, inits) for n in model.graph.node if n.op_type == op_type]


@pytest.mark.parametrize("graph", ["score", "step"])
def test_integer_weights_cannot_saturate(toy_model: Path, kjv_model: Path, graph: str) -> None:
    """Every int8 weight that an integer kernel multiplies (the decoder's MatMulIntegerToFloat)
    lies in [-64, 64]: uint8 activations times two such weights stay inside the int16 that
    vpmaddubsw (x86 without VNNI) adds them into. The LSTM's int8 weights are dequantised and
    multiplied in float."""
    import onnx

    from pocketlm.export.quantize import SAFE_INT8_WEIGHT, saturating_weights

    for folder in (toy_model, kjv_model):
        path = folder / f"{graph}.int8.onnx"
        assert saturating_weights(onnx.load(str(path))) == []
        matmul = _integer_nodes(path, "MatMulIntegerToFloat")
        lstm = _integer_nodes(path, "LSTM")
        assert lstm and matmul  # both paths exist and were checked
        for node, inits in matmul:
            w = inits[node.input[1]]
            assert w.dtype == np.int8 and w.ndim == 2
            assert int(np.abs(w.astype(np.int16)).max()) <= SAFE_INT8_WEIGHT
        for node, inits in lstm:  # W and R come from int8 initializers through DequantizeLinear
            model = onnx.load(str(path))
            producers = {o: n for n in model.graph.node for o in n.output}
            for name in node.input[1:3]:
                assert producers[name].op_type == "DequantizeLinear"
                assert inits[producers[name].input[0]].dtype == np.int8


def test_integer_products_are_exact(toy_model: Path, kjv_model: Path) -> None:
    """The integer product of each MatMulIntegerToFloat of the int8 graphs, run alone by
    onnxruntime as a MatMulInteger on the worst case for a
    saturating kernel (every activation 255) and on random activations, returns exactly the
    int32 products numpy computes. (Weights quantised to full 8 bits fail this on x86 CPUs
    without VNNI; on any CPU the 7-bit weights pass it.)"""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    checked = 0
    for folder in (toy_model, kjv_model):
        for node, inits in _integer_nodes(folder / "score.int8.onnx", "MatMulIntegerToFloat"):
            w, w_zero = inits[node.input[1]], inits[node.input[5]]
            k = w.shape[0]
            graph = helper.make_graph(
                [helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y"])], "mm",
                [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, k])],
                [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
                [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_zero, "w_zero"),
                 numpy_helper.from_array(np.array(0, np.uint8), "a_zero")])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            session = ort.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            a = rng.integers(0, 256, (9, k)).astype(np.uint8)
            a[0] = 255
            expected = a.astype(np.int64) @ (w.astype(np.int64) - w_zero.astype(np.int64))
            np.testing.assert_array_equal(session.run(None, {"a": a})[0], expected)
            checked += 1
    assert checked >= 2
