"""export/portable.py: each precision's weights are stored once (ONNX external data both graphs
reference, hashed in the manifest), and ``export --ort`` writes ORT-format graphs, their
operator list and a model card that says how to build a minimal onnxruntime; the Python runtime
loads the ORT files and scores as with the ONNX ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pocketlm.export.config import ExportConfig
from pocketlm.export.onnx_export import export
from pocketlm.runtime import LanguageModel, PocketLMError
from pocketlm.runtime.artifact import read_manifest

SENTENCES = ["the cat sees the ball .", "a child finds a small boat again .", "my friend", ""]


@pytest.fixture(scope="module")
def ort_model(toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ort") / "model"
    export(toy_checkpoint, out, ExportConfig(ort=True))
    return out


def test_weights_stored_once(ort_model: Path) -> None:
    """Both graphs of a precision reference one data file; it is listed and hashed; the folder
    holds fewer bytes than the two self-contained graphs did."""
    import onnx

    m = read_manifest(ort_model, "model")
    assert m["weights"] == {"fp32": "weights.onnx.data", "int8": "weights.int8.onnx.data"}
    for precision, data in m["weights"].items():
        assert data in m["files"]
        for graph in ("score", "step"):
            model = onnx.load(str(ort_model / m["graphs"][graph]["files"][precision]),
                              load_external_data=False)
            locations = {e.value for t in model.graph.initializer for e in t.external_data
                         if e.key == "location"}
            assert locations == {data}
        shared = m["export"]["shared_weights"][precision]
        assert shared["after"] < shared["before"]
        assert shared["after"] == sum((ort_model / f).stat().st_size for f in [
            m["graphs"]["score"]["files"][precision], m["graphs"]["step"]["files"][precision],
            data])


def test_ort_graphs_load_and_score(ort_model: Path) -> None:
    """LanguageModel(graph_format="ort") scores and generates as the ONNX graphs do."""
    m = read_manifest(ort_model, "model")
    for graph in ("score", "step"):
        assert m["graphs"][graph]["ort_files"] == {"fp32": f"{graph}.ort",
                                                   "int8": f"{graph}.int8.ort"}
    onnx_lm, ort_lm = LanguageModel(ort_model), LanguageModel(ort_model, graph_format="ort")
    assert np.allclose(ort_lm.score_batch(SENTENCES), onnx_lm.score_batch(SENTENCES), atol=1e-5)
    assert ort_lm.generate("the cat", seed=4) == onnx_lm.generate("the cat", seed=4)
    int8 = LanguageModel(ort_model, precision="int8", graph_format="ort")
    assert np.allclose(int8.score_batch(SENTENCES),
                       LanguageModel(ort_model, precision="int8").score_batch(SENTENCES),
                       atol=1e-3)


def test_required_operators_and_model_card(ort_model: Path) -> None:
    config = (ort_model / "required_operators.config").read_text()
    assert "LSTM" in config and "LogSoftmax" in config and "/tmp" not in config
    card = (ort_model / "README.md").read_text()
    assert "--minimal_build" in card and "--include_ops_by_config" in card
    assert "required_operators.config" in card and "weights.onnx.data" in card


def test_no_ort_graphs(toy_model: Path) -> None:
    """A folder exported without --ort says how to get them, in one line."""
    with pytest.raises(PocketLMError, match="export --ort"):
        LanguageModel(toy_model, graph_format="ort")
    with pytest.raises(PocketLMError, match="graph_format"):
        LanguageModel(toy_model, graph_format="tflite")


def test_identical_tensors_are_written_once(tmp_path: Path) -> None:
    """Two graphs with the same large initializer share one copy in the data file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from pocketlm.export.portable import share_weights

    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    for name in ("a.onnx", "b.onnx"):
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], name[0],
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
                                  [weight])
        onnx.save(helper.make_model(graph), str(tmp_path / name))
    sizes = share_weights(tmp_path, ["a.onnx", "b.onnx"], "w.data")
    assert (tmp_path / "w.data").stat().st_size == 4096 * 4
    assert sizes["after"] < sizes["before"] - 4096 * 4 + 1024
    import onnxruntime as ort

    x = np.ones((1, 64), np.float32)
    for name in ("a.onnx", "b.onnx"):
        (y,) = ort.InferenceSession(str(tmp_path / name)).run(None, {"x": x})
        assert np.allclose(y, x @ np.arange(4096, dtype=np.float32).reshape(64, 64))


@pytest.mark.parametrize("align", [4096, 64])
def test_tensors_start_at_multiples_of_the_alignment(align: int, tmp_path: Path) -> None:
    """Each tensor of the data file starts at a multiple of ``align`` (a page for the language
    model's folders, 64 bytes for a labelled task's) and onnxruntime reads it there."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from pocketlm.export.portable import share_weights

    a = np.arange(300 * 5, dtype=np.float32).reshape(300, 5)     # 6,000 bytes
    b = np.full((5, 300), 0.5, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "a"], ["h"]), helper.make_node("MatMul", ["h", "b"],
                                                                        ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 300])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 300])],
        [numpy_helper.from_array(a, "a"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph), str(tmp_path / "g.onnx"))
    share_weights(tmp_path, ["g.onnx"], "w.data", align)
    second = -(-a.nbytes // align) * align
    assert (tmp_path / "w.data").stat().st_size == second + b.nbytes
    x = np.ones((1, 300), np.float32)
    (y,) = ort.InferenceSession(str(tmp_path / "g.onnx")).run(None, {"x": x})
    assert np.allclose(y, x @ a @ b)
