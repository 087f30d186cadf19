"""``pocketlm classify`` and ``pocketlm tag``: arguments and streamed stdin, text and JSON
output, hostile input (empty lines, control characters, bytes that are not UTF-8, a very long
line), and one-line errors for a folder of another task."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pocketlm.runtime import Classifier, Tagger
from pocketlm.runtime.cli import cli


def _run(*args: str, input: bytes | str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.output


def test_classify_arguments_and_json(classify_model: Path) -> None:
    code, out = _run("classify", "--model", str(classify_model), "Anna sees the cat ?",
                     "a dog .", "--top-k", "2")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split("\t")[0] == "question" and lines[0].endswith("\tAnna sees the cat ?")
    assert len(lines[0].split("\t")) == 5
    code, out = _run("classify", "--model", str(classify_model), "--json", "Mary likes Rome !")
    row = json.loads(out)
    expected = Classifier(classify_model).predict("Mary likes Rome !")[0]
    assert row["label"] == expected.label
    assert row["labels"][0]["probability"] == expected.probability


def test_classify_streams_hostile_stdin(classify_model: Path) -> None:
    lines = [b"Anna sees Rome !", b"", b"bad \xff\xfe bytes ?", b"a\x00b\x01c",
             b"\xed\xa0\x80 lone surrogate", ("John Smith likes Rome ! " * 3000).encode()]
    code, out = _run("classify", "--model", str(classify_model), "--precision=int8",
                     input=b"\n".join(lines) + b"\r\n")
    assert code == 0, out
    got = out.splitlines()
    assert len(got) == len(lines)
    assert got[0].startswith("exclamation\t") and "\ufffd" in got[2] and "\\x00" in got[3]


def test_tag_text_and_json(tag_model: Path) -> None:
    code, out = _run("tag", "--model", str(tag_model), "Mary likes New York")
    assert code == 0, out
    assert out.splitlines() == ["Mary/B-NAME likes/O New/B-PLACE York/I-PLACE",
                                "  NAME\t0-4\tMary", "  PLACE\t11-19\tNew York"]
    code, out = _run("tag", "--model", str(tag_model), "--json", input="Anna sees Rome\n\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0] == Tagger(tag_model).tag("Anna sees Rome").to_dict()
    assert rows[1]["words"] == []


def test_tag_hostile_stdin(tag_model: Path) -> None:
    code, out = _run("tag", "--model", str(tag_model),
                     input=b"\xff\n\x00\x1b[31m red\n" + b"Anna " * 20000 + b"\n")
    assert code == 0, out
    assert out.splitlines()[0] == "\ufffd/O"
    assert out.count("Anna/") == 20000


def test_wrong_task_folders_in_one_line(toy_model: Path, classify_model: Path,
                                        tag_model: Path) -> None:
    code, out = _run("classify", "--model", str(toy_model), "x")
    assert code == 1 and out.count("\n") == 1
    assert "is a language model folder" in out and "`pocketlm score`" in out
    code, out = _run("tag", "--model", str(classify_model), "x")
    assert code == 1 and "`pocketlm classify`" in out and "Traceback" not in out
    code, out = _run("score", "--model", str(tag_model), "x")
    assert code == 1 and out.count("\n") == 1 and "not a language model" in out
    code, out = _run("classify", "--model", str(classify_model), input="")
    assert code == 2 and "stdin was empty" in out


def test_help() -> None:
    for command in ("classify", "tag"):
        code, out = _run(command, "--help")
        assert code == 0 and "--model" in out and "--json" in out
    assert "classify" in _run("--help")[1]
