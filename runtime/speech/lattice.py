"""Word lattices in HTK Standard Lattice Format (SLF), the format most recognisers can write.

pocketsphinx writes one with ``decoder.get_lattice().write_htk(path)``; Kaldi with
``lattice-to-htk`` style tools; HTK's HVite natively. The part read here::

    VERSION=1.0                       header fields, one or more per line (KEY=value)
    start=102  end=0                  optional: the start and end nodes (default: first, last)
    N=103  L=472                      node and link counts
    I=0  t=2.85  W=!SENT_END          nodes: time (s), word (on nodes or on links)
    J=0  S=1  E=0  a=-24.17  l=-2.3   links: start, end, acoustic ln-likelihood, LM ln-prob,
             p=0.21                   optional: the link's posterior probability (pocketsphinx)

A :class:`Lattice` keeps links with the word they carry (a node's word moves onto the links that
enter it) and knows its topological order. Words that are not words — ``!NULL``,
``!SENT_START``, ``<s>``, ``<sil>``, ``[NOISE]``, ``++BREATH++`` — are *fillers*: they carry
acoustic score but no language-model step. A pronunciation variant ``read(2)`` is ``read``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..artifact import InputError, atomic_path

_VARIANT = re.compile(r"\(\d+\)$")


def word_of(label: str) -> str:
    """A recogniser's word label as a plain word (``read(2)`` → ``read``; fillers → ``""``)."""
    if not label or label[0] in "!<[+" or label in ("-", "sil", "SIL"):
        return ""
    return _VARIANT.sub("", label)


@dataclass(frozen=True)
class Link:
    """One lattice link: ``start`` → ``end`` node, the word it carries (``""`` for a filler),
    its acoustic log-likelihood, its first-pass LM log-probability (0 when not given) and its
    posterior probability (``None`` when not given)."""

    start: int
    end: int
    word: str
    acoustic: float
    lm: float = 0.0
    posterior: float | None = None


@dataclass
class Lattice:
    """Nodes 0..n-1 (times in seconds), links, the start and end node."""

    nodes: int
    links: list[Link]
    start: int
    end: int
    times: list[float] = field(default_factory=list)
    id: str = ""

    def outgoing(self) -> list[list[Link]]:
        out: list[list[Link]] = [[] for _ in range(self.nodes)]
        for link in self.links:
            out[link.start].append(link)
        return out

    def order(self) -> list[int]:
        """Nodes in topological order (Kahn); raises :class:`InputError` on a cycle."""
        indegree = [0] * self.nodes
        for link in self.links:
            indegree[link.end] += 1
        out = self.outgoing()
        ready = [n for n in range(self.nodes) if indegree[n] == 0]
        order = []
        while ready:
            n = ready.pop()
            order.append(n)
            for link in out[n]:
                indegree[link.end] -= 1
                if indegree[link.end] == 0:
                    ready.append(link.end)
        if len(order) != self.nodes:
            raise InputError(f"lattice {self.id or '?'}: the links form a cycle; a lattice must "
                             f"be acyclic")
        return order


def _fields(line: str) -> dict[str, str]:
    out = {}
    for part in line.split():
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"expected KEY=value fields, got {part!r}")
        out[key] = value
    return out


def _number(fields: dict[str, str], key: str, kind: type, where: str, default: Any = None
            ) -> Any:
    if key not in fields:
        if default is not None:
            return default
        raise InputError(f"{where}: missing field {key}=")
    try:
        return kind(fields[key])
    except ValueError:
        raise InputError(f"{where}: field {key}={fields[key]!r} is not a number") from None


