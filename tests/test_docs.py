"""The documentation's examples run: every ```python block of docs/*.md is executed against the
toy model, and every option a ```bash block passes to ``pocketlm`` exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def _blocks(language: str) -> list[tuple[str, str]]:
    """(id, code) of every fenced block of ``language`` in docs/*.md, id = file:line."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{page.name}:{line}", match.group(2)))
    return found


PYTHON = _blocks("python")
BASH = _blocks("bash")


def test_docs_have_examples() -> None:
    assert {name.split(":")[0] for name, _ in PYTHON} >= {"runtime.md"}
    assert BASH


@pytest.mark.parametrize("code", [c for _, c in PYTHON], ids=[n for n, _ in PYTHON])
def test_python_example_runs(code: str, toy_model: Path, request: pytest.FixtureRequest) -> None:
    namespace = {"__name__": "__docs__", "model_dir": str(toy_model)}
    if "salad_model_dir" in code:  # the rescoring example needs apple, pear, pair and salad
        namespace["salad_model_dir"] = str(request.getfixturevalue("salad_model"))
    for task in ("classify", "tag"):  # the classifier and tagger examples
        if f"{task}_model_dir" in code:
            namespace[f"{task}_model_dir"] = str(request.getfixturevalue(f"{task}_model"))
    exec(compile(code, "<docs example>", "exec"), namespace)


def _commands(code: str) -> list[list[str]]:
    """The ``pocketlm`` command lines of a bash block (comments and redirections dropped)."""
    lines = []
    for raw in code.splitlines():
        raw = raw.split(" #")[0].strip()
        if not raw.startswith("pocketlm"):
            continue
        words = shlex.split(raw.split(" < ")[0].split(" | ")[0])
        lines.append(words)
    return lines


@pytest.mark.parametrize("code", [c for _, c in BASH], ids=[n for n, _ in BASH])
def test_bash_example_options_exist(code: str) -> None:
    import click

    from pocketlm.runtime.cli import cli

    def names(params: list) -> set[str]:
        return {o for p in params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}

    for words in _commands(code):
        words = words[1:]
        global_options = names(cli.params)
        while words and words[0] in global_options:
            words = words[1:]
        assert words, "a pocketlm line without a command"
        command = cli.get_command(click.Context(cli), words[0])
        assert command is not None, f"no command {words[0]!r}"
        known = names(command.params) | {"-h", "--help"}
        for word in words[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"pocketlm {words[0]} has no option {word}"
