"""Stage 3, export: checkpoint folder → model folder of ONNX graphs the runtime reads.

Two graphs, both with dynamic batch (and length) axes; their names, inputs, outputs and state
layout are declared once, in :mod:`pocketlm.runtime.graphs`, which the runtime reads back:

``score.onnx``  ``tokens`` int64 [batch, length] (each sentence's words then ``<eos>``, right
                padded with anything) and ``lengths`` int64 [batch] → ``logprobs`` float32
                [batch, length]: ln P(tokens[b, t] | <eos>, tokens[b, :t]) from the zero state,
                0 past each length. A sentence's score is the sum of its row.
``step.onnx``   ``token`` int64 [batch] + state (``state_h`` [, ``state_c``]) float32
                [layers, batch, hidden] → ``logprobs`` float32 [batch, vocab] and the new state
                (``new_state_h`` [, ``new_state_c``]).

Export checks every graph with ``onnx.checker``, compares onnxruntime with torch on random inputs
of several shapes, and writes nothing if any difference exceeds the tolerance. ``int8`` adds
int8 copies (``*.int8.onnx``, export/quantize.py) next to the fp32 graphs.
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
from torch import nn

from pocketlm.pipeline.checkpoint import TOKENIZER, load_checkpoint
from pocketlm.pipeline.model import RNNLM
from pocketlm.pipeline.vocabulary import copy_tokenizer
from pocketlm.runtime import graphs
from pocketlm.runtime.artifact import (EOS_ID, PocketLMError, atomic_folder, check_output_folder,
                                       package_versions, sha256_file, write_manifest)

from . import portable
from .config import ExportConfig

log = logging.getLogger(__name__)

#: (batch, length) pairs checked against torch; deliberately unlike the export example.
CHECK_SHAPES = ((1, 1), (3, 7), (5, 35), (2, 100))


class ExportError(PocketLMError):
    """The exported graphs do not reproduce the torch model."""


class ScoreGraph(nn.Module):
    """Per-token log-probabilities of whole sentences, from the zero state."""

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.model = model
        self.eval()  # torch.onnx.export restores the wrapper's mode onto the model afterwards

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(tokens[:, :1], EOS_ID)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)             # (B, L)
        features, _ = self.model.features(inputs)                        # (B, L, D)
        # the output layer picks each target's log-probability without a [B, L, V] tensor
        picked = self.model.target_logprob(features, tokens)             # (B, L)
        positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        return torch.where(positions < lengths.unsqueeze(1), picked, torch.zeros_like(picked))


class StepGraph(nn.Module):
    """One step: next-token log-probabilities and the new state."""

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, token: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, new_state = self.model.features(token.unsqueeze(1), tuple(state))  # (B, 1, D)
        return (self.model.decoder.log_probs(features[:, 0]), *new_state)           # (B, V)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            inputs: list[str], outputs: list[str], dynamic: dict[str, dict[int, str]],
            opset: int) -> None:
    with warnings.catch_warnings():
        # The exporter warns that LSTM graphs may not take other batch sizes; verify() checks
        # several batch sizes and lengths against torch instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False,
                          do_constant_folding=True)


def _compare(name: str, expected: list[np.ndarray], got: list[np.ndarray], shape: tuple,
             tolerance: float) -> float:
    worst = 0.0
    for e, g in zip(expected, got):
        if e.shape != g.shape:
            raise ExportError(f"{name}: onnxruntime output shape {g.shape} != torch {e.shape} "
                              f"at (batch, length) = {shape}")
        worst = max(worst, float(np.max(np.abs(e - g))) if e.size else 0.0)
    if not worst <= tolerance:
        raise ExportError(f"{name}: onnxruntime differs from torch by {worst:.2e} (> "
                          f"{tolerance:g}) at (batch, length) = {shape}; nothing was written")
    return worst


def verify(model: RNNLM, folder: Path, files: dict[str, str], state_names: list[str],
           tolerance: float, seed: int = 0) -> dict[str, float]:
    """Compare the graphs in ``folder`` with torch on random inputs of :data:`CHECK_SHAPES`.

    Returns the largest difference per graph; raises :class:`ExportError` beyond ``tolerance``.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    score = graphs.open_session(folder / files[graphs.SCORE])
    step = graphs.open_session(folder / files[graphs.STEP])
    worst = {"score": 0.0, "step": 0.0}
    vocab, cfg = model.config.vocab_size, model.config
    with torch.no_grad():
        for batch, length in CHECK_SHAPES:
            tokens = torch.randint(0, vocab, (batch, length), generator=gen)
            lengths = torch.randint(1, length + 1, (batch,), generator=gen)
            lengths[0] = length
            expected = ScoreGraph(model)(tokens, lengths).numpy()
            got = score.run(None, {graphs.TOKENS: tokens.numpy(),
                                   graphs.LENGTHS: lengths.numpy()})
            worst["score"] = max(worst["score"], _compare("score.onnx", [expected], got,
                                                          (batch, length), tolerance))
            state = tuple(torch.randn(cfg.layers, batch, cfg.hidden_size, generator=gen) * 0.5
                          for _ in state_names)
            token = tokens[:, 0]
            expected_step = [t.numpy() for t in StepGraph(model)(token, *state)]
            feeds = {graphs.TOKEN: token.numpy()}
            feeds.update({graphs.state_input(n): s.numpy() for n, s in zip(state_names, state)})
            got = step.run(None, feeds)
            worst["step"] = max(worst["step"], _compare("step.onnx", expected_step, got,
                                                        (batch, 1), tolerance))
    return worst