def parse_slf(text: str, name: str = "<slf>") -> Lattice:
    """A :class:`Lattice` from SLF text; errors name ``name``, the line and the field."""
    header: dict[str, str] = {}
    node_words: dict[int, str] = {}
    times: dict[int, float] = {}
    raw_links: list[tuple[int, dict[str, str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        try:
            fields = _fields(line)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if "I" in fields:
            node = _number(fields, "I", int, where)
            times[node] = _number(fields, "t", float, where, 0.0)
            node_words[node] = fields.get("W", "")
        elif "J" in fields:
            raw_links.append((number, fields))
        else:
            header.update(fields)
    where = f"{name}: header"
    nodes = _number(header, "N", int, where) if "N" in header else len(times)
    if nodes <= 0:
        raise InputError(f"{name}: the lattice has no nodes (N=0 or no I= lines)")
    if "L" in header and int(_number(header, "L", int, where)) != len(raw_links):
        raise InputError(f"{name}: the header says L={header['L']} links but there are "
                         f"{len(raw_links)} J= lines")
    links = []
    for number, fields in raw_links:
        where = f"{name}:{number}"
        s, e = _number(fields, "S", int, where), _number(fields, "E", int, where)
        for key, value in (("S", s), ("E", e)):
            if not 0 <= value < nodes:
                raise InputError(f"{where}: field {key}={value} is not a node (0..{nodes - 1})")
        label = fields.get("W", node_words.get(e, ""))
        posterior = _number(fields, "p", float, where) if "p" in fields else None
        if posterior is not None:  # recognisers' log arithmetic can round a little over 1
            if not 0.0 <= posterior <= 1.01:
                raise InputError(f"{where}: field p={fields['p']} is not a probability (0..1)")
            posterior = min(posterior, 1.0)
        links.append(Link(s, e, word_of(label), _number(fields, "a", float, where, 0.0),
                          _number(fields, "l", float, where, 0.0), posterior))
    if not links:
        raise InputError(f"{name}: the lattice has no links (no J= lines)")
    start = _number(header, "start", int, where, 0)
    end = _number(header, "end", int, where, nodes - 1)
    lattice = Lattice(nodes, links, start, end, [times.get(i, 0.0) for i in range(nodes)],
                      header.get("UTTERANCE", Path(name).stem))
    lattice.order()
    return lattice


def read_slf(path: str | os.PathLike[str]) -> Lattice:
    """Read an SLF file (``.slf``, or gzip-compressed ``.slf.gz``)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            import gzip

            text = gzip.open(path, "rt", encoding="utf-8").read()
        else:
            text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    return parse_slf(text, str(path))


def format_slf(lattice: Lattice) -> str:
    """SLF text with words on links (``W=`` on J lines; fillers as ``!NULL``)."""
    lines = ["VERSION=1.0", f"UTTERANCE={lattice.id or 'utt'}",
             f"start={lattice.start}\tend={lattice.end}",
             f"N={lattice.nodes}\tL={len(lattice.links)}"]
    times = lattice.times or [0.0] * lattice.nodes
    lines += [f"I={i}\tt={t:.2f}" for i, t in enumerate(times)]
    lines += [f"J={j}\tS={k.start}\tE={k.end}\tW={k.word or '!NULL'}\ta={k.acoustic!r}\t"
              f"l={k.lm!r}" + ("" if k.posterior is None else f"\tp={k.posterior!r}")
              for j, k in enumerate(lattice.links)]
    return "\n".join(lines) + "\n"


def write_slf(lattice: Lattice, path: str | os.PathLike[str]) -> None:
    """Write SLF atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(format_slf(lattice), encoding="utf-8")


def from_pocketsphinx(decoder: Any, utt_id: str = "") -> Lattice:
    """The lattice of a pocketsphinx decoder's last utterance (via its HTK writer)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lattice.slf"
        decoder.get_lattice().write_htk(str(path))
        lattice = read_slf(path)
    lattice.id = utt_id or lattice.id
    return lattice


def words_of(labels: Iterable[str]) -> list[str]:
    """Plain words of a sequence of recogniser labels (fillers dropped)."""
    return [w for w in (word_of(label) for label in labels) if w]


def _on_paths(nodes: int, links: list[Link], start: int, end: int) -> list[Link]:
    """The links that lie on some path from ``start`` to ``end``."""
    ahead: list[list[int]] = [[] for _ in range(nodes)]
    behind: list[list[int]] = [[] for _ in range(nodes)]
    for link in links:
        ahead[link.start].append(link.end)
        behind[link.end].append(link.start)

    def reach(root: int, edges: list[list[int]]) -> set[int]:
        seen, todo = {root}, [root]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    fore, back = reach(start, ahead), reach(end, behind)
    return [k for k in links if k.start in fore and k.end in back]


def prune(lattice: Lattice, min_posterior: float) -> Lattice:
    """The lattice without the links whose posterior is below ``min_posterior`` (links without
    one are kept) and without the links that then lie on no start-to-end path. Where nothing
    would connect start and end, the bound is lowered tenfold until something does (at worst
    the lattice is returned whole). Nodes keep their numbers."""
    bound = min_posterior
    for _ in range(4):
        kept = [k for k in lattice.links if k.posterior is None or k.posterior >= bound]
        kept = _on_paths(lattice.nodes, kept, lattice.start, lattice.end)
        if kept:
            return Lattice(lattice.nodes, kept, lattice.start, lattice.end, lattice.times,
                           lattice.id)
        bound /= 10
    return lattice


def read_lattices(stream: IO[str], name: str = "<stdin>") -> list[Lattice]:
    """The lattices named by ``stream``: either one SLF lattice itself, or a list of SLF
    files, one per line as ``path`` or ``<id> <path>`` (Kaldi's scp shape; relative paths
    are read from the list's folder). An id given in the list replaces the lattice's own."""
    text = stream.read()
    lines = [line.strip() for line in text.splitlines()]
    if any(line.startswith(("VERSION=", "N=", "J=")) for line in lines):
        return [parse_slf(text, name)]
    base = Path(name).parent if name not in ("<stdin>", "-") else Path(".")
    out = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise InputError(f"{name}:{number}: expected `path` or `<id> <path>`, got "
                             f"{len(parts)} fields")
        path = Path(parts[-1]) if Path(parts[-1]).is_absolute() else base / parts[-1]
        if not path.is_file():
            raise InputError(f"{name}:{number}: no such lattice file {str(path)!r}")
        lattice = read_slf(path)
        lattice.id = parts[0] if len(parts) == 2 else lattice.id or path.stem
        out.append(lattice)
    if not out:
        raise InputError(f"{name}: no lattices (give an SLF file or a list of them)")
    return out
