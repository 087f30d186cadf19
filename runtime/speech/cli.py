"""``pocketlm rescore``: n-best lists (or word lattices) re-ranked with pocketlm, log-linearly.

Registered under the ``pocketlm.commands`` entry points (pyproject.toml), so the runtime's core
never imports it; it needs nothing beyond the base install (``--ngram`` needs ``pocketlm[kenlm]``)::

    NBEST ──read──▶ lists of hypotheses, each with features (nbest.py: text | jsonl | kaldi;
                    lattice.py + rescore_lattice.search: slf, searched with pocketlm in the loop)
          ──▶ + pocketlm (ln P, nats), words, [ngram]
          ──▶ total = Σ_f weight_f · feature_f, best first ──▶ nbest.py's writer (JSON or text)

The base case is the weights ``{score: 1, pocketlm: --weight, words: --word-penalty}`` (``score``
is the recogniser's, from ``score<TAB>sentence`` text or a JSON ``score``; default 0), with
pocketlm's ln P from the score graph (``--bos``/``--eos``) and ``words`` its tokens; the lists
are then streamed in batches of ``--batch-size`` hypotheses (constant memory)::

    pocketlm rescore --model M --weight 0.8 nbest.txt
    pocketlm rescore --model M --json --top 1 < nbest.jsonl

With word-level features (any of the options below, or ``--format kaldi``/``slf``) every list is
read first, ``pocketlm`` is ln P word by word through the prefix trie (hidden punctuation with
``--hidden``), ``words`` the words, ``ngram`` KenLM's ln P with ``--ngram``, and any weights
given with ``--weights``/``--weights-file`` replace the base case's (features they do not name
weigh 0; a lattice's search brings its own)::

    pocketlm rescore --model M nbest.jsonl --weights acoustic=1,lm=0.6,pocketlm=0.5,words=1
    pocketlm rescore --model M --format kaldi text --kaldi-cost acoustic=ac_cost \\
        --kaldi-cost lm=lm_cost --ngram 5gram.arpa --tune refs.txt --weights-out w.json
    pocketlm rescore --model M nbest.jsonl --weights-file w.json --output best.jsonl
    pocketlm rescore --model M --format slf lattices.scp --ngram 5gram.arpa --output nbest.jsonl

With ``--format slf`` the input is word lattices (HTK SLF, as pocketsphinx's ``write_htk``
writes them): one lattice file, or a list of them (``path`` or ``<id> <path>`` lines). Links
whose posterior is below ``--prune`` go; the rest is searched with pocketlm (and ``--ngram``)
in the loop: acoustic + ``--lm-scale`` shared equally by the language models (the lattice's own
LM scores among them), histories merged on their last ``--lattice-history`` words,
``--lattice-beam`` hypotheses per node; each lattice becomes its 100 best sentences with their
features (``acoustic``, ``lm``, ``posterior``, ``words``, ``pocketlm``, ``ngram``).

``--tune REFS`` (``<id> words`` lines) chooses the weights by cross-validation over ``--folds``
folds of utterance groups (the id up to ``--group-sep``), prints the out-of-fold WER beside the
recogniser's first candidate's, and the weights tuned on everything. ``--output`` is written
atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import numpy as np

from ..artifact import InputError, atomic_path
from ..group import model_option, open_language_model, scoring_options
from ..inputs import tracked
from .combine import Candidates, cross_validate, tune
from .nbest import Hypothesis, NBestList, Ranked, ranked_json, ranked_text, read_kaldi, read_nbest

if TYPE_CHECKING:  # the model (onnxruntime) is loaded when a command runs, not for --help
    from ..model import LanguageModel

#: Features per hypothesis, in the input's order.
Features = list[dict[str, float]]


@dataclass(frozen=True)
class LatticeSearch:
    """``--format slf``: how each lattice is searched (:func:`.rescore_lattice.search`)."""

    lm_scale: float = 10.0
    prune: float = 1e-3
    beam: int = 20
    history: int = 3


@dataclass(frozen=True)
class RescoreOptions:
    """What ``rescore`` does with its lists. ``weights`` None is the base case: ``{score: 1,
    pocketlm: weight, words: word_penalty}``."""

    fmt: str = "auto"
    weight: float = 1.0
    word_penalty: float = 0.0
    weights: Mapping[str, float] | None = None
    costs: Mapping[str, str] = field(default_factory=dict)
    hidden: str = ""
    ngram: Path | None = None
    refs: Path | None = None
    folds: int = 5
    group_sep: str = "-"
    weights_out: Path | None = None
    output: Path | None = None
    top: int = 0
    as_json: bool = False
    bos: bool = True
    eos: bool = True
    batch_size: int = 256
    search: LatticeSearch = LatticeSearch()

    @property
    def base_weights(self) -> dict[str, float]:
        return {"score": 1.0, "pocketlm": self.weight, "words": self.word_penalty}

    @property
    def streamed(self) -> bool:
        """The base case on text or JSON lines: scored by the score graph, batch by batch."""
        return (self.fmt in ("auto", "text", "jsonl") and self.weights is None and not self.costs
                and not self.hidden and self.ngram is None and self.refs is None
                and self.weights_out is None and self.output is None)


def rank(rows: Features, texts: Sequence[str], weights: Mapping[str, float], top: int = 0,
         oov: Sequence[int] | None = None) -> list[Ranked]:
    """One list best first by Σ weight_f · feature_f (ties keep input order), the best ``top``
    (0: all)."""
    totals = [sum(weights.get(k, 0.0) * v for k, v in f.items()) for f in rows]
    order = sorted(range(len(rows)), key=lambda i: -totals[i])[:top or None]
    return [Ranked(texts[i], totals[i], i, rows[i], None if oov is None else oov[i])
            for i in order]


def run(lm: LanguageModel, nbest: IO[str], options: RescoreOptions) -> None:
    """Read, score, weigh and write (see the module docstring)."""
    if options.streamed:
        for line in _streamed(lm, nbest, options):
            click.echo(line)
        return
    lists, feats, given = _featurised(lm, nbest, options)
    names = sorted({k for rows in feats for f in rows for k in f})
    weights = given if given is not None else options.base_weights
    if options.refs is not None:
        weights = _tuned(lists, feats, names, given or {}, options)
    unknown = sorted(set(options.weights or {}) - set(names)) if options.refs is None else []
    if unknown:
        raise click.BadParameter(f"no feature named {unknown[0]!r}; the features are "
                                 f"{', '.join(names)}", param_hint="--weights")
    lines = []
    for nb, rows in zip(lists, feats):
        ranked = rank(rows, [h.text for h in nb.hypotheses], weights, options.top)
        if options.as_json or options.output is not None:
            lines.append(ranked_json(nb.id, ranked))
        else:
            lines += ranked_text(ranked)
    if options.output is not None:
        with atomic_path(options.output) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif options.refs is None or options.weights_out is None:
        for line in lines:
            click.echo(line)


def _streamed(lm: LanguageModel, nbest: IO[str], options: RescoreOptions) -> Iterator[str]:
    """The base case, ``--batch-size`` hypotheses at a time: pocketlm's ln P and the tokens from
    the score graph (:meth:`LanguageModel.rescore_batch`)."""
    lists = read_nbest(tracked(nbest, "rescore"), options.fmt, getattr(nbest, "name", "<stdin>"))
    for batch in _batches(lists, options.batch_size):
        results = lm.rescore_batch([[h.text for h in nb.hypotheses] for nb in batch],
                                   [[h.features.get("score", 0.0) for h in nb.hypotheses]
                                    for nb in batch],
                                   weight=0.0, bos=options.bos, eos=options.eos, batch_size=64)
        for nb, scored in zip(batch, results):
            scored = sorted(scored, key=lambda r: r.index)
            rows = [{**nb.hypotheses[r.index].features, "score": r.base_score,
                     "pocketlm": r.lm_logprob, "words": float(r.words)} for r in scored]
            ranked = rank(rows, [r.sentence for r in scored], options.base_weights, options.top,
                          [r.oov for r in scored])
            yield from [ranked_json(nb.id, ranked)] if options.as_json else ranked_text(ranked)


def _batches(lists: Iterable[NBestList], size: int) -> Iterator[list[NBestList]]:
    """Whole lists, at least ``size`` hypotheses a batch (the last may hold fewer)."""
    batch: list[NBestList] = []
    count = 0
    for nb in lists:
        batch.append(nb)
        count += len(nb.hypotheses)
        if count >= size:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch


def _featurised(lm: LanguageModel, nbest: IO[str], options: RescoreOptions
                ) -> tuple[list[NBestList], list[Features], dict[str, float] | None]:
    """Every list with its features (word-level ``pocketlm``, ``words``, ``ngram``), and the
    weights given (``--weights``, else a lattice search's; None: the base case's)."""
    name = getattr(nbest, "name", "<stdin>")
    weights = dict(options.weights) if options.weights is not None else None
    if options.fmt == "slf":
        lists, searched = _from_lattices(lm, nbest, options)
        return (lists, [[dict(h.features) for h in nb.hypotheses] for nb in lists],
                dict(options.weights) if options.weights else searched)
    if options.fmt == "kaldi":
        lists = read_kaldi(nbest.name, options.costs)
    else:
        lists = list(read_nbest(tracked(nbest, "rescore"), options.fmt, name))
    if not lists:
        raise InputError(f"{name}: no n-best lists")
    from .prefix import PrefixScorer

    scorer = PrefixScorer(lm, list(options.hidden))
    counter = None
    if options.ngram is not None:
        from .scorers import NGramScorer

        counter = NGramScorer(options.ngram)
    feats = []
    for nb in lists:
        words = [h.text.split() for h in nb.hypotheses]
        pocket = scorer.score(words)
        grams = counter.score(words) if counter else [None] * len(words)
        rows = []
        for h, w, p, g in zip(nb.hypotheses, words, pocket, grams):
            f = dict(h.features)
            f.update(pocketlm=p, words=float(len(w)))
            if g is not None:
                f["ngram"] = g
            rows.append(f)
        feats.append(rows)
    return lists, feats, weights


def _from_lattices(lm: LanguageModel, stream: IO[str], options: RescoreOptions
                   ) -> tuple[list[NBestList], dict[str, float]]:
    """Each lattice searched into an n-best list; and the search's weights."""
    from .lattice import prune, read_lattices
    from .rescore_lattice import lm_names, search, search_weights
    from .scorers import NGramScorer, PocketLMScorer

    how = options.search
    lattices = read_lattices(stream, getattr(stream, "name", "<stdin>"))
    scorers: list[Any] = [PocketLMScorer(lm, list(options.hidden))]
    if options.ngram is not None:
        scorers.append(NGramScorer(options.ngram))
    out = []
    lattice_lm = any(k.lm for t in lattices for k in t.links)
    for lattice in lattices:
        got, _ = search(prune(lattice, how.prune), scorers, how.lm_scale, history=how.history,
                        beam=how.beam, lattice_lm=lattice_lm)
        dropped = {"posterior"} if all(k.posterior is None for k in lattice.links) else set()
        out.append(NBestList(got.id, tuple(
            Hypothesis(h.text, {k: v for k, v in h.features.items() if k not in dropped})
            for h in got.hypotheses)))
    return out, search_weights(lm_names(scorers, lattice_lm), how.lm_scale)


