"""runtime/speech/scorers.py: pocketlm and a KenLM n-gram behind one batched interface."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.speech.scorers import NGramScorer, PocketLMScorer, load_kenlm

#: A bigram over {the, cat, dog} (log10), written by hand.
ARPA = """\\data\\
ngram 1=6
ngram 2=5

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-1.0\t</s>\t0
-0.5\tthe\t-0.2
-0.8\tcat\t-0.1
-0.9\tdog\t-0.1

\\2-grams:
-0.1\t<s> the
-0.3\tthe cat
-0.6\tthe dog
-0.2\tcat </s>
-0.2\tdog </s>

\\end\\
"""


def _walk(scorer, words: list[str]) -> float:
    batch, total = scorer.start(), 0.0
    for w in words:
        lp, batch = scorer.advance(batch, [0], [w])
        total += float(lp[0])
    return total + float(scorer.end(batch, [0])[0])


def test_ngram_scorer_walk_equals_kenlm(tmp_path: Path) -> None:
    (tmp_path / "lm.arpa").write_text(ARPA)
    scorer = NGramScorer(tmp_path / "lm.arpa")
    for sentence in (["the", "cat"], ["the", "dog"], ["dog", "the", "cat"], []):
        assert _walk(scorer, sentence) == pytest.approx(scorer.score([sentence])[0], abs=1e-5)
    assert scorer.score(["the cat"])[0] == pytest.approx((-0.1 - 0.3 - 0.2) * math.log(10),
                                                         abs=1e-4)
    two = scorer.gather([(scorer.start(), [0, 0])])
    lp, _ = scorer.advance(two, [0, 1], ["the", "cat"])
    assert lp[0] > lp[1]


def test_pocketlm_scorer_walk_equals_score(toy_model: Path) -> None:
    lm = LanguageModel(toy_model)
    scorer = PocketLMScorer(lm)
    assert _walk(scorer, "the cat sees the ball".split()) == pytest.approx(
        lm.score("the cat sees the ball"), abs=1e-4)
    batch = scorer.gather([(scorer.start(), [0]), (scorer.start(), [0])])
    assert len(batch) == 2
    np.testing.assert_allclose(scorer.end(batch, [0, 1]), [lm.score("")] * 2, atol=1e-5)


def test_ngram_load_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such n-gram file"):
        load_kenlm(tmp_path / "missing.arpa")
    (tmp_path / "bad.arpa").write_text("this is not an ARPA file\n")
    with pytest.raises(InputError, match="bad.arpa: kenlm cannot read it") as info:
        load_kenlm(tmp_path / "bad.arpa")
    assert "\n" not in str(info.value)
