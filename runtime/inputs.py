"""Reading a command's input: sentences from the arguments or stdin, in batches, with a progress
line on stderr when it is a terminal, and n-best lists (JSON lines or text) for ``rescore``.

Input is streamed, so memory stays constant however long it is::

    stdin ──▶ batch of N lines ──▶ score graph ──▶ stdout ──▶ next batch ...
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import click


class Progress:
    """Lines done (and the share of a redirected file read) on stderr, only on a terminal."""

    def __init__(self, stream: IO[str], label: str) -> None:
        self.enabled = sys.stderr.isatty()
        self.label, self.lines, self.bytes, self.total, self._shown = label, 0, 0, 0, 0.0
        if self.enabled:
            try:
                info = os.fstat(stream.fileno())
                self.total = info.st_size if stat.S_ISREG(info.st_mode) else 0
            except (OSError, ValueError, AttributeError):  # no file descriptor (a test runner)
                self.total = 0

    def update(self, line: str) -> None:
        self.lines += 1
        if not self.enabled:
            return
        self.bytes += len(line.encode("utf-8", "surrogatepass"))
        now = time.monotonic()
        if now - self._shown >= 0.2:
            self._shown = now
            share = f" {min(self.bytes / self.total, 1):6.1%}" if self.total else ""
            click.echo(f"\r{self.label}: {self.lines:,} lines{share}", err=True, nl=False)

    def close(self) -> None:
        if self.enabled and self._shown:
            click.echo(f"\r{self.label}: {self.lines:,} lines done   ", err=True)


def stdin_lines(label: str) -> Iterator[str]:
    stream = sys.stdin
    if stream is None or stream.isatty():
        raise click.UsageError("give sentences as arguments or one per line on stdin")
    progress = Progress(stream, label)
    try:
        for line in stream:
            progress.update(line)
            yield line.rstrip("\r\n")
    finally:
        progress.close()


def sentences(args: tuple[str, ...], label: str) -> Iterator[str]:
    """The arguments, or stdin's lines read lazily (an empty stdin is a usage error)."""
    if args:
        yield from args
        return
    empty = True
    for line in stdin_lines(label):
        empty = False
        yield line
    if empty:
        raise click.UsageError("no sentences: stdin was empty")


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def read_nbest(stream: IO[str], fmt: str, label: str) -> Iterator[tuple[Any, list[str],
                                                                         list[float]]]:
    """(id, hypotheses, base scores) per n-best list of a JSON-lines or text stream."""
    progress = Progress(stream, label)
    number = 0
    try:
        hyps: list[str] = []
        base: list[float] = []
        for number, raw in enumerate(stream, 1):
            progress.update(raw)
            line = raw.rstrip("\r\n")
            if fmt == "auto" and line.strip():
                fmt = "jsonl" if line.lstrip().startswith("{") else "text"
            if fmt == "jsonl":
                if line.strip():
                    yield json_nbest(line, number, progress.lines)
                continue
            if not line.strip():
                if hyps:
                    yield None, hyps, base
                    hyps, base = [], []
                continue
            value, sep, sentence = line.partition("\t")
            try:
                number_value = float(value)
            except ValueError:
                number_value = float("nan")
            if not sep or not math.isfinite(number_value):
                raise click.ClickException(f"line {number}: expected `score<TAB>sentence` "
                                           f"with a finite score, got {line[:60]!r}")
            hyps.append(sentence)
            base.append(number_value)
        if hyps:
            yield None, hyps, base
    finally:
        progress.close()


def json_nbest(line: str, number: int, count: int) -> tuple[Any, list[str], list[float]]:
    def bad(why: str) -> click.ClickException:
        return click.ClickException(f"line {number}: {why}; expected {{\"id\": ..., "
                                    f"\"hypotheses\": [{{\"text\": ..., \"score\": ...}}, ...]}}")

    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON ({exc.msg})") from exc
    if not isinstance(row, dict) or not isinstance(row.get("hypotheses"), list):
        raise bad("no \"hypotheses\" list")
    hyps, base = [], []
    for h in row["hypotheses"]:
        if isinstance(h, str):
            text, value = h, 0.0
        elif isinstance(h, dict) and isinstance(h.get("text"), str):
            text, value = h["text"], h.get("score", 0.0)
        else:
            raise bad("a hypothesis is neither a string nor {\"text\": ..., \"score\": ...}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise bad(f"score {value!r} is not a finite number")
        hyps.append(text)
        base.append(float(value))
    return row.get("id", count), hyps, base
