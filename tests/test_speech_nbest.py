"""runtime/speech/nbest.py: the three n-best formats, their one-line errors, atomic writes, the
rescored lists' JSON and text."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pocketlm.runtime import InputError
from pocketlm.runtime.speech.nbest import (Hypothesis, NBestList, Ranked, ranked_json,
                                           ranked_text, read_jsonl, read_kaldi, read_nbest,
                                           read_text, write_jsonl, write_kaldi)


def test_text_lists_split_on_blank_lines() -> None:
    lists = list(read_text(io.StringIO("-1.5\tthe cat\n-2\tthe cap\n\n-3\ta dog\n"), "n.txt"))
    assert [nb.id for nb in lists] == [1, 2]
    assert lists[0].hypotheses[1] == Hypothesis("the cap", {"score": -2.0})


def test_jsonl_features_are_numeric_fields() -> None:
    line = json.dumps({"id": "u1", "hypotheses": [
        {"text": "a b", "acoustic": -10, "lm": -3.5}, "c d"]})
    (nb,) = read_jsonl(io.StringIO(line + "\n"))
    assert nb.id == "u1"
    assert nb.hypotheses[0].features == {"acoustic": -10.0, "lm": -3.5}
    assert nb.hypotheses[1] == Hypothesis("c d", {})


def test_auto_detects_the_format() -> None:
    assert list(read_nbest(io.StringIO('\n{"hypotheses": ["x"]}\n')))[0].hypotheses[0].text \
        == "x"
    assert list(read_nbest(io.StringIO("\n0\tx\n")))[0].hypotheses[0].features == {"score": 0}


@pytest.mark.parametrize("text, needle", [
    ("abc\tthe cat\n", "n.txt:1: expected `score<TAB>sentence`"),
    ("-1\tok\nnan\tbad\n", "n.txt:2:"),
    ("-1 no tab\n", "n.txt:1:"),
])
def test_text_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        list(read_text(io.StringIO(text), "n.txt"))


@pytest.mark.parametrize("line, needle", [
    ('{"id": 1, "hypotheses": []}', '"hypotheses" is empty'),
    ('{"id": 1}', 'no "hypotheses" list'),
    ('{"hypotheses": [{"score": 1}]}', 'hypothesis 0 has no "text"'),
    ('{"hypotheses": [{"text": "a", "acoustic": "x"}]}', "field 'acoustic' is 'x'"),
    ('{"hypotheses": [{"text": "a", "lm": true}]}', "field 'lm' is True"),
    ("{not json", "not JSON"),
])
def test_jsonl_errors_name_line_and_field(line: str, needle: str) -> None:
    with pytest.raises(InputError, match="n.jsonl:2: ") as info:
        list(read_jsonl(io.StringIO('{"hypotheses": ["ok"]}\n' + line + "\n"), "n.jsonl"))
    assert needle in str(info.value) and "\n" not in str(info.value)


def _kaldi(tmp_path: Path, text: str, ac: str) -> tuple[Path, Path]:
    (tmp_path / "text").write_text(text)
    (tmp_path / "ac").write_text(ac)
    return tmp_path / "text", tmp_path / "ac"


def test_kaldi_text_and_costs(tmp_path: Path) -> None:
    text, ac = _kaldi(tmp_path, "utt1-1 the cat\nutt1-2 the cap\nutt2-1 a dog\n",
                      "utt1-1 10.5\nutt1-2 11\nutt2-1 3\n")
    lists = read_kaldi(text, {"acoustic": ac})
    assert [nb.id for nb in lists] == ["utt1", "utt2"]
    assert lists[0].hypotheses[1] == Hypothesis("the cap", {"acoustic": -11.0})


@pytest.mark.parametrize("text, ac, needle", [
    ("u-1 a\n", "u-2 1\n", "ac:1: unknown hypothesis id 'u-2'"),
    ("u-1 a\nu-2 b\n", "u-1 1\n", "no cost for hypothesis u-2"),
    ("u-1 a\n", "u-1 x\n", "ac:1: cost 'x' of u-1 is not a finite number"),
    ("nonumber a\n", "u-1 1\n", "text:1: expected `<utterance>-<n> ...`"),
    ("", "", "no hypotheses"),
    ("u-1 a\nu-1 b\n", "u-1 1\n", "text:2: hypothesis u-1 appears twice"),
])
def test_kaldi_errors(tmp_path: Path, text: str, ac: str, needle: str) -> None:
    t, a = _kaldi(tmp_path, text, ac)
    with pytest.raises(InputError, match=needle):
        read_kaldi(t, {"acoustic": a})


def test_writers_round_trip(tmp_path: Path) -> None:
    lists = [NBestList("u1", (Hypothesis("a b", {"acoustic": -1.5, "lm": -2.0}),
                              Hypothesis("a c", {"acoustic": -1.0, "lm": -4.0}))),
             NBestList("u2", (Hypothesis("d", {"acoustic": -3.0, "lm": -1.0}),))]
    write_jsonl(lists, tmp_path / "n.jsonl")
    assert list(read_jsonl((tmp_path / "n.jsonl").open())) == lists
    write_kaldi(lists, tmp_path / "k")
    back = read_kaldi(tmp_path / "k" / "text", {"acoustic": tmp_path / "k" / "acoustic_cost",
                                                "lm": tmp_path / "k" / "lm_cost"})
    assert back == lists


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text("old\n")

    def lists():
        yield NBestList("u1", (Hypothesis("a"),))
        raise RuntimeError("the recogniser crashed")

    with pytest.raises(RuntimeError):
        write_jsonl(lists(), path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["n.jsonl"]


def test_json_ids_kept_as_written_else_numbered() -> None:
    lines = [json.dumps({"id": 7, "hypotheses": ["a"]}), "",
             json.dumps({"hypotheses": ["b"]}), json.dumps({"id": "u3", "hypotheses": ["c"]})]
    assert [nb.id for nb in read_jsonl(io.StringIO("\n".join(lines) + "\n"))] == [7, 2, "u3"]


def test_ranked_writers() -> None:
    """The input's `score` is written as base_score (score is the total); text has the base
    and pocketlm columns only when the input had a score."""
    ranked = [Ranked("a b", -3.5, 1, {"score": -1.0, "pocketlm": -5.0, "words": 2.0}, oov=0),
              Ranked("a c", -4.0, 0, {"score": -2.0, "pocketlm": -4.0, "words": 2.0}, oov=1)]
    row = json.loads(ranked_json("u1", ranked))
    assert row["id"] == "u1"
    assert row["hypotheses"][0] == {"text": "a b", "score": -3.5, "base_score": -1.0,
                                    "pocketlm": -5.0, "words": 2.0, "oov": 0, "index": 1}
    assert ranked_text(ranked) == ["-3.5000\t-1.0000\t-5.0000\ta b",
                                   "-4.0000\t-2.0000\t-4.0000\ta c", ""]
    plain = [Ranked("d", 1.25, 0, {"acoustic": -1.0, "pocketlm": -2.0})]
    assert ranked_text(plain) == ["1.2500\td", ""]
    assert "oov" not in json.loads(ranked_json(1, plain))["hypotheses"][0]
