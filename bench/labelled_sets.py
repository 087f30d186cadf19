"""The labelled benchmark sets of ``../shared/data`` and the KJV tasks, split as pocketlm's
ingest splits them; run as a script, writes SST-2 and TREC-6 as JSON lines that
``pocketlm ingest --task classify`` reads (WNUT-17's CoNLL files need no conversion).

    python bench/labelled_sets.py --data ../shared/data --out /work/runs/labelled/src
    → OUT/sst2/{train,valid,test}.jsonl   {"text": "...", "label": "1"}
      OUT/trec/{train,test}.jsonl         {"text": "...", "label": "HUM", "fine": "HUM:ind"}

Splits: SST-2 has its own train/dev/test; TREC's dev is carved from train_5500 by the line
rule (question i with i % 20 == 18), exactly as ingest carves the valid split of
``--train-files trec/train.jsonl --test-files trec/test.jsonl``; TREC_10 is the test set.
WNUT-17: wnut17train / emerging.dev / emerging.test.annotated. The KJV tasks split verses by
the language model's rule (valid i % 20 == 18, test i % 20 == 19).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pocketlm.pipeline.corpus import line_split
from pocketlm.pipeline.kjv_tasks import name_rows, section_rows
from pocketlm.pipeline.labelled_read import read_conll

Pairs = list[tuple[str, str]]
Tagged = list[tuple[list[str], list[str]]]


def sst2(data: Path) -> dict[str, Pairs]:
    """SST-2 (``LABEL sentence`` lines): train / valid (dev) / test."""
    out = {}
    for split, name in (("train", "train"), ("valid", "dev"), ("test", "test")):
        lines = (data / "sst2" / f"stsa.binary.{name}").read_text(encoding="utf-8").splitlines()
        out[split] = [(line[2:], line[0]) for line in lines if line.strip()]
    return out


def _trec_file(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            fine, text = line.split(" ", 1)
            rows.append((text, fine.split(":")[0], fine))
    return rows


def trec(data: Path, fine: bool = False) -> dict[str, Pairs]:
    """TREC-6 (coarse labels; ``fine``: the 50 fine ones): train, valid carved, test."""
    train = _trec_file(data / "trec" / "train_5500.label")
    test = _trec_file(data / "trec" / "TREC_10.label")
    pick = 2 if fine else 1
    out: dict[str, Pairs] = {"train": [], "valid": []}
    for i, row in enumerate(train):
        out[line_split(i, 20, frozenset(("valid",)))].append((row[0], row[pick]))
    out["test"] = [(row[0], row[pick]) for row in test]
    return out


def wnut17(data: Path) -> dict[str, Tagged]:
    """WNUT-17 sentences as (tokens, tags)."""
    files = {"train": "wnut17train.conll", "valid": "emerging.dev.conll",
             "test": "emerging.test.annotated"}
    return {split: [(list(r.value), list(r.label)) for r in read_conll(data / "wnut17" / f,
                                                                        "utf-8")]
            for split, f in files.items()}


def kjv_classify() -> dict[str, Pairs]:
    """KJV verses labelled with their book's section."""
    out: dict[str, Pairs] = {"train": [], "valid": [], "test": []}
    for i, (_, text, label) in enumerate(section_rows()):
        out[line_split(i, 20)].append((text, label))
    return out


def kjv_names() -> dict[str, Tagged]:
    """KJV verses, lower-cased words tagged with names from the capitalisation."""
    out: dict[str, Tagged] = {"train": [], "valid": [], "test": []}
    for i, (_, words, tags) in enumerate(name_rows()):
        out[line_split(i, 20)].append((words, tags))
    return out


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def convert(data: Path, out: Path) -> None:
    """Write SST-2 (three splits) and TREC (train_5500 whole, TREC_10) as JSON lines."""
    for split, rows in sst2(data).items():
        write_jsonl(out / "sst2" / f"{split}.jsonl", [{"text": t, "label": lab}
                                                     for t, lab in rows])
    for split, name in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        write_jsonl(out / "trec" / f"{split}.jsonl",
                    [{"text": t, "label": c, "fine": f}
                     for t, c, f in _trec_file(data / "trec" / name)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not (args.data / "sst2").is_dir():
        sys.exit(f"{args.data}: no sst2/ folder; pass --data (the shared data folder)")
    convert(args.data, args.out)
    print(f"wrote {args.out}/sst2/{{train,valid,test}}.jsonl and {args.out}/trec/"
          f"{{train,test}}.jsonl")


if __name__ == "__main__":
    main()
