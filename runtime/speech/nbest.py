"""N-best lists: the one reader (three file formats into one shape) and the one writer.

    NBestList(id, hypotheses=(Hypothesis(text, features={"acoustic": -4123.5, "lm": -31.2}), ...))

Features are log-domain scores where higher is better (a recogniser's acoustic log-likelihood,
its first-pass LM log-probability, ...); ``pocketlm rescore`` adds ``pocketlm`` and ``words``
and weighs them all log-linearly (:mod:`.combine`).

* **text**: ``score<TAB>sentence`` lines, lists separated by a blank line (feature ``score``,
  the recogniser's score); ids 1, 2, ...
* **jsonl**: one list per line, ``{"id": "utt1", "hypotheses": [{"text": "...", "acoustic":
  -4123.5, "lm": -31.2}, ...]}``; every numeric field of a hypothesis is a feature (a bare
  string is a hypothesis without features); the id is kept as written (default: the list's
  number).
* **kaldi**: Kaldi's n-best text: a ``text`` file of ``<utt>-<n> word word ...`` lines and cost
  files of ``<utt>-<n> <cost>`` lines (``nbest-to-linear`` + ``lattice-to-nbest`` output; costs
  are negated log-likelihoods, read as feature = -cost).

Text and JSON lines are read lazily (a stream of any length in constant memory). Every malformed
line raises :class:`InputError` naming the file, the line and the fix.

A rescored list is written as one JSON line or as text (:func:`ranked_json`,
:func:`ranked_text`), from :class:`Ranked` rows best first::

    {"id": ..., "hypotheses": [{"text", "score": total, "base_score": the input's `score`,
                                <every other feature>, "oov": unknown words (when counted),
                                "index": position in the input}, ...]}
    total<TAB>base<TAB>pocketlm<TAB>sentence    (input with a `score`), else total<TAB>sentence
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..artifact import InputError, atomic_path

FORMATS = ("auto", "text", "jsonl", "kaldi")
_KALDI_ID = re.compile(r"^(.+)-(\d+)$")


@dataclass(frozen=True)
class Hypothesis:
    """One candidate transcript with its recogniser scores (log domain, higher is better)."""

    text: str
    features: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NBestList:
    """The candidates of one utterance, in the recogniser's order."""

    id: object
    hypotheses: tuple[Hypothesis, ...]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def read_text(stream: Iterable[str], name: str = "<stdin>") -> Iterator[NBestList]:
    """``score<TAB>sentence`` lists separated by blank lines; ids are 1, 2, ..."""
    hyps: list[Hypothesis] = []
    count = 0
    for number, raw in enumerate(stream, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if hyps:
                count += 1
                yield NBestList(count, tuple(hyps))
                hyps = []
            continue
        value, sep, sentence = line.partition("\t")
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not sep or not math.isfinite(score):
            raise InputError(f"{name}:{number}: expected `score<TAB>sentence` with a finite "
                             f"score, got {line[:60]!r}")
        hyps.append(Hypothesis(sentence, {"score": score}))
    if hyps:
        yield NBestList(count + 1, tuple(hyps))


def parse_json_list(line: str, where: str, default_id: object) -> NBestList:
    """One JSON-lines n-best list; ``where`` (``file:line``) prefixes any error."""
    shape = 'expected {"id": ..., "hypotheses": [{"text": ..., "score": ...}, ...]}'
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg}); {shape}") from exc
    if not isinstance(row, dict) or not isinstance(row.get("hypotheses"), list):
        raise InputError(f'{where}: no "hypotheses" list; {shape}')
    if not row["hypotheses"]:
        raise InputError(f'{where}: "hypotheses" is empty; give at least one candidate')
    hyps = []
    for k, h in enumerate(row["hypotheses"]):
        if isinstance(h, str):
            hyps.append(Hypothesis(h))
            continue
        if not isinstance(h, dict) or not isinstance(h.get("text"), str):
            raise InputError(f'{where}: hypothesis {k} has no "text" string; {shape}')
        features = {}
        for key, value in h.items():
            if key in ("text", "id"):
                continue
            number = _number(value)
            if number is None:
                raise InputError(f"{where}: hypothesis {k} field {key!r} is {value!r}, not a "
                                 f"finite number")
            features[key] = number
        hyps.append(Hypothesis(h["text"], features))
    return NBestList(row.get("id", default_id), tuple(hyps))


def read_jsonl(stream: Iterable[str], name: str = "<stdin>") -> Iterator[NBestList]:
    """One list per non-blank line."""
    count = 0
    for number, line in enumerate(stream, 1):
        if line.strip():
            count += 1
            yield parse_json_list(line, f"{name}:{number}", count)


