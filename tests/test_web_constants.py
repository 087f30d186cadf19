"""web/tools/constants.py: web/src/constants.js is what the script writes from the Python
declarations (format version, scoring budgets, sampling defaults and limits, the keyboard's edit
costs, cache model and inferred punctuation), so a setting changed in Python only fails here
until the JavaScript file is regenerated."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pocketlm.runtime.artifact import FORMAT_VERSION
from pocketlm.runtime.keyboard import MAX_EDITS
from pocketlm.runtime.punctuation import PUNCTUATION_CANDIDATES, PUNCTUATION_MIN_PROB
from pocketlm.runtime.qwerty import EDIT_LOGPROB
from pocketlm.runtime.sampling import DEFAULTS, SamplingConfig
from pocketlm.runtime.typing_session import CACHE_WEIGHT, CACHE_WINDOW

SCRIPT = Path(__file__).resolve().parents[1] / "web" / "tools" / "constants.py"


@pytest.fixture(scope="module")
def constants() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_constants", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_file_is_what_the_script_writes(constants: ModuleType) -> None:
    assert constants.OUT.read_text(encoding="utf-8") == constants.render()


def test_a_default_changed_in_python_only_is_caught(constants: ModuleType) -> None:
    """What the check compares against differs as soon as one Python default does."""
    committed = constants.OUT.read_text(encoding="utf-8")
    for name, value in (("max_words", DEFAULTS.max_words + 1), ("top_p", 0.5),
                        ("temperature", 0.7), ("top_k", 40)):
        changed = constants.render(dataclasses.replace(DEFAULTS, **{name: value}))
        assert changed != committed, name
        assert f"{constants.js_name(name)}: Object.freeze({{ default: " \
               f"{constants.js_value(value)}," in changed
    assert constants.render(version=FORMAT_VERSION + ".9") != committed


def test_every_setting_and_limit_is_written(constants: ModuleType) -> None:
    text = constants.render()
    assert f'export const FORMAT_VERSION = "{FORMAT_VERSION}";' in text
    for fld in dataclasses.fields(SamplingConfig):
        assert f"  {constants.js_name(fld.name)}: Object.freeze({{ default: " in text
    assert "topP: Object.freeze({ default: 1, minimum: 0, minOpen: true, maximum: 1 })" in text
    assert f"export const CACHE_WEIGHT = {constants.js_value(CACHE_WEIGHT)};" in text
    assert f"export const CACHE_WINDOW = {CACHE_WINDOW};" in text
    assert f"export const MAX_EDITS = {MAX_EDITS};" in text
    assert f"export const PUNCTUATION_CANDIDATES = {PUNCTUATION_CANDIDATES};" in text
    assert f"export const PUNCTUATION_MIN_PROB = {constants.js_value(PUNCTUATION_MIN_PROB)};" \
        in text
    assert all(f"  {name}: {constants.js_value(v)}," in text for name, v in EDIT_LOGPROB.items())


def test_check_flag_fails_on_a_stale_file(constants: ModuleType, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "constants.js"
    stale.write_text(constants.render(dataclasses.replace(DEFAULTS, top_k=DEFAULTS.top_k + 1)),
                     encoding="utf-8")
    monkeypatch.setattr(constants, "OUT", stale)
    monkeypatch.setattr(sys, "argv", ["constants.py", "--check"])
    assert constants.main() == 1
    monkeypatch.setattr(sys, "argv", ["constants.py"])
    assert constants.main() == 0
    monkeypatch.setattr(sys, "argv", ["constants.py", "--check"])
    assert constants.main() == 0


def test_script_check_passes_on_the_committed_file() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
