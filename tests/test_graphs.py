"""runtime/graphs.py: the graphs' names, inputs, outputs and state layout are declared once; the
model folder export writes holds exactly what the declaration says, and the runtime feeds it."""

from __future__ import annotations

from pathlib import Path

from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import read_manifest


def test_declaration_of_an_lstm() -> None:
    specs = graphs.graph_specs(["h", "c"])
    assert specs["score"] == {"inputs": ["tokens", "lengths"], "outputs": ["logprobs"],
                              "files": {"fp32": "score.onnx"}}
    assert specs["step"]["inputs"] == ["token", "state_h", "state_c"]
    assert specs["step"]["outputs"] == ["logprobs", "new_state_h", "new_state_c"]
    assert graphs.state_specs(["h"], 2, 8) == [
        {"name": "h", "input": "state_h", "output": "new_state_h", "shape": [2, "batch", 8]}]
    assert graphs.graph_files("int8") == {"score": "score.int8.onnx", "step": "step.int8.onnx"}


def test_every_input_and_output_has_its_dynamic_axes() -> None:
    names = ["h", "c"]
    axes = graphs.dynamic_axes(names)
    for graph, spec in graphs.graph_specs(names).items():
        assert set(axes[graph]) == {*spec["inputs"], *spec["outputs"]}
        assert all(graphs.BATCH in a.values() for a in axes[graph].values())


def test_exported_folder_matches_the_declaration(toy_model: Path) -> None:
    """Export writes the declared graphs and state layout (int8 files besides fp32)."""
    manifest = read_manifest(toy_model, "model")
    names = [s["name"] for s in manifest["state"]]
    expected = graphs.graph_specs(names)
    for name, spec in manifest["graphs"].items():
        assert {k: v for k, v in spec.items() if k != "files"} == \
            {k: v for k, v in expected[name].items() if k != "files"}
        assert spec["files"]["fp32"] == expected[name]["files"]["fp32"]
    model = manifest["model"]
    assert manifest["state"] == graphs.state_specs(names, model["layers"], model["hidden_size"])


def test_session_options() -> None:
    assert graphs.session_options(2).intra_op_num_threads == 2
    assert graphs.session_options().inter_op_num_threads == 1


def test_task_graph_declaration() -> None:
    """The classify and tag graphs: four inputs, one output, dynamic batch and length."""
    spec = graphs.task_graph_specs("tag", ("fp32", "int8"))
    assert spec == {"tag": {"inputs": ["tokens", "shapes", "suffixes", "lengths"],
                            "outputs": ["logprobs"],
                            "files": {"fp32": "tag.onnx", "int8": "tag.int8.onnx"}}}
    axes = graphs.task_dynamic_axes("classify")
    assert set(axes) == {"tokens", "shapes", "suffixes", "lengths", "logprobs"}
    assert axes["logprobs"] == {0: "batch"}
    assert graphs.task_dynamic_axes("tag")["logprobs"] == {0: "batch", 1: "length"}
    import pytest

    with pytest.raises(ValueError, match="the task graphs are classify, tag"):
        graphs.task_graph_file("score")


def test_task_folders_match_the_declaration(classify_model: Path, tag_model: Path) -> None:
    import onnx

    for folder, task in ((classify_model, "classify"), (tag_model, "tag")):
        manifest = read_manifest(folder, "model")
        assert manifest["graphs"] == graphs.task_graph_specs(task, ("fp32", "int8"))
        model = onnx.load(str(folder / graphs.task_graph_file(task)), load_external_data=False)
        assert [i.name for i in model.graph.input] == list(graphs.TASK_INPUTS)
        assert [o.name for o in model.graph.output] == [graphs.LOGPROBS]
