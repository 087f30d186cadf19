"""``pocketlm rescore`` with recogniser features: Kaldi n-best, log-linear weights, tuning.

The command keeps every option of the runtime's ``rescore`` and, when none of the options below
is given, *is* that command (same output). With them::

    pocketlm rescore --model M nbest.jsonl --weights acoustic=1,lm=0.6,pocketlm=0.5,words=1
    pocketlm rescore --model M --format kaldi text --kaldi-cost acoustic=ac_cost \\
        --kaldi-cost lm=lm_cost --ngram 5gram.arpa --tune refs.txt --weights-out w.json
    pocketlm rescore --model M nbest.jsonl --weights-file w.json --output best.jsonl
    pocketlm rescore --model M --format slf lattices.scp --ngram 5gram.arpa --output nbest.jsonl

With ``--format slf`` the input is word lattices (HTK SLF, as pocketsphinx's ``write_htk``
writes them): one lattice file, or a list of them (``path`` or ``<id> <path>`` lines). Links
whose posterior is below ``--prune`` go; the rest is searched with pocketlm (and ``--ngram``)
in the loop (:func:`~.rescore_lattice.expand`): acoustic + ``--lm-scale`` shared equally by the
language models (the lattice's own LM scores among them, when its links carry them), word
histories merged on their last ``--lattice-history`` words, ``--lattice-beam`` hypotheses per
node. Each lattice becomes an n-best list of its 100 best sentences with their features
(``acoustic``, ``lm``, ``posterior``, ``words``, ``pocketlm``, ``ngram``), which the options
below weigh and tune like any n-best list.

Each hypothesis gets the feature ``pocketlm`` (ln P through the prefix trie, hidden punctuation
with ``--hidden``), ``ngram`` with ``--ngram`` (KenLM) and ``words``; its total is the weighted
sum of its features (``--weights``; unnamed features weigh 0). ``--tune REFS`` (``<id> words``
lines) chooses the weights by cross-validation over ``--folds`` folds of utterance groups (the
id up to ``--group-sep``), prints the out-of-fold WER beside the recogniser's first candidate's,
and the weights tuned on everything. Output is written atomically (``--output``).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import IO, Any

import click
import numpy as np

from ..artifact import InputError, atomic_path
from ..model import LanguageModel
from .combine import Candidates, cross_validate, tune
from .nbest import Hypothesis, NBestList, read_kaldi, read_nbest


def _weights(text: str | None, path: Path | None) -> dict[str, float]:
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


def _featurise(lists: list[NBestList], lm: Any, hidden: str, ngram: Path | None
               ) -> list[list[dict[str, float]]]:
    from .prefix import PrefixScorer

    scorer = PrefixScorer(lm, list(hidden))
    counter = None
    if ngram is not None:
        from .scorers import NGramScorer

        counter = NGramScorer(ngram)
    out = []
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
        out.append(rows)
    return out


def _from_lattices(stream: IO[str], lm: LanguageModel, hidden: str, ngram: Path | None,
                   search: dict[str, Any]) -> tuple[list[NBestList], dict[str, float]]:
    """Each lattice searched into an n-best list; and the search's weights."""
    from .lattice import prune, read_lattices
    from .rescore_lattice import lm_names, search_weights
    from .rescore_lattice import search as search_lattice
    from .scorers import NGramScorer, PocketLMScorer

    lattices = read_lattices(stream, getattr(stream, "name", "<stdin>"))
    scorers: list[Any] = [PocketLMScorer(lm, list(hidden))]
    if ngram is not None:
        scorers.append(NGramScorer(ngram))
    out = []
    lattice_lm = any(k.lm for t in lattices for k in t.links)
    for lattice in lattices:
        got, _ = search_lattice(prune(lattice, search["prune"]), scorers, search["lm_scale"],
                                history=search["history"], beam=search["beam"],
                                lattice_lm=lattice_lm)
        dropped = {"posterior"} if all(k.posterior is None for k in lattice.links) else set()
        out.append(NBestList(got.id, tuple(
            Hypothesis(h.text, {k: v for k, v in h.features.items() if k not in dropped})
            for h in got.hypotheses)))
    return out, search_weights(lm_names(scorers, lattice_lm), search["lm_scale"])


