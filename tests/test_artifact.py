"""runtime/artifact.py: the manifest format every stage writes and reads, and atomic folders."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pocketlm.runtime.artifact import (EOS_ID, EOS_TOKEN, FORMAT_VERSION, MANIFEST, UNK_ID,
                                       UNK_TOKEN, ArtifactError, PocketLMError, atomic_folder,
                                       check_output_folder, read_manifest, sha256_file,
                                       write_manifest)

from .conftest import flip_byte


def _artifact(folder: Path, kind: str = "data") -> dict:
    """A small valid artifact folder with two listed files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "b.json").write_text('{"x": 1}\n', encoding="utf-8")
    return write_manifest(folder, kind, {"vocab_size": 7, "nested": {"k": [1, 2]}},
                          ["a.bin", "b.json"])


def _siblings(folder: Path) -> list[str]:
    """Names next to ``folder`` (in its parent) other than ``folder`` itself."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


# -- write / read round trip --------------------------------------------------------------------

def test_write_read_round_trip(tmp_path: Path) -> None:
    """write_manifest records the body, the header and a hash per file; read_manifest returns
    exactly what was written."""
    folder = tmp_path / "data"
    written = _artifact(folder)
    on_disk = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert written == on_disk
    assert read_manifest(folder, "data") == written
    assert written["format"] == "pocketlm"
    assert written["format_version"] == FORMAT_VERSION
    assert written["kind"] == "data"
    assert written["special_tokens"] == {"unk": {"token": UNK_TOKEN, "id": UNK_ID},
                                         "eos": {"token": EOS_TOKEN, "id": EOS_ID}}
    assert (UNK_ID, EOS_ID) == (0, 1)
    assert written["vocab_size"] == 7 and written["nested"] == {"k": [1, 2]}
    assert set(written["files"]) == {"a.bin", "b.json"}
    assert written["files"]["a.bin"] == {"bytes": 1024, "sha256": sha256_file(folder / "a.bin")}
    assert written["files"]["b.json"]["bytes"] == (folder / "b.json").stat().st_size


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    """sha256_file reads in chunks but gives the plain SHA-256 of the whole file."""
    import hashlib

    path = tmp_path / "f"
    payload = os.urandom(3000)
    path.write_bytes(payload)
    assert sha256_file(path, chunk=7) == hashlib.sha256(payload).hexdigest()


def test_write_manifest_rejects_unknown_kind(tmp_path: Path) -> None:
    """Only the three pipeline kinds can be written."""
    with pytest.raises(ValueError, match="kind"):
        write_manifest(tmp_path, "weights", {}, [])
    assert not (tmp_path / MANIFEST).exists()


def test_manifest_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The manifest is written through a temporary sibling that is renamed away."""
    _artifact(tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.bin", "b.json", MANIFEST]


# -- read errors --------------------------------------------------------------------------------

def _one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.mark.parametrize("kind, command", [("data", "pocketlm ingest"),
                                           ("checkpoint", "pocketlm train"),
                                           ("model", "pocketlm export")])
def test_missing_folder(tmp_path: Path, kind: str, command: str) -> None:
    """A missing folder is an ArtifactError naming the folder and the command that makes it."""
    folder = tmp_path / "nowhere"
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, kind)
    _one_line_error(excinfo, str(folder), command, "no such folder")


def test_missing_manifest(tmp_path: Path) -> None:
    """A folder without manifest.json is not an artifact, even with files in it."""
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "checkpoint")
    _one_line_error(excinfo, str(folder), MANIFEST, "pocketlm train")


