"""OpenAI completions requests (``POST /v1/completions``), checked, and their generation.

A request's parameters map onto ``TextGenerator.generate`` (``canonml.package.generate``)
one to one, so a request and ``canon generate`` with the same settings give the same text:

======================  ======================================  ==========================
OpenAI (default)        ``canon generate``                       note
======================  ======================================  ==========================
``prompt``              ``--prompt``                             a string, or a list of one
``max_tokens`` (16)     ``--max-new-tokens`` (200)               >= 1
``temperature`` (1.0)   ``--temperature`` (0.8)                  >= 0; 0 is greedy
``top_p`` (1.0)         ``--top-p`` (0.95)                       in (0, 1]
``top_k`` (0: all)      ``--top-k`` (50)                         vLLM's extra; -1 is all too
``seed`` (random)       ``--seed`` (0)                           absent: a fresh one each time
======================  ======================================  ==========================

Generation ends at the end-of-text token (finish_reason ``stop``), at the first ``stop``
sequence (``stop``; the text is cut before it), or after ``max_tokens`` tokens or when the
prompt and the new tokens fill the model's context (``length``). A prompt of ``context``
tokens or more is refused. ``n`` and ``best_of`` other than 1, ``logprobs``, ``suffix``,
penalties and ``logit_bias`` change what is generated and are refused rather than ignored.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from canonml.package.generate import TextGenerator, stream_text
from canonml.serve.protocol import ServeError

# Parameters that are accepted at their neutral value only (what clients often send).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "best_of": (None, 1),
    "logprobs": (None, 0, False),
    "suffix": (None, ""),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
}
_KEYS = frozenset(
    {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop"}
    | {"stream", "stream_options", "echo", "user", *_NEUTRAL}
)
MAX_STOP = 4  # as OpenAI


class OpenAIError(ServeError):
    """A refused completions request; ``param`` names the field at fault (or None)."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        status: int = 400,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status)
        self.param, self.code = param, code


def error_body(
    message: str,
    param: str | None = None,
    code: str | None = None,
    kind: str = "invalid_request_error",
) -> bytes:
    """OpenAI's error body, which the ``openai`` client reads its message from."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


@dataclass(frozen=True)
class CompletionRequest:
    """A checked request; the settings are ``TextGenerator.generate``'s."""

    model: str
    prompt: str
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    echo: bool = False
    id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")  # one per request

    def settings(self) -> dict[str, Any]:
        """The keyword arguments of ``TextGenerator.generate`` for this request."""
        return {
            "max_new_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop_at_eos": True,
        }