def run_speech(model_dir: Path, nbest: IO[str], fmt: str, costs: tuple[str, ...],
               weights: dict[str, float], hidden: str, ngram: Path | None, refs: Path | None,
               folds: int, group_sep: str, weights_out: Path | None, output: Path | None,
               top: int, as_json: bool, precision: str, threads: int | None,
               search: dict[str, Any] | None = None) -> None:
    """The speech path of ``rescore`` (see the module docstring)."""
    lm = LanguageModel(model_dir, precision=precision, threads=threads)
    if fmt == "slf":
        lists, searched = _from_lattices(nbest, lm, hidden, ngram, search or {})
        weights = weights or searched
    elif fmt == "kaldi":
        named = {}
        for item in costs:
            name, sep, file = item.partition("=")
            if not sep or not name or not file:
                raise click.BadParameter(f"{item!r}: expected NAME=FILE",
                                         param_hint="--kaldi-cost")
            named[name] = file
        lists = read_kaldi(nbest.name, named)
    else:
        lists = list(read_nbest(nbest, fmt, getattr(nbest, "name", "<stdin>")))
    if not lists:
        raise InputError(f"{getattr(nbest, 'name', '<stdin>')}: no n-best lists")
    feats = ([[dict(h.features) for h in nb.hypotheses] for nb in lists] if fmt == "slf"
             else _featurise(lists, lm, hidden, ngram))
    names = sorted({k for rows in feats for f in rows for k in f})
    if refs is not None:
        references = _references(refs, {nb.id for nb in lists})
        fixed = "acoustic" if "acoustic" in names else names[0]
        problems = []
        for nb, rows in zip(lists, feats):
            ref = references[nb.id]
            errs = np.array([_errors(ref, h.text.split()) for h in nb.hypotheses])
            matrix = np.array([[f.get(n, 0.0) for n in names] for f in rows])
            problems.append(Candidates(matrix, errs, len(ref), nb.id.rsplit(group_sep, 1)[0]))
        chosen, _ = cross_validate(problems, names, folds=folds, fixed=fixed, start=weights)
        words = sum(p.ref_words for p in problems)
        cv = sum(int(p.errors[i]) for p, i in zip(problems, chosen))
        first = sum(int(p.errors[0]) for p in problems)
        weights = tune(problems, names, fixed=fixed, start=weights)
        click.echo(json.dumps({"tuned": weights, "folds": folds, "utterances": len(problems),
                               "words": words, "wer_first_candidate": 100 * first / words,
                               "wer_cross_validated": 100 * cv / words}))
        if weights_out is not None:
            with atomic_path(weights_out) as tmp:
                tmp.write_text(json.dumps({"weights": weights}, indent=2) + "\n")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise click.BadParameter(f"no feature named {unknown[0]!r}; the features are "
                                 f"{', '.join(names)}", param_hint="--weights")
    lines = []
    for nb, rows in zip(lists, feats):
        totals = [sum(weights.get(k, 0.0) * v for k, v in f.items()) for f in rows]
        order = sorted(range(len(rows)), key=lambda i: -totals[i])[:top or None]
        if as_json or output is not None:
            lines.append(json.dumps({"id": nb.id, "hypotheses": [
                {"text": nb.hypotheses[i].text, "score": totals[i], **rows[i]} for i in order]}))
        else:
            lines += [f"{totals[i]:.4f}\t{nb.hypotheses[i].text}" for i in order] + [""]
    if output is not None:
        with atomic_path(output) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif refs is None or weights_out is None:
        for line in lines:
            click.echo(line)


