"""Export of a labelled task's checkpoint (classify, tag, ...) to its model folder, and the
``pocketlm export`` entry that picks the exporter through the task registry::

    checkpoint/ (task, labels)  ─▶  model/ manifest.json   task, labels, features, graphs,
                                           tokenizer.json   metrics (training's; int8's by export)
                                           classify.onnx        tokens, shapes, suffixes [B, L],
                                           classify.int8.onnx   lengths [B] ─▶ logprobs [B, C]
                                           weights.onnx.data, weights.int8.onnx.data
    (a tag model: tag.onnx / tag.int8.onnx ─▶ logprobs [B, L, T])

The same checks as the language model's export (:mod:`.onnx_export`): ``onnx.checker``, then
onnxruntime against torch at every (batch, length) of ``CHECK_SHAPES`` within the tolerance
(positions beyond a length are not compared: the runtime ignores them), nothing written on a
failure. The int8 copy (:func:`.quantize.quantize_graph`) stores the embedding tables and the
cells' weights int8 and computes in float from them, so a text's int8 numbers do not depend on
its batch or runtime; it must run; its metrics and the fp32 graph's are measured on the valid
split of the training data folder and recorded.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketlm.pipeline.checkpoint import TOKENIZER
from pocketlm.pipeline.encoder import TaskModel, valid_mask
from pocketlm.pipeline.task_eval import (load_task_checkpoint, measure_graph,
                                         split_of)
from pocketlm.pipeline.tasks import Task, get_task
from pocketlm.pipeline.vocabulary import copy_tokenizer
from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import (atomic_folder, check_output_folder, package_versions,
                                       read_manifest, sha256_file, write_manifest)
from pocketlm.runtime.features import SHAPES, SUFFIX_BUCKETS

from . import portable
from .config import ExportConfig
from .onnx_export import CHECK_SHAPES, ExportError
from .onnx_export import export as export_language_model

log = logging.getLogger(__name__)


def random_inputs(batch: int, length: int, vocab: int, gen: torch.Generator
                  ) -> tuple[torch.Tensor, ...]:
    """Inputs as the runtime builds them: random ids within each length, 0 beyond."""
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    lengths[0] = length
    inside = valid_mask(lengths, length)
    tokens = torch.randint(0, vocab, (batch, length), generator=gen) * inside
    shapes = torch.randint(1, len(SHAPES), (batch, length), generator=gen) * inside
    suffixes = torch.randint(1, SUFFIX_BUCKETS, (batch, length), generator=gen) * inside
    return tokens, shapes, suffixes, lengths


def verify(model: TaskModel, task: Task, path: Path, tolerance: float,
           seed: int = 0) -> float:
    """The largest |onnxruntime - torch| log-probability of the graph at ``path`` over
    :data:`CHECK_SHAPES`; raises :class:`ExportError` beyond ``tolerance``."""
    session = graphs.open_session(path)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.no_grad():
        for batch, length in CHECK_SHAPES:
            inputs = random_inputs(batch, length, model.config.vocab_size, gen)
            expected = model(*inputs).numpy()
            got = session.run(None, {n: t.numpy() for n, t in zip(graphs.TASK_INPUTS, inputs)})[0]
            if got.shape != expected.shape:
                raise ExportError(f"{path.name}: onnxruntime output shape {got.shape} != torch "
                                  f"{expected.shape} at (batch, length) = {(batch, length)}")
            diff = np.abs(got - expected)
            if task.per_piece:
                diff = diff[valid_mask(inputs[3], length).numpy()]
            worst = max(worst, float(diff.max()))
            if not worst <= tolerance:
                raise ExportError(f"{path.name}: onnxruntime differs from torch by {worst:.2e} "
                                  f"(> {tolerance:g}) at (batch, length) = {(batch, length)}; "
                                  f"nothing was written")
    return worst


def export_task(checkpoint_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                config: ExportConfig | None = None, overwrite: bool = False
                ) -> dict[str, Any]:
    """Export a labelled checkpoint into ``out`` (written atomically); return the manifest."""
    import onnx

    config = config or ExportConfig()

    check_output_folder(out, overwrite)
    model, ckpt = load_task_checkpoint(checkpoint_dir)
    model = model.float().eval()
    task, labels = get_task(ckpt["task"]), list(ckpt["labels"])
    graph = task.graphs[0]
    data_dir = Path(ckpt["data"]["path"])
    with atomic_folder(out, overwrite) as tmp:
        example = random_inputs(2, 5, model.config.vocab_size, torch.Generator().manual_seed(1))
        fp32 = tmp / graphs.task_graph_file(graph, "fp32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # RNN batch warnings: verify() checks the shapes
            torch.onnx.export(model, example, str(fp32), input_names=list(graphs.TASK_INPUTS),
                              output_names=[graphs.LOGPROBS],
                              dynamic_axes=graphs.task_dynamic_axes(graph, task.per_piece),
                              opset_version=config.opset, dynamo=False,
                              do_constant_folding=True)
        onnx.checker.check_model(str(fp32), full_check=True)
        precisions, int8_record = ["fp32"], None
        if config.int8:
            from .quantize import quantize_graph

            int8_record = quantize_graph(fp32, tmp / graphs.task_graph_file(graph, "int8"))
            precisions.append("int8")
        shared = {p: portable.share_weights(tmp, [graphs.task_graph_file(graph, p)],
                                            graphs.weights_file(p), portable.SMALL_ALIGN)
                  for p in precisions}
        checks = {"fp32": verify(model, task, fp32, config.tolerance, config.seed)}
        if config.int8:   # approximate: it must run; how far it is, is recorded
            checks["int8"] = verify(model, task, tmp / graphs.task_graph_file(graph, "int8"),
                                    float("inf"), config.seed)
        log.info("export: %s graphs match torch (max |diff| %s)", graph,
                 ", ".join(f"{p} {d:.1e}" for p, d in checks.items()))
        metrics: dict[str, Any] = {"valid": ckpt["metrics"].get("valid"),
                                   "test": ckpt["metrics"].get("test")}
        if (data_dir / "valid.jsonl").is_file():
            valid = split_of(task, data_dir, "valid")
            metrics["export"] = {"split": "valid", "sentences": len(valid), **{
                p: measure_graph(tmp / graphs.task_graph_file(graph, p), task, valid, labels)
                for p in precisions}}
            log.info("export: valid %s", metrics["export"])
        copy_tokenizer(Path(checkpoint_dir) / TOKENIZER, tmp / TOKENIZER)
        files = [TOKENIZER, *(graphs.task_graph_file(graph, p) for p in precisions),
                 *(graphs.weights_file(p) for p in precisions)]
        body = {
            **task.manifest_section(labels),
            "vocab_size": model.config.vocab_size, "tokenizer": TOKENIZER,
            "model": asdict(model.config),
            "graphs": graphs.task_graph_specs(graph, precisions),
            "weights": {p: graphs.weights_file(p) for p in precisions},
            "metrics": metrics,
            "training": {"config": ckpt["config"], "data": ckpt["data"], "init": ckpt.get("init"),
                         "checkpoint_manifest_sha256": sha256_file(
                             Path(checkpoint_dir) / "manifest.json")},
            "export": {**asdict(config), "exporter": "torch.onnx (TorchScript)",
                       "check_shapes": [list(s) for s in CHECK_SHAPES], "max_abs_diff": checks,
                       "bytes": {f: (tmp / f).stat().st_size for f in files[1:]},
                       "shared_weights": shared, "int8": int8_record},
            "versions": package_versions("torch", "onnx", "onnxruntime"),
        }
        manifest = write_manifest(tmp, "model", body, files)
    return manifest


def export_checkpoint(checkpoint_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                      config: ExportConfig | None = None, overwrite: bool = False
                      ) -> dict[str, Any]:
    """``pocketlm export``: the checkpoint's task picks the exporter (a labelled task's here,
    the language model's in :mod:`.onnx_export`)."""
    task = get_task(read_manifest(checkpoint_dir, "checkpoint", verify=False).get("task", "lm"))
    if task.labelled:
        return export_task(checkpoint_dir, out, config, overwrite)
    return export_language_model(checkpoint_dir, out, config or ExportConfig(), overwrite)