def parse_completion(body: bytes) -> CompletionRequest:
    """The request in ``body`` (JSON), or an ``OpenAIError`` naming the bad field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise OpenAIError(f"the body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise OpenAIError(f"the body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise OpenAIError(f"unrecognized request argument supplied: {unknown[0]}", unknown[0])
    for name, neutral in _NEUTRAL.items():
        if name in data and not any(_same(data[name], v) for v in neutral):
            raise OpenAIError(f"{name}: only {neutral[1]!r} is supported, got {data[name]!r}", name)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIError(f"model: must be a model name (a string), got {model!r}", "model")
    top_k = _number(data, "top_k", 0, int, "an integer >= 0 (0 or -1: all)", lambda v: v >= -1)
    seed = _number(data, "seed", None, int, "an integer >= 0", _nonneg)
    return CompletionRequest(
        model=model,
        prompt=_prompt(data.get("prompt", "")),
        max_tokens=_number(data, "max_tokens", 16, int, "an integer >= 1", lambda v: v >= 1),
        temperature=float(_number(data, "temperature", 1.0, float, "a number >= 0", _nonneg)),
        top_p=float(_number(data, "top_p", 1.0, float, "a number in (0, 1]", _share)),
        top_k=max(top_k, 0),
        seed=secrets.randbits(63) if seed is None else seed,  # none given: random, as OpenAI
        stop=_stop(data.get("stop")),
        stream=_flag(data, "stream"),
        include_usage=_stream_options(data.get("stream_options")),
        echo=_flag(data, "echo"),
    )


def _same(value: Any, neutral: Any) -> bool:
    return value is neutral or (type(value) is type(neutral) and value == neutral)


def _nonneg(value: float) -> bool:
    return value >= 0


def _share(value: float) -> bool:
    return 0 < value <= 1


def _number(
    data: dict[str, Any], name: str, default: Any, kind: type, allowed: str, ok: Any
) -> Any:
    """``data[name]`` (``default`` when absent or null) if it is a ``kind`` that is ``ok``."""
    value = data.get(name)
    if value is None:
        return default
    # bool is an int to Python, not to JSON; a float field takes integers too.
    kinds = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or not ok(value):
        raise OpenAIError(f"{name}: must be {allowed}, got {value!r}", name)
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise OpenAIError(f"{name}: must be true or false, got {value!r}", name)
    return bool(value)


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str) for v in value):
        raise OpenAIError(
            f"prompt: one prompt per request is served, got a list of {len(value)}", "prompt"
        )
    raise OpenAIError(
        f"prompt: must be a string or a list of one string, got {value!r:.80}", "prompt"
    )


def _stop(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if value is None:
        return ()
    if (
        not isinstance(stops, list)
        or not 1 <= len(stops) <= MAX_STOP
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise OpenAIError(
            f"stop: must be a non-empty string or a list of 1 to {MAX_STOP} of them, "
            f"got {value!r:.80}",
            "stop",
        )
    return tuple(stops)


def _stream_options(value: Any) -> bool:
    if value is None:
        return False
    usage = value.get("include_usage", False) if isinstance(value, dict) else None
    if not isinstance(value, dict) or set(value) - {"include_usage"} or not isinstance(usage, bool):
        raise OpenAIError(
            f"stream_options: must be {{'include_usage': true|false}}, got {value!r:.80}",
            "stream_options",
        )
    return usage


@dataclass
class Completion:
    """One request's generation: ``pieces()`` streams the text (stop sequences cut out);
    afterwards ``finish_reason`` and the token counts are set."""

    generator: TextGenerator
    request: CompletionRequest
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    _ids: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._ids = self.generator.prompt_ids(self.request.prompt)
        self.prompt_tokens = len(self._ids)
        context = self.generator.context
        if self.prompt_tokens >= context:
            raise OpenAIError(
                f"This model's maximum context length is {context} tokens, however your "
                f"prompt is {self.prompt_tokens} tokens; shorten it to at most {context - 1} "
                "(the completion needs room too)",
                "prompt",
            )

    def pieces(self) -> Iterator[str]:
        """The new text, piece by piece; each ``next`` runs one ONNX Runtime step in the
        caller's thread.

        Raises:
            CanonError: a setting ``TextGenerator`` refuses (now, not at the first step).
        """
        # TextGenerator.generate's own token stream and decoding, counted as it goes: the
        # same seed and settings give the same text as ``canon generate``.
        s = self.request.settings()
        tokens = self.generator.tokens(self._ids, **s)
        return self._cut(stream_text(self.generator.tokenizer, self._ids, self._counted(tokens)))

    def _cut(self, pieces: Iterator[str]) -> Iterator[str]:
        cut = StopCut(self.request.stop)
        for piece in pieces:
            text = cut.feed(piece)
            if text:
                yield text
            if cut.stopped:
                self.finish_reason = "stop"
                return
        if cut.held:
            yield cut.held
        full = self.prompt_tokens + self.completion_tokens >= self.generator.context
        done = self.completion_tokens >= self.request.max_tokens or full
        self.finish_reason = "length" if done else "stop"

    def _counted(self, tokens: Iterator[int]) -> Iterator[int]:
        for token in tokens:
            self.completion_tokens += 1
            yield token

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class StopCut:
    """Cuts a stream of text at the first of ``stops``, holding back a tail that may be
    the start of one until the next piece tells."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is safe to send now (before a stop sequence, when one is found)."""
        text = self.held + piece
        if not self.stops:
            return text
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if found:
            self.held, self.stopped = "", True
            return text[: min(found)]
        keep = max((_overlap(text, s) for s in self.stops), default=0)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of ``text`` that starts ``stop``."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0
