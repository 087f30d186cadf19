"""Write the folder that a wheel of pocketlm carries as pocketlm/runtime/webassets/: what
`pocketlm web` copies into a site, so that `pip install pocketlm` writes the page without Node,
npm or this checkout. setup.py's build step calls write(); git holds none of these copies.

    python web/tools/webassets.py DIR        # write DIR as a wheel would carry it

    web/page/*                                     ──▶ page/
    web/src/*.js                                   ──▶ src/
    web/node_modules/onnxruntime-web/dist/<files>  ──▶ ort/       (<files>: tools/ort-files.json;
                                                                   none without `npm ci` in web/)
    versions, licence and SHA-256 of every file    ──▶ assets.json

This file imports nothing from pocketlm (it runs while pocketlm is being built).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

WEB = Path(__file__).resolve().parents[1]


def ort_files(web: Path = WEB) -> dict[str, Any]:
    """tools/ort-files.json of the web/ folder ``web``: the package and its files the page loads."""
    return dict(json.loads((web / "tools" / "ort-files.json").read_text(encoding="utf-8")))


def lock_version(name: str, web: Path = WEB) -> str:
    """The version of node_modules/``name`` pinned by web/package-lock.json."""
    lock = json.loads((web / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{name}"]["version"])


def write(out: Path, web: Path = WEB) -> bool:
    """Fill ``out`` (absent or empty) from ``web``; False when ``web`` has no node_modules (then
    ``out`` holds the page and the package, but no onnxruntime-web files)."""
    ort = ort_files(web)
    package_dir = web / "node_modules" / ort["package"]
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(web / "page", out / "page")
    (out / "src").mkdir()
    for item in sorted((web / "src").glob("*.js")):
        shutil.copy2(item, out / "src" / item.name)
    record: dict[str, Any] = {
        "package": json.loads((web / "package.json").read_text(encoding="utf-8"))["version"],
        ort["package"]: None}
    if package_dir.is_dir():
        installed = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
        if installed["version"] != lock_version(ort["package"], web):
            raise SystemExit(f"{package_dir}: {ort['package']} {installed['version']} installed, "
                             f"the lockfile pins {lock_version(ort['package'], web)}; run "
                             f"`npm ci` in {web}")
        (out / "ort").mkdir()
        for name in ort["files"]:
            shutil.copy2(package_dir / "dist" / name, out / "ort" / name)
        record[ort["package"]] = {"version": installed["version"],
                                  "license": installed["license"], "files": ort["files"]}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    record["sha256"] = {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
                        for name in files}
    (out / "assets.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return package_dir.is_dir()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python web/tools/webassets.py DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    if out.exists() and any(out.iterdir()):
        print(f"{out}: not empty; choose a new folder", file=sys.stderr)
        return 1
    complete = write(out)
    print(f"wrote {out}" + ("" if complete else f" without onnxruntime-web's files (no "
                                                 f"{WEB / 'node_modules'}; run `npm ci` in web/)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
