"""``pocketlm web``: a static site that runs a model folder in the browser, and a local server.

The site (``--out SITE``)::

    index.html, app.js, style.css, sw.js    the page (web/page/)
    pocketlm/                               the JavaScript package (web/src/)
    ort/                                    onnxruntime-web's wasm build
    model/                                  the model folder, checked against its manifest
                                            (less the ORT-format graphs, for mobile builds)
    files.json                              every file, for the offline cache (sw.js)

``--serve`` serves it on 127.0.0.1 only, GET and HEAD only, with the headers that make the page
cross-origin isolated (so WebAssembly threads are available: ``?threads=2``).

Where the page, the package and onnxruntime-web's files come from (the first that exists)::

    --web DIR                    DIR/page/  DIR/src/  DIR/node_modules/onnxruntime-web/dist/
    the installed package        webassets/page/  webassets/src/  webassets/ort/  assets.json
                                 (written into a wheel by setup.py from web/; not in git)
    the source checkout          web/ beside runtime/ (an editable install)

so a plain ``pip install pocketlm`` writes sites without Node, npm or a checkout. The names of
onnxruntime-web's files are those of the packaged assets.json, or of web/tools/ort-files.json.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import click

from .artifact import PocketLMError, atomic_folder, read_manifest
from .graphs import REQUIRED_OPERATORS

#: The page, the JavaScript package and onnxruntime-web's files, as package data of a wheel.
ASSETS_DIR = Path(__file__).resolve().parent / "webassets"
#: The web/ folder of a source checkout (beside runtime/; used by editable installs).
SOURCE_WEB = Path(__file__).resolve().parents[1] / "web"
#: Requests served at once; the server is for one person's browser.
MAX_THREADS = 16
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream",
         ".ort": "application/octet-stream", ".css": "text/css", ".html": "text/html",
         ".md": "text/markdown", ".data": "application/octet-stream"}


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PocketLMError(f"{path}: cannot read it ({exc}); reinstall pocketlm, or pass "
                            f"--web path/to/pocketlm/web") from exc


def asset_folders(web: Path | None = None,
                  packaged: Path = ASSETS_DIR) -> tuple[Path, Path, Path, list[str]]:
    """The folders of the page, of the package and of onnxruntime-web's files, and the names of
    the latter: from the web/ checkout ``web``, else from ``packaged`` (a wheel's webassets/)
    when it exists, else from the source checkout's web/."""
    if web is None and packaged.is_dir():
        page, src, ort = (packaged / name for name in ("page", "src", "ort"))
        carried = _json(packaged / "assets.json").get("onnxruntime-web")
        if not carried:
            raise PocketLMError("this install carries no onnxruntime-web files: build it after "
                                "`cd web && npm ci`, or pass --web DIR")
        names, fix = list(carried["files"]), "reinstall pocketlm, or pass --web DIR"
    else:
        if web is None and not SOURCE_WEB.is_dir():
            raise PocketLMError("this install carries no page files (no "
                                f"{packaged}); reinstall pocketlm, or pass --web DIR")
        folder = SOURCE_WEB if web is None else Path(web)
        page, src = folder / "page", folder / "src"
        ort = folder / "node_modules" / "onnxruntime-web" / "dist"
        if not (src / "browser.js").is_file() or not (page / "app.js").is_file():
            raise PocketLMError(f"{folder}: not pocketlm's web/ folder (no src/browser.js or "
                                f"page/app.js); pass --web path/to/pocketlm/web")
        names, fix = list(_json(folder / "tools" / "ort-files.json")["files"]), \
            f"run `npm ci` in {folder}"
    missing = [str(where / name) for where, wanted in
               ((page, ["app.js"]), (src, ["browser.js"]), (ort, names))
               for name in wanted if not (where / name).is_file()]
    if missing:
        raise PocketLMError(f"no {', '.join(missing)}; {fix}")
    return page, src, ort, names


def build_site(model: Path, out: Path, web: Path | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Write the site for ``model`` into ``out`` (atomically); returns files.json's content."""
    manifest = read_manifest(model, "model")
    page, src, ort, ort_names = asset_folders(web)
    with atomic_folder(out, overwrite) as tmp:
        for item in page.iterdir():
            shutil.copy2(item, tmp / item.name)
        (tmp / "pocketlm").mkdir()
        for item in src.glob("*.js"):
            shutil.copy2(item, tmp / "pocketlm" / item.name)
        (tmp / "ort").mkdir()
        for name in ort_names:
            shutil.copy2(ort / name, tmp / "ort" / name)
        (tmp / "model").mkdir()
        for name in ["manifest.json", *manifest["files"]]:
            if not name.endswith(".ort") and name != REQUIRED_OPERATORS:  # not for a browser
                shutil.copy2(model / name, tmp / "model" / name)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for name in files:
            digest.update(name.encode() + b"\0" + (tmp / name).read_bytes())
        listing = {"version": digest.hexdigest()[:16], "files": ["./", "files.json", *files],
                   "bytes": sum((tmp / name).stat().st_size for name in files)}
        (tmp / "files.json").write_text(json.dumps(listing, indent=1) + "\n", encoding="utf-8")
    return listing


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files of one folder, GET/HEAD only, with cross-origin isolation headers, quietly."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Requests are not logged (the base class writes each to stderr)."""


class _Server(http.server.ThreadingHTTPServer):
    """At most MAX_THREADS requests at once; the rest wait in the listen queue."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_THREADS)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops a connection mid-file is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(site: Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server of ``site`` on 127.0.0.1:``port`` (0: any free port); call serve_forever()."""
    if not (Path(site) / "index.html").is_file():
        raise PocketLMError(f"{site}: no index.html; write the site first with "
                            f"`pocketlm web --model DIR --out {site}`")

    class Handler(_Handler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=os.fspath(site), **kwargs)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.send_error(405)

    try:
        return _Server(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise PocketLMError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose "
                            f"another --port") from exc


@click.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder written by `pocketlm export` (needed to write the site).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("site"), show_default=True,
              help="Folder of the static site.")
@click.option("--serve", is_flag=True, help="Serve the site on 127.0.0.1 (after writing it "
                                            "when --model is given).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port for --serve (0: any free port).")
@click.option("--web", "web_dir", type=click.Path(path_type=Path), default=None,
              help="Take the page from this web/ checkout (npm ci done) instead of the files "
                   "pocketlm carries.")
@click.option("--overwrite", is_flag=True, help="Replace the site folder if it exists.")
def web(model_dir: Path | None, out: Path, serve: bool, port: int, web_dir: Path | None,
        overwrite: bool) -> None:
    """Write a static site that scores, ranks and generates in the browser; --serve it locally."""
    if model_dir is None and not serve:
        raise click.UsageError("give --model DIR to write a site, or --serve to serve one")
    if model_dir is not None:
        listing = build_site(model_dir, out, web_dir, overwrite)
        click.echo(f"wrote {out} ({len(listing['files']) - 2} files, {listing['bytes']:,} bytes)")
    if serve:
        server = make_server(out, port)
        click.echo(f"serving {out} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
