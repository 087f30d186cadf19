"""runtime/options.py: limits declared in field metadata are enforced on a config built in
Python and become the click options of a command (the generation settings as the example)."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

from pocketlm.runtime.artifact import InputError, PocketLMError
from pocketlm.runtime.generation import Generator
from pocketlm.runtime.model import LanguageModel
from pocketlm.runtime.options import bounds_text, check_fields, click_options, option, option_name
from pocketlm.runtime.sampling import DEFAULTS, SamplingConfig


@dataclass(frozen=True)
class Example:
    size: int = field(default=2, metadata=option("How many.", minimum=1))
    share: float = field(default=0.5, metadata=option("A share.", minimum=0, maximum=1,
                                                      max_open=True, note="a fraction"))
    kind: str = field(default="a", metadata=option("Which one.", choices=("a", "b")))
    names: tuple[str, ...] = field(default=(), metadata=option("Names.", multiple=True))
    hidden: bool = field(default=False, metadata=option("Not on the command line.", cli=False))
    plain: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "example")


def test_limits_are_checked_with_a_one_line_error() -> None:
    Example(size=1, share=0.0, kind="b")
    with pytest.raises(InputError, match=r"^example: size must be >= 1, got 0$"):
        Example(size=0)
    with pytest.raises(InputError, match=r"share must be in \[0, 1\), got 1 \(a fraction\)"):
        Example(share=1)
    with pytest.raises(PocketLMError, match="unknown kind 'c'; choose one of a, b"):
        Example(kind="c")
    assert bounds_text({"minimum": 0, "maximum": 1, "min_open": True}) == "in (0, 1]"


def test_click_options_follow_the_fields() -> None:
    @click.command()
    @click_options(Example)
    def cmd(**kw: object) -> None:
        click.echo(repr(sorted(kw.items())))

    names = [p.opts[0] for p in cmd.params]
    assert names == ["--size", "--share", "--kind", "--names"]   # no cli=False, no help: none
    runner = CliRunner()
    ok = runner.invoke(cmd, ["--size", "3", "--names", "x", "--names", "y"])
    assert ok.exit_code == 0 and "('names', ('x', 'y'))" in ok.output
    assert "('size', 3)" in ok.output and "('share', 0.5)" in ok.output
    bad = runner.invoke(cmd, ["--share", "1"])
    assert bad.exit_code == 2 and "--share" in bad.output


def test_sampling_settings_declared_once() -> None:
    """The generation methods' defaults are SamplingConfig's, and its limits are enforced."""
    for method in (LanguageModel.generate, LanguageModel.samples, LanguageModel.stream,
                   Generator.generate, Generator.samples, Generator.stream):
        params = inspect.signature(method).parameters
        for f in dataclasses.fields(SamplingConfig):
            if f.name in params:
                assert params[f.name].default == getattr(DEFAULTS, f.name), (method, f.name)
    assert option_name(dataclasses.fields(SamplingConfig)[5]) == "--num"
    with pytest.raises(InputError, match=r"top_p must be in \(0, 1\], got 0.0"):
        SamplingConfig(top_p=0.0)
    with pytest.raises(InputError, match="num_samples must be >= 1"):
        SamplingConfig(num_samples=0)
