"""The stage commands of the ``pocketlm`` command line: ingest, train, export, evaluate, run.

They need the ``[train]`` extra. The console script and the runtime commands (score, rank,
rescore, generate, perplexity, info) live in :mod:`pocketlm.runtime.cli`, which loads this module
only when a stage command is named. Every command imports its stage inside the command; the stage
functions raise :class:`PocketLMError` with the fix in it, which the group turns into one line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from pocketlm.runtime.artifact import PocketLMError
from pocketlm.runtime.cli import json_option as _json_option
from pocketlm.runtime.cli import load_model as _load
from pocketlm.runtime.cli import overwrite_option as _overwrite_option
from pocketlm.runtime.cli import precision_option as _precision_option
from pocketlm.runtime.cli import setup_logging as _setup_logging
from pocketlm.runtime.cli import threads_option as _threads_option

#: The stage commands (`stages` below); `pocketlm.runtime.cli.cli` serves them with its logging
#: options and error handling.
cli = click.Group("stages")


def _ingest_options(f: Any) -> Any:
    """One click option per ``IngestConfig`` field, derived from the field's type, default and
    metadata (help, flag, minimum, choices)."""
    import dataclasses

    from .ingest import IngestConfig, option_name

    for fld in reversed(dataclasses.fields(IngestConfig)):
        meta, default = fld.metadata, fld.default
        name = option_name(fld.name)
        kwargs: dict[str, Any] = {"help": meta["help"], "show_default": default not in ((), None)}
        if fld.type.startswith("tuple"):
            option = click.option(name, fld.name, multiple=True, metavar="FILE",
                                  help=meta["help"])
        elif "flag" in meta:
            option = click.option(meta["flag"], fld.name, default=default, **kwargs)
        elif "choices" in meta:
            option = click.option(name, fld.name, type=click.Choice(meta["choices"]),
                                  default=default, **kwargs)
        elif fld.type == "int":
            option = click.option(name, fld.name, type=click.IntRange(min=meta.get("minimum")),
                                  default=default, **kwargs)
        else:
            option = click.option(name, fld.name, default=default, **kwargs)
        f = option(f)
    return f


def _ingest_config(kw: dict[str, Any]) -> Any:
    """Pop the ingest options out of ``kw`` and build the ``IngestConfig``."""
    import dataclasses

    from .ingest import IngestConfig

    return IngestConfig(**{f.name: kw.pop(f.name) for f in dataclasses.fields(IngestConfig)})


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Data folder to write (reused when it holds the same run).")
@click.option("--stats", "stats_dir", type=click.Path(path_type=Path), default=None,
              help="Print the report of an existing data folder and exit.")
@_ingest_options
@_overwrite_option
@click.option("--force", is_flag=True,
              help="Rebuild even when --out holds the same run (same fingerprint).")
def ingest(out: Path | None, stats_dir: Path | None, overwrite: bool, force: bool,
           **kw: Any) -> None:
    """Read a corpus, build the vocabulary and write token ids per split, then print a table
    per split (lines, tokens, OOV rate, vocabulary coverage, frequent <unk> words)."""
    from .ingest import ingest as run_ingest
    from .ingest import report, stats

    if stats_dir is not None:
        click.echo(stats(stats_dir))
        return
    if out is None:
        raise click.UsageError("pass --out DIR (the data folder to write) or --stats DIR")
    manifest = run_ingest(_ingest_config(kw), out, overwrite, force=force)
    if manifest["reused"]:
        click.echo(f"reused {out}: it holds this ingest already (fingerprint "
                   f"{manifest['fingerprint']}, same source and settings); --force rebuilds")
    else:
        click.echo(f"wrote {out}: vocabulary {manifest['vocab_size']} in "
                   f"{manifest['seconds']:.1f} s")
    click.echo(report(manifest))


def _train_options(f: Any) -> Any:
    from_preset = " (default: from the preset)"
    options = [
        click.option("--preset", type=click.Choice(["tiny", "small", "medium", "large"]),
                     default=None, help="Named configuration to start from."),
        click.option("--cell", type=click.Choice(["lstm", "gru", "rnn_tanh", "rnn_relu"]),
                     default=None, help="Recurrent cell" + from_preset),
        click.option("--layers", type=click.IntRange(min=1), default=None,
                     help="Stacked layers" + from_preset),
        click.option("--embedding-size", type=click.IntRange(min=1), default=None,
                     help="Word embedding size" + from_preset),
        click.option("--hidden-size", type=click.IntRange(min=1), default=None,
                     help="Hidden state size" + from_preset),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help="Dropout" + from_preset),
        click.option("--tied/--untied", default=None,
                     help="Share embedding and decoder weights" + from_preset),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Parallel token streams" + from_preset),
        click.option("--bptt", type=click.IntRange(min=1), default=None,
                     help="Truncated-BPTT window length" + from_preset),
        click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Passes over the train split" + from_preset),
        click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=None,
                     help="Optimizer" + from_preset),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Learning rate" + from_preset),
        click.option("--clip", type=click.FloatRange(min=0), default=None,
                     help="Gradient-norm clip, 0 to disable" + from_preset),
        click.option("--seed", type=int, default=None, help="Random seed" + from_preset),
        click.option("--device", default=None,
                     help="auto (CUDA when present), cpu, cuda, cuda:N" + from_preset),
        click.option("--precision", "train_precision",
                     type=click.Choice(["auto", "fp32", "bf16"]), default=None,
                     help="auto: bf16 autocast on CUDA and on CPUs with hardware bf16 "
                          "(AVX512-BF16, AMX), fp32 elsewhere" + from_preset),
        click.option("--max-steps", type=click.IntRange(min=0), default=None,
                     help="Stop after this many steps (0: no limit)" + from_preset),
        click.option("--eval-every", type=click.IntRange(min=0), default=None,
                     help="Validate every N steps (0: at each epoch end; default 0)."),
        click.option("--eval-tokens", type=click.IntRange(min=0), default=None,
                     help="Tokens of the fixed validation (and final test) sample (0: the "
                          "whole split; default 100000)."),
        click.option("--save-every", type=click.IntRange(min=0), default=None,
                     help="Write a checkpoint every N steps (0: off; default 0); also at "
                          "each epoch end."),
        click.option("--save-minutes", type=click.FloatRange(min=0), default=None,
                     help="Write a checkpoint every M minutes (0: off; default 10)."),
        click.option("--max-minutes", type=click.FloatRange(min=0), default=None,
                     help="Stop after M minutes of wall time (0: no limit)."),
        click.option("--target-ppl", type=click.FloatRange(min=0), default=None,
                     help="Stop when validation perplexity reaches this (0: never)."),
        click.option("--patience", type=click.IntRange(min=0), default=None,
                     help="Stop after N evaluations without improvement (0: never)."),
        # output layer, regularisation and recipe (docs/stages.md, "train")
        click.option("--output", type=click.Choice(["full", "adaptive"]), default=None,
                     help="Output layer: full softmax or adaptive clusters" + from_preset),
        click.option("--cutoffs", default=None, metavar="C0,C1,...",
                     help="Adaptive cluster boundaries (word ids, increasing)" + from_preset),
        click.option("--div-value", type=float, default=None,
                     help="Adaptive tail k projects to hidden / div^k" + from_preset),
        click.option("--input-dropout", type=float, default=None,
                     help="Locked dropout on the embeddings" + from_preset),
        click.option("--embed-dropout", type=float, default=None,
                     help="Fraction of words dropped from the embedding table" + from_preset),
        click.option("--weight-dropout", type=float, default=None,
                     help="DropConnect on hidden-to-hidden weights" + from_preset),
        click.option("--ar", type=float, default=None,
                     help="Activation regularisation weight" + from_preset),
        click.option("--windows", type=click.Choice(["stream", "verse"]), default=None,
                     help="BPTT windows: carried stream or zero-state line starts" + from_preset),
        click.option("--vary-bptt/--fixed-bptt", default=None,
                     help="Vary the window length around --bptt" + from_preset),
        click.option("--schedule", type=click.Choice(["plateau", "cosine"]), default=None,
                     help="Learning-rate schedule after warmup" + from_preset),
        click.option("--warmup", type=int, default=None,
                     help="Linear warmup steps" + from_preset),
        click.option("--lr-floor", type=float, default=None,
                     help="Cosine ends at this fraction of --lr" + from_preset),
        click.option("--ema", type=float, default=None,
                     help="Weight averaging decay per step, 0 to disable" + from_preset),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _train_config(kw: dict[str, Any], default_preset: str) -> Any:
    from .train import preset

    name = kw.pop("preset") or default_preset
    kw["precision"] = kw.pop("train_precision")
    if kw.get("cutoffs") is not None:
        try:
            kw["cutoffs"] = tuple(int(c) for c in kw["cutoffs"].split(","))
        except ValueError:
            raise click.BadParameter(f"{kw['cutoffs']!r} is not a comma-separated list of "
                                     f"word ids, e.g. 1000,4000", param_hint="--cutoffs")
    return preset(name, **kw)


@click.command()
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
              help="Data folder written by `pocketlm ingest` (with --resume: the one recorded).")
@click.option("--out", default=None, type=click.Path(path_type=Path),
              help="Checkpoint folder to write.")
@click.option("--resume", default=None, type=click.Path(path_type=Path),
              help="Continue the run whose checkpoint folder this is (same shape and data; "
                   "budgets and recipe options may be given again).")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Processes on this machine: hands the command over to torchrun.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_train_options
@_overwrite_option
def train(data_dir: Path | None, out: Path | None, resume: Path | None, nproc: int | None,
          quiet: bool, overwrite: bool, **kw: Any) -> None:
    """Train a recurrent LM on an ingest folder (preset `small` unless --preset)."""
    import os

    if nproc and nproc > 1 and "WORLD_SIZE" not in os.environ:
        _hand_over_to_torchrun(nproc)
    from .train import train as run_train

    if resume is not None:
        from .checkpoint import resume_config
        from .train import TrainConfig

        if kw.pop("preset"):
            raise click.UsageError("--preset does not apply to --resume (the run keeps its "
                                   "config); give only the options to change")
        if out is not None and out.resolve() != resume.resolve():
            raise click.UsageError("--resume continues in its own folder; leave out --out")
        kw["precision"] = kw.pop("train_precision")
        fields, saved_data = resume_config(resume, kw)
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in fields.items() if k in names})
        data_dir, out = data_dir or Path(saved_data), resume
        manifest = run_train(config, data_dir, out, resume=True,
                             progress=False if quiet else None)
    else:
        if data_dir is None or out is None:
            raise click.UsageError("give --data and --out (or --resume DIR)")
        manifest = run_train(_train_config(kw, "small"), data_dir, out, overwrite,
                             progress=False if quiet else None)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    metrics = manifest["metrics"]
    click.echo(f"wrote {out}: valid perplexity {_fmt(metrics['valid_ppl'])}, test "
               f"{_fmt(metrics['test_ppl'])}, {metrics['tokens_per_s']:,.0f} tokens/s, "
               f"stopped by {manifest['status']['reason']} at step {metrics['steps']:,}")
    if "curve.png" in manifest["files"]:
        click.echo(f"curve: {out / 'curve.png'}")


cli.add_command(train)


def _hand_over_to_torchrun(nproc: int) -> None:
    """Re-run this train command under torchrun with ``nproc`` processes on this machine."""
    import subprocess

    ctx = click.get_current_context()
    argv: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)   # type: ignore[arg-type]
        if param.name in ("nproc",) or value is None or not isinstance(param, click.Option):
            continue
        if param.is_flag:
            if param.secondary_opts:
                argv.append(param.opts[0] if value else param.secondary_opts[0])
            elif value:
                argv.append(param.opts[0])
        else:
            argv += [param.opts[0], str(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", "pocketlm.pipeline.train", *argv]
    logging.getLogger("pocketlm").info("train: %s", " ".join(command))
    raise SystemExit(subprocess.call(command))


def train_main() -> None:
    """``python -m pocketlm.pipeline.train`` (what torchrun starts): the train command alone."""
    _setup_logging(0)
    try:
        train.main(prog_name="pocketlm train", standalone_mode=False)
    except PocketLMError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from exc
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from exc
    except click.exceptions.Abort:
        raise SystemExit(1) from None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@cli.command()
@click.option("--checkpoint", "checkpoint_dir", required=True, type=click.Path(path_type=Path),
              help="Checkpoint folder written by `pocketlm train`.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Model folder to write.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=1e-4,
              show_default=True, help="Largest allowed |onnxruntime - torch| log-probability.")
@click.option("--int8/--no-int8", default=True, show_default=True,
              help="Also write int8 (dynamically quantised) graphs.")
@_overwrite_option
def export(checkpoint_dir: Path, out: Path, tolerance: float, int8: bool,
           overwrite: bool) -> None:
    """Export a checkpoint to ONNX graphs checked against torch."""
    from pocketlm.export import ExportConfig
    from pocketlm.export import export as run_export

    manifest = run_export(checkpoint_dir, out, ExportConfig(tolerance=tolerance, int8=int8),
                          overwrite)
    sizes = ", ".join(f"{f} {b / 1e6:.1f} MB" for f, b in manifest["export"]["bytes"].items())
    click.echo(f"wrote {out}: {sizes}")


@cli.command()
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
@_precision_option
@_threads_option
@_json_option
def evaluate(model_dir: Path | None, data_dir: Path, split: str, backend: str,
             checkpoint_dir: Path | None, batch_size: int, precision: str,
             threads: int | None, as_json: bool) -> None:
    """Stream perplexity of a data split (state carried across lines)."""
    from .evaluate import evaluate as run_evaluate

    result = run_evaluate(model_dir, data_dir, split, backend, checkpoint_dir, batch_size,
                          precision, threads)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{split} perplexity {result['perplexity']:.3f} ({backend}, "
                   f"{result['precision']}, {result['tokens']:,} predicted tokens)")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/kjv"),
              show_default=True, help="Folder for data/, checkpoint/ and model/.")
@_ingest_options
@_train_options
@_overwrite_option
def run(out: Path, overwrite: bool, **kw: Any) -> None:
    """All stages into OUT/data, OUT/checkpoint, OUT/model (preset `tiny` unless --preset),
    then score two example sentences and generate a line."""
    from pocketlm.export import export as run_export

    from .ingest import ingest as run_ingest
    from .train import train as run_train

    ingest_config, train_config = _ingest_config(kw), _train_config(kw, "tiny")
    from pocketlm.runtime.artifact import check_output_folder

    for part in ("data", "checkpoint", "model"):
        check_output_folder(out / part, overwrite)
    log = logging.getLogger("pocketlm")
    log.info("[1/3] ingest → %s", out / "data")
    run_ingest(ingest_config, out / "data", overwrite)
    log.info("[2/3] train → %s", out / "checkpoint")
    ckpt = run_train(train_config, out / "data", out / "checkpoint", overwrite,
                     progress=False)
    log.info("[3/3] export → %s", out / "model")
    run_export(out / "checkpoint", out / "model", overwrite=overwrite)
    lm = _load(out / "model")
    click.echo(f"data:        {out / 'data'}")
    click.echo(f"checkpoint:  {out / 'checkpoint'}")
    click.echo(f"model:       {out / 'model'}")
    click.echo(f"valid perplexity: {_fmt(ckpt['metrics']['valid_ppl'])} (test "
               f"{_fmt(ckpt['metrics']['test_ppl'])})")
    examples = ["and god said, let there be light", "light be there let, said god and"]
    for s in lm.analyze(examples):
        click.echo(f"score {s.logprob:9.3f}  {s.sentence}")
    click.echo(f"generated: {lm.generate('and the lord said', max_words=20, seed=0)}")


#: The stage commands registered above. ``cli`` is then the whole command line (the runtime's
#: group, which serves these commands lazily), so ``pocketlm.pipeline.cli.cli`` keeps working
#: for callers that invoke it directly.
stages = cli
from pocketlm.runtime.cli import cli  # noqa: E402,F811


def main() -> None:
    """Console-script entry point (the runtime's, which serves these commands too)."""
    from pocketlm.runtime.cli import main as runtime_main

    runtime_main()


if __name__ == "__main__":
    main()
