"""Metrics of the labelled tasks, on plain Python lists (no numpy needed)::

    classify   gold [3, 0, 1, 1]   pred [3, 1, 1, 1]   ->  accuracy 0.75, macro-F1 over labels
    tag        gold [B-PER, I-PER, O, B-LOC]           ->  spans {(0, 2, PER), (3, 4, LOC)}
               pred [B-PER, O,     O, I-LOC]           ->  spans {(0, 1, PER), (3, 4, LOC)}
               entity precision 1/2, recall 1/2 (exact boundaries and type, CoNLL rules)

Spans are ``(start, end, type)`` with ``end`` exclusive, in the positions of the tag sequence.
"""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    """The fraction of positions where ``pred`` equals ``gold`` (0.0 for no examples)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def macro_f1(gold: Sequence[int], pred: Sequence[int], n_labels: int) -> float:
    """The unweighted mean over labels ``0..n_labels-1`` of each label's F1; a label that
    neither ``gold`` nor ``pred`` holds is left out of the mean."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    scores = []
    for label in range(n_labels):
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        n_gold = sum(g == label for g in gold)
        n_pred = sum(p == label for p in pred)
        if n_gold == 0 and n_pred == 0:
            continue
        scores.append(2 * tp / (n_gold + n_pred))
    return sum(scores) / len(scores) if scores else 0.0


def bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The entities of a BIO2 tag sequence, CoNLL rules: ``B-X`` starts a span; ``I-X``
    continues a span of type X and starts a new one after ``O`` or another type; ``O`` (or
    any tag without a ``B-``/``I-`` prefix) ends it."""
    spans: list[tuple[int, int, str]] = []
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and name == kind and start >= 0
        if start >= 0 and not continues:
            spans.append((start, i, kind))
            start, kind = -1, ""
        if prefix in ("B", "I") and name and not continues:
            start, kind = i, name
    return spans


def entity_prf(gold_seqs: Sequence[Sequence[str]],
               pred_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Span-level precision, recall and F1 over sentences: a predicted entity counts when its
    boundaries and type equal a gold entity's."""
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sentences but {len(pred_seqs)} predicted")
    tp = n_gold = n_pred = 0
    for gold, pred in zip(gold_seqs, pred_seqs):
        g, p = set(bio_spans(gold)), set(bio_spans(pred))
        tp += len(g & p)
        n_gold += len(g)
        n_pred += len(p)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
