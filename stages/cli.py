"""The stage commands: ingest, export, evaluate and run here, train in :mod:`.train`.

Each command imports its stage inside the command; the stage functions raise
:class:`PocketLMError` with the fix in it, which the ``pocketlm`` group turns into one line.
They are registered with the console script through the entry-point group ``pocketlm.commands``
(pyproject.toml); :data:`stages` groups them for callers that want them together. The whole
``pocketlm`` command line is the runtime's group (:data:`pocketlm.runtime.cli.cli`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from pocketlm.export.config import ExportConfig
from pocketlm.pipeline.ingest import IngestConfig
from pocketlm.pipeline.labelled import LabelledConfig
from pocketlm.runtime.group import (STAGES, json_option, open_language_model, overwrite_option,
                                    precision_option, threads_option)

from .options import config_options, pop_config
from .train import fmt, train, train_config, train_options

#: The stage commands (the console script finds each by its entry point).
stages = click.Group("stages")
ingest_options = config_options(IngestConfig)


def _ingest_config(kw: dict[str, Any]) -> IngestConfig:
    """Pop the ingest options out of ``kw`` and build the ``IngestConfig``."""
    return IngestConfig(**pop_config(IngestConfig, kw))


@stages.command(help=f"{STAGES['ingest']}\n\nThen prints a table per split (lines, tokens, OOV "
                     f"rate, vocabulary coverage, frequent <unk> words). With --task "
                     f"classify or tag: labelled examples (docs/tasks.md).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Data folder to write (reused when it holds the same run).")
@click.option("--stats", "stats_dir", type=click.Path(path_type=Path), default=None,
              help="Print the report of an existing data folder and exit.")
@config_options(LabelledConfig)
@ingest_options
@overwrite_option
@click.option("--force", is_flag=True,
              help="Rebuild even when --out holds the same run (same fingerprint).")
def ingest(out: Path | None, stats_dir: Path | None, overwrite: bool, force: bool,
           **kw: Any) -> None:
    from pocketlm.pipeline.labelled import stats, task_ingest

    if stats_dir is not None:
        click.echo(stats(stats_dir))
        return
    if out is None:
        raise click.UsageError("pass --out DIR (the data folder to write) or --stats DIR")
    task = LabelledConfig(**pop_config(LabelledConfig, kw))
    stage = task_ingest(task.task)
    manifest = stage.run(_ingest_config(kw), task, out, overwrite, force)
    if manifest["reused"]:
        click.echo(f"reused {out}: it holds this ingest already (fingerprint "
                   f"{manifest['fingerprint']}, same source and settings); --force rebuilds")
    else:
        click.echo(f"wrote {out}: vocabulary {manifest['vocab_size']} in "
                   f"{manifest['seconds']:.1f} s")
    click.echo(stage.report(manifest))


@stages.command(help=STAGES["export"])
@click.option("--checkpoint", "checkpoint_dir", required=True, type=click.Path(path_type=Path),
              help="Checkpoint folder written by `pocketlm train`.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Model folder to write.")
@config_options(ExportConfig)
@overwrite_option
def export(checkpoint_dir: Path, out: Path, overwrite: bool, **kw: Any) -> None:
    from pocketlm.export.task_export import export_checkpoint

    manifest = export_checkpoint(checkpoint_dir, out,
                                 ExportConfig(**pop_config(ExportConfig, kw)), overwrite)
    sizes = ", ".join(f"{f} {b / 1e6:.1f} MB" for f, b in manifest["export"]["bytes"].items())
    click.echo(f"wrote {out}: {sizes}")


@stages.command(help=STAGES["evaluate"])
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder (backend onnx).")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Data folder written by `pocketlm ingest`.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test",
              show_default=True)
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx",
              show_default=True)
@click.option("--checkpoint", "checkpoint_dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (backend torch).")
@click.option("--batch-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Parallel streams the split is cut into.")
@precision_option
@threads_option
@json_option
def evaluate(model_dir: Path | None, data_dir: Path, split: str, backend: str,
             checkpoint_dir: Path | None, batch_size: int, precision: str,
             threads: int | None, as_json: bool) -> None:
    from pocketlm.pipeline.evaluate import evaluate as run_evaluate
    from pocketlm.pipeline.task_eval import evaluate_model, model_task

    if model_dir is not None and model_task(model_dir).labelled:
        report = evaluate_model(model_dir, data_dir, split, precision, threads)
        click.echo(json.dumps(report) if as_json else f"{split} ({report['task']}, "
                   f"{precision}, {report['sentences']:,} sentences): " + ", ".join(
                       f"{k} {v:.4f}" for k, v in report["metrics"].items()))
        return

    result = run_evaluate(model_dir, data_dir, split, backend, checkpoint_dir, batch_size,
                          precision, threads)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{split} perplexity {result['perplexity']:.3f} ({backend}, "
                   f"{result['precision']}, {result['tokens']:,} predicted tokens)")


@stages.command(help=f"{STAGES['run']}\n\nThe preset is `tiny` unless --preset; then scores two "
                     f"example sentences and generates a line.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/kjv"),
              show_default=True, help="Folder for data/, checkpoint/ and model/.")
@ingest_options
@train_options
@overwrite_option
def run(out: Path, overwrite: bool, **kw: Any) -> None:
    from pocketlm.export.onnx_export import export as run_export
    from pocketlm.pipeline.ingest import ingest as run_ingest
    from pocketlm.pipeline.train import train as run_train

    ingest_cfg, train_cfg = _ingest_config(kw), train_config(kw, "tiny")
    from pocketlm.runtime.artifact import check_output_folder

    for part in ("data", "checkpoint", "model"):
        check_output_folder(out / part, overwrite)
    log = logging.getLogger("pocketlm")
    log.info("[1/3] ingest → %s", out / "data")
    run_ingest(ingest_cfg, out / "data", overwrite)
    log.info("[2/3] train → %s", out / "checkpoint")
    ckpt = run_train(train_cfg, out / "data", out / "checkpoint", overwrite,
                     progress=False)
    log.info("[3/3] export → %s", out / "model")
    run_export(out / "checkpoint", out / "model", overwrite=overwrite)
    lm = open_language_model(out / "model")
    click.echo(f"data:        {out / 'data'}")
    click.echo(f"checkpoint:  {out / 'checkpoint'}")
    click.echo(f"model:       {out / 'model'}")
    click.echo(f"valid perplexity: {fmt(ckpt['metrics']['valid_ppl'])} (test "
               f"{fmt(ckpt['metrics']['test_ppl'])})")
    examples = ["and god said, let there be light", "light be there let, said god and"]
    for s in lm.analyze(examples):
        click.echo(f"score {s.logprob:9.3f}  {s.sentence}")
    click.echo(f"generated: {lm.generate('and the lord said', max_words=20, seed=0)}")


stages.add_command(train)


def main() -> None:
    """Console-script entry point (the runtime's, which serves these commands too)."""
    from pocketlm.runtime.cli import main as runtime_main

    runtime_main()


if __name__ == "__main__":
    main()
