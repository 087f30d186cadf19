"""bench/: every script imports, and every entry point answers ``--help``.

The scripts are not part of the package and no other test runs them, so a name moved in the
package would otherwise break them unseen. One child process (the scripts put their folders on
``sys.path`` and import each other by bare name) runs each script as ``__main__`` with
``--help``; a script without an entry point is only executed. A script whose optional package is
missing is skipped, naming the package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted([*BENCH.glob("*.py"), *BENCH.glob("asr/*.py")])

#: Runs every script given on the command line as ``__main__`` with ``--help``; prints one JSON
#: object: script → {"exit": code, "usage": whether help was printed, "missing": module, "error"}.
DRIVER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    out, result = io.StringIO(), {}
    sys.argv = [path, "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            runpy.run_path(path, run_name="__main__")
        result["exit"] = 0
    except SystemExit as exc:
        result["exit"] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ModuleNotFoundError as exc:
        result["missing"] = exc.name
        result["error"] = traceback.format_exc(limit=-3)
    except BaseException:
        result["exit"] = -1
        result["error"] = traceback.format_exc(limit=-3)
    result["usage"] = "usage:" in out.getvalue()
    results[path] = result
print(json.dumps(results))
"""

#: Packages a script may need that the test environment need not have.
OPTIONAL = {"kenlm", "pocketsphinx", "pyctcdecode", "matplotlib"}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-c", DRIVER, *map(str, SCRIPTS)],
                          capture_output=True, text=True, timeout=600, cwd=BENCH.parent,
                          env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                               "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _has_entry_point(script: Path) -> bool:
    return 'if __name__ == "__main__":' in script.read_text(encoding="utf-8")


def test_the_bench_has_scripts() -> None:
    assert len(SCRIPTS) > 10 and BENCH / "gpu_train.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCH)))
def test_script_imports_and_answers_help(script: Path, results: dict[str, dict[str, Any]]
                                         ) -> None:
    result = results[str(script)]
    missing = result.get("missing")
    if missing is not None:
        root = missing.split(".")[0]
        if root in OPTIONAL:
            pytest.skip(f"{script.name} needs the optional package {root}")
        pytest.fail(f"{script.name}: no module {missing}\n{result['error']}")
    assert result.get("exit") == 0, f"{script.name}: {result.get('error')}"
    if _has_entry_point(script):
        assert result["usage"], f"{script.name} printed no usage for --help"
