"""``pocketlm train --task T``: the options of the labelled tasks (generated from
:class:`~pocketlm.pipeline.task_train.TaskTrainConfig` and the encoder's own fields) and the
hand-over to :func:`~pocketlm.pipeline.task_train.train_task`. Options shared with the language
model (``--lr``, ``--epochs``, ``--hidden-size``, ...) keep their meaning; a language-model-only
option given with a labelled task, or a labelled-task option given with ``--task lm``, is refused
in one line."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click

from pocketlm.pipeline.config import TrainConfig
from pocketlm.pipeline.encoder import SAVED_DEFAULTS, EncoderConfig
from pocketlm.pipeline.model import ModelConfig
from pocketlm.pipeline.options import option_name
from pocketlm.pipeline.task_train import TaskTrainConfig
from pocketlm.pipeline.tasks import TASK_OPTION, get_task, labelled_task_names, task_names

from .options import RegistryChoice, field_option

_LM_FIELDS = {f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}
#: The labelled tasks' own option fields (the others are shared with the language model's).
TASK_FIELDS = [f for cls in (EncoderConfig, TaskTrainConfig) for f in dataclasses.fields(cls)
               if "help" in f.metadata and f.name not in _LM_FIELDS]
#: The fields a labelled task shares with the language model's options.
SHARED = ({f.name for f in dataclasses.fields(TaskTrainConfig)}
          | {f.name for f in dataclasses.fields(EncoderConfig)}) & _LM_FIELDS


def task_options(f: Any) -> Any:
    """``--task`` and one option per labelled-task field."""
    for fld in reversed(TASK_FIELDS):
        f = field_option(fld, from_preset=False)(f)
    return click.option("--task", type=RegistryChoice(task_names), default=None,
                        help=TASK_OPTION["help"])(f)


def train_labelled(kw: dict[str, Any], data_dir: Path | None, out: Path | None,
                   resume: Path | None, overwrite: bool, progress: bool | None) -> bool:
    """Train a labelled task when ``--task`` (or the resumed run) names one and return True;
    otherwise pop the labelled-task options (refusing any given) and return False."""
    from pocketlm.pipeline.task_train import train_task

    name = kw.pop("task") or (saved_task(resume) if resume is not None else "lm")
    own = {f.name: kw.pop(f.name) for f in TASK_FIELDS}
    task = get_task(name)
    if not task.labelled:
        changed = [f.name for f in TASK_FIELDS if own[f.name] != f.default]
        if changed:
            raise click.UsageError(f"{option_name(changed[0])} applies to the labelled tasks "
                                   f"(--task {'|'.join(labelled_task_names())})")
        return False
    given = {k: v for k, v in kw.items() if v is not None}
    lm_only = sorted(set(given) - SHARED)
    if lm_only:
        raise click.UsageError(f"{option_name(lm_only[0])} applies to the language model, not "
                               f"to --task {task.name}")
    if resume is not None:
        from pocketlm.pipeline.checkpoint import SavedRun

        saved = SavedRun(resume)
        changed = {f.name: own[f.name] for f in TASK_FIELDS if own[f.name] != f.default}
        config = TaskTrainConfig.of(**{**SAVED_DEFAULTS, **saved.meta["config"], **given,
                                       **changed})
        out = resume
        manifest = train_task(config, data_dir or Path(saved.meta["data"]["path"]), resume,
                              resume=saved, progress=progress)
    else:
        if data_dir is None or out is None:
            raise click.UsageError("give --data and --out (or --resume DIR)")
        config = TaskTrainConfig.of(task=task.name, **own, **given)
        manifest = train_task(config, data_dir, out, overwrite, progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"wrote {out}: {metrics_line(manifest)}")
    return True


def saved_task(folder: str | os.PathLike[str]) -> str:
    """The task of a checkpoint folder's training state (``lm`` for a language model)."""
    from pocketlm.pipeline.checkpoint import SavedRun

    return str(SavedRun(folder).meta["config"].get("task", "lm"))


def metrics_line(manifest: dict[str, Any]) -> str:
    """A one-line summary of a labelled checkpoint's metrics."""
    fmt = lambda scores: ", ".join(f"{k} {v:.4f}" for k, v in (scores or {}).items()) or "n/a"  # noqa: E731
    return (f"valid {fmt(manifest['metrics']['valid'])}; test {fmt(manifest['metrics']['test'])}"
            f"; stopped by {manifest['status']['reason']} at step {manifest['metrics']['steps']}")

