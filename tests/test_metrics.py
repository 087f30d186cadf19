"""runtime/metrics.py against hand-worked examples (counted on paper, conlleval's rules)."""

from __future__ import annotations

import pytest

from pocketlm.runtime.metrics import accuracy, bio_spans, entity_prf, macro_f1


def test_accuracy() -> None:
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == 0.75
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="3 gold items but 2 predictions"):
        accuracy([0, 1, 2], [0, 1])


def test_macro_f1_by_hand() -> None:
    # gold 0 0 1 1 2, pred 0 1 1 1 0
    # label 0: tp 1, gold 2, pred 2 -> 2*1/4 = 0.5; label 1: tp 2, gold 2, pred 3 -> 4/5 = 0.8;
    # label 2: tp 0 -> 0.0; mean 1.3/3
    assert macro_f1([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 4) == pytest.approx(1.3 / 3)
    # label 3 occurs nowhere: left out of the mean, so a perfect run is 1.0
    assert macro_f1([0, 1], [0, 1], 4) == 1.0
    with pytest.raises(ValueError, match="label id 4 is outside 0..3"):
        macro_f1([4], [0], 4)


def test_bio_spans_follow_conll_rules() -> None:
    tags = ["B-PER", "I-PER", "O", "I-PER", "I-PER", "B-LOC", "I-PER", "B-PER", "B-PER", "O",
            "I-LOC"]
    # I-PER after O starts a span; I-PER after B-LOC starts another; B-PER B-PER are two;
    # an I- at the very end after O is a one-piece span
    assert bio_spans(tags) == [(0, 2, "PER"), (3, 5, "PER"), (5, 6, "LOC"), (6, 7, "PER"),
                               (7, 8, "PER"), (8, 9, "PER"), (10, 11, "LOC")]
    assert bio_spans(["I-X"]) == [(0, 1, "X")]
    assert bio_spans([]) == [] and bio_spans(["O", "O"]) == []
    assert bio_spans(["B-X", "weird", "I-X"]) == [(0, 1, "X"), (2, 3, "X")]


def test_entity_prf_by_hand() -> None:
    # conlleval-style: a boundary error and a type error each count as a miss and a false alarm
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O", "I-ORG"]]
    # gold spans: (0,2,PER) (3,4,LOC) | (1,3,ORG)              -> 3
    # pred spans: (0,2,PER) (3,4,ORG) | (1,2,ORG) (3,4,ORG)    -> 4, of which 1 correct
    got = entity_prf(gold, pred)
    assert got["precision"] == pytest.approx(1 / 4)
    assert got["recall"] == pytest.approx(1 / 3)
    assert got["f1"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))
    assert entity_prf(gold, gold) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert entity_prf([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        entity_prf([["O", "O"]], [["O"]])
