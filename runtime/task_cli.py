"""The ``pocketlm classify`` and ``pocketlm tag`` commands: a task model folder run over TEXT
arguments or stdin lines (streamed in batches, as the language model's commands)::

    pocketlm classify --model M "text" ...  ─▶ label<TAB>probability<TAB>text  (K pairs: --top-k K)
    pocketlm tag --model M "text" ...       ─▶ word/TAG word/TAG ...  then one line per entity

``--json`` prints one object per text instead (``Prediction.to_dict`` / ``Tagged.to_dict``).
A folder of another task is refused in one line that names the command that runs it.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from . import inputs
from .group import json_option, model_option, precision_option, threads_option

_batch_option = click.option("--batch-size", type=click.IntRange(min=1), default=256,
                             show_default=True, help="Lines read and run at a time.")


@click.command()
@model_option
@click.argument("texts", nargs=-1)
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many labels to print per text, most probable first.")
@_batch_option
@precision_option
@threads_option
@json_option
def classify(model_dir: Path, texts: tuple[str, ...], top_k: int, batch_size: int,
             precision: str, threads: int | None, as_json: bool) -> None:
    """One label per TEXT (or stdin line, streamed) with a classify model folder."""
    from .classifier import Classifier

    model = Classifier(model_dir, precision=precision, threads=threads)
    for batch in inputs.batches(_texts(texts, "classify"), batch_size):
        for p in model.predict(batch, top_k=top_k):
            if as_json:
                click.echo(json.dumps(p.to_dict(), ensure_ascii=False))
            else:
                pairs = "\t".join(f"{label}\t{prob:.4f}"
                                  for label, prob in zip(p.labels, p.probabilities))
                click.echo(f"{pairs}\t{_printable(p.text)}")


@click.command()
@model_option
@click.argument("texts", nargs=-1)
@_batch_option
@precision_option
@threads_option
@json_option
def tag(model_dir: Path, texts: tuple[str, ...], batch_size: int, precision: str,
        threads: int | None, as_json: bool) -> None:
    """BIO2 tags and entities of each TEXT (or stdin line, streamed) with a tag model folder.

    Text output: the pieces as `word/TAG`, then one indented line per entity
    (`TYPE<TAB>start-end<TAB>text`, character offsets)."""
    from .tagger import Tagger

    model = Tagger(model_dir, precision=precision, threads=threads)
    for batch in inputs.batches(_texts(texts, "tag"), batch_size):
        for t in model.tag_batch(batch):
            if as_json:
                click.echo(json.dumps(t.to_dict(), ensure_ascii=False))
                continue
            click.echo(" ".join(f"{_printable(w)}/{g}" for w, g in zip(t.words, t.tags)))
            for e in t.entities:
                click.echo(f"  {e.type}\t{e.start}-{e.end}\t{_printable(e.text)}")


def _texts(texts: tuple[str, ...], label: str) -> Iterator[str]:
    """The arguments, or stdin's lines with bytes that are not UTF-8 read as U+FFFD."""
    if not texts and isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")
    return inputs.sentences(texts, label)


def _printable(text: str) -> str:
    """``text`` safe for one output line: line breaks and other control characters escaped,
    lone surrogates as U+FFFD."""
    return "".join(c if c.isprintable() or c == " " else
                   "\ufffd" if "\ud800" <= c <= "\udfff" else repr(c)[1:-1] for c in text)
