"""``canon serve``: open packages, build the app, run it on uvicorn (one or more workers)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from canonml.errors import CanonError
from canonml.serve.app import create_app
from canonml.serve.model import PackageLike

# uvicorn's worker processes rebuild the app from this (JSON) environment variable.
_CONFIG_ENV = "CANON_SERVE_CONFIG"
# ... and count their metrics into files in this directory (prometheus_client's multiprocess
# mode, chosen when prometheus_client is imported: the workers start with it set).
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``1048576``, ``16MiB``, ``512kb``, ``1.5 GB`` (for ``--max-body``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise CanonError(f"--max-body: not a size, got {text!r} (e.g. 16MiB, 500kB, 1048576)")
    return int(float(match.group(1)) * _UNITS[unit])


def open_packages(paths: Sequence[str | Path]) -> list[PackageLike]:
    """Open and verify each package; a bad one raises the reader's ``CanonError``."""
    from canonml.package.reader import open_package

    if not paths:
        raise CanonError("serve: give at least one package directory or .zip")
    return [open_package(Path(p), verify_hashes=True) for p in paths]


def build_app(
    pkg_paths: Sequence[str | Path],
    token: str | None = None,
    max_body: int = 16 * 2**20,
    max_batch: int = 32,
    max_wait_ms: float = 0.0,
    threads: int = 1,
) -> FastAPI:
    """``create_app`` over the packages at ``pkg_paths``."""
    return create_app(
        open_packages(pkg_paths),
        token=token,
        max_body=max_body,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        threads=threads,
    )


def run_server(
    pkg_paths: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    workers: int = 1,
    max_body: int = 16 * 2**20,
    max_batch: int = 32,
    max_wait_ms: float = 0.0,
    threads: int = 1,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``pkg_paths`` until interrupted. ``token`` falls back to ``$CANON_TOKEN``.

    ``announce`` receives one line (the URL and the models) once the packages are loaded,
    just before the server starts listening.

    Raises:
        CanonError: a package is missing or invalid, or an option is out of range.
    """
    import uvicorn

    _check_options(host, port, workers, max_body, max_batch, max_wait_ms, threads)
    token = token or os.environ.get("CANON_TOKEN") or None
    config: dict[str, Any] = {
        "pkg_paths": [str(Path(p).resolve()) for p in pkg_paths],
        "token": token,
        "max_body": max_body,
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "threads": threads,
    }
    app = build_app(**config)  # opened here too, so a bad package fails before binding
    if announce is not None:
        names = ", ".join(app.state.models)
        lms = ", ".join(app.state.language_models)
        openai = f"OpenAI completions for {lms} under /v1, " if lms else ""
        announce(
            f"serving {names} on http://{host}:{port} (OIP v2 under /v2, {openai}try-it page "
            f"at /, metrics at /metrics; {workers} worker{'s' * (workers > 1)})"
        )
    common: dict[str, Any] = {"host": host, "port": port, "log_level": log_level}
    if workers == 1:
        uvicorn.run(app, access_log=False, **common)
        return
    with _worker_environment(config):
        uvicorn.run(
            "canonml.serve.server:app_from_env",
            factory=True,
            workers=workers,
            access_log=False,
            **common,
        )


@contextmanager
def _worker_environment(config: dict[str, Any]) -> Iterator[None]:
    """The workers' configuration and a fresh metrics directory, removed when they are done.

    The directory is always a new one: files a former server left there would be counted.
    """
    saved = {name: os.environ.get(name) for name in (_CONFIG_ENV, _METRICS_ENV)}
    metrics_dir = tempfile.mkdtemp(prefix="canon-metrics-")
    os.environ[_CONFIG_ENV] = json.dumps(config)
    os.environ[_METRICS_ENV] = metrics_dir
    try:
        yield
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_options(
    host: str, port: int, workers: int, max_body: int, max_batch: int, wait: float, threads: int
) -> None:
    for option, value in (
        ("--workers", workers),
        ("--max-body", max_body),
        ("--max-batch", max_batch),
        ("--threads", threads),
    ):
        if value < 1:
            raise CanonError(f"{option}: must be >= 1, got {value}")
    if wait < 0:
        raise CanonError(f"--max-wait-ms: must be >= 0, got {wait}")
    try:  # fail with one line now rather than with uvicorn's log after loading the models
        with socket.create_server((host, port), reuse_port=False):
            pass
    except OSError as e:
        raise CanonError(f"--host/--port: cannot listen on {host}:{port} ({e.strerror})") from None


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process, from the configuration ``run_server`` left."""
    return build_app(**json.loads(os.environ[_CONFIG_ENV]))
