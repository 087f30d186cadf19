"""Ingest throughput and memory: the embedded KJV, and a large text corpus made from it.

Each case runs in its own process (so its peak RSS is its own) with a fresh, empty
``datasets`` cache (so the Arrow conversion of a non-streamed source is timed too), and prints one
JSON line: wall seconds, tokens written, tokens/s, peak RSS.

    python bench/ingest.py                              # all cases, >= 100M-token corpus
    python bench/ingest.py --cases kjv kjv-stream      # the KJV only
    python bench/ingest.py --big-tokens 2e7 --repeats 3
    python bench/ingest.py --baseline /tmp/old --cases kjv big   # A/B against older code

``--baseline DIR`` runs the non-streamed cases a second time with the ``pocketlm`` package found
in DIR (a folder holding ``pocketlm/pipeline``, ``pocketlm/runtime`` of another commit), alternated
with the current code in every round, so the two are compared on the same machine state.

Cases: ``kjv``, ``kjv-stream`` (``--streaming``), ``kjv-cached`` (the same command a second
time: the fingerprint cache), ``big``, ``big-stream``. The large corpus is the KJV's verses
repeated until it holds ``--big-tokens`` tokens (``<eos>`` included), one verse per line, written
once into ``--workdir`` and reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, median  # noqa: E402

CASES = ("kjv", "kjv-stream", "kjv-cached", "big", "big-stream")
#: Tokens (words + <eos>) of one pass over the KJV with pocketlm's default tokenizer.
KJV_TOKENS = 948_059


def big_corpus(workdir: Path, tokens: float) -> Path:
    """The KJV's verses repeated to at least ``tokens`` tokens, as one .txt file (cached)."""
    from pocketlm.pipeline.sources import load_corpus

    repeats = math.ceil(tokens / KJV_TOKENS)
    path = workdir / f"kjv_x{repeats}.txt"
    if not path.is_file():
        verses = "".join(line + "\n" for line in load_corpus().lines()).encode("utf-8")
        tmp = path.with_suffix(".partial")
        with open(tmp, "wb") as fh:
            for _ in range(repeats):
                fh.write(verses)
        os.replace(tmp, path)
    return path


def child(case: str, workdir: Path, corpus: str | None) -> None:
    """Run one case in this process and print its JSON line."""
    cache = Path(tempfile.mkdtemp(prefix="hf_cache_", dir=workdir))
    os.environ["HF_DATASETS_CACHE"] = str(cache)
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import logging

    from pocketlm.pipeline.ingest import IngestConfig, ingest

    logging.getLogger("pocketlm").setLevel(logging.WARNING)
    import inspect

    current = "force" in inspect.signature(ingest).parameters  # older code: no cache, no stream
    streaming = case.endswith("-stream")
    config = IngestConfig(data_files=(corpus,) if corpus else (),
                          **({"streaming": streaming} if current else {}))
    force = {"force": case != "kjv-cached"} if current else {}
    out = workdir / f"data_{case}"
    try:
        if case == "kjv-cached":
            ingest(config, out, overwrite=True, **force)
        started = time.perf_counter()
        manifest = ingest(config, out, overwrite=True, **force)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    tokens = sum(s["tokens"] for s in manifest["splits"].values())
    print(json.dumps({
        "case": case, "code": "current" if current else "baseline", "streaming": streaming,
        "reused": manifest.get("reused", False),
        "corpus_bytes": os.path.getsize(corpus) if corpus else None,
        "tokens": tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "vocab_size": manifest["vocab_size"],
        "train_valid_test_tokens": [manifest["splits"][s]["tokens"]
                                    for s in ("train", "valid", "test")],
    }), flush=True)
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--big-tokens", type=float, default=1e8,
                        help="tokens of the large corpus (default 1e8)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case, alternated")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "pocketlm_bench_ingest")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="folder holding an older pocketlm package to compare against")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.workdir, args.corpus)
        return
    emit("machine", **machine(), datasets=_version("datasets"))
    corpus = None
    if any(c.startswith("big") for c in args.cases):
        started = time.perf_counter()
        corpus = big_corpus(args.workdir, args.big_tokens)
        emit("corpus", path=str(corpus), bytes=corpus.stat().st_size,
             seconds_to_write=round(time.perf_counter() - started, 1))
    emit("config", cases=args.cases, repeats=args.repeats, big_tokens=args.big_tokens,
         workdir=str(args.workdir), ingest="IngestConfig defaults (vocab 10,000, lowercase, "
         "line rule every 20)")
    variants = [(case, None) for case in args.cases]
    if args.baseline:
        variants += [(case, args.baseline) for case in args.cases
                     if not case.endswith(("-stream", "-cached"))]
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for case, code in sorted(variants, key=lambda v: (args.cases.index(v[0]), v[1] is None)):
            command = [sys.executable, __file__, "--child", case, "--workdir", str(args.workdir)]
            if case.startswith("big"):
                command += ["--corpus", str(corpus)]
            env = dict(os.environ)
            if code is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
            done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
            if done.returncode != 0:
                emit("error", case=case, stderr=done.stderr.strip().splitlines()[-1:])
                continue
            record = json.loads(done.stdout.strip().splitlines()[-1])
            results.setdefault((case, record["code"]), []).append(record)
            emit("run", **record)
    for (case, code), runs in results.items():
        if runs:
            emit("summary", case=case, code=code, runs=len(runs),
                 median_seconds=median([r["seconds"] for r in runs]),
                 median_tokens_per_s=median([r["tokens_per_s"] for r in runs]),
                 max_peak_rss_mb=max(r["peak_rss_mb"] for r in runs))


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