def _tuned(lists: list[NBestList], feats: list[Features], names: list[str],
           start: dict[str, float], options: RescoreOptions) -> dict[str, float]:
    """``--tune``: print the cross-validated WER beside the first candidates', write
    ``--weights-out``; the weights tuned on everything."""
    assert options.refs is not None
    references = _references(options.refs, {str(nb.id) for nb in lists})
    fixed = "acoustic" if "acoustic" in names else names[0]
    problems = []
    for nb, rows in zip(lists, feats):
        ref = references[str(nb.id)]
        errs = np.array([_errors(ref, h.text.split()) for h in nb.hypotheses])
        matrix = np.array([[f.get(n, 0.0) for n in names] for f in rows])
        problems.append(Candidates(matrix, errs, len(ref),
                                   str(nb.id).rsplit(options.group_sep, 1)[0]))
    chosen, _ = cross_validate(problems, names, folds=options.folds, fixed=fixed, start=start)
    words = sum(p.ref_words for p in problems)
    cv = sum(int(p.errors[i]) for p, i in zip(problems, chosen))
    first = sum(int(p.errors[0]) for p in problems)
    weights = tune(problems, names, fixed=fixed, start=start)
    click.echo(json.dumps({"tuned": weights, "folds": options.folds,
                           "utterances": len(problems), "words": words,
                           "wer_first_candidate": 100 * first / words,
                           "wer_cross_validated": 100 * cv / words}))
    if options.weights_out is not None:
        with atomic_path(options.weights_out) as tmp:
            tmp.write_text(json.dumps({"weights": weights}, indent=2) + "\n")
    return weights


