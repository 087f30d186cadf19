"""The ``pocketlm`` group: its logging, its error handling, the options several commands share,
and the commands it loads by name.

Commands beyond the runtime core's are found through the entry-point group :data:`COMMANDS`
(``[project.entry-points."pocketlm.commands"]`` in pyproject.toml: name = module:command): the
stage commands and ``rescore`` (which lives with the speech integration). The core never imports
them: it loads one only when it is named (or for ``--help``), and when a stage command's training
packages are missing it stands in a one-line error that says what to install::

    pocketlm <name> ──▶ a core command?  ──yes──▶ run it
                        ──no──▶ entry point <name> in pocketlm.commands ──▶ load, run it
                                (a stage without torch & co.: "needs the training extra ...")
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .artifact import PocketLMError

if TYPE_CHECKING:
    from .model import LanguageModel

#: The entry-point group the further commands are registered under.
COMMANDS = "pocketlm.commands"
#: The stage commands (they need the ``[train]`` extra) and their one-line help, for ``--help``
#: without loading them.
STAGES = {
    "ingest": "Read a corpus, build the vocabulary and write token ids per split.",
    "train": "Train a recurrent LM on an ingest folder (--task: a classifier or tagger).",
    "export": "Export a checkpoint to ONNX graphs checked against torch.",
    "evaluate": "Stream perplexity of a data split; a classifier's or tagger's metrics.",
    "run": "All stages into OUT/data, OUT/checkpoint, OUT/model.",
}
#: Import names of the ``[train]`` extra the stage commands need.
TRAIN_MODULES = ("torch", "datasets", "onnx", "safetensors")
INSTALL_TRAIN = "pip install 'pocketlm[train]'"


def missing_train_modules() -> list[str]:
    """The training-stack packages that cannot be imported here (none in a full install)."""
    missing = []
    for name in TRAIN_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install, or an import hook refusing it
            found = False
        if not found:
            missing.append(name)
    return missing


def _needs_train(command: str, missing: Iterable[str]) -> str:
    return (f"`pocketlm {command}` needs the training extra ({', '.join(missing)} not "
            f"installed); install it with: {INSTALL_TRAIN}")


def registered_commands() -> dict[str, EntryPoint]:
    """The commands installed under :data:`COMMANDS`, by name (nothing is imported)."""
    return {ep.name: ep for ep in entry_points(group=COMMANDS)}


def _unavailable(name: str, missing: list[str]) -> click.Command:
    """A stand-in for a stage command whose packages are missing: one line, exit 1."""

    def callback(**_: Any) -> None:
        raise click.ClickException(_needs_train(name, missing))

    return click.Command(name, callback=callback, help=f"{STAGES[name]} (needs {INSTALL_TRAIN})",
                         short_help=f"{STAGES[name]} (needs the [train] extra)",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


class PocketLMGroup(click.Group):
    """Runtime commands registered here, further commands loaded by name on demand; pocketlm's
    input errors (and a missing training package) become one-line click errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *registered_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = registered_commands().get(cmd_name)
        if entry is None:
            return None
        missing = missing_train_modules() if cmd_name in STAGES else []
        if missing:
            return _unavailable(cmd_name, missing)
        command = entry.load()
        if not isinstance(command, click.Command):
            raise click.ClickException(f"entry point {entry.value!r} of {COMMANDS} is not a "
                                       f"click command; reinstall pocketlm")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, without loading (or probing for) the stages."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            command = None if name in STAGES else self.get_command(ctx, name)
            rows.append((name, command.get_short_help_str(limit) if command
                         else STAGES.get(name, "")))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PocketLMError as exc:
            raise click.ClickException(str(exc)) from exc
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in TRAIN_MODULES:
                raise
            command = ctx.invoked_subcommand or "this command"
            raise click.ClickException(_needs_train(command, [top])) from exc


def _shared(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def decorate(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def setup_logging(verbosity: int) -> None:
    """Log pocketlm's messages to stderr: warnings only (-1), info (0) or debug (1)."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("pocketlm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False



model_option = click.option("--model", "model_dir", required=True,
                            type=click.Path(path_type=Path),
                            help="Model folder written by `pocketlm export`.")
precision_option = click.option("--precision", type=click.Choice(["fp32", "int8"]),
                                default="fp32", show_default=True, help="Which graphs to run.")
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="onnxruntime intra-op threads (default: onnxruntime's "
                                   "choice).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (one object per line) for scripts.")
overwrite_option = click.option("--overwrite", is_flag=True,
                                help="Replace the output folder if it exists.")
bos_option = click.option("--bos/--no-bos", default=True, show_default=True,
                          help="Start from the start-of-sentence context (else the first word "
                               "is context only).")
eos_option = click.option("--eos/--no-eos", default=True, show_default=True,
                          help="Count the final <eos> (else score an open prefix).")
batch_option = click.option("--batch-size", type=click.IntRange(min=1), default=256,
                            show_default=True, help="Lines read and scored at a time.")
#: --bos/--eos, --batch-size, --precision, --threads and --json: what scoring commands share.
scoring_options = _shared(bos_option, eos_option, batch_option, precision_option,
                          threads_option, json_option)


def open_language_model(model_dir: Path, precision: str = "fp32",
                        threads: int | None = None) -> LanguageModel:
    """Open a language model folder for a command (imported here: ``--help`` needs no
    onnxruntime); a classify or tag folder is refused in one line naming its command."""
    from .artifact import read_manifest
    from .model import LanguageModel
    from .tasks import task_of, wrong_task_message

    task = task_of(read_manifest(model_dir, "model", verify=False))
    if task != "lm":
        raise PocketLMError(wrong_task_message(model_dir, task, "lm"))
    return LanguageModel(model_dir, precision=precision, threads=threads)
