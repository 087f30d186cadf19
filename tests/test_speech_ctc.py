"""runtime/speech/ctc.py: pyctcdecode's beam search with pocketlm as its language model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import InputError, LanguageModel
from pocketlm.runtime.speech.ctc import PocketLMForCTC

pyctcdecode = pytest.importorskip("pyctcdecode")

LABELS = ["", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]


def emissions(spoken: str, rng: np.random.Generator) -> np.ndarray:
    """Log-probabilities [frames, labels]: each character of ``spoken`` peaks in one frame
    (0.6-0.9) followed by a blank frame; '~' stands for a frame split between 'l' (0.45) and
    'r' (0.40)."""
    frames = []
    for c in spoken:
        row = np.full(len(LABELS), 0.02)
        if c == "~":            # ambiguous: 'l' or 'r', nearly even
            row[LABELS.index("l")], row[LABELS.index("r")] = 0.45, 0.40
        else:
            row[LABELS.index(c)] = rng.uniform(0.6, 0.9)
        frames.append(row / row.sum())
        blank = np.full(len(LABELS), 0.02)
        blank[0] = 0.9
        frames.append(blank / blank.sum())
    return np.log(np.array(frames, dtype=np.float32))


@pytest.fixture(scope="module")
def lm(toy_model: Path) -> LanguageModel:
    return LanguageModel(toy_model)


def test_decodes_synthetic_emissions(lm: LanguageModel) -> None:
    """'the ~iver' is rather 'liver' than 'river' to the acoustics; the toy corpus knows only
    'the river', and the language model settles it where the plain beam search cannot."""
    from pyctcdecode import Alphabet, BeamSearchDecoderCTC, build_ctcdecoder

    logits = emissions("a child watches the ~iver", np.random.default_rng(0))
    plain = build_ctcdecoder(LABELS).decode(logits, beam_width=16)
    assert plain == "a child watches the liver"
    model = PocketLMForCTC(lm, LABELS, alpha=1.0, beta=0.0, hidden=())
    decoder = BeamSearchDecoderCTC(Alphabet.build_alphabet(LABELS), model)
    assert decoder.decode(logits, beam_width=16) == "a child watches the river"
    assert model.rows_stepped > 0


def test_word_scores_follow_the_model(lm: LanguageModel) -> None:
    model = PocketLMForCTC(lm, LABELS, alpha=1.0, beta=0.5, hidden=())
    start = model.get_start_state()
    score, state = model.score(start, "the")
    expect, _ = lm.advance(lm.begin(1), "the")
    assert score == pytest.approx(expect + 0.5, abs=1e-5)
    end, _ = model.score(state, "cat", is_last_word=True)
    assert end == pytest.approx(lm.score("the cat") - expect + 0.5, abs=1e-4)
    assert model.score(start, "the")[1] is state           # cached by word history
    assert model.score_partial_token("ca") == 0.0
    assert model.score_partial_token("qqq") < 0


def test_an_alphabet_that_cannot_spell_the_vocabulary(lm: LanguageModel) -> None:
    upper = ["", " "] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    with pytest.raises(InputError, match="labels: the alphabet spells only 0 of the") as info:
        PocketLMForCTC(lm, upper)
    assert "lacks" in str(info.value) and "\n" not in str(info.value)