def _references(path: Path, ids: set[str]) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read references ({exc.strerror})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key, _, text = line.replace("\t", " ", 1).partition(" ")
        if key not in ids:
            raise InputError(f"{path}:{number}: unknown utterance id {key!r} (no n-best list "
                             f"has it)")
        refs[key] = text.split()
    missing = sorted(ids - set(refs))
    if missing:
        raise InputError(f"{path}: no reference for utterance {missing[0]!r} "
                         f"({len(missing)} missing); give `<id> words` lines")
    return refs


def _errors(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def _weights(text: str | None, path: Path | None) -> dict[str, float] | None:
    """``--weights`` over ``--weights-file``; None when neither is given."""
    if text is None and path is None:
        return None
    weights: dict[str, float] = {}
    if path is not None:
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"{path}: cannot read JSON weights ({exc})",
                                     param_hint="--weights-file") from exc
        loaded = loaded.get("weights", loaded) if isinstance(loaded, dict) else None
        if not isinstance(loaded, dict):
            raise click.BadParameter(f"{path}: expected {{\"name\": weight, ...}}",
                                     param_hint="--weights-file")
        weights.update(loaded)
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, raw = part.partition("=")
        try:
            weights[name.strip()] = float(raw) if sep else math.nan
        except ValueError:
            weights[name.strip()] = math.nan
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise click.BadParameter(f"weight of {name!r} is {value!r}; give name=number pairs "
                                     f"like acoustic=1,pocketlm=0.5", param_hint="--weights")
    return {k: float(v) for k, v in weights.items()}


