"""pocketlm's classify and tag tasks on the benchmark sets, beside the baselines measured in the
same run, as JSON lines: accuracy and entity F1, what starting from a language model gains at a
fraction of the train labels, what int8 costs, model bytes and runtime speed.

    python bench/tasks.py --data ../shared/data --out runs/tasks > bench/results/tasks.jsonl
    python bench/tasks.py --only lm,classify --sets sst2,trec --fractions 0.1,1
    python bench/tasks.py --only tag,runtime --sets wnut17,kjv-tag

Parts (``--only``, in this order):

* ``baselines``: ``bench/baselines.py``'s TF-IDF + logistic regression (classify sets) and CRF
  (tag sets), same sets and splits (``bench/labelled_sets.py``).
* ``lm``: a small language model of modern English for SST-2 and TREC: WikiText-2 valid + test
  (non-blank lines that are not ``= heading =`` lines) and the SST-2 and TREC train sentences
  without labels (TREC's carved valid questions left out), ``pocketlm ingest --data-files``,
  ``pocketlm train --preset tiny --minutes M`` (OUT/lm-data, OUT/lm-ckpt), and the same with
  ``--reverse`` (OUT/lm-back-ckpt); for the KJV, a ``--reverse`` model of the run's data folder
  (OUT/kjv-back-ckpt) beside the run's own checkpoint.
* ``classify``: per set and fraction of the train labels (a seeded sample of the train split,
  written to a file and ingested with the same valid/test and ``--vocab-from`` the language
  model's data folder), a model from scratch and one ``--init-from`` the language model
  (KJV sections: the ``pocketlm run`` model, ``--kjv-run``) and its backward cells from the
  ``--reverse`` one (``--no-backward-lm``: forward only), same shape and recipe; trained,
  exported, and measured on test through the runtime's ``Classifier`` (fp32 and int8).
* ``tag``: WNUT-17 and the KJV names, trained, exported, and scored through the runtime's
  ``Tagger`` (Viterbi over the BIO transitions) on the raw test sentences, the pieces mapped back
  to the original tokens through the data folder's ``heads``; span-level P/R/F1, CoNLL rules
  (``runtime/metrics.py``). From scratch, and (the KJV names; WNUT-17 with ``--tag-lm``) started
  from the forward and backward language models as the classifiers are.
* ``runtime``: the int8 model folder's bytes and one-thread texts/s and tokens/s of
  ``Classifier.predict`` and ``Tagger.tag_batch`` beside ``LanguageModel.score_batch`` of the
  ``pocketlm run`` model, on the same sentences (the KJV test verses), alternated rounds.

Every training runs in its own ``nice`` process with ``OMP_NUM_THREADS=--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import baselines
import labelled_sets as sets
from common import emit, machine, median
from task_runtime import _median_rate

CLASSIFY = ("sst2", "trec", "kjv-classify")
TAG = ("wnut17", "kjv-tag")
LM_SHAPE = ["--layers", "1", "--embedding-size", "128", "--hidden-size", "208"]


def _run(cmd: list[str], threads: int, log: Path) -> float:
    """Run a pocketlm command under nice with ``threads`` threads; its seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with log.open("a", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        done = subprocess.run(["nice", "-n", "5", *cmd], env=env, stdout=out, stderr=out)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed; see {log}")
    return time.perf_counter() - started


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


# --- the language model of modern English --------------------------------------------------------


def lm_text(data: Path, sst2_repeat: int = 1) -> list[str]:
    """WikiText-2 valid + test lines (its ``<unk>`` marks dropped: the vocabulary's own
    ``<unk>`` covers what is rare) and the SST-2 / TREC train sentences, no labels; with
    ``sst2_repeat`` > 1 the SST-2 sentences come that many times (the rest appended at the
    end), weighing film reviews in the vocabulary and the model."""
    lines = []
    for name in ("valid.txt", "test.txt"):
        for line in (data / "wikitext-2" / name).read_text(encoding="utf-8").splitlines():
            line = " ".join(w for w in line.split() if w != "<unk>")
            if line and not line.startswith("="):
                lines.append(line)
    sst2 = [t for t, _ in sets.sst2(data)["train"]]
    lines += sst2 + [t for t, _ in sets.trec(data)["train"]]
    return lines + sst2 * (sst2_repeat - 1)


def _finished(ckpt: Path) -> bool:
    manifest = ckpt / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text())["status"]["state"] == "finished"