def export(checkpoint_dir: str | os.PathLike[str], out: str | os.PathLike[str],
           config: ExportConfig | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run the export stage into ``out`` (written atomically) with ``config`` (default:
    ``ExportConfig()``); return the manifest."""
    import onnx

    config = ExportConfig() if config is None else config
    check_output_folder(out, overwrite)
    model, ckpt = load_checkpoint(checkpoint_dir)
    if ckpt["config"].get("reverse"):
        raise PocketLMError(f"{checkpoint_dir}: a backward language model (--reverse) reads "
                            f"lines right to left; use it as a task model's "
                            f"--init-backward-from, and export a forward one")
    model = model.float().eval()
    model.decoder = model.decoder.export_ready()     # e.g. tied tail matrices as constants
    names = list(model.cell.state_names)
    cfg = model.config
    graph_specs = graphs.graph_specs(names)
    dynamic = graphs.dynamic_axes(names)
    with atomic_folder(out, overwrite) as tmp:
        example_tokens = torch.full((2, 5), EOS_ID, dtype=torch.long)
        example_state = tuple(torch.zeros(cfg.layers, 2, cfg.hidden_size) for _ in names)
        examples = {graphs.SCORE: (ScoreGraph(model), (example_tokens, torch.tensor([5, 3]))),
                    graphs.STEP: (StepGraph(model), (torch.full((2,), EOS_ID, dtype=torch.long),
                                                     *example_state))}
        for name, (module, args) in examples.items():
            spec = graph_specs[name]
            _export(module, args, tmp / spec["files"]["fp32"], spec["inputs"], spec["outputs"],
                    dynamic[name], config.opset)
        for spec in graph_specs.values():
            onnx.checker.check_model(str(tmp / spec["files"]["fp32"]), full_check=True)
        precisions, int8_scales = {"fp32": graphs.graph_files("fp32")}, None
        if config.int8:
            from .calibration import calibration_tokens
            from .quantize import quantize_graphs

            precisions["int8"] = graphs.graph_files("int8")
            int8_scales = quantize_graphs(tmp, {name: (graph_specs[name]["files"]["fp32"], file)
                                                for name, file in precisions["int8"].items()},
                                          calibration_tokens(model, ckpt["data"].get("path"),
                                                             config.seed))
        # each precision's weights once, in one file both graphs reference; checked below
        shared = {p: portable.share_weights(tmp, list(files.values()), graphs.weights_file(p))
                  for p, files in precisions.items()}
        checks = {"fp32": verify(model, tmp, precisions["fp32"], names, config.tolerance,
                                 config.seed)}
        log.info("export: fp32 graphs match torch (max |diff| score %.1e, step %.1e)",
                 checks["fp32"]["score"], checks["fp32"]["step"])
        int8_note = None
        if config.int8:
            try:
                # int8 is approximate: record how far it is from torch, but require that it runs
                checks["int8"] = verify(model, tmp, precisions["int8"], names,
                                        tolerance=float("inf"), seed=config.seed)
            except Exception as exc:  # onnxruntime builds without working int8 RNN kernels
                int8_note = f"int8 graphs omitted: onnxruntime could not run them ({exc})"
                log.warning("export: %s", int8_note.splitlines()[0][:300])
                for file in [*precisions.pop("int8").values(), graphs.weights_file("int8")]:
                    (tmp / file).unlink()
                shared.pop("int8")
            else:
                for name, file in precisions["int8"].items():
                    graph_specs[name]["files"]["int8"] = file
                log.info("export: int8 graphs run (max |diff| from torch: score %.2g, step "
                         "%.2g)", checks["int8"]["score"], checks["int8"]["step"])
        extra = [graphs.weights_file(p) for p in precisions]
        if config.ort:
            converted = portable.write_ort(tmp, [f for files in precisions.values()
                                                 for f in files.values()])
            for p, files in precisions.items():
                for name, file in files.items():
                    graph_specs[name].setdefault("ort_files", {})[p] = converted[file]
            extra += [*converted.values(), graphs.REQUIRED_OPERATORS]
        copy_tokenizer(Path(checkpoint_dir) / TOKENIZER, tmp / TOKENIZER)
        files = [TOKENIZER] + [f for g in graph_specs.values() for f in g["files"].values()]
        files += extra
        sizes = {f: (tmp / f).stat().st_size for f in files if f != TOKENIZER}
        body = {
            "vocab_size": cfg.vocab_size,
            "tokenizer": TOKENIZER,
            "model": asdict(cfg),
            "output": model.output.describe(cfg),
            "graphs": graph_specs,
            "weights": {p: graphs.weights_file(p) for p in precisions},
            "state": graphs.state_specs(names, cfg.layers, cfg.hidden_size),
            "scoring": {"log_base": "e", "start_context": "<eos>", "initial_state": "zeros",
                        "final_eos_predicted": True},
            "metrics": {"valid_ppl": ckpt["metrics"].get("valid_ppl"),
                        "test_ppl": ckpt["metrics"].get("test_ppl")},
            "training": {"config": ckpt["config"], "data": ckpt["data"],
                         "environment": ckpt.get("environment"),
                         "checkpoint_manifest_sha256": sha256_file(
                             Path(checkpoint_dir) / "manifest.json")},
            "export": {**asdict(config), "exporter": "torch.onnx (TorchScript)",
                       "check_shapes": [list(s) for s in CHECK_SHAPES],
                       "max_abs_diff": checks, "bytes": sizes, "int8_note": int8_note,
                       "shared_weights": shared, "int8_activations": int8_scales},
            "versions": package_versions("torch", "onnx", "onnxruntime"),
        }
        (tmp / "README.md").write_text(_model_card(body), encoding="utf-8")
        manifest = write_manifest(tmp, "model", body, files + ["README.md"])
    return manifest


def _model_card(body: dict[str, Any]) -> str:
    m, metrics, out = body["model"], body["metrics"], body["output"]
    cutoffs = f" (cutoffs {', '.join(map(str, out['cutoffs']))})" if "cutoffs" in out else ""
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    sizes = "\n".join(f"| `{f}` | {b:,} |" for f, b in body["export"]["bytes"].items())
    return (f"# pocketlm model\n\n"
            f"A word-level {m['cell']} language model ({m['layers']} layers, embedding "
            f"{m['embedding_size']}, hidden {m['hidden_size']}, tied={m['tied']}), vocabulary "
            f"of {body['vocab_size']} words, output layer `{out['name']}`"
            f"{cutoffs}.\n\n"
            f"Stream perplexity: valid {fmt(metrics['valid_ppl'])}, test "
            f"{fmt(metrics['test_ppl'])}.\n\n"
            f"```python\nfrom pocketlm.runtime import LanguageModel\n"
            f"lm = LanguageModel('path/to/this/folder')\nlm.score('and god said')\n```\n\n"
            f"Scores are natural logs from the zero state with `<eos>` as the start context; "
            f"the final `<eos>` is predicted.\n\n| file | bytes |\n|---|---|\n{sizes}\n\n"
            f"Each precision's weights are stored once, in the `weights*.onnx.data` file both "
            f"of its graphs reference (ONNX external data): keep it beside them.\n"
            + portable.ort_card(body))