def _costs(items: tuple[str, ...]) -> dict[str, str]:
    named = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise click.BadParameter(f"{item!r}: expected NAME=FILE", param_hint="--kaldi-cost")
        named[name] = file
    return named


@click.command()
@model_option
@click.argument("nbest", type=click.File("r", encoding="utf-8", errors="surrogateescape"),
                default="-")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "text", "kaldi", "slf"]),
              default="auto", show_default=True,
              help="jsonl: one list per line, {\"id\": ..., \"hypotheses\": [{\"text\": ..., "
                   "\"score\": ...}]} (every numeric field a feature); text: `score<TAB>sentence` "
                   "lines, lists separated by a blank line; kaldi: NBEST is Kaldi's `text` file "
                   "(see --kaldi-cost); slf: HTK lattices, one file or a list of them.")
@click.option("--weight", type=float, default=1.0, show_default=True,
              help="LM weight: score = base + weight * LM log-prob + penalty * words.")
@click.option("--word-penalty", type=float, default=0.0, show_default=True,
              help="Added once per word (positive favours longer hypotheses).")
@click.option("--top", type=click.IntRange(min=0), default=0, show_default=True,
              help="Print only the best N of each list (0: all).")
@scoring_options
@click.option("--kaldi-cost", "costs", multiple=True, metavar="NAME=FILE",
              help="With --format kaldi: a cost file (`<utt>-<n> cost`) read as feature NAME "
                   "= -cost; repeatable. NBEST is then the `text` file.")
