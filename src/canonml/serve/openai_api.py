"""The OpenAI-compatible API for language-model packages: ``POST /v1/completions`` (with
``stream: true`` as server-sent events) and ``GET /v1/models`` — what vLLM, TGI, KServe's
LLM runtime and llama.cpp's server speak, so the ``openai`` client works unchanged.

Each generation's token loop runs in anyio's worker threads, one ``next`` (one ONNX Runtime
step, which releases the GIL) at a time, and a streamed piece is sent as soon as it is made:
concurrent requests interleave token by token instead of waiting for whole generations.
Errors have OpenAI's body, ``{"error": {"message", "type", "param", "code"}}``, with 400 for
every bad request; an unknown model is one too (code ``model_not_found``: the openai client
raises ``BadRequestError``; OpenAI itself answers 404 there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Router

from canonml.errors import CanonError
from canonml.package.generate import TextGenerator
from canonml.serve.completion import (
    Completion,
    CompletionRequest,
    OpenAIError,
    error_body,
    parse_completion,
)
from canonml.serve.metrics import Metrics
from canonml.serve.model import PackageLike

log = logging.getLogger("canonml.serve")
JSON = "application/json"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class LanguageModel:
    """A served language model: its generator and what ``/v1/models`` says of it."""

    name: str
    generator: TextGenerator
    created: int  # the package's creation time, in seconds since the epoch


def load_language_models(packages: Sequence[PackageLike], threads: int) -> dict[str, LanguageModel]:
    """A ``TextGenerator`` for each package whose signature has a ``generator``."""
    from canonml.package.generate import open_generator

    found = {}
    for package in packages:
        if not isinstance(package.signature.get("generator"), dict):
            continue
        generator = open_generator(Path(package.path), threads=threads)
        created = str(package.manifest.get("created", ""))
        try:
            stamp = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
        except ValueError:
            stamp = int(time.time())
        found[package.name] = LanguageModel(package.name, generator, stamp)
    return found


def add_openai_routes(
    router: Router,
    models: dict[str, LanguageModel],
    others: Sequence[str],
    metrics: Metrics,
    read_body: Any,
) -> None:
    """``/v1/models`` and ``/v1/completions`` over ``models``; ``others`` are the served
    names that are not language models (named in the error for one of them).
    ``read_body(request)`` returns the body, refusing one over the size limit."""

    async def list_models(request: Request) -> Response:
        data = [
            {"id": m.name, "object": "model", "created": m.created, "owned_by": "canonml"}
            for m in models.values()
        ]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)

    async def completions(request: Request) -> Response:
        start = time.perf_counter()
        name = ""
        try:
            req = parse_completion(await read_body(request))
            model = _lookup(models, others, req.model)
            name = model.name
            run = Completion(model.generator, req)
            pieces = run.pieces()
        except OpenAIError as e:
            metrics.completion(name, e.status)
            return _error(str(e), e.status, e.param, e.code)
        except CanonError as e:  # the body's size, or a setting the generator refuses
            metrics.completion(name, getattr(e, "status", 400))
            return _error(str(e), getattr(e, "status", 400))
        if req.stream:
            events = _events(run, pieces, metrics, start)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        try:
            text = await run_in_threadpool(lambda: "".join(pieces))
        except Exception as e:  # a model failure: still OpenAI's body, and the server lives on
            log.exception("completion on %r failed", name)
            metrics.completion(name, 500)
            return _error(f"generation failed: {type(e).__name__}: {e}", 500, kind="server_error")
        metrics.completion(name, 200, None, run.completion_tokens)
        body = _chunk(req, req.prompt + text if req.echo else text, run.finish_reason)
        body["usage"] = run.usage()
        return Response(orjson.dumps(body), media_type=JSON)

    router.add_route("/v1/models", list_models, ["GET"])
    router.add_route("/v1/completions", completions, ["POST"])


def _lookup(models: dict[str, LanguageModel], others: Sequence[str], name: str) -> LanguageModel:
    model = models.get(name)
    if model is not None:
        return model
    served = ", ".join(sorted(models)) or "none"
    if name in others:
        raise OpenAIError(
            f"model {name!r} is not a language model (serve it over OIP v2 at "
            f"/v2/models/{name}/infer); completions serve: {served}",
            "model",
        )
    raise OpenAIError(
        f"The model {name!r} does not exist; served: {served}", "model", code="model_not_found"
    )


async def _events(
    run: Completion, pieces: Any, metrics: Metrics, start: float
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed completion: a chunk per piece, a last one with
    the finish reason, usage when asked for, then ``[DONE]``. A client that goes away
    cancels this at the next token, which ends the generation (counted as status 499)."""
    req = run.request
    first: float | None = None
    status = 499
    try:
        if req.echo:
            yield _event(_chunk(req, req.prompt, None))
        try:
            async for piece in iterate_in_threadpool(pieces):
                if first is None:
                    first = time.perf_counter() - start
                yield _event(_chunk(req, piece, None))
        except Exception as e:  # the status is sent already: say it in the stream, as vLLM
            log.exception("completion on %r failed", req.model)
            status = 500
            message = f"generation failed: {type(e).__name__}: {e}"
            yield b"data: " + error_body(message, kind="server_error") + b"\n\n" + DONE
            return
        yield _event(_chunk(req, "", run.finish_reason))
        if req.include_usage:
            yield _event({**_chunk(req, "", None), "choices": [], "usage": run.usage()})
        status = 200
        yield DONE
    finally:
        metrics.completion(req.model, status, first, run.completion_tokens)


def _chunk(req: CompletionRequest, text: str, finish: str | None) -> dict[str, Any]:
    """A response body (or a stream's chunk) with one choice."""
    return {
        "id": req.id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
    }


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _error(
    message: str,
    status: int,
    param: str | None = None,
    code: str | None = None,
    kind: str = "invalid_request_error",
) -> Response:
    return Response(error_body(message, param, code, kind), status, media_type=JSON)
