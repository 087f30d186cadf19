"""runtime/cli.py: rescore (JSON lines and text), perplexity, info, score's bos/eos flags,
stdin streamed in batches, and the stage commands' one-line message without the training
stack."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.runtime import LanguageModel
from pocketlm.runtime.cli import cli

from .conftest import BLOCK_TRAINING_STACK

REPO = Path(__file__).resolve().parent.parent


def ok(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
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
    assert {"text", "score", "base_score", "lm_logprob", "words", "oov", "index"} <= set(
        out[0]["hypotheses"][0])
    assert out[1]["hypotheses"][0]["base_score"] == 0.0
    path = tmp_path / "nbest.jsonl"
    path.write_text(text, encoding="utf-8")
    from_file = ok("rescore", "--model", str(toy_model), "--json", "--top", "1", str(path))
    top = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert [len(o["hypotheses"]) for o in top] == [1, 1]
    assert top[0]["hypotheses"][0] == out[0]["hypotheses"][0]


@pytest.mark.parametrize("text, needle", [
    ("abc\tthe cat\n", "line 1"),
    ("-1\tthe cat\nno tab here\n", "line 2"),
    ("{\"hypotheses\": 3}\n", "hypotheses"),
    ("{\"hypotheses\": [{\"text\": \"a\", \"score\": \"x\"}]}\n", "finite"),
    ("{not json\n", "line 1"),
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


def test_perplexity_command(toy_model: Path) -> None:
    """perplexity prints the runtime's figure over the non-blank lines."""
    lm = LanguageModel(toy_model)
    lines = ["the cat sees the ball .", "", "a child likes a tree !"]
    row = json.loads(ok("perplexity", "--model", str(toy_model), "--json",
                        input="\n".join(lines) + "\n").stdout)
    assert row["perplexity"] == pytest.approx(lm.perplexity(lines), rel=1e-6)
    assert row["lines"] == 2 and row["tokens"] == 14
    text = ok("perplexity", "--model", str(toy_model), *lines[::2]).stdout
    assert text.startswith(f"perplexity {row['perplexity']:.3f} (2 lines")
    one_line_error(CliRunner().invoke(cli, ["perplexity", "--model", str(toy_model)],
                                      input="\n \n"), "non-blank")


def test_info(toy_model: Path) -> None:
    """info prints the manifest summary; --json has the graphs, state and sizes."""
    text = ok("info", "--model", str(toy_model)).stdout
    for needle in ("lstm", "vocabulary", "fp32, int8", "score.onnx", "state_h", "perplexity"):
        assert needle in text
    row = json.loads(ok("info", "--model", str(toy_model), "--json", "--no-verify").stdout)
    assert row["precisions"] == ["fp32", "int8"]
    assert row["graphs"]["step"]["inputs"][0] == "token"
    assert row["graphs"]["score"]["files"]["fp32"]["bytes"] > 0
    assert [s["input"] for s in row["state"]] == ["state_h", "state_c"]
    one_line_error(CliRunner().invoke(cli, ["info", "--model", "/nonexistent/m"]),
                   "no such folder")


def test_score_flags(toy_model: Path) -> None:
    """score --no-bos/--no-eos pass through to the runtime."""
    lm = LanguageModel(toy_model)
    row = json.loads(ok("score", "--model", str(toy_model), "--json", "--no-bos", "--no-eos",
                        "the cat sees").stdout)
    assert row["logprob"] == pytest.approx(lm.score("the cat sees", bos=False, eos=False),
                                           abs=1e-5)
    assert row["tokens"] == 2


