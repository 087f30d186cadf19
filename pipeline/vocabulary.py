"""The vocabulary file, ``tokenizer.json``: written in one compact form, compared by content.

tokenizers saves the file pretty-printed (an indented line per entry): 229,584 bytes for the
KJV's 10,000 words against 149,309 compact, after the weights the largest file of a small int8
model folder. Every ``tokenizer.json`` pocketlm writes is compact (:func:`compact_json`: the JSON
without whitespace, key order kept, which is what tokenizers' own ``to_str()`` writes), and each
stage copies the previous folder's file with :func:`copy_tokenizer`, byte for byte when it is
compact already, so its SHA-256 stays the same along ingest → checkpoint → model::

    ingest     save_tokenizer(tokenizer)        data/tokenizer.json        compact
    --vocab-from, train, export:  copy_tokenizer(source) ──▶ the same bytes (a pretty source:
                                                             its compact form)

Folders written before, with the pretty form, still load and verify. The checks that two folders
share a vocabulary (``--init-from``, ``evaluate``) use :func:`same_vocabulary`, which compares
the files' compact forms, so a pretty file and its compact copy are one vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def compact_json(text: str) -> str:
    """``text`` (a JSON document) without whitespace between tokens, keys in their order,
    characters beyond ASCII kept as they are; the same text for a pretty and a compact input.

    >>> compact_json('{\\n  "b": [1, 2],\\n  "a": "é"\\n}')
    '{"b":[1,2],"a":"é"}'
    """
    return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))


def save_tokenizer(tokenizer: Any, path: str | os.PathLike[str]) -> None:
    """Write a ``tokenizers.Tokenizer`` to ``path`` compactly."""
    Path(path).write_bytes(compact_json(tokenizer.to_str()).encode("utf-8"))


def copy_tokenizer(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a ``tokenizer.json`` from ``source`` to ``target`` in its compact form (the same
    bytes when ``source`` is compact)."""
    Path(target).write_bytes(compact_json(Path(source).read_text(encoding="utf-8"))
                             .encode("utf-8"))


def vocabulary_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the compact form of the ``tokenizer.json`` at ``path``: the file's own SHA-256
    when it is compact, and the same for a pretty file of the same content."""
    text = compact_json(Path(path).read_text(encoding="utf-8"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same_vocabulary(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two ``tokenizer.json`` files hold the same vocabulary (equal bytes, or equal
    compact forms)."""
    a, b = Path(first).read_bytes(), Path(second).read_bytes()
    return a == b or vocabulary_digest(first) == vocabulary_digest(second)
