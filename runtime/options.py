"""Config fields that declare their own command-line option and limits, for the runtime.

A config is a frozen dataclass; each field that is a setting carries, in its metadata, the help
text and the limits (``minimum``, ``maximum``, open bounds, ``choices``), and optionally the
option's ``name`` when it differs from the field's (``num_samples`` → ``--num``), ``multiple``
for a repeatable option and ``cli=False`` for a setting the command line does not offer. From
that one declaration come::

    field(default, metadata=option(help, minimum=..))
        ├─ check_fields(config)   the limits, enforced on a config built in Python
        ├─ click_options(cls)     the command's click options (type, range, default, help)
        └─ web/tools/constants.py the JavaScript package's defaults and limits

click is imported only when options are built, so the library does not need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .artifact import InputError

Choices = Iterable[str] | Callable[[], Iterable[str]]


def option(help: str, **cli: Any) -> dict[str, Any]:
    """Field metadata from which the limits and the command-line option are derived: ``help``,
    and optionally ``minimum``/``maximum`` (with ``min_open``/``max_open``), ``choices`` (names
    or a callable listing them), ``name``, ``multiple``, ``cli=False``, a ``note`` for the
    error, ``integer=True`` for a number the JavaScript package must check is whole."""
    return {"help": help, **cli}


def option_name(fld: dataclasses.Field[Any]) -> str:
    """The command-line option of a config field: ``top_k`` → ``--top-k`` unless its metadata
    names another."""
    return str(fld.metadata.get("name", "--" + fld.name.replace("_", "-")))


def choice_names(choices: Choices) -> list[str]:
    """The allowed names now (a registry's current members when ``choices`` is callable)."""
    return list(choices() if callable(choices) else choices)


def bounds_text(meta: Mapping[str, Any]) -> str:
    """The declared limits in words: ``>= 0``, ``in (0, 1]``."""
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return (f"in {'(' if meta.get('min_open') else '['}{lo}, {hi}"
                f"{')' if meta.get('max_open') else ']'}")
    if lo is not None:
        return f"{'>' if meta.get('min_open') else '>='} {lo}"
    return f"{'<' if meta.get('max_open') else '<='} {hi}"


def inside(value: Any, meta: Mapping[str, Any]) -> bool:
    """True when ``value`` is within the declared limits."""
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and (value < lo or (meta.get("min_open") and value == lo)):
        return False
    return not (hi is not None and (value > hi or (meta.get("max_open") and value == hi)))


def check_fields(config: Any, where: str) -> None:
    """Refuse a field outside its declared choices or bounds with an :class:`InputError` that
    names ``where``, the field and the allowed values."""
    for f in dataclasses.fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None or "help" not in meta:
            continue
        if "choices" in meta:
            names = choice_names(meta["choices"])
            if value not in names:
                raise InputError(f"{where}: unknown {f.name} {value!r}; choose one of "
                                 f"{', '.join(names)}")
        elif ("minimum" in meta or "maximum" in meta) and not isinstance(value, tuple) \
                and not inside(value, meta):
            note = f" ({meta['note']})" if "note" in meta else ""
            raise InputError(f"{where}: {f.name} must be {bounds_text(meta)}, got "
                             f"{value!r}{note}")


def click_option(fld: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    """The click option of one config field (the keyword argument keeps the field's name)."""
    import click

    meta, name, kind = fld.metadata, option_name(fld), str(fld.type)
    if meta.get("multiple"):
        return click.option(name, fld.name, multiple=True, help=meta["help"])
    kwargs: dict[str, Any] = {"help": meta["help"], "default": fld.default,
                              "show_default": fld.default not in ((), None)}
    if "choices" in meta:
        return click.option(name, fld.name, type=click.Choice(choice_names(meta["choices"])),
                            **kwargs)
    lo, hi = meta.get("minimum"), meta.get("maximum")
    opens = {"min_open": bool(meta.get("min_open")), "max_open": bool(meta.get("max_open"))}
    bounded = lo is not None or hi is not None
    numbers: dict[str, Any] = {
        "int": click.IntRange(lo, hi, **opens) if bounded else click.INT,
        "float": click.FloatRange(lo, hi, **opens) if bounded else click.FLOAT}
    return click.option(name, fld.name, type=numbers.get(kind.split(" |")[0], click.STRING),
                        **kwargs)


def click_options(cls: type) -> Callable[[Any], Any]:
    """A decorator adding one option per field of ``cls`` that has help and is not
    ``cli=False``, in field order."""
    flds = [f for f in dataclasses.fields(cls)
            if "help" in f.metadata and f.metadata.get("cli", True)]

    def decorate(f: Any) -> Any:
        for fld in reversed(flds):
            f = click_option(fld)(f)
        return f

    return decorate
