"""runtime/keyboard_cli.py: `pocketlm suggest` one shot, --correct, --json, stdin contexts, the
scripted --interactive mode, --no-infer-punctuation, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.cli import cli
from pocketlm.runtime.keyboard import Keyboard, LMSource, keyboard


def ok(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_suggest_matches_the_api(toy_model: Path) -> None:
    want = keyboard(LanguageModel(toy_model)).suggest("the old", "m", 2)
    out = ok("suggest", "--model", str(toy_model), "the old", "--prefix", "m", "--k", "2")
    rows = [line.split("\t") for line in out.output.splitlines()]
    assert [r[0].strip() for r in rows] == [s.word for s in want]
    assert [float(r[1]) for r in rows] == [round(s.logprob, 4) for s in want]
    got = json.loads(ok("suggest", "--model", str(toy_model), "the old", "--prefix", "m",
                        "--k", "2", "--json").output)
    assert got["context"] == "the old" and [s["word"] for s in got["suggestions"]] == \
        [s.word for s in want]


def test_punctuation_inferred_unless_switched_off(toy_model: Path) -> None:
    lm, context = LanguageModel(toy_model), "the cat sees the ball the dog likes a tree"
    plain = Keyboard(LMSource(lm), infer_punctuation=False)
    for flags, kb in (([], keyboard(lm)), (["--no-infer-punctuation"], plain)):
        got = json.loads(ok("suggest", "--model", str(toy_model), context, "--k", "4", "--json",
                            *flags).output)["suggestions"]
        want = kb.suggest(context, "", 4)
        assert [s["word"] for s in got] == [s.word for s in want]
        assert [s["logprob"] for s in got] == [s.logprob for s in want]
    assert keyboard(lm).context(context).branches  # a mark was inferred after "tree"


def test_correct_and_stdin_contexts(toy_model: Path) -> None:
    got = json.loads(ok("suggest", "--model", str(toy_model), "the old", "--correct", "mab",
                        "--json").output)
    assert got["suggestions"][0]["word"] == "man" and got["suggestions"][0]["channel"] == -4.0
    lines = ok("suggest", "--model", str(toy_model), "--json",
               input="the cat\nthe old man\n").output.splitlines()
    assert [json.loads(line)["context"] for line in lines] == ["the cat", "the old man"]
    assert json.loads(ok("suggest", "--model", str(toy_model), "the", "--prefix", "qq",
                         "--json").output)["suggestions"] == []


def test_interactive_reads_keystrokes_from_stdin_lines(toy_model: Path) -> None:
    out = ok("suggest", "--model", str(toy_model), "--interactive", "--json",
             input="the ol\t m\x7fma\nthe zorgblat sees the zo\n").output.splitlines()
    rows = [json.loads(line) for line in out]
    assert len(rows) == len("the ol\t m\x7fma") + len("the zorgblat sees the zo")
    assert rows[6]["key"] == "\t" and rows[6]["text"] == "the old"   # Tab took "old"
    assert rows[9]["text"] == "the old"                                # DEL removed the m
    assert rows[10]["text"] == "the old m"
    assert rows[-1]["suggestions"][0]["word"] == "zorgblat"           # learned on the line
    text = ok("suggest", "--model", str(toy_model), "--interactive", input="the c\n").output
    assert text.splitlines()[-1].startswith("the c|\t")


def test_errors_are_one_line(toy_model: Path) -> None:
    for args in (["suggest", "--model", "/nonexistent/m", "x"],
                 ["suggest", "--model", str(toy_model), "--k", "0", "x"],
                 ["suggest", "--model", str(toy_model), "--interactive", "x"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
