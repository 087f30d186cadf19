"""``pocketlm web``: a static site that runs a model folder in the browser, and a local server.

The site (``--out SITE``)::

    index.html, app.js, style.css, sw.js    the page (web/page/)
    pocketlm/                               the JavaScript package (web/src/)
    ort/                                    onnxruntime-web's wasm build (web/node_modules/)
    model/                                  the model folder, checked against its manifest
                                            (less the ORT-format graphs, for mobile builds)
    files.json                              every file, for the offline cache (sw.js)

``--serve`` serves it on 127.0.0.1 only, GET and HEAD only, with the headers that make the page
cross-origin isolated (so WebAssembly threads are available: ``?threads=2``).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import click

from .artifact import PocketLMError, atomic_folder, read_manifest
from .graphs import REQUIRED_OPERATORS

#: The folder of the JavaScript package in a source checkout (web/ beside runtime/).
WEB_DIR = Path(__file__).resolve().parents[1] / "web"
#: onnxruntime-web's files the page loads (the plain wasm build, SIMD, threads optional).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
#: Requests served at once; the server is for one person's browser.
MAX_THREADS = 16
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream",
         ".ort": "application/octet-stream", ".css": "text/css", ".html": "text/html",
         ".md": "text/markdown", ".data": "application/octet-stream"}


def _web_dir(web: Path | None) -> Path:
    folder = Path(web) if web else WEB_DIR
    if not (folder / "src" / "browser.js").is_file() or not (folder / "page" / "app.js").is_file():
        raise PocketLMError(f"{folder}: not pocketlm's web/ folder (no src/browser.js or "
                            f"page/app.js); pass --web path/to/pocketlm/web")
    dist = folder / "node_modules" / "onnxruntime-web" / "dist"
    missing = [name for name in ORT_FILES if not (dist / name).is_file()]
    if missing:
        raise PocketLMError(f"{dist}: no {', '.join(missing)}; run `npm ci` in {folder}")
    return folder


def build_site(model: Path, out: Path, web: Path | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Write the site for ``model`` into ``out`` (atomically); returns files.json's content."""
    manifest = read_manifest(model, "model")
    folder = _web_dir(web)
    with atomic_folder(out, overwrite) as tmp:
        for item in (folder / "page").iterdir():
            shutil.copy2(item, tmp / item.name)
        shutil.copytree(folder / "src", tmp / "pocketlm")
        (tmp / "ort").mkdir()
        for name in ORT_FILES:
            shutil.copy2(folder / "node_modules" / "onnxruntime-web" / "dist" / name,
                         tmp / "ort" / name)
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
              help="pocketlm's web/ folder with node_modules (default: the source checkout's).")
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
