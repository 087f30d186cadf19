"""Measuring a labelled task's model on a data split: the checkpoint through torch, or the
exported graph through onnxruntime, with the task's metrics (:mod:`.tasks`)::

    {split}.jsonl ─▶ ids, shapes, suffixes (runtime/features.py) ─▶ batches sorted by length
      ─▶ graph(tokens, shapes, suffixes, lengths) ─▶ log-probs [B, C] or [B, L, T]
      ─▶ arg-max label / tag per piece ─▶ task.measure(gold, pred, labels)

Tags are decoded piece by piece (arg-max); the runtime's tagger decodes with BIO constraints
(Viterbi), which can only remove ill-formed spans.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Sequence
from typing import Any


from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import PocketLMError, read_manifest

from .checkpoint import TOKENIZER, WEIGHTS
from .encoder import SAVED_DEFAULTS, EncoderConfig, TaskModel
from .labelled import load_examples
from .task_batches import Encoded, eval_batches
from .tasks import Task, get_task
from .vocabulary import same_vocabulary


def load_task_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> tuple[TaskModel,
                                                                         dict[str, Any]]:
    """The task model a labelled checkpoint describes, with its best weights, in eval mode."""
    from safetensors.torch import load_file

    manifest = read_manifest(checkpoint_dir, "checkpoint")
    model = TaskModel(EncoderConfig(**{**SAVED_DEFAULTS, **manifest["model"]}))
    try:
        model.load_state_dict(load_file(str(Path(checkpoint_dir) / WEIGHTS)))
    except RuntimeError as exc:
        raise PocketLMError(f"{Path(checkpoint_dir) / WEIGHTS}: weights do not fit the model in "
                            f"its manifest ({str(exc).splitlines()[0]}); re-run pocketlm "
                            f"train") from exc
    return model.eval(), manifest


def split_of(task: Task, data_dir: str | os.PathLike[str], split: str) -> Encoded:
    """A split of a labelled data folder, encoded with its targets."""
    examples = load_examples(data_dir, split)
    return Encoded.of(examples, [task.target(e) for e in examples])


def onnx_predict(session: Any, data: Encoded, task: Task, labels: Sequence[str],
                 batch: int = 64) -> list[Any]:
    """Predictions of a labelled graph (an onnxruntime session), decoded as the runtime
    decodes them (``task.decode``), in the split's order."""
    preds: list[Any] = [None] * len(data)
    for index in eval_batches([len(i) for i in data.ids], batch):
        tensors = data.batch(index, device=_CPU, per_piece=task.per_piece)
        feeds = {name: tensors[name].numpy() for name in graphs.TASK_INPUTS}
        logp = session.run(None, feeds)[0]
        for row, i in enumerate(index):
            out = logp[row, :len(data.ids[i])] if task.per_piece else logp[row]
            preds[i] = task.decode(out, labels)
    return preds


def measure_graph(path: str | os.PathLike[str], task: Task, data: Encoded,
                  labels: list[str], threads: int | None = None) -> dict[str, float]:
    """The task's metrics of the graph at ``path`` on ``data``."""
    assert task.measure is not None
    session = graphs.open_session(path, threads)
    return task.measure(data.targets, onnx_predict(session, data, task, labels), labels)


def model_task(model_dir: str | os.PathLike[str]) -> Task:
    """The task of a model folder (``lm`` for a folder without the key)."""
    return get_task(read_manifest(model_dir, "model", verify=False).get("task", "lm"))


def evaluate_model(model_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                   split: str = "test", precision: str = "fp32",
                   threads: int | None = None) -> dict[str, Any]:
    """The task's metrics of an exported labelled model on a split of a labelled data
    folder (same vocabulary file and labels, checked)."""
    model = read_manifest(model_dir, "model")
    data = read_manifest(data_dir, "data")
    task = get_task(model.get("task", "lm"))
    if data.get("task", "lm") != task.name:
        raise PocketLMError(f"{data_dir} holds {data.get('task', 'lm')!r} data, {model_dir} is "
                            f"a {task.name!r} model; evaluate on a --task {task.name} folder")
    if not same_vocabulary(Path(model_dir) / model.get("tokenizer", TOKENIZER),
                           Path(data_dir) / data.get("tokenizer", TOKENIZER)):
        raise PocketLMError(f"{model_dir} was trained with another vocabulary than {data_dir}; "
                            f"evaluate on data ingested with the same vocabulary")
    if list(data.get("labels", model["labels"])) != list(model["labels"]):
        raise PocketLMError(f"{data_dir}: its labels differ from {model_dir}'s; evaluate on "
                            f"data with the model's labels")
    files = model["graphs"][task.graphs[0]]["files"]
    if precision not in files:
        raise PocketLMError(f"{model_dir} has no {precision} graph; choose one of "
                            f"{', '.join(files)}")
    encoded = split_of(task, data_dir, split)
    scores = measure_graph(Path(model_dir) / files[precision], task, encoded,
                           list(model["labels"]), threads)
    return {"task": task.name, "split": split, "precision": precision,
            "sentences": len(encoded), "metrics": scores}


#: Where graph inputs are built (numpy from CPU tensors).
_CPU: Any = "cpu"
