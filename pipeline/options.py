"""Config fields that declare their own command-line option.

A stage config is a frozen dataclass; each field that is an option carries, in its metadata
(:func:`pocketlm.runtime.options.option`, shared with the runtime's configs), the help text and
the limits (``minimum``, ``maximum``, open bounds, ``choices``, a ``flag`` pair, a ``metavar``).
The stage commands generate their click options from these fields (``stages/options.py``),
and :func:`check_fields` enforces the same limits on a config built in Python, so each option is
declared once. ``choices`` may be a callable that lists a registry's
names at the time of asking, so a cell or output layer registered later is a valid choice.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pocketlm.runtime.artifact import PocketLMError
from pocketlm.runtime.options import bounds_text, choice_names, inside


def option_name(field_name: str) -> str:
    """The command-line option of a config field: ``vocab_size`` → ``--vocab-size``."""
    return "--" + field_name.replace("_", "-")


def check_fields(config: Any) -> None:
    """Refuse a field outside its declared choices or bounds, naming the option and the fix."""
    for f in fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None or "help" not in meta:
            continue
        name = option_name(f.name)
        if "choices" in meta:
            names = choice_names(meta["choices"])
            if value not in names:
                raise PocketLMError(f"unknown {f.name.replace('_', ' ')} {value!r} ({name}); "
                                    f"choose one of {', '.join(names)}")
        elif ("minimum" in meta or "maximum" in meta) and not isinstance(value, tuple) \
                and not inside(value, meta):
            note = f" ({meta['note']})" if "note" in meta else ""
            raise PocketLMError(f"{name} {value} must be {bounds_text(meta)}{note}")
