"""Tagger: valid BIO2 tags by Viterbi, entity spans with character offsets, on a real tag folder
(tests/task_models.py) and on hand-made log-probabilities."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from pocketlm.runtime import PocketLMError, Tagger
from pocketlm.runtime.tagger import allowed_transitions, viterbi

LABELS = ["O", "B-NAME", "I-NAME", "B-PLACE", "I-PLACE"]


@pytest.fixture(scope="module")
def tagger(tag_model: Path) -> Tagger:
    return Tagger(tag_model)


def _valid(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_transitions() -> None:
    start, allowed = allowed_transitions(LABELS)
    assert start.tolist() == [True, True, False, True, False]
    assert not allowed[0, 2] and allowed[1, 2] and allowed[2, 2] and not allowed[3, 2]
    assert allowed[2, 0] and allowed[2, 3] and not allowed[1, 4]


def test_viterbi_equals_brute_force() -> None:
    """On random log-probabilities, the best allowed path of all T^n paths."""
    rng = np.random.default_rng(0)
    start, allowed = allowed_transitions(LABELS)
    for n in range(1, 6):
        logprobs = np.log(rng.dirichlet(np.ones(5) * 0.3, size=n)).astype(np.float32)
        best, best_path = -np.inf, None
        for path in itertools.product(range(5), repeat=n):
            if _valid([LABELS[i] for i in path]):
                score = sum(float(logprobs[t, i]) for t, i in enumerate(path))
                if score > best:
                    best, best_path = score, list(path)
        assert viterbi(logprobs, start, allowed) == best_path
    assert viterbi(np.zeros((0, 5), np.float32), start, allowed) == []


def test_viterbi_repairs_an_i_after_o() -> None:
    start, allowed = allowed_transitions(LABELS)
    # piece by piece the best is O, I-NAME (invalid); of the valid paths B-NAME I-NAME has
    # 0.3 * 0.65 = 0.195, O O 0.6 * 0.25 = 0.15, B-NAME O 0.075
    lp = np.log(np.array([[0.6, 0.3, 0.0001, 0.05, 0.0499], [0.25, 0.05, 0.65, 0.025, 0.025]]))
    assert [LABELS[i] for i in viterbi(lp, start, allowed)] == ["B-NAME", "I-NAME"]
    # ties go to the lower index: all equal -> all O
    assert viterbi(np.zeros((3, 5)), start, allowed) == [0, 0, 0]


def test_entities_and_offsets(tagger: Tagger) -> None:
    text = "Élodie Müller follows Mary in New York ."
    got = tagger.tag(text)
    assert got.words == ("Élodie", "Müller", "follows", "Mary", "in", "New", "York", ".")
    assert got.tags == ("B-NAME", "I-NAME", "O", "B-NAME", "O", "B-PLACE", "I-PLACE", "O")
    assert [(e.text, e.type, e.first, e.last) for e in got.entities] == [
        ("Élodie Müller", "NAME", 0, 1), ("Mary", "NAME", 3, 3), ("New York", "PLACE", 5, 6)]
    for e in got.entities:
        assert text[e.start:e.end] == e.text
    assert all(0 < p <= 1 for p in got.probabilities)
    assert got.to_dict()["entities"][2] == {"text": "New York", "type": "PLACE", "start": 30,
                                           "end": 38, "first": 5, "last": 6}


def test_batch_equals_one_by_one_and_tags_always_valid(tagger: Tagger) -> None:
    texts = ["Peter Paul Jones sees a tree in Rome ?", "", "I-x York York", "\x00 a\udfffb",
             "e\u0301 👍🏽 \u202eevil", "Anna " * 5000, "New York New York New"]
    batch = tagger.tag_batch(texts)
    assert [t.tags for t in batch] == [tagger.tag(t).tags for t in texts]
    for t in batch:
        assert _valid(list(t.tags)) and len(t.tags) == len(t.words) == len(t.offsets)
    assert batch[1].words == () and batch[1].entities == ()
    assert len(batch[5].tags) == 5000


def test_int8_tags(tag_model: Path, tagger: Tagger) -> None:
    text = "John Smith finds Anna in Paris"
    assert Tagger(tag_model, precision="int8").tag(text).tags == tagger.tag(text).tags


def test_a_classifier_folder_is_refused(classify_model: Path) -> None:
    with pytest.raises(PocketLMError, match="is a 'classify' model folder.*`pocketlm classify`"):
        Tagger(classify_model)
