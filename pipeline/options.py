"""Config fields that declare their own command-line option.

A stage config is a frozen dataclass; each field that is an option carries, in its metadata, the
help text and the limits (``minimum``, ``maximum``, open bounds, ``choices``, a ``flag`` pair,
a ``metavar``). The stage commands generate their click options from these fields
(``stages/options.py``), and :func:`check_fields` enforces the same limits on a config built in
Python, so each option is declared once. ``choices`` may be a callable that lists a registry's
names at the time of asking, so a cell or output layer registered later is a valid choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any

from pocketlm.runtime.artifact import PocketLMError

Choices = Iterable[str] | Callable[[], Iterable[str]]


def option(help: str, **cli: Any) -> dict[str, Any]:
    """Field metadata from which the command-line option is derived: ``help``, and optionally
    ``flag`` ("--on/--off"), ``minimum``/``maximum`` (with ``min_open``/``max_open``),
    ``choices`` (names or a callable listing them), ``metavar``, a ``note`` for the error."""
    return {"help": help, **cli}


def option_name(field_name: str) -> str:
    """The command-line option of a config field: ``vocab_size`` → ``--vocab-size``."""
    return "--" + field_name.replace("_", "-")


def choice_names(choices: Choices) -> list[str]:
    """The allowed names now (a registry's current members when ``choices`` is callable)."""
    return list(choices() if callable(choices) else choices)


def _bounds(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return (f"in {'(' if meta.get('min_open') else '['}{lo}, {hi}"
                f"{')' if meta.get('max_open') else ']'}")
    if lo is not None:
        return f"{'>' if meta.get('min_open') else '>='} {lo}"
    return f"{'<' if meta.get('max_open') else '<='} {hi}"


def _inside(value: Any, meta: Mapping[str, Any]) -> bool:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and (value < lo or (meta.get("min_open") and value == lo)):
        return False
    return not (hi is not None and (value > hi or (meta.get("max_open") and value == hi)))


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
                and not _inside(value, meta):
            note = f" ({meta['note']})" if "note" in meta else ""
            raise PocketLMError(f"{name} {value} must be {_bounds(meta)}{note}")
