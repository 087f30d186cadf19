"""runtime/cli.py: perplexity, info, score's bos/eos flags, stdin streamed in batches, and the
stage commands' one-line message without the training stack (rescore: test_speech_cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

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
    assert sorted(entries) == sorted([*stages_cli.stages.commands, "rescore"])
    assert all(entries[name].load() is command
               for name, command in stages_cli.stages.commands.items())
    result = CliRunner().invoke(cli, ["score", "--model", "/nonexistent/m", "a"])
    one_line_error(result, "no such folder")
