"""Reading a command's input: sentences from the arguments or stdin, in batches, with a progress
line on stderr when it is a terminal (``rescore`` reads its n-best lists from :func:`tracked`
lines).

Input is streamed, so memory stays constant however long it is::

    stdin ──▶ batch of N lines ──▶ score graph ──▶ stdout ──▶ next batch ...
"""

from __future__ import annotations

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


def tracked(stream: IO[str], label: str) -> Iterator[str]:
    """The stream's lines as they are (line ends kept), with the progress line."""
    progress = Progress(stream, label)
    try:
        for line in stream:
            progress.update(line)
            yield line
    finally:
        progress.close()


def stdin_lines(label: str) -> Iterator[str]:
    stream = sys.stdin
    if stream is None or stream.isatty():
        raise click.UsageError("give sentences as arguments or one per line on stdin")
    for line in tracked(stream, label):
        yield line.rstrip("\r\n")


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
