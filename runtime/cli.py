"""The ``pocketlm`` command line: one click group that every install has.

The runtime core's commands (score, rank, generate, perplexity, info; web and suggest from
their own modules) live here and import nothing but the runtime (onnxruntime, numpy,
tokenizers, click). Further commands are registered
by name under the entry-point group ``pocketlm.commands`` and loaded only when named
(:mod:`pocketlm.runtime.group`): the stage commands (ingest, train, export, evaluate, run), which
without the ``[train]`` extra say in one line what to install, and ``rescore``
(``runtime/speech/cli.py``: n-best lists and lattices, which the core never imports). User
mistakes surface as one-line click errors; the runtime raises :class:`PocketLMError` with the fix
in it.

Commands that read stdin stream it (:mod:`pocketlm.runtime.inputs`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from . import inputs
from .artifact import read_manifest
from .options import click_options
from .sampling import SamplingConfig
from .keyboard_cli import suggest
from .task_cli import classify, tag
from .web import web
from .group import (PocketLMGroup, batch_option, json_option, model_option, open_language_model,
                    precision_option, scoring_options, setup_logging, threads_option)


@click.group(cls=PocketLMGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", "verbosity", flag_value=-1, help="Only warnings and errors.")
@click.option("-v", "--verbose", "verbosity", flag_value=1, help="Debug logging.")
@click.version_option(package_name="pocketlm")
def cli(verbosity: int | None) -> None:
    """pocketlm: corpus → word-level RNN language model → ONNX on the edge.

    Stages (need the [train] extra): ingest → train → export, each writing one folder with a
    manifest.json; `pocketlm run` does everything on the embedded King James Bible.
    Runtime (any install): score, rank, rescore, generate, suggest, perplexity and info with an
    exported language model folder; classify and tag with a classifier's or tagger's folder.
    """
    setup_logging(verbosity or 0)


@cli.command()
@model_option
@click.argument("sentences", nargs=-1)
@scoring_options
def score(model_dir: Path, sentences: tuple[str, ...], bos: bool, eos: bool, batch_size: int,
          precision: str, threads: int | None, as_json: bool) -> None:
    """Log-probability (nats) and perplexity of each SENTENCE (or stdin line, streamed).

    The empty sentence is scored too: ln P(<eos> | <eos>).
    """
    lm = open_language_model(model_dir, precision, threads)
    for batch in inputs.batches(inputs.sentences(sentences, "score"), batch_size):
        for s in lm.analyze(batch, bos=bos, eos=eos):
            if as_json:
                click.echo(json.dumps({"sentence": s.sentence, "logprob": s.logprob,
                                       "tokens": s.tokens, "oov": s.oov,
                                       "perplexity": _finite(s.perplexity)}))
            else:
                click.echo(f"{s.logprob:10.4f}\tppl {s.perplexity:9.2f}\toov {s.oov}\t"
                           f"{s.sentence}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@cli.command()
@model_option
@click.argument("candidates", nargs=-1)
@precision_option
@threads_option
@json_option
def rank(model_dir: Path, candidates: tuple[str, ...], precision: str, threads: int | None,
         as_json: bool) -> None:
    """Order CANDIDATES (or stdin lines) best first by log-probability."""
    lm = open_language_model(model_dir, precision, threads)
    ranked = lm.rank(list(inputs.sentences(candidates, "rank")))
    if as_json:
        click.echo(json.dumps([{"rank": i + 1, "sentence": s.sentence, "logprob": s.logprob,
                                "oov": s.oov} for i, s in enumerate(ranked)]))
        return
    for i, s in enumerate(ranked, 1):
        click.echo(f"{i}\t{s.logprob:10.4f}\t{s.sentence}")


@cli.command()
@model_option
@click.argument("sentences", nargs=-1)
@batch_option
@precision_option
@threads_option
@json_option
def perplexity(model_dir: Path, sentences: tuple[str, ...], batch_size: int, precision: str,
               threads: int | None, as_json: bool) -> None:
    """Perplexity over SENTENCES (or stdin lines, streamed); blank lines are skipped."""
    lm = open_language_model(model_dir, precision, threads)
    total, tokens, lines = 0.0, 0, 0
    for batch in inputs.batches((s for s in inputs.sentences(sentences, "perplexity") if s.strip()),
                          batch_size):
        for s in lm.analyze(batch):
            total, tokens, lines = total + s.logprob, tokens + s.tokens, lines + 1
    if not lines:
        raise click.UsageError("perplexity needs at least one non-blank line")
    ppl = math.exp(-total / tokens)
    if as_json:
        click.echo(json.dumps({"perplexity": ppl, "logprob": total, "tokens": tokens,
                               "lines": lines}))
    else:
        click.echo(f"perplexity {ppl:.3f} ({lines:,} lines, {tokens:,} predicted tokens)")


# -- generate -----------------------------------------------------------------------------------

@cli.command()
@model_option
@click.option("--prompt", default="", help="Text to continue (default: a new sentence).")
@click_options(SamplingConfig)   # --max-words ... --stop: the settings, declared once
@precision_option
@threads_option
@json_option
def generate(model_dir: Path, prompt: str, max_words: int, temperature: float, top_k: int,
             top_p: float, seed: int | None, num_samples: int, stop: tuple[str, ...],
             precision: str, threads: int | None, as_json: bool) -> None:
    """Generate text word by word until <eos> (one sample is printed as it is produced)."""
    from .results import detokenize

    lm = open_language_model(model_dir, precision, threads)
    settings: dict[str, Any] = dict(max_words=max_words, temperature=temperature, top_k=top_k,
                                    top_p=top_p, seed=seed, stop=stop)
    head = prompt.strip()
    if num_samples == 1 and not as_json:
        words: list[str] = []
        printed = ""
        click.echo(head, nl=False)
        for word in lm.stream(prompt, **settings):        # print each word as it comes
            words.append(word)
            text = detokenize(words)
            piece = text[len(printed):]
            click.echo(" " + piece if head and not printed else piece, nl=False)
            printed = text
        click.echo("")
        return
    for g in lm.samples(prompt, num_samples=num_samples, **settings):
        if as_json:
            click.echo(json.dumps({"prompt": prompt, "generated": g.text, "words": g.words,
                                   "logprobs": g.logprobs, "finish": g.finish}))
        else:
            click.echo(" ".join(p for p in (head, g.text) if p))


@cli.command()
@model_option
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check every file's SHA-256 against the manifest.")
@json_option
def info(model_dir: Path, verify: bool, as_json: bool) -> None:
    """Summary of a model folder's manifest: model, vocabulary, graphs, state, metrics."""
    m = read_manifest(model_dir, "model", verify=verify)
    model, export = m.get("model", {}), m.get("export", {})
    sizes = export.get("bytes", {})
    summary = {
        "path": str(model_dir), "format_version": m.get("format_version"),
        "model": model, "vocab_size": m.get("vocab_size"),
        "special_tokens": m.get("special_tokens"),
        "precisions": sorted({p for g in m["graphs"].values() for p in g["files"]}),
        "graphs": {name: {"inputs": g["inputs"], "outputs": g["outputs"],
                          "files": {p: {"file": f, "bytes": sizes.get(f)}
                                    for p, f in g["files"].items()}}
                   for name, g in m["graphs"].items()},
        "state": m.get("state"), "scoring": m.get("scoring"), "metrics": m.get("metrics"),
        "versions": m.get("versions"),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    cell = ", ".join(f"{k} {v}" for k, v in model.items() if k != "vocab_size")
    lines = [f"model folder   {model_dir} (format {summary['format_version']})",
             f"network        {cell}",
             f"vocabulary     {summary['vocab_size']:,} words; <unk> = "
             f"{m['special_tokens']['unk']['id']}, <eos> = {m['special_tokens']['eos']['id']}",
             f"precisions     {', '.join(summary['precisions'])}"]
    for name, g in summary["graphs"].items():
        files = ", ".join(f"{v['file']} ({v['bytes']:,} bytes)" if v["bytes"] else v["file"]
                          for v in g["files"].values())
        lines.append(f"{name + ' graph':<14} {' + '.join(g['inputs'])} -> "
                     f"{' + '.join(g['outputs'])}: {files}")
    state = ", ".join(f"{s['input']} {s['shape']}" for s in summary["state"] or [])
    lines.append(f"state          {state}")
    metrics = summary["metrics"] or {}
    lines.append("perplexity     " + ", ".join(
        f"{k} {v:.2f}" if isinstance(v, (int, float)) else f"{k} n/a"
        for k, v in metrics.items()))
    versions = summary["versions"] or {}
    lines.append("exported with  " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for line in lines:
        click.echo(line)


cli.add_command(web)  # pocketlm web: the page (runtime/web.py)
cli.add_command(classify)  # pocketlm classify (runtime/task_cli.py)
cli.add_command(tag)  # pocketlm tag (runtime/task_cli.py)
cli.add_command(suggest)  # pocketlm suggest: keyboard suggestions (runtime/keyboard_cli.py)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pocketlm")


if __name__ == "__main__":
    main()