def test_unreadable_and_foreign_manifest(tmp_path: Path) -> None:
    """A manifest that is not JSON, or JSON that is not a pocketlm manifest, is refused."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "data")
    _one_line_error(excinfo, str(folder / MANIFEST), "pocketlm ingest")
    (folder / MANIFEST).write_text('{"format": "other", "kind": "data"}', encoding="utf-8")
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "data")
    _one_line_error(excinfo, "not a pocketlm manifest", "pocketlm ingest")
    (folder / MANIFEST).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ArtifactError):
        read_manifest(folder, "data")


def test_wrong_kind(tmp_path: Path) -> None:
    """A data folder given where a model folder is expected names both kinds and the command."""
    folder = tmp_path / "data"
    _artifact(folder, "data")
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "model")
    _one_line_error(excinfo, str(folder), "'data'", "'model'", "pocketlm export")


@pytest.mark.parametrize("version", ["2.0", "0.9", "", "10.0"])
def test_unsupported_major_version(tmp_path: Path, version: str) -> None:
    """Another major format version is refused, naming the version this pocketlm reads."""
    folder = tmp_path / "model"
    manifest = _artifact(folder, "model")
    manifest["format_version"] = version
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "model")
    _one_line_error(excinfo, str(folder / MANIFEST), repr(version), FORMAT_VERSION,
                    "pocketlm export")


def test_newer_minor_version_is_read(tmp_path: Path) -> None:
    """Only the major version matters: 1.7 is read by a 1.0 reader."""
    folder = tmp_path / "model"
    manifest = _artifact(folder, "model")
    manifest["format_version"] = f"{FORMAT_VERSION.split('.')[0]}.7"
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert read_manifest(folder, "model")["format_version"].endswith(".7")


def test_missing_listed_file(tmp_path: Path) -> None:
    """A file the manifest lists but the folder lacks is named in the error."""
    folder = tmp_path / "data"
    _artifact(folder)
    (folder / "b.json").unlink()
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "data")
    _one_line_error(excinfo, str(folder / "b.json"), "missing", "pocketlm ingest")
    with pytest.raises(ArtifactError):
        read_manifest(folder, "data", verify=False)


def test_corrupted_file_same_size(tmp_path: Path) -> None:
    """One flipped byte (same size) is caught by the SHA-256 check; verify=False checks only the
    size, so it lets this through but still catches a truncated file."""
    folder = tmp_path / "data"
    _artifact(folder)
    size = (folder / "a.bin").stat().st_size
    flip_byte(folder / "a.bin", 500)
    assert (folder / "a.bin").stat().st_size == size
    with pytest.raises(ArtifactError) as excinfo:
        read_manifest(folder, "data")
    _one_line_error(excinfo, str(folder / "a.bin"), "corrupted", "pocketlm ingest")
    assert read_manifest(folder, "data", verify=False)["kind"] == "data"
    (folder / "a.bin").write_bytes(b"short")
    with pytest.raises(ArtifactError, match="corrupted"):
        read_manifest(folder, "data", verify=False)


def test_errors_are_pocketlm_errors() -> None:
    """ArtifactError is a PocketLMError, so the CLI turns it into a one-line message."""
    assert issubclass(ArtifactError, PocketLMError)
    assert issubclass(PocketLMError, Exception)


# -- atomic_folder ------------------------------------------------------------------------------

def test_atomic_folder_writes_on_success(tmp_path: Path) -> None:
    """On success the folder appears with what the body wrote, and no temporary sibling stays."""
    out = tmp_path / "nested" / "out"
    with atomic_folder(out) as tmp:
        assert tmp != out and tmp.parent == out.parent and tmp.name.endswith(".partial")
        assert not out.exists()
        (tmp / "f.txt").write_text("new", encoding="utf-8")
    assert (out / "f.txt").read_text(encoding="utf-8") == "new"
    assert _siblings(out) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_folder_failure_keeps_old_folder(tmp_path: Path,
                                                error: type[BaseException]) -> None:
    """When the body raises (even KeyboardInterrupt), the old folder is untouched and the
    `.partial` build folder is removed."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(error):
        with atomic_folder(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new", encoding="utf-8")
            raise error("stage failed")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert (out / "old.txt").read_text(encoding="utf-8") == "old"
    assert _siblings(out) == []


def test_atomic_folder_failure_leaves_nothing_new(tmp_path: Path) -> None:
    """A failed first build leaves no folder at all."""
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        with atomic_folder(out) as tmp:
            (tmp / "x").write_bytes(b"x")
            raise ValueError
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_refuses_non_empty_without_overwrite(tmp_path: Path) -> None:
    """A non-empty folder is refused before the body runs; the message names --overwrite."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep", encoding="utf-8")
    ran = False
    with pytest.raises(PocketLMError) as excinfo:
        with atomic_folder(out):
            ran = True
    assert not ran
    _one_line_error(excinfo, str(out), "--overwrite")
    assert (out / "keep.txt").read_text(encoding="utf-8") == "keep"
    assert _siblings(out) == []


def test_atomic_folder_accepts_empty_folder(tmp_path: Path) -> None:
    """An existing empty folder is not data to protect: it is filled without --overwrite."""
    out = tmp_path / "out"
    out.mkdir()
    with atomic_folder(out) as tmp:
        (tmp / "f").write_text("x", encoding="utf-8")
    assert [p.name for p in out.iterdir()] == ["f"]
    assert _siblings(out) == []


def test_atomic_folder_replaces_with_overwrite(tmp_path: Path) -> None:
    """With overwrite the old folder is replaced as a whole: old files are gone, no `.old` or
    `.partial` sibling is left behind."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")
    (out / "sub").mkdir()
    (out / "sub" / "deep.txt").write_text("old", encoding="utf-8")
    with atomic_folder(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
        assert (out / "old.txt").exists()  # the old artifact stays readable during the build
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert _siblings(out) == []


def test_output_path_that_is_a_file(tmp_path: Path) -> None:
    """An output path that is a file is refused, even with overwrite."""
    out = tmp_path / "out"
    out.write_text("file", encoding="utf-8")
    for overwrite in (False, True):
        with pytest.raises(PocketLMError, match="not a folder"):
            check_output_folder(out, overwrite)
    assert out.read_text(encoding="utf-8") == "file"


def test_atomic_folder_and_manifest_respect_umask(tmp_path: Path) -> None:
    """The folder and manifest get the usual umask permissions, not mkdtemp's/mkstemp's private
    0700/0600."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        with atomic_folder(out) as tmp:
            (tmp / "a.bin").write_bytes(b"a")
            (tmp / "b.json").write_text("{}", encoding="utf-8")
            write_manifest(tmp, "data", {}, ["a.bin", "b.json"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / MANIFEST).stat().st_mode) == 0o644
    assert read_manifest(out, "data")["files"]["a.bin"]["bytes"] == 1