def _errors(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


SPEECH_OPTIONS = [
    click.Option(["--kaldi-cost", "costs"], multiple=True, metavar="NAME=FILE",
                 show_default=False,
                 help="With --format kaldi: a cost file (`<utt>-<n> cost`) read as feature NAME "
                      "= -cost; repeatable. NBEST is then the `text` file."),
    click.Option(["--weights", "weights_text"], default=None, metavar="NAME=W,...",
                 help="Log-linear weights of the features (acoustic, lm, score, pocketlm, "
                      "ngram, words, ...); the speech path."),
    click.Option(["--weights-file"], type=click.Path(path_type=Path), default=None,
                 help="JSON weights (as written by --weights-out)."),
    click.Option(["--hidden"], default="", show_default=True,
                 help="Punctuation the transcripts leave out that the model may insert "
                      "between words, e.g. ',.:;?!'."),
    click.Option(["--ngram"], type=click.Path(path_type=Path), default=None,
                 help="An ARPA or KenLM binary: adds feature `ngram` (needs pocketlm[kenlm])."),
    click.Option(["--tune", "refs"], type=click.Path(path_type=Path), default=None,
                 help="References (`<id> words` lines): tune the weights by cross-validation."),
    click.Option(["--folds"], type=click.IntRange(min=2), default=5, show_default=True),
    click.Option(["--group-sep"], default="-", show_default=True,
                 help="Folds keep together ids equal up to the last GROUP_SEP."),
    click.Option(["--weights-out"], type=click.Path(path_type=Path), default=None,
                 help="Write the tuned weights here (JSON, atomically)."),
    click.Option(["--output"], type=click.Path(path_type=Path), default=None,
                 help="Write the rescored lists here (JSON lines, atomically)."),
    click.Option(["--lm-scale"], type=click.FloatRange(min=0.0), default=10.0,
                 show_default=True,
                 help="With --format slf: the language models' total weight in the lattice "
                      "search (acoustic = 1); pocketsphinx's lattices: about 10."),
    click.Option(["--prune"], type=click.FloatRange(min=0.0, max=1.0), default=1e-3,
                 show_default=True,
                 help="With --format slf: drop links whose posterior is below this."),
    click.Option(["--lattice-beam"], type=click.IntRange(min=1), default=20, show_default=True,
                 help="With --format slf: hypotheses kept per lattice node."),
    click.Option(["--lattice-history"], type=click.IntRange(min=0), default=3,
                 show_default=True,
                 help="With --format slf: merge hypotheses whose last N words agree."),
]


def _callback(base: click.Command, **kw: Any) -> None:
    speech = {p.name: kw.pop(p.name) for p in SPEECH_OPTIONS}
    used = any(speech[p.name] not in (None, (), p.default) for p in SPEECH_OPTIONS) \
        or kw["fmt"] in ("kaldi", "slf")
    if not used:
        click.get_current_context().invoke(base, **kw)
        return
    weights = _weights(speech["weights_text"], speech["weights_file"])
    run_speech(kw["model_dir"], kw["nbest"], kw["fmt"], speech["costs"], weights,
               speech["hidden"], speech["ngram"], speech["refs"], speech["folds"],
               speech["group_sep"], speech["weights_out"], speech["output"], kw["top"],
               kw["as_json"], kw["precision"], kw["threads"],
               {"lm_scale": speech["lm_scale"], "prune": speech["prune"],
                "beam": speech["lattice_beam"], "history": speech["lattice_history"]})


def command(base: click.Command) -> click.Command:
    """The runtime's ``rescore`` command (``base``) with the speech options added."""
    params: list[click.Parameter] = []
    for p in base.params:
        if p.name == "fmt":
            p = click.Option(["--format", "fmt"], type=click.Choice(["auto", "jsonl", "text",
                                                                      "kaldi", "slf"]),
                             default="auto", show_default=True,
                             help=getattr(p, "help", None))
        params.append(p)
    return click.Command("rescore", callback=functools.partial(_callback, base),
                         params=[*params, *SPEECH_OPTIONS],
                         help=(base.help or "") + "\n\n" + (__doc__ or "").split("\n\n")[1],
                         short_help=base.get_short_help_str())
