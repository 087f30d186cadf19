"""What torchrun starts in every process: the ``pocketlm train`` command alone.

``pocketlm train --nproc N`` hands over to ``torchrun ... -m pocketlm.stages.torchrun <options>``;
on several machines start it yourself (docs/long-runs.md). Errors print as one line, as the
``pocketlm`` command prints them.
"""

from __future__ import annotations

import click

from pocketlm.runtime.artifact import PocketLMError
from pocketlm.runtime.group import setup_logging

from .train import train


def main() -> None:
    """Run the train command with this process's arguments."""
    setup_logging(0)
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


if __name__ == "__main__":   # torchrun --nproc-per-node N -m pocketlm.stages.torchrun ...
    main()
