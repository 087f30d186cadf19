"""runtime/speech/cli.py: `pocketlm rescore` with JSON features, Kaldi n-best, weights,
--tune, and one-line errors with nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from pocketlm.runtime.cli import cli


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


#: Two utterances per "verse" (ids v1-a, v1-b, ...): the acoustically best candidate is wrong.
LISTS = [
    {"id": f"v{v}-{x}", "hypotheses": [
        {"text": "the cat sees cat ball", "acoustic": -10.0},
        {"text": "the cat sees the ball", "acoustic": -10.5},
        {"text": "the cat sees the ball the", "acoustic": -10.7}]}
    for v in range(4) for x in "ab"]


def test_plain_path_is_the_runtime_command(toy_model: Path) -> None:
    result = run("rescore", "--model", str(toy_model), input="-1\tthe cat sees the ball\n")
    assert result.exit_code == 0, result.output
    score, base, lm, text = result.output.splitlines()[0].split("\t")
    assert text == "the cat sees the ball" and float(base) == -1.0


def test_weights_choose_with_pocketlm(toy_model: Path, tmp_path: Path) -> None:
    (tmp_path / "n.jsonl").write_text("\n".join(json.dumps(x) for x in LISTS) + "\n")
    result = run("rescore", "--model", str(toy_model), str(tmp_path / "n.jsonl"),
                 "--weights", "acoustic=1,pocketlm=1", "--top", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [x["id"] for x in LISTS]
    best = rows[0]["hypotheses"][0]
    assert best["text"] == "the cat sees the ball" and {"pocketlm", "words"} <= set(best)


def test_tune_and_weights_file(toy_model: Path, tmp_path: Path) -> None:
    (tmp_path / "n.jsonl").write_text("\n".join(json.dumps(x) for x in LISTS) + "\n")
    (tmp_path / "refs").write_text("".join(f"{x['id']} the cat sees the ball\n" for x in LISTS))
    result = run("rescore", "--model", str(toy_model), str(tmp_path / "n.jsonl"), "--tune",
                 str(tmp_path / "refs"), "--folds", "2", "--weights-out", str(tmp_path / "w"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[0])
    assert summary["wer_first_candidate"] == pytest.approx(100 * 8 / 40)
    assert summary["wer_cross_validated"] == 0.0
    weights = json.loads((tmp_path / "w").read_text())["weights"]
    assert weights["acoustic"] == 1.0 and weights["pocketlm"] > 0
    out = tmp_path / "best.jsonl"
    result = run("rescore", "--model", str(toy_model), str(tmp_path / "n.jsonl"),
                 "--weights-file", str(tmp_path / "w"), "--top", "1", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert {json.loads(x)["hypotheses"][0]["text"] for x in out.read_text().splitlines()} \
        == {"the cat sees the ball"}


def test_kaldi_nbest(toy_model: Path, tmp_path: Path) -> None:
    (tmp_path / "text").write_text("u1-1 the cat sees cat ball\nu1-2 the cat sees the ball\n")
    (tmp_path / "ac").write_text("u1-1 10.0\nu1-2 10.5\n")
    result = run("rescore", "--model", str(toy_model), "--format", "kaldi",
                 str(tmp_path / "text"), "--kaldi-cost", f"acoustic={tmp_path / 'ac'}",
                 "--weights", "acoustic=1,pocketlm=1", "--top", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith("\tthe cat sees the ball")


@pytest.mark.parametrize("files, args, needles", [
    ({"text": "u1-1 a\n", "ac": "u1-1 ten\n"}, ["--format", "kaldi", "@text", "--kaldi-cost",
                                                "acoustic=@ac"], ["ac:1: cost 'ten' of u1-1"]),
    ({"text": "u1-1 a\n", "ac": "u9-1 1\n"}, ["--format", "kaldi", "@text", "--kaldi-cost",
                                              "acoustic=@ac"], ["unknown hypothesis id 'u9-1'"]),
    ({"n": '{"id": "u1", "hypotheses": []}\n'}, ["@n", "--weights", "acoustic=1"],
     ["n:1:", '"hypotheses" is empty']),
    ({"n": '{"id": "u1", "hypotheses": [{"text": "a", "acoustic": "x"}]}\n'},
     ["@n", "--weights", "acoustic=1"], ["n:1:", "field 'acoustic'"]),
    ({"n": '{"id": "u1", "hypotheses": ["a"]}\n', "r": "u2 a\n"}, ["@n", "--tune", "@r"],
     ["r:1: unknown utterance id 'u2'"]),
    ({"n": '{"id": "u1", "hypotheses": ["a"]}\n'}, ["@n", "--weights", "acoustic=loud"],
     ["--weights", "acoustic"]),
    ({"n": '{"id": "u1", "hypotheses": ["a"]}\n'}, ["@n", "--weights", "nosuch=1"],
     ["no feature named 'nosuch'"]),
])
def test_bad_input_one_line_nothing_written(toy_model: Path, tmp_path: Path, files: dict,
                                            args: list[str], needles: list[str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = [a.replace("@", str(tmp_path) + "/") for a in args]
    out = tmp_path / "out.jsonl"
    result = run("rescore", "--model", str(toy_model), *args, "--output", str(out))
    one_line_error(result, *needles)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def _slf(middle: str, wrong: str) -> str:
    """the cat sees {middle | wrong} ball; the wrong word is acoustically better."""
    return "\n".join([
        "VERSION=1.0", "start=0\tend=6", "N=7\tL=7",
        *[f"I={i}\tt={i / 10}" for i in range(7)],
        "J=0\tS=0\tE=1\tW=<s>\ta=-1.0\tp=1", "J=1\tS=1\tE=2\tW=the\ta=-5.0\tp=1",
        "J=2\tS=2\tE=3\tW=cat\ta=-6.0\tp=1", "J=3\tS=3\tE=4\tW=sees\ta=-4.0\tp=1",
        f"J=4\tS=4\tE=5\tW={middle}\ta=-5.5\tp=0.4", f"J=5\tS=4\tE=5\tW={wrong}\ta=-5.0\tp=0.6",
        "J=6\tS=5\tE=6\tW=ball\ta=-7.0\tp=1"]) + "\n"


def test_lattices_searched_with_pocketlm(toy_model: Path, tmp_path: Path) -> None:
    (tmp_path / "a.slf").write_text(_slf("the", "cat"))
    (tmp_path / "b.slf").write_text(_slf("the", "sees"))
    (tmp_path / "list.scp").write_text(f"utt-a a.slf\nutt-b {tmp_path / 'b.slf'}\n")
    out = tmp_path / "best.jsonl"
    result = run("rescore", "--model", str(toy_model), "--format", "slf",
                 str(tmp_path / "list.scp"), "--lm-scale", "1", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["utt-a", "utt-b"]
    for row in rows:
        best = row["hypotheses"][0]
        assert best["text"] == "the cat sees the ball"
        assert {"acoustic", "posterior", "words", "pocketlm"} <= set(best)
        assert best["acoustic"] == pytest.approx(-28.5)
        assert best["posterior"] == pytest.approx(np.log(0.4))
        assert len(row["hypotheses"]) == 2
    # with the acoustics alone the wrong word wins: the language model made the choice
    alone = run("rescore", "--model", str(toy_model), "--format", "slf", str(tmp_path / "a.slf"),
                "--lm-scale", "0", "--top", "1")
    assert alone.exit_code == 0 and alone.output.split("\t")[1].strip() == \
        "the cat sees cat ball", alone.output


@pytest.mark.parametrize("listing, needle", [
    ("a.slf extra words\n", "list.scp:1: expected `path` or `<id> <path>`, got 3 fields"),
    ("missing.slf\n", "list.scp:1: no such lattice file"),
    ("# nothing\n", "list.scp: no lattices"),
])
def test_bad_lattice_lists(toy_model: Path, tmp_path: Path, listing: str, needle: str) -> None:
    (tmp_path / "a.slf").write_text(_slf("the", "cat"))
    (tmp_path / "list.scp").write_text(listing)
    out = tmp_path / "best.jsonl"
    result = run("rescore", "--model", str(toy_model), "--format", "slf",
                 str(tmp_path / "list.scp"), "--output", str(out))
    one_line_error(result, needle)
    assert not out.exists()
