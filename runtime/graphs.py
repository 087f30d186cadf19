"""The model folder's graphs: names, inputs, outputs, state layout and onnxruntime sessions,
declared once. Export writes what this module declares; the runtime reads it back::

    score.onnx   tokens [B, L] + lengths [B]  ->  logprobs [B, L]       whole sentences, zero state
    step.onnx    token [B] + state_<s> [layers, B, hidden] for each state name s of the cell
                     ->  logprobs [B, V] + new_state_<s> [layers, B, hidden]          one step

``s`` runs over the cell's state names (``h`` and ``c`` for an LSTM, ``h`` otherwise); the
manifest's ``state`` list records, per name, its input, its output and its shape with the batch
axis written ``"batch"``.

A task model's folder (a classifier, a tagger) holds one graph named by its task instead, over
the word pieces and their features (runtime/features.py; padding 0 beyond each length)::

    classify.onnx  tokens + shapes + suffixes [B, L] + lengths [B]  ->  logprobs [B, C]
    tag.onnx       tokens + shapes + suffixes [B, L] + lengths [B]  ->  logprobs [B, L, T]

``C`` labels, ``T`` tags: log-softmax over the manifest's ``labels``; rows of ``tag``'s output
beyond a sentence's length are ignored. Every length is at least 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The two graphs of every model folder.
SCORE, STEP = "score", "step"
GRAPHS = (SCORE, STEP)
#: Input and output names of the score graph.
TOKENS, LENGTHS, LOGPROBS = "tokens", "lengths", "logprobs"
#: The step graph's token input (its other inputs are the state; see :func:`state_input`).
TOKEN = "token"
#: The name the batch axis has in a manifest's state shapes.
BATCH = "batch"


def state_input(name: str) -> str:
    """The step graph's input for state ``name`` (``h`` -> ``state_h``)."""
    return f"state_{name}"


def state_output(name: str) -> str:
    """The step graph's output for state ``name`` (``h`` -> ``new_state_h``)."""
    return f"new_state_{name}"


def graph_files(precision: str = "fp32") -> dict[str, str]:
    """File name of each graph at ``precision`` (``score.onnx``, ``step.int8.onnx``, ...)."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return {graph: f"{graph}{suffix}.onnx" for graph in GRAPHS}


def weights_file(precision: str = "fp32") -> str:
    """The external-data file both graphs of ``precision`` share (the manifest's ``weights``)."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return f"weights{suffix}.onnx.data"


#: The task graphs, each named by its task (a task model's folder holds exactly one).
CLASSIFY, TAG = "classify", "tag"
TASK_GRAPHS = (CLASSIFY, TAG)
#: The word-feature inputs of the task graphs (shape and suffix ids, runtime/features.py).
WORD_SHAPES, SUFFIXES = "shapes", "suffixes"
#: The inputs of every task graph, in order.
TASK_INPUTS = (TOKENS, WORD_SHAPES, SUFFIXES, LENGTHS)


def task_graph_file(task: str, precision: str = "fp32") -> str:
    """File name of ``task``'s graph at ``precision`` (``classify.onnx``, ``tag.int8.onnx``)."""
    _check_task(task)
    suffix = "" if precision == "fp32" else f".{precision}"
    return f"{task}{suffix}.onnx"


def task_graph_specs(task: str, precisions: Sequence[str] = ("fp32",)) -> dict[str, Any]:
    """The manifest's ``graphs`` entry of a task model: its one graph, with a file per
    precision."""
    return {task: {"inputs": list(TASK_INPUTS), "outputs": [LOGPROBS],
                   "files": {p: task_graph_file(task, p) for p in precisions}}}


def task_dynamic_axes(task: str, per_piece: bool | None = None) -> dict[str, dict[int, str]]:
    """The axes of ``task``'s graph inputs and output that vary (batch, length). The output
    has a length axis when the task labels each piece (``per_piece``; by default every task
    graph but ``classify``)."""
    _check_task(task)
    if per_piece is None:
        per_piece = task != CLASSIFY
    axes: dict[str, dict[int, str]] = {name: {0: BATCH, 1: "length"}
                                       for name in (TOKENS, WORD_SHAPES, SUFFIXES)}
    axes[LENGTHS] = {0: BATCH}
    axes[LOGPROBS] = {0: BATCH, 1: "length"} if per_piece else {0: BATCH}
    return axes


def _check_task(task: str) -> None:
    """A task graph is named by its task: any name but the language model's graphs (a task
    registered beside classify and tag names its own)."""
    if task in GRAPHS:
        raise ValueError(f"no task graph {task!r} (a language model's graph); the task graphs "
                         f"are {', '.join(TASK_GRAPHS)} and those of registered tasks")


#: The operator list of the ORT-format graphs, for onnxruntime's minimal builds.
REQUIRED_OPERATORS = "required_operators.config"
#: The graph formats a folder may hold: ONNX always, ORT format after ``export --ort``.
GRAPH_FORMATS = ("onnx", "ort")


def graph_specs(state_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The manifest's ``graphs`` entry for a cell with ``state_names`` (fp32 files only)."""
    files = graph_files()
    return {
        SCORE: {"inputs": [TOKENS, LENGTHS], "outputs": [LOGPROBS],
                "files": {"fp32": files[SCORE]}},
        STEP: {"inputs": [TOKEN, *map(state_input, state_names)],
               "outputs": [LOGPROBS, *map(state_output, state_names)],
               "files": {"fp32": files[STEP]}},
    }


def state_specs(state_names: Sequence[str], layers: int, hidden: int) -> list[dict[str, Any]]:
    """The manifest's ``state`` entry: one ``[layers, "batch", hidden]`` array per name."""
    return [{"name": n, "input": state_input(n), "output": state_output(n),
             "shape": [layers, BATCH, hidden]} for n in state_names]


def dynamic_axes(state_names: Sequence[str]) -> dict[str, dict[str, dict[int, str]]]:
    """Per graph, the axes of each input and output that vary (batch, length)."""
    state = {name: {1: BATCH} for n in state_names
             for name in (state_input(n), state_output(n))}
    return {SCORE: {TOKENS: {0: BATCH, 1: "length"}, LENGTHS: {0: BATCH},
                    LOGPROBS: {0: BATCH, 1: "length"}},
            STEP: {TOKEN: {0: BATCH}, LOGPROBS: {0: BATCH}, **state}}


def session_options(threads: int | None = None) -> Any:
    """The onnxruntime session options pocketlm uses: all graph optimisations (the levels
    measured within noise of each other, bench/runtime_speed.py), constant int8 weights
    dequantised once when the graph loads, sequential execution, one inter-op thread,
    ``threads`` intra-op threads (``None``: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    # fold DequantizeLinear of constant weights at load time (an int8 graph's LSTM weights,
    # docs/artifacts.md "int8 variants") instead of dequantising them at every call
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


def open_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for the graph at ``path`` with :func:`session_options`."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads),
                                providers=["CPUExecutionProvider"])