@click.option("--weights", "weights_text", default=None, metavar="NAME=W,...",
              help="Log-linear weights of the features (acoustic, lm, score, pocketlm, ngram, "
                   "words, ...), instead of --weight and --word-penalty.")
@click.option("--weights-file", type=click.Path(path_type=Path), default=None,
              help="JSON weights (as written by --weights-out).")
@click.option("--hidden", default="", show_default=True,
              help="Punctuation the transcripts leave out that the model may insert between "
                   "words, e.g. ',.:;?!'.")
@click.option("--ngram", type=click.Path(path_type=Path), default=None,
              help="An ARPA or KenLM binary: adds feature `ngram` (needs pocketlm[kenlm]).")
@click.option("--tune", "refs", type=click.Path(path_type=Path), default=None,
              help="References (`<id> words` lines): tune the weights by cross-validation.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--group-sep", default="-", show_default=True,
              help="Folds keep together ids equal up to the last GROUP_SEP.")
@click.option("--weights-out", type=click.Path(path_type=Path), default=None,
              help="Write the tuned weights here (JSON, atomically).")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Write the rescored lists here (JSON lines, atomically).")
@click.option("--lm-scale", type=click.FloatRange(min=0.0), default=10.0, show_default=True,
              help="With --format slf: the language models' total weight in the lattice search "
                   "(acoustic = 1); pocketsphinx's lattices: about 10.")
@click.option("--prune", type=click.FloatRange(min=0.0, max=1.0), default=1e-3,
              show_default=True,
              help="With --format slf: drop links whose posterior is below this.")
@click.option("--lattice-beam", type=click.IntRange(min=1), default=20, show_default=True,
              help="With --format slf: hypotheses kept per lattice node.")
@click.option("--lattice-history", type=click.IntRange(min=0), default=3, show_default=True,
              help="With --format slf: merge hypotheses whose last N words agree.")
def rescore(model_dir: Path, nbest: IO[str], fmt: str, weight: float, word_penalty: float,
            top: int, bos: bool, eos: bool, batch_size: int, precision: str,
            threads: int | None, as_json: bool, costs: tuple[str, ...],
            weights_text: str | None, weights_file: Path | None, hidden: str,
            ngram: Path | None, refs: Path | None, folds: int, group_sep: str,
            weights_out: Path | None, output: Path | None, lm_scale: float, prune: float,
            lattice_beam: int, lattice_history: int) -> None:
    """Re-rank n-best lists (or lattices) from NBEST (default stdin) with the language model.

    Each list comes out best first by the weighted sum of its features: by default base score
    + weight x LM log-probability (nats) + word-penalty x words. Output: with --json (or
    --output) one line per list, {"id", "hypotheses": [{"text", "score", "base_score",
    "pocketlm", "words", ..., "index"}]}; else `score<TAB>base<TAB>lm<TAB>sentence` lines
    (`score<TAB>sentence` without a base score), a blank line after each list.
    """
    for name, value in (("--weight", weight), ("--word-penalty", word_penalty)):
        if not math.isfinite(value):
            raise click.BadParameter(f"must be a finite number, got {value}", param_hint=name)
    if nbest.isatty():
        raise click.UsageError("give an n-best file or pipe one on stdin")
    options = RescoreOptions(
        fmt=fmt, weight=weight, word_penalty=word_penalty,
        weights=_weights(weights_text, weights_file), costs=_costs(costs), hidden=hidden,
        ngram=ngram, refs=refs, folds=folds, group_sep=group_sep, weights_out=weights_out,
        output=output, top=top, as_json=as_json, bos=bos, eos=eos, batch_size=batch_size,
        search=LatticeSearch(lm_scale, prune, lattice_beam, lattice_history))
    run(open_language_model(model_dir, precision, threads), nbest, options)
