"""runtime/speech/cli.py: `pocketlm rescore`: the base case streamed (text and JSON lines, the
runtime's numbers), JSON features, Kaldi n-best, lattices, weights, --tune, and one-line errors
with nothing half-written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.cli import cli


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


NBEST_TEXT = ("-10.0\tthe cat sees the ball .\n-9.5\tthe cat sea the ball .\n\n"
              "-3\ta bird\n-2\tbird a\n-4\tthe dog likes the river !\n")


def test_rescore_text(toy_model: Path) -> None:
    """Plain n-best lists (score<TAB>sentence, blank line between lists) come out re-ranked,
    each followed by a blank line, with the runtime's numbers."""
    lm = LanguageModel(toy_model)
    out = ok("rescore", "--model", str(toy_model), "--weight", "0.5", input=NBEST_TEXT).stdout
    blocks = [b for b in out.split("\n\n") if b.strip()]
    assert len(blocks) == 2
    first = [line.split("\t") for line in blocks[0].splitlines()]
    expected = lm.rescore(["the cat sees the ball .", "the cat sea the ball ."], [-10.0, -9.5],
                          weight=0.5)
    assert [f[3] for f in first] == [r.sentence for r in expected]
    for fields, r in zip(first, expected):
        assert float(fields[0]) == pytest.approx(r.score, abs=1e-3)
        assert float(fields[1]) == r.base_score
        assert float(fields[2]) == pytest.approx(r.lm_logprob, abs=1e-3)
    assert len(blocks[1].splitlines()) == 3


def test_rescore_jsonl_and_file(toy_model: Path, tmp_path: Path) -> None:
    """JSON-lines n-best lists (hypotheses as objects or strings) give one JSON line per list
    with its id; a file argument works like stdin; --top keeps the best N."""
    rows = [{"id": "utt1", "hypotheses": [{"text": "the apple and pair salad", "score": -1.0},
                                          {"text": "the cat sees the ball .", "score": -1.2}]},
            {"hypotheses": ["a bird", "bird a"]}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    out = [json.loads(line) for line in ok("rescore", "--model", str(toy_model), "--json",
                                           input=text).stdout.splitlines()]
    assert [o["id"] for o in out] == ["utt1", 2]
    assert out[0]["hypotheses"][0]["text"] == "the cat sees the ball ."
    assert {"text", "score", "base_score", "pocketlm", "words", "oov", "index"} <= set(
        out[0]["hypotheses"][0])
    assert out[1]["hypotheses"][0]["base_score"] == 0.0
    path = tmp_path / "nbest.jsonl"
    path.write_text(text, encoding="utf-8")
    from_file = ok("rescore", "--model", str(toy_model), "--json", "--top", "1", str(path))
    top = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert [len(o["hypotheses"]) for o in top] == [1, 1]
    assert top[0]["hypotheses"][0] == out[0]["hypotheses"][0]


@pytest.mark.parametrize("text, needle", [
    ("abc\tthe cat\n", "<stdin>:1:"),
    ("-1\tthe cat\nno tab here\n", "<stdin>:2:"),
    ("{\"hypotheses\": 3}\n", "hypotheses"),
    ("{\"hypotheses\": [{\"text\": \"a\", \"score\": \"x\"}]}\n", "finite"),
    ("{not json\n", "<stdin>:1:"),
    ("nan\tthe cat\n", "finite"),
])
def test_rescore_bad_input(toy_model: Path, text: str, needle: str) -> None:
    """Malformed n-best input is a one-line error naming the line."""
    result = CliRunner().invoke(cli, ["rescore", "--model", str(toy_model)], input=text)
    one_line_error(result, needle)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lists=st.lists(st.lists(st.tuples(st.floats(-100, 100), st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\t\x0b\x0c"
                           "\x1c\x1d\x1e\x85\u2028\u2029"), max_size=20)), min_size=1,
    max_size=4), min_size=1, max_size=3))
def test_rescore_json_any_text(toy_model: Path, lists: list) -> None:
    """Any hypotheses and finite base scores in JSON lines come back, one line per list, each
    hypothesis once, best first."""
    text = "".join(json.dumps({"id": i, "hypotheses": [{"text": t, "score": s} for s, t in hyps]})
                   + "\n" for i, hyps in enumerate(lists))
    out = [json.loads(line) for line in ok("rescore", "--model", str(toy_model), "--json",
                                           "--batch-size", "3", input=text).stdout.splitlines()]
    assert [o["id"] for o in out] == list(range(len(lists)))
    for o, hyps in zip(out, lists):
        assert sorted(h["index"] for h in o["hypotheses"]) == list(range(len(hyps)))
        scores = [h["score"] for h in o["hypotheses"]]
        assert scores == sorted(scores, reverse=True) and all(map(math.isfinite, scores))


def test_registered_not_imported_by_the_core() -> None:
    """`rescore` is this module's command, found through its entry point; `pocketlm --help`
    lists it with its help, and loading the core imports nothing of runtime.speech."""
    import subprocess
    import sys

    from pocketlm.runtime.group import registered_commands
    from pocketlm.runtime.speech.cli import rescore

    assert registered_commands()["rescore"].load() is rescore
    assert "Re-rank n-best lists" in ok("--help").stdout
    code = ("import sys, pocketlm.runtime, pocketlm.runtime.cli, pocketlm.runtime.inputs; "
            "print(sorted(m for m in sys.modules if m.startswith('pocketlm.runtime.speech')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


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