def train_lm(args: argparse.Namespace, data: Path, ckpt: Path, reverse: bool) -> None:
    """A ``tiny`` language model (``--reverse``: lines read backwards) on a data folder."""
    if _finished(ckpt):
        emit("lm", reused=str(ckpt), reverse=reverse, **_lm_metrics(ckpt))
        return
    train_s = _run(["pocketlm", "train", "--data", str(data), "--out", str(ckpt),
                    "--preset", "tiny", *(["--max-steps", str(args.lm_steps)] if args.lm_steps
                                          else ["--minutes", str(args.lm_minutes)]),
                    "--device", "cpu",
                    "--overwrite", *(["--reverse"] if reverse else [])],
                   args.lm_threads, args.out / "lm.log")
    emit("lm", data=str(data), reverse=reverse, train_s=round(train_s, 1), **_lm_metrics(ckpt))


def build_lm(args: argparse.Namespace) -> None:
    """The modern-English language models (forward, backward) and the KJV backward one."""
    out = args.out
    if not (out / "lm-data" / "manifest.json").is_file():
        lines = lm_text(args.data, args.sst2_repeat)
        text = out / "lm-text.txt"
        text.write_text("\n".join(lines) + "\n", encoding="utf-8")
        ingest_s = _run(["pocketlm", "ingest", "--data-files", str(text), "--out",
                         str(out / "lm-data"), "--overwrite"], args.lm_threads, out / "lm.log")
        emit("lm_text", lines=len(lines), words=sum(len(x.split()) for x in lines),
             ingest_s=round(ingest_s, 1))
    train_lm(args, out / "lm-data", out / "lm-ckpt", reverse=False)
    train_lm(args, out / "lm-data", out / "lm-back-ckpt", reverse=True)
    train_lm(args, args.kjv_run / "data", out / "kjv-back-ckpt", reverse=True)


