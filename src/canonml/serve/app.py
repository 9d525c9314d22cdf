"""The FastAPI app: Open Inference Protocol v2 routes, the try-it page and Prometheus metrics.

Routes are plain Starlette endpoints that build their own ``Response`` from bytes: no
pydantic model or ``jsonable_encoder`` per request, since parsing and checking the JSON is
where an inference server spends its time. Every error is JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import functools
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from canonml._version import __version__
from canonml.errors import CanonError
from canonml.serve.batcher import Batcher
from canonml.serve.completion import error_body as openai_error_body
from canonml.serve.explain import Explainers, explain_async
from canonml.serve.metrics import Metrics
from canonml.serve.model import PackageLike, ServedModel
from canonml.serve.openai_api import add_openai_routes, load_language_models
from canonml.serve.page import PAGE
from canonml.serve.protocol import CLASSIFICATION, ServeError, error_body, parse_request
from canonml.serve.response import encode_response

log = logging.getLogger("canonml.serve")
JSON = "application/json"
BINARY = "application/octet-stream"  # a JSON header, then binary tensor data
MODEL = "/v2/models/{name}"
VERSION = "/v2/models/{name}/versions/{version}"
# A model call up to this long runs on the event loop (see canonml.serve.batcher).
INLINE_SECONDS = 0.002
# Probes must work without a token (Kubernetes sends none); so must the page's static shell.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/"})
# Triton's names for the protocol extensions served (canonml.serve.protocol, .response).
EXTENSIONS = ["binary_tensor_data", CLASSIFICATION]


def create_app(
    packages: Sequence[PackageLike],
    token: str | None = None,
    max_body: int = 16 * 2**20,
    max_batch: int = 32,
    max_wait_ms: float = 0.0,
    threads: int = 1,
) -> FastAPI:
    """An OIP v2 server for ``packages`` (each needs ``name``, ``path``, ``manifest``,
    ``signature`` and ``session(threads)``), with one micro-batcher per model; language
    models are served on the OpenAI completions API under /v1 as well.

    Raises:
        CanonError: two packages share a name, or a model fails its first run.
    """
    metrics = Metrics()
    models, batchers = _load(packages, metrics, max_batch, max_wait_ms, threads)
    language = load_language_models(packages, threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far lives as long as the server: keep it out of the cyclic
        # collector, whose full passes over it were p99 pauses of 20-40 ms under load.
        gc.freeze()
        yield
        gc.unfreeze()
        for batcher in batchers.values():
            await batcher.close()

    app = FastAPI(
        title="canon serve",
        version=__version__,
        docs_url=None,  # the docs page pulls scripts from a CDN; the API is OIP v2
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
        exception_handlers={
            ServeError: _serve_error,
            HTTPException: _http_error,
            RequestValidationError: _validation_error,
            Exception: _internal_error,
        },
    )
    infer = _infer_endpoint(models, batchers, metrics, max_body)
    app.router.add_route(MODEL + "/infer", infer, ["POST"])  # first: routes match in order
    app.router.add_route(VERSION + "/infer", infer, ["POST"])
    explain = _explain_endpoint(models, Explainers({p.name: p for p in packages}), max_body)
    app.router.add_route(MODEL + "/explain", explain, ["POST"])
    app.router.add_route(VERSION + "/explain", explain, ["POST"])
    _add_protocol_routes(app, models)
    _add_page_routes(app, models, metrics)

    async def read_body(request: Request) -> bytes:
        (length,) = _headers(request.scope, b"content-length")
        return await _read_body(request.receive, length, max_body)

    others = [name for name in models if name not in language]
    add_openai_routes(app.router, language, others, metrics, read_body)
    app.state.models = models  # the ServedModel of each name, for run_server and tests
    app.state.language_models = language  # those also on /v1/completions
    if token:
        app.add_middleware(BearerAuth, token=token)
    return app


def _load(
    packages: Sequence[PackageLike],
    metrics: Metrics,
    max_batch: int,
    max_wait_ms: float,
    threads: int,
) -> tuple[dict[str, ServedModel], dict[str, Batcher]]:
    models: dict[str, ServedModel] = {}
    batchers: dict[str, Batcher] = {}
    for package in packages:
        if package.name in models:
            raise CanonError(f"two packages are both named {package.name!r}; serve one of them")
        model = models[package.name] = ServedModel(package, threads=threads)
        metrics.loaded(model.name, model.load_seconds)
        # With max_batch 1 a call is a request: its size is in the latency count already.
        on_batch = functools.partial(metrics.batch, model.name) if max_batch > 1 else None
        inline = model.time_call(max_batch) <= INLINE_SECONDS
        pad = model.text.pad if model.text is not None else None
        batchers[model.name] = Batcher(
            model.run, max_batch, max_wait_ms / 1000, on_batch, inline=inline, pad=pad
        )
    return models, batchers


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type=JSON)


def _add_protocol_routes(app: FastAPI, models: dict[str, ServedModel]) -> None:
    server = {"name": "canonml", "version": __version__, "extensions": EXTENSIONS}

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        return json_response({"ready": True})

    async def metadata(request: Request) -> Response:
        return json_response(server)

    async def model_metadata(request: Request) -> Response:
        return json_response(_lookup(models, request.path_params).metadata())

    async def model_ready(request: Request) -> Response:
        return json_response({"name": _lookup(models, request.path_params).name, "ready": True})

    for path, endpoint in (
        ("/v2/health/live", live),
        ("/v2/health/ready", ready),
        ("/v2", metadata),
        ("/v2/", metadata),
        (MODEL, model_metadata),
        (VERSION, model_metadata),
        (MODEL + "/ready", model_ready),
        (VERSION + "/ready", model_ready),
    ):
        app.router.add_route(path, endpoint, ["GET"])


def _add_page_routes(app: FastAPI, models: dict[str, ServedModel], metrics: Metrics) -> None:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def page_models(request: Request) -> Response:
        return json_response([m.page_info() for m in models.values()])

    async def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.router.add_route("/", page, ["GET"])
    app.router.add_route("/ui/models", page_models, ["GET"])
    app.router.add_route("/metrics", prometheus, ["GET"])


def _lookup(models: dict[str, ServedModel], params: dict[str, Any]) -> ServedModel:
    model = models.get(params["name"])
    if model is None:
        served = ", ".join(sorted(models)) or "none"
        raise ServeError(f"unknown model {params['name']!r}; served: {served}", 404)
    version = params.get("version")
    if version is not None and version != model.version:
        raise ServeError(
            f"model {model.name!r} has no version {version!r}; served: {model.version}", 404
        )
    return model


def _infer_endpoint(
    models: dict[str, ServedModel], batchers: dict[str, Batcher], metrics: Metrics, max_body: int
) -> Any:
    async def infer(request: Request) -> Response:
        start = time.perf_counter()
        name = ""
        header_length = None
        try:
            model = _lookup(models, request.path_params)
            name = model.name
            headers = _headers(request.scope, b"content-length", b"inference-header-content-length")
            body = await _read_body(request.receive, headers[0], max_body)
            req = parse_request(body, model, _header_int(headers[1]))
            values = await batchers[name].infer(req.feeds, req.batch)
            (content, header_length), status = encode_response(model, req, values), 200
        except ServeError as e:
            content, status = error_body(str(e)), e.status
        except Exception as e:  # a bug or a model failure: still JSON, and the server lives on
            log.exception("inference on %r failed", name)
            content, status = error_body(f"inference failed: {type(e).__name__}: {e}"), 500
        metrics.observe(name, status, time.perf_counter() - start)
        if header_length is None:
            return Response(content, status, media_type=JSON)
        binary = {"Inference-Header-Content-Length": str(header_length)}
        return Response(content, status, binary, media_type=BINARY)

    return infer


def _explain_endpoint(models: dict[str, ServedModel], explainers: Explainers, max_body: int) -> Any:
    async def explain(request: Request) -> Response:
        name = ""
        try:
            model = _lookup(models, request.path_params)
            name = model.name
            headers = _headers(request.scope, b"content-length", b"inference-header-content-length")
            body = await _read_body(request.receive, headers[0], max_body)
            answer = await explain_async(explainers, model, body, _header_int(headers[1]))
            return json_response(answer)
        except ServeError as e:
            return Response(error_body(str(e)), e.status, media_type=JSON)
        except Exception as e:  # a bug: still JSON, and the server lives on
            log.exception("explaining %r failed", name)
            body = error_body(f"explain failed: {type(e).__name__}: {e}")
            return Response(body, 500, media_type=JSON)

    return explain


def _headers(scope: Scope, *names: bytes) -> list[bytes | None]:
    found: list[bytes | None] = [None] * len(names)
    for key, value in scope["headers"]:
        if key in names:
            found[names.index(key)] = value
    return found


def _header_int(value: bytes | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise ServeError(f"Inference-Header-Content-Length must be an integer, got {value!r:.40}")
    return int(value)


async def _read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    """The whole body, refused with 413 once it is known to pass ``limit`` bytes."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServeError(f"the body is {int(length)} bytes; the limit is {limit} (--max-body)", 413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ServeError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ServeError(f"the body is over {limit} bytes (--max-body)", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BearerAuth:
    """Answers 401 unless ``Authorization: Bearer <token>``; probes and the page stay open."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            (given,) = _headers(scope, b"authorization")
            if given is None or not hmac.compare_digest(given, self.expected):
                message = "missing or wrong token: send 'Authorization: Bearer <token>'"
                openai = scope["path"].startswith("/v1/")
                response = Response(
                    openai_error_body(message, code="invalid_api_key")
                    if openai
                    else error_body(message),
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type=JSON,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = (
            f"no route {request.url.path!r}; the API is OIP v2 under /v2, and the OpenAI "
            "completions API (/v1/completions, /v1/models) for language models"
        )
    else:
        message = f"{request.method} {request.url.path}: {exc.detail}"
    openai = request.url.path.startswith("/v1/")
    body = openai_error_body(message) if openai else error_body(message)
    return Response(body, exc.status_code, exc.headers, media_type=JSON)


async def _validation_error(request: Request, exc: Exception) -> Response:
    return Response(error_body(f"bad request: {exc}"), 400, media_type=JSON)


async def _serve_error(request: Request, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, ServeError) else 400
    return Response(error_body(str(exc)), status, media_type=JSON)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return Response(error_body(f"internal error: {type(exc).__name__}"), 500, media_type=JSON)