def test_stdin_is_streamed(toy_model: Path) -> None:
    """score answers each batch of stdin lines before stdin ends: it reads and prints
    incrementally (constant memory on any length of input)."""
    proc = subprocess.Popen([sys.executable, "-m", "pocketlm.runtime.cli", "score", "--model",
                             str(toy_model), "--batch-size", "5"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1, cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for _ in range(5):
            proc.stdin.write("the cat sees the ball .\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        got = []
        while len(got) < 5 and time.monotonic() < deadline:
            got.append(proc.stdout.readline())
        assert len(got) == 5 and all(line.endswith("the cat sees the ball .\n") for line in got)
        assert proc.poll() is None            # still running: stdin is open
        proc.stdin.write("a bird\n")
        proc.stdin.close()
        assert proc.stdout.readline().endswith("a bird\n")
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


_STAGES_WITHOUT_TORCH = BLOCK_TRAINING_STACK + """
from pocketlm.runtime.cli import main
codes = []
for argv in (["train", "--data", "d", "--out", "o"], ["ingest", "--out", "x"], ["run"],
             ["train", "--help"], ["--help"]):
    sys.argv = ["pocketlm", *argv]
    try:
        main()
    except SystemExit as exc:
        codes.append(exc.code)
print(json.dumps({"codes": codes, "loaded": sorted(m for m in sys.modules
                                                  if m.startswith("pocketlm.pipeline"))}))
"""


def test_stage_commands_without_training_stack() -> None:
    """Without torch & co., a stage command prints one line naming what to install and exits
    1; --help still lists every command; pocketlm.pipeline is never imported."""
    proc = subprocess.run([sys.executable, "-c", _STAGES_WITHOUT_TORCH], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [1, 1, 1, 0, 0], "loaded": []}
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 3
    assert errors[0].startswith("Error: `pocketlm train` needs the training extra")
    assert all("pip install 'pocketlm[train]'" in e for e in errors)
    assert "ingest" in proc.stdout and "rescore" in proc.stdout


def test_runtime_cli_module_imports_no_pipeline() -> None:
    """Importing the console script's module loads nothing of the training package."""
    code = ("import sys, json; import pocketlm.runtime.cli; print(json.dumps(sorted(m for m in "
            "sys.modules if m.startswith(('pocketlm.pipeline', 'pocketlm.export', "
            "'pocketlm.stages', 'torch')))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


class _Terminal:
    """A text stream that says it is a terminal, collecting what is written."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str | bytes) -> int:
        self.parts.append(text.decode() if isinstance(text, bytes) else text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, reading a redirected file shows lines done and the share read; elsewhere
    nothing is written."""
    from pocketlm.runtime import inputs as runtime_inputs

    path = tmp_path / "lines.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with open(path, encoding="utf-8") as fh:
        progress = runtime_inputs.Progress(fh, "score")
        assert progress.total == path.stat().st_size
        for line in fh:
            progress.update(line)
        progress.close()
    shown = "".join(terminal.parts)
    assert "score: 1 lines" in shown and "score: 3 lines done" in shown and "%" in shown
    monkeypatch.setattr(terminal, "isatty", lambda: False)
    terminal.parts.clear()
    with open(path, encoding="utf-8") as fh:
        quiet = runtime_inputs.Progress(fh, "score")
        for line in fh:
            quiet.update(line)
        quiet.close()
    assert terminal.parts == [] and quiet.lines == 3


def test_stages_cli_is_the_whole_command_line() -> None:
    """The console script's group finds the stage commands (kept in `pocketlm.stages.cli`'s
    `stages`, each registered under the `pocketlm.commands` entry points), so its callers get
    every command and one-line errors."""
    from pocketlm.runtime.group import registered_commands
    from pocketlm.stages import cli as stages_cli

    assert sorted(stages_cli.stages.commands) == ["evaluate", "export", "ingest", "run",
                                                  "train"]
    entries = registered_commands()
    assert sorted(entries) == sorted(stages_cli.stages.commands)
    assert all(entries[name].load() is command
               for name, command in stages_cli.stages.commands.items())
    result = CliRunner().invoke(cli, ["score", "--model", "/nonexistent/m", "a"])
    one_line_error(result, "no such folder")
