"""The first baselines a user would try on pocketlm's labelled tasks, as JSON lines.

* classify (SST-2, TREC-6, KJV sections): TF-IDF of word uni- and bigrams (sublinear tf) →
  logistic regression, C chosen on the valid split from a grid, refit on train; test accuracy
  and macro-F1.
* tag (WNUT-17, KJV names): a linear-chain CRF (crfsuite, L-BFGS, L1 + L2) over the word, its
  suffixes and prefix, its shape (pocketlm's ``shape_id``), and the same for the neighbours at
  ±1 (word and shape) and ±2 (word); entity precision / recall / F1 at span level with CoNLL
  rules (exact type and boundaries), over the original tokens.

Needs the ``bench`` extra (scikit-learn, python-crfsuite)::

    python bench/baselines.py --data ../shared/data > bench/results/baselines.jsonl
    python bench/baselines.py --only sst2,trec

Sets and splits: bench/labelled_sets.py. Without ``--data``'s folders only the KJV sets run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import labelled_sets as sets
from common import emit, machine

from pocketlm.runtime.features import SHAPES, shape_id

C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
CLASSIFY = ("sst2", "trec", "kjv-classify")
TAG = ("wnut17", "kjv-tag")


# --- classify ------------------------------------------------------------------------------------


def tfidf_lr(data: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    """Tune C on valid, report test accuracy / macro-F1 of TF-IDF uni+bigram LR."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    texts = {s: [t for t, _ in rows] for s, rows in data.items()}
    gold = {s: [lab for _, lab in rows] for s, rows in data.items()}
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    x = {"train": vec.fit_transform(texts["train"])}
    x.update({s: vec.transform(texts[s]) for s in ("valid", "test")})
    dev = {}
    model = LogisticRegression(max_iter=3000, warm_start=True)  # each C starts from the last
    for c in C_GRID:
        model.set_params(C=c).fit(x["train"], gold["train"])
        dev[c] = accuracy_score(gold["valid"], model.predict(x["valid"]))
    best = max(C_GRID, key=lambda c: (dev[c], -c))
    model = LogisticRegression(C=best, max_iter=3000).fit(x["train"], gold["train"])
    pred = model.predict(x["test"])
    return {"C": best, "valid_accuracy": round(dev[best], 4),
            "test_accuracy": round(accuracy_score(gold["test"], pred), 4),
            "test_macro_f1": round(f1_score(gold["test"], pred, average="macro"), 4),
            "valid_accuracy_by_C": {str(c): round(a, 4) for c, a in dev.items()},
            "features": len(vec.vocabulary_), "labels": len(set(gold["train"])),
            "sizes": {s: len(rows) for s, rows in data.items()}}


# --- tag -----------------------------------------------------------------------------------------


def spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """Entity spans (start, end exclusive, type) of a BIO sequence, CoNLL rules: an I-X after O
    or after another type starts a span."""
    out, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not inside:
            out.add((start, i, kind))
            start, kind = None, None
        if tag != "O" and not inside:
            start, kind = i, tag[2:]
    return out


def entity_prf(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Span-level precision, recall and F1 (exact type and boundaries)."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        tp, n_gold, n_pred = tp + len(gs & ps), n_gold + len(gs), n_pred + len(ps)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "gold_spans": n_gold, "predicted_spans": n_pred}


def _word(w: str, prefix: str) -> dict[str, Any]:
    low = w.lower()
    return {f"{prefix}w": low, f"{prefix}shape": SHAPES[shape_id(w)]}


def token_features(words: list[str]) -> list[dict[str, Any]]:
    """crfsuite features of each token: word, suffixes, prefix, shape; neighbours."""
    out = []
    for i, w in enumerate(words):
        low = w.lower()
        f: dict[str, Any] = {"bias": 1.0, **_word(w, ""), "suf3": low[-3:], "suf2": low[-2:],
                             "pre3": low[:3], "len": min(len(w), 8)}
        for d in (-2, -1, 1, 2):
            j = i + d
            if 0 <= j < len(words):
                if abs(d) == 1:
                    f.update(_word(words[j], f"{d}:"))
                else:
                    f[f"{d}:w"] = words[j].lower()
            else:
                f[f"{d}:edge"] = True
        out.append(f)
    return out


def crf(data: dict[str, list[tuple[list[str], list[str]]]], iterations: int) -> dict[str, Any]:
    """Train a CRF on train (features made one sentence at a time); entity P/R/F1 on valid
    and test."""
    import tempfile

    import pycrfsuite

    params = {"c1": 0.1, "c2": 0.1, "max_iterations": iterations,
              "feature.possible_transitions": True}
    trainer = pycrfsuite.Trainer(verbose=False)
    trainer.set_params(params)
    for words, tags in data["train"]:
        trainer.append(token_features(words), tags)
    result: dict[str, Any] = {"c1": 0.1, "c2": 0.1, "max_iterations": iterations}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        trainer.train(str(Path(tmp) / "model.crfsuite"))
        result["fit_seconds"] = round(time.perf_counter() - started, 1)
        tagger = pycrfsuite.Tagger()
        tagger.open(str(Path(tmp) / "model.crfsuite"))
        for split in ("valid", "test"):
            gold = [tags for _, tags in data[split]]
            pred = [tagger.tag(token_features(words)) for words, _ in data[split]]
            result[split] = entity_prf(gold, pred)
        tagger.close()
    result["sizes"] = {s: len(rows) for s, rows in data.items()}
    result["tokens"] = {s: sum(len(w) for w, _ in rows) for s, rows in data.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="the shared data folder (sst2/, trec/, wnut17/)")
    parser.add_argument("--only", default=",".join(CLASSIFY + TAG),
                        help="comma-separated sets: " + ",".join(CLASSIFY + TAG))
    parser.add_argument("--crf-iterations", type=int, default=100)
    args = parser.parse_args()
    wanted = args.only.split(",")
    emit("machine", **machine())
    loaders = {"sst2": lambda: sets.sst2(args.data), "trec": lambda: sets.trec(args.data),
               "kjv-classify": sets.kjv_classify, "wnut17": lambda: sets.wnut17(args.data),
               "kjv-tag": sets.kjv_names}
    for name in wanted:
        if name not in loaders:
            sys.exit(f"--only: unknown set {name!r}; choose from {', '.join(loaders)}")
        folder = {"sst2": "sst2", "trec": "trec", "wnut17": "wnut17"}.get(name)
        if folder and not (args.data / folder).is_dir():
            print(f"{args.data / folder}: missing; skipping {name} (pass --data)",
                  file=sys.stderr)
            continue
        started = time.perf_counter()
        if name in CLASSIFY:
            emit("classify", set=name, model="tfidf-uni+bigram-logreg",
                 **tfidf_lr(loaders[name]()), seconds=round(time.perf_counter() - started, 1))
        else:
            emit("tag", set=name, model="crf-word-suffix-shape-neighbours",
                 **crf(loaders[name](), args.crf_iterations),
                 seconds=round(time.perf_counter() - started, 1))


if __name__ == "__main__":
    main()