def _kaldi_lines(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line number, utterance id, rest of the line, hypothesis number) of a Kaldi n-best file."""
    try:
        stream = path.open(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from exc
    with stream:
        for number, raw in enumerate(stream, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            key, _, rest = line.strip().partition(" ")
            match = _KALDI_ID.match(key)
            if not match:
                raise InputError(f"{path}:{number}: expected `<utterance>-<n> ...`, got "
                                 f"{line[:60]!r}")
            yield number, match.group(1), rest.strip(), int(match.group(2))


def read_kaldi(text: str | os.PathLike[str],
               costs: Mapping[str, str | os.PathLike[str]]) -> list[NBestList]:
    """Kaldi n-best text: ``text`` holds ``<utt>-<n> words``; each ``costs`` entry (feature
    name → file) holds ``<utt>-<n> <cost>``. Every hypothesis needs every cost, and a cost
    file may not name a hypothesis that ``text`` lacks."""
    text = Path(text)
    order: dict[str, list[str]] = {}
    words: dict[str, str] = {}
    for number, utt, rest, n in _kaldi_lines(text):
        key = f"{utt}-{n}"
        if key in words:
            raise InputError(f"{text}:{number}: hypothesis {key} appears twice")
        words[key] = rest
        order.setdefault(utt, []).append(key)
    if not words:
        raise InputError(f"{text}: no hypotheses; expected `<utterance>-<n> word word ...` lines")
    features: dict[str, dict[str, float]] = {key: {} for key in words}
    for feature, path in costs.items():
        path = Path(path)
        for number, utt, rest, n in _kaldi_lines(path):
            key = f"{utt}-{n}"
            if key not in words:
                raise InputError(f"{path}:{number}: unknown hypothesis id {key!r} (not in "
                                 f"{text})")
            try:
                cost = float(rest)
            except ValueError:
                cost = math.nan
            if not math.isfinite(cost):
                raise InputError(f"{path}:{number}: cost {rest!r} of {key} is not a finite "
                                 f"number")
            features[key][feature] = -cost
        missing = [key for key in words if feature not in features[key]]
        if missing:
            raise InputError(f"{path}: no cost for hypothesis {missing[0]} of {text} "
                             f"({len(missing)} missing)")
    return [NBestList(utt, tuple(Hypothesis(words[k], features[k]) for k in keys))
            for utt, keys in order.items()]


def read_nbest(stream: Iterable[str], fmt: str = "auto",
               name: str = "<stdin>") -> Iterator[NBestList]:
    """Lists of a ``text`` or ``jsonl`` stream (``auto``: JSON when the first non-blank line
    starts with ``{``). Kaldi n-best needs several files: use :func:`read_kaldi`."""
    if fmt not in ("auto", "text", "jsonl"):
        raise InputError(f"read_nbest: format must be auto, text or jsonl, got {fmt!r}")
    lines = iter(stream)
    head: list[str] = []
    if fmt == "auto":
        fmt = "text"
        for line in lines:
            head.append(line)
            if line.strip():
                fmt = "jsonl" if line.lstrip().startswith("{") else "text"
                break
    chained = _chain(head, lines)
    yield from (read_jsonl if fmt == "jsonl" else read_text)(chained, name)


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest


def write_jsonl(lists: Iterable[NBestList], path: str | os.PathLike[str]) -> None:
    """Write lists as JSON lines, atomically (the file appears whole or not at all)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for nb in lists:
            out.write(json.dumps({"id": nb.id, "hypotheses": [
                {"text": h.text, **h.features} for h in nb.hypotheses]}) + "\n")


def write_kaldi(lists: Iterable[NBestList], folder: str | os.PathLike[str]) -> None:
    """Write ``text`` and one ``<feature>_cost`` file per feature into ``folder``, each
    atomically; costs are negated features."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lists = list(lists)
    names = sorted({f for nb in lists for h in nb.hypotheses for f in h.features})
    rows = [(f"{nb.id}-{n}", h) for nb in lists for n, h in enumerate(nb.hypotheses, 1)]
    with atomic_path(folder / "text") as tmp:
        tmp.write_text("".join(f"{key} {h.text}\n" for key, h in rows), encoding="utf-8")
    for feature in names:
        with atomic_path(folder / f"{feature}_cost") as tmp:
            tmp.write_text("".join(f"{key} {-h.features.get(feature, 0.0)!r}\n"
                                   for key, h in rows), encoding="utf-8")


@dataclass(frozen=True)
class Ranked:
    """One hypothesis after rescoring: its weighted ``total``, its ``index`` in the input list,
    its features (the input's and the language models'), and its unknown words when counted."""

    text: str
    total: float
    index: int
    features: Mapping[str, float]
    oov: int | None = None


def ranked_json(ident: object, ranked: Iterable[Ranked]) -> str:
    """One JSON line for a rescored list (the input's feature ``score`` becomes
    ``base_score``: ``score`` is the total)."""
    rows = []
    for r in ranked:
        row: dict[str, object] = {"text": r.text, "score": r.total}
        row.update({"base_score" if k == "score" else k: v for k, v in r.features.items()})
        if r.oov is not None:
            row["oov"] = r.oov
        row["index"] = r.index
        rows.append(row)
    return json.dumps({"id": ident, "hypotheses": rows})


def ranked_text(ranked: Iterable[Ranked]) -> list[str]:
    """``total<TAB>base<TAB>pocketlm<TAB>sentence`` lines where the input gave the recogniser's
    ``score`` (else ``total<TAB>sentence``), and a blank line after the list."""
    lines = []
    for r in ranked:
        f = r.features
        middle = (f"{f['score']:.4f}\t{f['pocketlm']:.4f}\t"
                  if "score" in f and "pocketlm" in f else "")
        lines.append(f"{r.total:.4f}\t{middle}{r.text}")
    return [*lines, ""]