def language_models(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    """(forward, backward) language model checkpoints for a set."""
    if name.startswith("kjv"):
        return args.kjv_run / "checkpoint", args.out / "kjv-back-ckpt"
    return args.out / "lm-ckpt", args.out / "lm-back-ckpt"


def _lm_metrics(ckpt: Path) -> dict[str, Any]:
    manifest = json.loads((ckpt / "manifest.json").read_text())
    return {"metrics": manifest.get("metrics"), "status": manifest.get("status")}


# --- classify ------------------------------------------------------------------------------------


def _pairs(name: str, data: Path) -> dict[str, list[tuple[str, str]]]:
    return {"sst2": lambda: sets.sst2(data), "trec": lambda: sets.trec(data),
            "kjv-classify": sets.kjv_classify}[name]()


def classify_data(args: argparse.Namespace, name: str, fraction: float) -> tuple[Path, Path]:
    """(data folder, vocabulary folder) for a set and fraction of its train labels."""
    vocab = args.kjv_run / "data" if name == "kjv-classify" else args.out / "lm-data"
    folder = args.out / "data" / f"{name}-{fraction:g}"
    if (folder / "manifest.json").is_file():
        return folder, vocab
    pairs = _pairs(name, args.data)
    src = args.out / "src" / name
    rows = {s: [{"text": t, "label": lab} for t, lab in p] for s, p in pairs.items()}
    train = rows["train"]
    if fraction < 1:
        keep = sorted(random.Random(args.seed).sample(range(len(train)),
                                                      round(len(train) * fraction)))
        train = [train[i] for i in keep]
    files = {"train": _jsonl(src / f"train-{fraction:g}.jsonl", train),
             "valid": _jsonl(src / "valid.jsonl", rows["valid"]),
             "test": _jsonl(src / "test.jsonl", rows["test"])}
    _run(["pocketlm", "ingest", "--task", "classify", "--train-files", str(files["train"]),
          "--valid-files", str(files["valid"]), "--test-files", str(files["test"]),
          "--vocab-from", str(vocab), "--out", str(folder), "--overwrite"],
         args.threads, args.out / "ingest.log")
    return folder, vocab


def train_export(args: argparse.Namespace, kind: str, data: Path, run: str,
                 options: list[str]) -> tuple[Path, dict[str, Any]]:
    """Train (unless done), export; the model folder and what training took."""
    ckpt, model = args.out / "runs" / run / "checkpoint", args.out / "runs" / run / "model"
    log = args.out / "runs" / f"{run}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    if not (model / "manifest.json").is_file():
        cmd = ["pocketlm", "train", "--task", kind, "--data", str(data), "--out", str(ckpt),
               "--device", "cpu", "--overwrite", *options]
        info["train_s"] = round(_run(cmd, args.threads, log), 1)
        info["export_s"] = round(_run(["pocketlm", "export", "--checkpoint", str(ckpt), "--out",
                                       str(model), "--overwrite"], args.threads, log), 1)
    info["command"] = "pocketlm train --task " + kind + " " + " ".join(options)
    ck = json.loads((ckpt / "manifest.json").read_text())
    info["stopped"] = ck["status"].get("reason")
    info.update({k: ck["metrics"].get(k) for k in ("steps", "best_step", "best_epoch",
                                                   "train_seconds")})
    return model, info


def _export_facts(model: Path) -> dict[str, Any]:
    m = json.loads((model / "manifest.json").read_text())
    return {"max_abs_diff_vs_torch": m["export"]["max_abs_diff"],
            "torch_metrics": {"valid": m["metrics"].get("valid"), "test": m["metrics"].get("test")},
            "export_valid": m["metrics"].get("export")}


def classify_runtime(model: Path, pairs: list[tuple[str, str]], threads: int) -> dict[str, Any]:
    from pocketlm.runtime import Classifier
    from pocketlm.runtime.metrics import accuracy, macro_f1

    out = {}
    for precision in ("fp32", "int8"):
        clf = Classifier(model, precision=precision, threads=threads)
        labels = list(clf.labels)
        gold = [labels.index(lab) for _, lab in pairs]
        pred = [labels.index(p.label) for p in clf.predict([t for t, _ in pairs])]
        out[precision] = {"accuracy": round(accuracy(gold, pred), 4),
                          "macro_f1": round(macro_f1(gold, pred, len(labels)), 4)}
    return out


def classify_recipe(args: argparse.Namespace, name: str, fraction: float,
                    init: Path | None, back: Path) -> list[str]:
    options = [*LM_SHAPE, "--bidirectional", "--pooling", args.pooling, "--dropout",
               str(args.dropout), "--epochs", str(args.epochs if fraction >= 1 else
                                                   args.small_epochs),
               "--patience", str(args.patience), "--max-minutes", str(args.max_minutes)]
    if init is not None:
        options += ["--init-from", str(init), "--encoder-lr", str(args.encoder_lr),
                    "--unfreeze-epochs", str(args.unfreeze_epochs)]
        if args.backward_lm:
            options += ["--init-backward-from", str(back)]
    return options + (["--lr", str(args.lr)] if args.lr else []) + args.extra.split()


def run_classify(args: argparse.Namespace) -> None:
    for name in args.sets:
        if name not in CLASSIFY:
            continue
        lm, back = language_models(args, name)
        test = _pairs(name, args.data)["test"]
        for fraction in args.fractions:
            data, _ = classify_data(args, name, fraction)
            train_n = json.loads((data / "manifest.json").read_text())["splits"]["train"]
            for init in (None, lm):
                arm = "lm" if init else "scratch"
                if arm not in args.arms:
                    continue
                accuracies = []
                for seed in args.train_seeds or [None]:
                    run = f"{name}-{fraction:g}-{arm}{args.suffix}" + (f"-s{seed}" if seed else "")
                    options = classify_recipe(args, name, fraction, init, back)
                    model, info = train_export(args, "classify", data, run, options + (
                        ["--seed", str(seed)] if seed else []))
                    measured = classify_runtime(model, test, args.threads)
                    accuracies.append(measured["fp32"]["accuracy"])
                    emit("classify", set=name, fraction=fraction, train_sentences=train_n[
                        "sentences"], encoder=arm, seed=seed, init_from=str(init) if init else None,
                         **info, test_runtime=measured, **_export_facts(model), model=str(model))
                if len(accuracies) > 1:
                    emit("classify_seeds", set=name, fraction=fraction, encoder=arm,
                         seeds=args.train_seeds, test_accuracy=accuracies,
                         median=median(accuracies))


# --- tag ---------------------------------------------------------------------------------------


def tag_data(args: argparse.Namespace, name: str, vocab: Path | None = None) -> Path:
    if name == "kjv-tag":
        return args.kjv_tag
    folder = args.out / "data" / (name + ("-lm-vocab" if vocab else ""))
    if not (folder / "manifest.json").is_file():
        w = args.data / "wnut17"
        _run(["pocketlm", "ingest", "--task", "tag", "--format", "conll", "--train-files",
              str(w / "wnut17train.conll"), "--valid-files", str(w / "emerging.dev.conll"),
              "--test-files", str(w / "emerging.test.annotated"), "--out", str(folder),
              "--overwrite", *(["--vocab-from", str(vocab)] if vocab else [])],
             args.threads, args.out / "ingest.log")
    return folder


def tag_runtime(model: Path, data: Path, threads: int) -> dict[str, Any]:
    """Entity P/R/F1 on test through ``Tagger`` (Viterbi), over the original tokens."""
    from pocketlm.pipeline.labelled import load_examples, read_labels
    from pocketlm.runtime import Tagger
    from pocketlm.runtime.metrics import entity_prf

    examples = load_examples(data, "test")
    labels = read_labels(data)
    texts = [" ".join(e.words) for e in examples]
    out: dict[str, Any] = {}
    for precision in ("fp32", "int8"):
        tagged = Tagger(model, precision=precision, threads=threads).tag_batch(texts)
        gold, pred, mismatched = [], [], 0
        for e, t in zip(examples, tagged):
            mismatched += list(t.words) != list(e.words)
            heads = e.heads if e.heads is not None else list(range(len(e.words)))
            assert e.tags is not None
            gold.append([labels[e.tags[h]] for h in heads])
            pred.append([t.tags[h] if h < len(t.tags) else "O" for h in heads])
        prf = entity_prf(gold, pred)
        out[precision] = {k: round(v, 4) if isinstance(v, float) else v for k, v in prf.items()}
        out[precision]["sentences_with_other_pieces"] = mismatched
    out["sentences"] = len(examples)
    return out


def tag_recipe(args: argparse.Namespace, name: str) -> list[str]:
    options = [*LM_SHAPE, "--bidirectional", "--dropout", str(args.dropout),
               "--epochs", str(args.tag_epochs), "--patience", "2",
               "--max-minutes", str(args.max_minutes)]
    if name == "wnut17":
        options += ["--lr", "5e-3"]
    return options + args.tag_extra.split()


def run_tag(args: argparse.Namespace) -> None:
    for name in args.sets:
        if name not in TAG:
            continue
        lm, back = language_models(args, name)
        arms: list[Path | None] = [None, lm] if name == "kjv-tag" or args.tag_lm else [None]
        for init in arms:
            data = tag_data(args, name, args.out / "lm-data" if init else None)
            options = tag_recipe(args, name)
            if init is not None:
                options += ["--init-from", str(init), "--encoder-lr", str(args.encoder_lr)]
                options += ["--init-backward-from", str(back)] if args.backward_lm else []
            run = f"{name}-{'lm' if init else 'scratch'}{args.suffix}"
            model, info = train_export(args, "tag", data, run, options)
            emit("tag", set=name, encoder="lm" if init else "scratch",
                 init_from=str(init) if init else None, **info,
                 test_runtime=tag_runtime(model, data, args.threads), **_export_facts(model),
                 model=str(model))


# --- runtime -------------------------------------------------------------------------------------


def folder_bytes(model: Path, precision: str) -> int:
    """Bytes of the files a runtime of one precision loads (manifest, tokenizer, graph,
    weights)."""
    m = json.loads((model / "manifest.json").read_text())
    graph = next(iter(m["graphs"].values()))
    files = ["manifest.json", m["tokenizer"], graph["files"][precision]]
    files += [m["weights"][precision]] if precision in m.get("weights", {}) else []
    return sum((model / f).stat().st_size for f in files)


def run_runtime(args: argparse.Namespace) -> None:
    from pocketlm.runtime import Classifier, LanguageModel, Tagger

    texts = [t for t, _ in sets.kjv_classify()["test"]]
    clf_model = args.out / "runs" / args.runtime_classifier / "model"
    tag_model = args.out / "runs" / args.runtime_tagger / "model"
    lm_model = args.kjv_run / "model"
    for model in (clf_model, tag_model):
        emit("bytes", model=str(model), vocab_size=json.loads(
            (model / "manifest.json").read_text())["vocab_size"],
             fp32=folder_bytes(model, "fp32"), int8=folder_bytes(model, "int8"))
    for precision in ("fp32", "int8"):
        runners = {
            "classify": Classifier(clf_model, precision=precision, threads=1).predict,
            "tag": Tagger(tag_model, precision=precision, threads=1).tag_batch,
            "lm_score": LanguageModel(lm_model, precision=precision, threads=1).score_batch}
        encoder = Classifier(clf_model, threads=1)
        pieces = sum(len(encoder.encode(t).words) for t in texts)
        rates: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(args.rounds):
            for key, fn in runners.items():
                rates[key].append(_median_rate(fn, texts))
        for key, values in rates.items():
            rate = median(values)
            emit("speed", graph=key, precision=precision, threads=1, texts=len(texts),
                 pieces=pieces, texts_per_s=round(rate, 1),
                 tokens_per_s=round(rate * pieces / len(texts), 1),
                 rounds=[round(v, 1) for v in values])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/tasks"))
    parser.add_argument("--only", default="baselines,lm,classify,tag,runtime")
    parser.add_argument("--sets", default=",".join(CLASSIFY + TAG))
    parser.add_argument("--fractions", default="0.1,1")
    parser.add_argument("--kjv-run", type=Path, default=Path("runs/kjv"),
                        help="`pocketlm run --out` folder (data/, checkpoint/, model/)")
    parser.add_argument("--kjv-tag", type=Path, default=Path("runs/labelled/kjv-tag"),
                        help="the KJV names data folder (ingest --task tag --vocab-from RUN/data)")
    parser.add_argument("--lm-minutes", type=float, default=8.0)
    parser.add_argument("--lm-steps", type=int, default=0,
                        help="language models: this many steps instead of --lm-minutes")
    parser.add_argument("--lm-threads", type=int, default=2)
    parser.add_argument("--sst2-repeat", type=int, default=1,
                        help="the SST-2 train sentences this many times in the LM's text")
    parser.add_argument("--backward-lm", action=argparse.BooleanOptionalAction, default=True,
                        help="LM-started classifiers also --init-backward-from a --reverse LM")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--small-epochs", type=int, default=12)
    parser.add_argument("--tag-epochs", type=int, default=8)
    parser.add_argument("--max-minutes", type=float, default=3.0)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--pooling", default="max")
    parser.add_argument("--encoder-lr", type=float, default=0.3)
    parser.add_argument("--patience", type=int, default=2, help="classify --patience")
    parser.add_argument("--unfreeze-epochs", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.0, help="classify lr (0: the default)")
    parser.add_argument("--suffix", default="", help="appended to the run folders")
    parser.add_argument("--extra", default="", help="more `pocketlm train` options (classify)")
    parser.add_argument("--tag-extra", default="", help="more `pocketlm train` options (tag)")
    parser.add_argument("--arms", default="scratch,lm", help="classify: which encoders")
    parser.add_argument("--tag-lm", action="store_true",
                        help="WNUT-17 also --init-from the modern English LM (its vocabulary)")
    parser.add_argument("--crf-iterations", type=int, default=100)
    parser.add_argument("--runtime-classifier", default="kjv-classify-1-lm")
    parser.add_argument("--runtime-tagger", default="kjv-tag-lm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1234, help="draws the label fractions")
    parser.add_argument("--train-seeds", default="",
                        help="classify: train each arm once per seed (comma-separated), and "
                             "report the median test accuracy")
    args = parser.parse_args()
    args.sets = args.sets.split(",")
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.train_seeds = [int(x) for x in args.train_seeds.split(",") if x]
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = args.only.split(",")
    emit("machine", **machine())
    emit("config", **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    if "baselines" in parts:
        for name in args.sets:
            started = time.perf_counter()
            if name in CLASSIFY:
                emit("baseline", set=name, model="tfidf-uni+bigram-logreg",
                     **baselines.tfidf_lr(_pairs(name, args.data)),
                     seconds=round(time.perf_counter() - started, 1))
            else:
                tagged = sets.wnut17(args.data) if name == "wnut17" else sets.kjv_names()
                emit("baseline", set=name, model="crf-word-suffix-shape-neighbours",
                     **baselines.crf(tagged, args.crf_iterations),
                     seconds=round(time.perf_counter() - started, 1))
    if "lm" in parts:
        build_lm(args)
    if "classify" in parts:
        run_classify(args)
    if "tag" in parts:
        run_tag(args)
    if "runtime" in parts:
        run_runtime(args)


if __name__ == "__main__":
    main()
