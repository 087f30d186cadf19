"""export/quantize.py: int8 graphs of tied models hold the shared matrix once, and still score
like the fp32 graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import LanguageModel


def _big_initializers(path: Path, size: int) -> list[tuple[str, tuple[int, ...]]]:
    import onnx

    model = onnx.load(str(path))
    return [(i.name, tuple(i.dims)) for i in model.graph.initializer
            if int(np.prod(i.dims)) >= size]


@pytest.mark.parametrize("graph", ["score", "step"])
def test_tied_matrix_stored_once(kjv_model: Path, graph: str) -> None:
    """The KJV model is tied and dominated by its vocabulary x embedding matrix: the int8
    graphs hold that matrix once (as int8) and weigh at most 0.27x the fp32 graphs."""
    lm = LanguageModel(kjv_model)
    assert lm.manifest["model"]["tied"]
    sizes = lm.manifest["export"]["bytes"]
    assert sizes[f"{graph}.int8.onnx"] <= 0.27 * sizes[f"{graph}.onnx"]
    cfg = lm.manifest["model"]
    matrix = cfg["vocab_size"] * cfg["embedding_size"]
    assert len(_big_initializers(kjv_model / f"{graph}.int8.onnx", matrix)) == 1
    assert len(_big_initializers(kjv_model / f"{graph}.onnx", matrix)) == 1


def test_shared_int8_scores_like_fp32(kjv_model: Path) -> None:
    """With the shared matrix the int8 graphs stay within 2% of fp32 perplexity, and the step
    graph agrees with the score graph within 0.01 nats per predicted token (each graph picks
    its own activation scales: one row at a time against the whole batch)."""
    lines = ["and god said , let there be light", "in the beginning god created the heaven",
             "and the lord spake unto moses , saying", "blessed are the meek"]
    fp32 = LanguageModel(kjv_model)
    int8 = LanguageModel(kjv_model, precision="int8")
    assert int8.perplexity(lines) == pytest.approx(fp32.perplexity(lines), rel=0.02)
    state = int8.begin()
    total = 0.0
    tokens = int8.tokenize(lines[0])
    for token in tokens:
        logprob, state = int8.advance(state, token)
        total += logprob
    assert total + int8.end(state) == pytest.approx(int8.score(lines[0]),
                                                    abs=0.01 * (len(tokens) + 1))


def test_share_tied_matrix_leaves_untied_graphs(toy_model: Path, tmp_path: Path) -> None:
    """share_tied_matrix matches by values: on a graph whose table and decoder differ it changes
    nothing; on the toy model's (tied) fp32 graph quantised again it shares the matrix."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pocketlm.export.quantize import QUANTIZED_OPS, share_tied_matrix

    target = tmp_path / "step.int8.onnx"
    quantize_dynamic(toy_model / "step.onnx", target, weight_type=QuantType.QInt8,
                     op_types_to_quantize=QUANTIZED_OPS, per_channel=False)
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
