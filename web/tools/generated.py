"""What the scripts that write web/src's generated modules share: the code-point range lists of
their tables and the rewrite-or ``--check`` ending (exit 1 when the committed file differs from
what the script writes now)."""

from __future__ import annotations

import sys
from pathlib import Path


def ranges(cps: list[int]) -> str:
    """'a-b,c,...' in hex: a compact list of inclusive ranges."""
    out: list[str] = []
    start = prev = None
    for cp in cps + [None]:
        if cp is not None and prev is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            out.append(f"{start:x}" if start == prev else f"{start:x}-{prev:x}")
        start = prev = cp
    return ",".join(out)


def write_or_check(out: Path, text: str, script: str) -> int:
    """Write ``text`` to ``out``, or with ``--check`` on the command line compare instead and
    return 1 (naming ``script`` to run) when the file is out of date."""
    if "--check" in sys.argv:
        if out.read_text(encoding="utf-8") != text:
            print(f"{out} is out of date: run python {script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text)} characters)")
    return 0
