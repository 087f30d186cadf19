"""Task metrics: accuracy, macro-F1, BIO2 spans by CoNLL rules, span-level precision/recall/F1."""

from __future__ import annotations

import pytest

from pocketlm.runtime.metrics import accuracy, bio_spans, entity_prf, macro_f1


def test_accuracy_and_macro_f1() -> None:
    assert accuracy([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)
    assert macro_f1([0, 0, 1], [0, 0, 1], 5) == 1.0          # absent labels are left out
    assert macro_f1([0, 1], [1, 0], 2) == 0.0
    with pytest.raises(ValueError):
        accuracy([1], [1, 2])


def test_bio_spans_follow_conll_rules() -> None:
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [(0, 2, "PER"), (3, 4, "LOC")]
    assert bio_spans(["O", "I-PER", "I-PER"]) == [(1, 3, "PER")]        # I after O starts
    assert bio_spans(["B-PER", "I-LOC"]) == [(0, 1, "PER"), (1, 2, "LOC")]
    assert bio_spans(["B-PER", "B-PER"]) == [(0, 1, "PER"), (1, 2, "PER")]
    assert bio_spans([]) == []


def test_entity_prf_counts_exact_spans() -> None:
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    pred = [["B-PER", "O", "O"], ["B-LOC"]]
    assert entity_prf(gold, pred) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert entity_prf([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
