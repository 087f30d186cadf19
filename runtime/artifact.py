"""The artifact format shared by every pocketlm stage.

An *artifact* is a folder holding a ``manifest.json`` and the files it names. Each stage
(ingest, train, export) writes one, and the next stage reads only that manifest and the files it
lists, each checked against its SHA-256. A folder without a valid manifest is not an artifact.

This module lives in the runtime because the runtime must stay free of the training stack;
the writers (pipeline, export) import it from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: Version of the manifest layout. Readers refuse a manifest with a different major version.
FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"

#: Fixed special-token ids, the same in every pocketlm vocabulary (and stored in every manifest).
UNK_TOKEN, UNK_ID = "<unk>", 0
EOS_TOKEN, EOS_ID = "<eos>", 1
SPECIAL_TOKENS = (UNK_TOKEN, EOS_TOKEN)

#: The artifact kinds, in pipeline order.
KINDS = ("data", "checkpoint", "model")

#: The files of a checkpoint folder (see docs/artifacts.md); ``curve`` is absent without
#: matplotlib. Export reads ``weights`` and ``tokenizer``; ``last`` is what a resume reads.
CHECKPOINT_FILES = {"weights": "model.safetensors", "last": "last.safetensors",
                    "tokenizer": "tokenizer.json", "metrics": "metrics.jsonl",
                    "curve": "curve.png"}


class PocketLMError(Exception):
    """Base class of the errors pocketlm raises for bad input; the message names the fix."""


class InputError(PocketLMError, ValueError):
    """A bad argument to the runtime (a token id outside the vocabulary, a state of the wrong
    shape, an out-of-range setting). Also a :class:`ValueError`, so ``except ValueError`` works."""


class ArtifactError(PocketLMError):
    """An artifact folder is missing, incomplete, corrupted or of the wrong kind."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large token files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest record of one file: its size and hash."""
    return {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def umask_mode(mode: int) -> int:
    """``mode`` with the process umask applied, as a newly created file would get it."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it is renamed over ``path``
    (with the mode a new file would get), on failure removed: readers see the old file or the
    new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode(0o666))  # mkstemp (and safetensors) create 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Write JSON to a temporary sibling, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_manifest(folder: str | os.PathLike[str], kind: str, body: Mapping[str, Any],
                   files: list[str]) -> dict[str, Any]:
    """Hash ``files`` (names relative to ``folder``) and write the folder's manifest.

    The manifest is written last, so a folder whose manifest exists has all its files.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}")
    folder = Path(folder)
    manifest: dict[str, Any] = {
        "format": "pocketlm",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "special_tokens": {"unk": {"token": UNK_TOKEN, "id": UNK_ID},
                           "eos": {"token": EOS_TOKEN, "id": EOS_ID}},
    }
    manifest.update(body)
    manifest["files"] = {name: file_entry(folder / name) for name in files}
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | os.PathLike[str], kind: str, verify: bool = True) -> dict[str, Any]:
    """Read and check an artifact folder's manifest.

    Raises :class:`ArtifactError` naming the folder and the fix when the folder is missing, is not
    a pocketlm artifact, is of another kind or version, or when a listed file is missing or its
    hash differs (``verify=False`` checks only presence and size).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    stage = {"data": "pocketlm ingest", "checkpoint": "pocketlm train",
             "model": "pocketlm export"}[kind]
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no such folder; create it with `{stage}`")
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}, so it is not a complete pocketlm {kind} "
                            f"folder; (re)create it with `{stage}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc}); re-create the folder with "
                            f"`{stage}`") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "pocketlm":
        raise ArtifactError(f"{path}: not a pocketlm manifest; re-create it with `{stage}`")
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{folder}: is a pocketlm {manifest.get('kind')!r} folder, "
                            f"expected a {kind!r} folder (made by `{stage}`)")
    version = str(manifest.get("format_version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise ArtifactError(f"{path}: format version {version!r} is not supported by this "
                            f"pocketlm (reads {FORMAT_VERSION}); re-create it with `{stage}`")
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("bytes"), int) and "sha256" in e
            for e in files.values()):
        raise ArtifactError(f"{path}: malformed 'files' list; re-create the folder with "
                            f"`{stage}`")
    for name, entry in files.items():
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing file listed in {path}; re-create the folder "
                                f"with `{stage}`")
        if file.stat().st_size != entry["bytes"] or (
                verify and sha256_file(file) != entry["sha256"]):
            raise ArtifactError(f"{file}: corrupted (size or SHA-256 differs from {MANIFEST}); "
                                f"re-create the folder with `{stage}`")
    return manifest


def check_output_folder(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse to replace a non-empty folder unless ``overwrite`` is set; return the path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PocketLMError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PocketLMError(f"{out}: folder exists and is not empty; pass --overwrite to replace "
                            f"it or choose another --out")
    return out


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it into place only on success.

    An interrupted or failed stage leaves ``out`` untouched (the old artifact, or nothing), so a
    later stage never trusts a half-written folder::

        with atomic_folder("runs/data") as tmp:
            ...write files into tmp...
    """
    out = check_output_folder(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.chmod(tmp, umask_mode(0o777))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.{os.getpid()}.old"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of pocketlm, Python and the named packages, for manifests."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("pocketlm", *names):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
