"""``pocketlm train``: its options, generated from ``ModelConfig`` and ``TrainConfig``; resuming;
and the hand-over to torchrun with ``--nproc N``, which re-runs this command in N processes
through :mod:`pocketlm.stages.torchrun`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from pocketlm.pipeline.config import TrainConfig, preset_names
from pocketlm.pipeline.model import ModelConfig
from pocketlm.runtime.group import STAGES, overwrite_option

from .options import RegistryChoice, config_options, pop_config
from .tasks import task_options, train_labelled

#: The module torchrun starts in every process (``python -m``).
TORCHRUN_MODULE = "pocketlm.stages.torchrun"


def train_options(f: Any) -> Any:
    """``--preset`` and one option per model and training field (default: from the preset)."""
    f = config_options(ModelConfig, TrainConfig, from_preset=True)(f)
    return click.option("--preset", type=RegistryChoice(preset_names), default=None,
                        help="Named configuration to start from.")(f)


def train_config(kw: dict[str, Any], default_preset: str) -> TrainConfig:
    """Pop the train options out of a command's keyword arguments and build the config."""
    from pocketlm.pipeline.config import preset

    name = kw.pop("preset") or default_preset
    return preset(name, **pop_config(ModelConfig, kw), **pop_config(TrainConfig, kw))


@click.command(help=f"{STAGES['train']}\n\nThe preset is `small` unless --preset.")
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
@train_options
@task_options
@overwrite_option
def train(data_dir: Path | None, out: Path | None, resume: Path | None, nproc: int | None,
          quiet: bool, overwrite: bool, **kw: Any) -> None:
    if nproc and nproc > 1 and "WORLD_SIZE" not in os.environ:
        _hand_over_to_torchrun(nproc)
    if train_labelled(kw, data_dir, out, resume, overwrite, False if quiet else None):
        return
    from pocketlm.pipeline.checkpoint import SavedRun
    from pocketlm.pipeline.train import train as run_train

    progress = False if quiet else None
    if resume is not None:
        if kw.pop("preset"):
            raise click.UsageError("--preset does not apply to --resume (the run keeps its "
                                   "config); give only the options to change")
        if out is not None and out.resolve() != resume.resolve():
            raise click.UsageError("--resume continues in its own folder; leave out --out")
        saved = SavedRun(resume)                       # read once; train() checks it
        config = TrainConfig.from_dict(saved.config_fields(kw))
        data_dir, out = data_dir or Path(saved.data_dir), resume
        manifest = run_train(config, data_dir, out, resume=saved, progress=progress)
    else:
        if data_dir is None or out is None:
            raise click.UsageError("give --data and --out (or --resume DIR)")
        manifest = run_train(train_config(kw, "small"), data_dir, out, overwrite,
                             progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    metrics = manifest["metrics"]
    click.echo(f"wrote {out}: valid perplexity {fmt(metrics['valid_ppl'])}, test "
               f"{fmt(metrics['test_ppl'])}, {metrics['tokens_per_s']:,.0f} tokens/s, "
               f"stopped by {manifest['status']['reason']} at step {metrics['steps']:,}")
    if "curve.png" in manifest["files"]:
        click.echo(f"curve: {out / 'curve.png'}")


def fmt(value: float | None) -> str:
    """A perplexity for a message (``n/a`` when there is none)."""
    return "n/a" if value is None else f"{value:.2f}"


def _hand_over_to_torchrun(nproc: int) -> None:
    """Re-run this train command under torchrun with ``nproc`` processes on this machine."""
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
        elif isinstance(value, tuple):
            argv += [param.opts[0], ",".join(str(v) for v in value)]
        else:
            argv += [param.opts[0], str(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", TORCHRUN_MODULE, *argv]
    logging.getLogger("pocketlm").info("train: %s", " ".join(command))
    raise SystemExit(subprocess.call(command))
