"""The measures of the classify and tag tasks, in plain Python: training, evaluation, export and
the benches all report these, so a number means the same thing everywhere.

Classification compares one label id per sentence; tagging compares entity *spans* read from
BIO2 tags by the CoNLL rules (what conlleval counts)::

    tags    B-NAME  I-NAME  O   I-NAME  B-NAME  I-PLACE  O
    spans   (0, 2, NAME)        (3, 4, NAME)  (4, 5, NAME)  (5, 6, PLACE)

An ``I-X`` that does not continue an ``X`` span (after ``O``, after another type, at the start)
starts a new span; spans are ``(start, end, type)`` with ``end`` exclusive, in pieces. An entity
counts as found only when its type and both boundaries are exact.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A span of pieces: (start, end exclusive, type).
Span = tuple[int, int, str]


def _check_pairs(gold: Sequence[object], pred: Sequence[object]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold items but {len(pred)} predictions; give one "
                         f"prediction per gold item")


def accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    """Share of items whose predicted label equals the gold label (0.0 for no items)."""
    _check_pairs(gold, pred)
    if not gold:
        return 0.0
    return sum(int(g) == int(p) for g, p in zip(gold, pred)) / len(gold)


def macro_f1(gold: Sequence[int], pred: Sequence[int], n_labels: int) -> float:
    """Mean over labels of each label's F1 (one label against the rest). Labels that occur
    neither in ``gold`` nor in ``pred`` have no F1 and are left out of the mean (as
    scikit-learn's default); ids must lie in ``[0, n_labels)``. 0.0 for no items."""
    _check_pairs(gold, pred)
    for value in (*gold, *pred):
        if not 0 <= int(value) < n_labels:
            raise ValueError(f"label id {value} is outside 0..{n_labels - 1}")
    scores = []
    for label in sorted({int(v) for v in (*gold, *pred)}):
        tp = sum(int(g) == label and int(p) == label for g, p in zip(gold, pred))
        n_gold = sum(int(g) == label for g in gold)
        n_pred = sum(int(p) == label for p in pred)
        scores.append(2 * tp / (n_gold + n_pred))
    return sum(scores) / len(scores) if scores else 0.0


def split_tag(tag: str) -> tuple[str, str]:
    """``("B", "NAME")`` for ``"B-NAME"``, ``("I", ...)`` for ``I-``, else ``("O", "")``: a tag
    without a B-/I- prefix is outside any entity."""
    if tag[:2] in ("B-", "I-") and len(tag) > 2:
        return tag[0], tag[2:]
    return "O", ""


def bio_spans(tags: Sequence[str]) -> list[Span]:
    """The entity spans of one sentence's BIO2 tags, by the CoNLL rules (module docstring).

    >>> bio_spans(["B-NAME", "I-NAME", "O", "I-NAME", "B-NAME", "I-PLACE"])
    [(0, 2, 'NAME'), (3, 4, 'NAME'), (4, 5, 'NAME'), (5, 6, 'PLACE')]
    """
    spans: list[Span] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "I" and start >= 0 and label == kind:
            continue
        if start >= 0:
            spans.append((start, i, kind))
        start, kind = (i, label) if prefix != "O" else (-1, "")
    if start >= 0:
        spans.append((start, len(tags), kind))
    return spans


def entity_prf(gold_seqs: Sequence[Sequence[str]],
               pred_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Span-level precision, recall and F1 over sentences of BIO2 tags: a predicted entity is
    correct when a gold entity has its type, start and end. Each measure is 0.0 when its
    denominator is (no predicted, no gold entities)."""
    _check_pairs(gold_seqs, pred_seqs)
    correct = n_gold = n_pred = 0
    for number, (gold, pred) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {number}: {len(gold)} gold tags but {len(pred)} "
                             f"predicted; give one tag per piece")
        gold_spans, pred_spans = set(bio_spans(gold)), set(bio_spans(pred))
        correct += len(gold_spans & pred_spans)
        n_gold += len(gold_spans)
        n_pred += len(pred_spans)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
