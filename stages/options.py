"""Click options generated from config fields (:mod:`pocketlm.pipeline.options`): each field
with help in its metadata becomes the option of the same name (``_`` → ``-``), its type, limits
and choices taken from the field. Ingest's options come from ``IngestConfig``, train's from
``ModelConfig`` and ``TrainConfig`` (default ``None``: "from the preset")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import click

from pocketlm.pipeline.options import choice_names, option_name

FROM_PRESET = " (default: from the preset)"


class RegistryChoice(click.Choice):
    """A choice among a registry's names at the time of asking, so a cell or an output layer
    registered after this option was built is offered and accepted too."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Any) -> None:  # click.Choice.__init__ sets it; the registry rules
        pass


class IntList(click.ParamType):
    """Comma-separated integers (``1000,4000``) as a tuple."""

    name = "C0,C1,..."

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return tuple(int(c) for c in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of word ids, e.g. 1000,4000",
                      param, ctx)


def field_option(fld: dataclasses.Field[Any], from_preset: bool) -> Callable[[Any], Any]:
    """The click option of one config field."""
    meta, name, kind = fld.metadata, option_name(fld.name), str(fld.type)
    default = None if from_preset else fld.default
    kwargs: dict[str, Any] = {"help": meta["help"] + (FROM_PRESET if from_preset else ""),
                              "show_default": not from_preset and default not in ((), None)}
    if kind.startswith("tuple[str"):
        return click.option(name, fld.name, multiple=True, metavar="FILE", help=meta["help"])
    if "flag" in meta:       # "--on/--off", or "--on" alone (a switch, off unless given)
        switch = {} if "/" in meta["flag"] else {"is_flag": True}
        return click.option(meta["flag"], fld.name, default=default, **switch, **kwargs)
    if "choices" in meta:
        choices = meta["choices"]
        kind_of = (RegistryChoice(choices) if callable(choices)
                   else click.Choice(choice_names(choices)))
        return click.option(name, fld.name, type=kind_of, default=default, **kwargs)
    if kind.startswith("tuple[int"):
        return click.option(name, fld.name, type=IntList(), default=default,
                            metavar=meta.get("metavar"), **kwargs)
    bounds = {"min": meta.get("minimum"), "max": meta.get("maximum"),
              "min_open": bool(meta.get("min_open")), "max_open": bool(meta.get("max_open"))}
    bounded = bounds["min"] is not None or bounds["max"] is not None
    numbers: dict[str, Any] = {
        "int": click.IntRange(**bounds) if bounded else click.INT,
        "float": click.FloatRange(**bounds) if bounded else click.FLOAT}
    kind_of = numbers.get(kind.split(" |")[0], click.STRING)
    return click.option(name, fld.name, type=kind_of, default=default, **kwargs)


def config_options(*configs: type, from_preset: bool = False) -> Callable[[Any], Any]:
    """A decorator adding one option per field (with help) of each config class, in order."""
    flds = [f for cls in configs for f in dataclasses.fields(cls) if "help" in f.metadata]

    def decorate(f: Any) -> Any:
        for fld in reversed(flds):
            f = field_option(fld, from_preset)(f)
        return f

    return decorate


def pop_config(cls: type, kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the options of ``cls``'s fields out of a command's keyword arguments."""
    return {f.name: kw.pop(f.name) for f in dataclasses.fields(cls) if f.name in kw}
