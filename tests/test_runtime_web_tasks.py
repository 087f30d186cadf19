"""The page on a classify and a tag model folder (`pocketlm web`, headless Chromium): the task's
tab instead of the language model's, label bars and highlighted entities as the Python runtime
computes them, and wasm log-probabilities within 1e-4 of Python's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pocketlm.runtime import Classifier, Tagger
from pocketlm.runtime.web import build_site

from .conftest import needs_program, served

TEXTS = ["Anna sees the cat ?", "John Smith likes Rome !", "", "Élodie Müller follows Mary",
         "a\x00b \ud800", "Mary " * 500]


pytestmark = needs_program("web/node_modules", "chromium", "playwright")


@pytest.fixture(scope="module")
def url(classify_model: Path, tag_model: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One site for both folders: model/ is the classifier, tagger/ the tagger."""
    site = tmp_path_factory.mktemp("site") / "site"
    build_site(classify_model, site)
    shutil.copytree(tag_model, site / "tagger")
    with served(site) as address:
        yield address


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_function("window.pocketlm && (window.pocketlm.firstScoreMs || "
                           "!document.getElementById('error').hidden)", timeout=120_000)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    return page, errors


def test_classify_tab(browser: Any, url: str, classify_model: Path) -> None:
    page, errors = _open(browser, url + "?no-offline")
    clf = Classifier(classify_model)
    assert page.locator("#lm-tabs").is_hidden() and page.locator("#classify-tab").is_visible()
    text = page.locator("#classify-text").input_value()
    bars = page.locator("#label-bars li")
    (expected,) = clf.predict(text, top_k=len(clf.labels))
    assert [bars.nth(i).get_attribute("data-label") for i in range(bars.count())] == \
        list(expected.labels)
    for i, p in enumerate(expected.probabilities):
        assert abs(float(bars.nth(i).get_attribute("data-probability")) - p) <= 1e-4
    got = page.evaluate("t => window.pocketlm.lm.logProbs(t)"
                        ".then((v) => v.map((a) => Array.from(a)))", TEXTS)
    assert np.abs(np.array(got) - clf.log_probs(TEXTS)).max() <= 1e-4
    page.fill("#classify-text", "Mary likes Rome !")
    page.click("#classify-form button")
    page.wait_for_function("document.querySelector('#label-bars li')?.dataset.label === "
                           "'exclamation'", timeout=30_000)
    assert errors == []


def test_tag_tab(browser: Any, url: str, tag_model: Path) -> None:
    page, errors = _open(browser, url + "?no-offline&model=tagger/")
    tagger = Tagger(tag_model)
    assert page.locator("#tag-tab").is_visible() and page.locator("#classify-tab").is_hidden()
    page.fill("#tag-text", "Élodie Müller follows Mary in New York .")
    page.click("#tag-form button")
    page.wait_for_function("document.querySelectorAll('#tagged mark').length === 3",
                           timeout=30_000)
    marks = page.evaluate("[...document.querySelectorAll('#tagged mark')]"
                          ".map((m) => [m.dataset.type, m.firstChild.textContent])")
    expected = tagger.tag("Élodie Müller follows Mary in New York .").entities
    assert marks == [[e.type, e.text] for e in expected]
    got = page.evaluate("t => window.pocketlm.lm.tagBatch(t)", TEXTS)
    for row, t in zip(got, tagger.tag_batch(TEXTS)):
        assert row["tags"] == list(t.tags) and row["words"] == list(t.words)
        assert np.allclose(row["probabilities"], t.probabilities, atol=1e-4)
    assert errors == []
