"""Open Inference Protocol v2 inference requests, parsed and checked cheaply.

The body is parsed once (orjson on the raw bytes) and checked with plain ``type`` and
``set`` tests; each input becomes a numpy array in one ``np.array`` call. Every rejection
is a ``ServeError`` whose message names the input or output and what was expected.

Parameters are checked like fields: the ones of Triton's binary tensor data and
classification extensions are honoured, any other one is refused (never silently ignored).
A text classifier's ``text`` input is a BYTES tensor: JSON strings, or binary data of
4-byte little-endian lengths each followed by that many UTF-8 bytes (Triton's encoding);
``ServedModel.encode`` tokenizes the checked texts. ``canonml.serve.response`` encodes
the answer.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from canonml.errors import CanonError
from canonml.serve.model import BYTES, ServedModel, TensorSpec
from canonml.tasks.classification import SERVE_EXTENSION as CLASSIFICATION

INT64_MAX = 2**63 - 1
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
# The parameters served, per place (Triton's binary tensor data and classification extensions;
# ``class_count`` is tritonclient's name for ``classification``, accepted as its alias).
# ``content_type`` is the codec hint KServe's and MLServer's clients send ("np", "pd", ...):
# every tensor here is read by its datatype and shape, which is what such a hint means for a
# numeric tensor, so it is accepted wherever it may stand (as a string).
_REQUEST_PARAMS = frozenset({"binary_data_output", "content_type"})
# /explain's own request parameters (canonml.serve.explain).
EXPLAIN_PARAMS = frozenset({"method", "target", "steps"})
_INPUT_PARAMS = frozenset({"binary_data_size", "content_type"})
_OUTPUT_PARAMS = frozenset({"binary_data", CLASSIFICATION, "class_count", "content_type"})
# numpy kinds a JSON array may parse to, per expected datatype kind (bools are not numbers).
_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}
_KIND_NAMES = {"b": "boolean", "i": "integer", "u": "integer", "f": "floating-point", "U": "string"}


class ServeError(CanonError):
    """A request the server refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class RequestedOutput:
    """One output to answer with: as JSON ``data`` or as binary data after the JSON, and
    with ``classes`` > 0 as the top-``classes`` ``"score:index:label"`` strings instead."""

    spec: TensorSpec
    binary: bool = False
    classes: int = 0


@dataclass
class InferRequest:
    """A checked request: one batch-first array per model input."""

    id: str
    feeds: dict[str, np.ndarray]
    outputs: list[RequestedOutput]
    batch: int
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_request(
    body: bytes,
    model: ServedModel,
    header_length: int | None = None,
    extra_params: frozenset[str] = frozenset(),
) -> InferRequest:
    """Parse and check an inference request body against ``model``'s metadata.

    ``header_length`` is the binary tensor extension's ``Inference-Header-Content-Length``:
    the JSON is that many bytes and the raw input tensors follow it.
    """
    binary = b""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise ServeError(f"Inference-Header-Content-Length {header_length} is past the body")
        body, binary = body[:header_length], body[header_length:]
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise _invalid_json(body, e) from None
    if type(req) is not dict:
        raise ServeError(f"the body must be a JSON object, got {type(req).__name__}")
    if not req.keys() <= _REQUEST_KEYS:
        raise ServeError(f"unknown request field(s) {_extra(req, _REQUEST_KEYS)}")
    request_id = req.get("id")
    if request_id is None:
        request_id = os.urandom(8).hex()  # unique enough to correlate logs; cheaper than uuid4
    elif type(request_id) is not str:
        raise ServeError(f"'id' must be a string, got {request_id!r}")
    params = req.get("parameters")
    binary_output = False
    if params is not None:
        _check_params(params, _REQUEST_PARAMS | extra_params, "the request")
        binary_output = _flag(params, "binary_data_output", False, "the request")
    feeds = _inputs(req.get("inputs"), model, memoryview(binary))
    batch = _batch_size(feeds)
    outputs = _outputs(req.get("outputs"), model, binary_output)
    extra = {k: v for k, v in (params or {}).items() if k in extra_params}
    return InferRequest(request_id, model.encode(feeds), outputs, batch, extra)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


class _NotJson(float):
    """Where a ``NaN``/``Infinity`` literal (or a number too big for a double) stood."""


def _invalid_json(body: bytes, error: Exception) -> ServeError:
    """Say which input holds a non-JSON number; any other syntax error as orjson saw it."""

    def number(text: str) -> float:
        value = float(text)
        return value if math.isfinite(value) else _NotJson(value)

    try:
        doc = json.loads(body, parse_constant=_NotJson, parse_float=number)
    except (ValueError, RecursionError):
        return ServeError(f"the body is not valid JSON: {error}")
    where = "the body"
    entries = doc.get("inputs") if type(doc) is dict else None
    for entry in entries if type(entries) is list else []:
        if type(entry) is dict and _holds_not_json(entry.get("data")):
            where = f"input {entry.get('name')!r:.80}"
            break
    return ServeError(f"{where}: NaN, Infinity and numbers past a double are not JSON numbers")


def _holds_not_json(data: Any) -> bool:
    if type(data) is list:
        return any(_holds_not_json(v) for v in data)
    return isinstance(data, _NotJson)


def _extra(obj: dict[str, Any], allowed: frozenset[str]) -> str:
    return f"{sorted(obj.keys() - allowed)} (allowed: {', '.join(sorted(allowed))})"


def _inputs(entries: Any, model: ServedModel, binary: memoryview) -> dict[str, np.ndarray]:
    if type(entries) is not list:
        raise ServeError("'inputs' must be a list of input tensors")
    feeds: dict[str, np.ndarray] = {}
    for entry in entries:
        if type(entry) is not dict:
            raise ServeError(f"each of 'inputs' must be an object, got {entry!r:.80}")
        name = entry.get("name")
        spec = next((t for t in model.inputs if t.name == name), None)
        if spec is None:
            expected = ", ".join(repr(t.name) for t in model.inputs)
            raise ServeError(f"input {name!r:.80}: unknown input; the model takes {expected}")
        if name in feeds:
            raise ServeError(f"input {name!r}: given more than once")
        feeds[spec.name], binary = _tensor(entry, spec, binary)
    for spec in model.inputs:
        if spec.name not in feeds:
            raise ServeError(
                f"input {spec.name!r}: missing; expected {spec.datatype} "
                f"of shape {list(spec.shape)}"
            )
    if len(binary):
        raise ServeError(f"{len(binary)} bytes of binary data after the last binary input")
    for name, (lo, hi) in model.ranges.items():
        values = feeds[name]
        if values.size and (values.min() < lo or values.max() > hi):
            bad = values[(values < lo) | (values > hi)].flat[0]
            raise ServeError(f"input {name!r}: values must be in {lo}..{hi}, got {bad}")
    return feeds


def _tensor(
    entry: dict[str, Any], spec: TensorSpec, binary: memoryview
) -> tuple[np.ndarray, memoryview]:
    """One input's array (and the binary data left) after checking it against ``spec``."""
    where = f"input {spec.name!r}"
    if not entry.keys() <= _INPUT_KEYS:
        raise ServeError(f"{where}: unknown field(s) {_extra(entry, _INPUT_KEYS)}")
    if entry.get("datatype") != spec.datatype:
        got = entry.get("datatype")
        raise ServeError(
            f"{where}: datatype {got!r:.40} does not match the model's {spec.datatype}"
        )
    shape, size = _shape(entry.get("shape"), spec, where)
    params = entry.get("parameters")
    if params is not None:
        _check_params(params, _INPUT_PARAMS, where)
        if "binary_data_size" in params:
            if "data" in entry:
                raise ServeError(f"{where}: give 'data' or binary_data_size, not both")
            if spec.datatype == BYTES:
                return _binary_texts(params["binary_data_size"], shape, size, binary, where)
            return _binary(params["binary_data_size"], spec, shape, size, binary, where)
    if spec.datatype == BYTES:
        return _texts(entry.get("data"), shape, size, where), binary
    array = _array(entry.get("data"), spec, where)
    if array.size != size:
        raise ServeError(f"{where}: data has {array.size} elements but shape {shape} needs {size}")
    if array.ndim > 1 and array.shape != tuple(shape):
        raise ServeError(f"{where}: nested data has shape {list(array.shape)}, not {shape}")
    return array.reshape(shape), binary


def _shape(shape: Any, spec: TensorSpec, where: str) -> tuple[list[int], int]:
    """The checked shape and its element count (one pass: this runs on every request)."""
    if type(shape) is not list:
        raise ServeError(f"{where}: 'shape' must be a list of integers, got {shape!r:.80}")
    size = 1
    for d in shape:
        if type(d) is not int:
            raise ServeError(f"{where}: 'shape' must be a list of integers, got {shape!r:.80}")
        if d < 0:
            raise ServeError(f"{where}: shape {shape} has a negative dimension")
        size *= d
        if d > INT64_MAX or size > INT64_MAX:
            raise ServeError(f"{where}: shape {shape} overflows a 64-bit element count")
    expected = spec.shape
    if len(shape) != len(expected) or any(
        e != -1 and d != e for d, e in zip(shape, expected, strict=True)
    ):
        raise ServeError(f"{where}: shape {shape} does not match the model's {list(expected)}")
    if shape[0] < 1:
        raise ServeError(f"{where}: shape {shape} has an empty batch; send at least one sample")
    return shape, size


def _array(data: Any, spec: TensorSpec, where: str) -> np.ndarray:
    if type(data) is not list:
        raise ServeError(f"{where}: 'data' must be a list of {spec.datatype} values")
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise ServeError(f"{where}: 'data' is not a regular array of numbers") from None
    kind = spec.dtype.kind
    if array.dtype.kind not in _KINDS[kind] and array.size:
        held = _KIND_NAMES.get(array.dtype.kind, "non-numeric")
        raise ServeError(f"{where}: 'data' holds {held} values, not {spec.datatype}")
    try:
        with np.errstate(over="raise", invalid="raise"):
            out = array.astype(spec.dtype, copy=False)
    except FloatingPointError:
        raise ServeError(f"{where}: a value is out of range for {spec.datatype}") from None
    if kind in "iu" and array.size and not _fits(array, spec.dtype):
        raise ServeError(f"{where}: a value is out of range for {spec.datatype}")
    return out


def _fits(array: np.ndarray, dtype: np.dtype[Any]) -> bool:
    info = np.iinfo(dtype)
    return bool(int(array.min()) >= info.min and int(array.max()) <= info.max)


def _binary(
    nbytes: Any, spec: TensorSpec, shape: list[int], size: int, binary: memoryview, where: str
) -> tuple[np.ndarray, memoryview]:
    need = size * spec.dtype.itemsize
    if type(nbytes) is not int or nbytes != need:
        raise ServeError(f"{where}: binary_data_size {nbytes!r:.40} != {need} bytes for {shape}")
    if len(binary) < need:
        raise ServeError(f"{where}: binary data ends {need - len(binary)} bytes short")
    array = np.frombuffer(binary[:need], dtype=spec.dtype.newbyteorder("<")).reshape(shape)
    if spec.dtype.kind == "f" and not np.isfinite(array).all():
        raise ServeError(f"{where}: binary data holds NaN or infinity")
    return array.astype(spec.dtype), binary[need:]


def _texts(data: Any, shape: list[int], size: int, where: str) -> np.ndarray:
    """A BYTES input given as JSON: a flat list of ``size`` non-blank strings."""
    if type(data) is not list:
        raise ServeError(f"{where}: 'data' must be a list of strings (BYTES)")
    if len(data) != size:
        raise ServeError(f"{where}: data has {len(data)} elements but shape {shape} needs {size}")
    for i, text in enumerate(data):
        if type(text) is not str:
            raise ServeError(f"{where}: element {i} is {text!r:.40}, not a string")
        _check_text(text, i, where)
    return np.array(data, dtype=object).reshape(shape)


def _binary_texts(
    nbytes: Any, shape: list[int], size: int, binary: memoryview, where: str
) -> tuple[np.ndarray, memoryview]:
    """A BYTES input as binary data: per element a 4-byte little-endian length, its bytes."""
    if type(nbytes) is not int or nbytes < 0:
        raise ServeError(f"{where}: binary_data_size must be a byte count, got {nbytes!r:.40}")
    if len(binary) < nbytes:
        raise ServeError(f"{where}: binary data ends {nbytes - len(binary)} bytes short")
    data, at, texts = binary[:nbytes], 0, []
    for i in range(size):
        if at + 4 > nbytes:
            raise ServeError(f"{where}: binary_data_size {nbytes} ends inside element {i}")
        length = int.from_bytes(data[at : at + 4], "little")
        at += 4
        if at + length > nbytes:
            raise ServeError(f"{where}: binary_data_size {nbytes} ends inside element {i}")
        try:
            text = str(data[at : at + length], "utf-8")
        except UnicodeDecodeError as e:
            raise ServeError(f"{where}: element {i} is not valid UTF-8 ({e.reason})") from None
        at += length
        _check_text(text, i, where)
        texts.append(text)
    if at != nbytes:
        raise ServeError(
            f"{where}: binary_data_size {nbytes} holds {nbytes - at} bytes past the "
            f"{size} elements of shape {shape}"
        )
    return np.array(texts, dtype=object).reshape(shape), binary[nbytes:]


def _check_text(text: str, i: int, where: str) -> None:
    if not text.strip():  # canon predict skips blank lines; a model has nothing to read
        raise ServeError(f"{where}: element {i} is blank; send some text")


def _batch_size(feeds: dict[str, np.ndarray]) -> int:
    sizes = {len(a) for a in feeds.values()}
    if len(sizes) > 1:
        raise ServeError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def _outputs(entries: Any, model: ServedModel, binary: bool) -> list[RequestedOutput]:
    if entries is None:
        return [RequestedOutput(spec, binary) for spec in model.outputs]
    if type(entries) is not list:
        raise ServeError("'outputs' must be a list of {\"name\": ...} objects")
    chosen: list[RequestedOutput] = []
    for entry in entries:
        if type(entry) is not dict or not entry.keys() <= _OUTPUT_KEYS:
            raise ServeError(f"each of 'outputs' must be {{\"name\": ...}}, got {entry!r:.80}")
        name = entry.get("name")
        spec = model.output_index.get(name) if type(name) is str else None
        if spec is None:
            known = ", ".join(repr(t.name) for t in model.outputs)
            raise ServeError(f"output {name!r:.80}: unknown output; the model gives {known}")
        if any(out.spec is spec for out in chosen):
            raise ServeError(f"output {name!r}: requested more than once")
        chosen.append(_output(spec, entry.get("parameters"), model, binary))
    return chosen


def _output(spec: TensorSpec, params: Any, model: ServedModel, binary: bool) -> RequestedOutput:
    """One requested output with its parameters (``binary`` is the request's default)."""
    if params is None:
        return RequestedOutput(spec, binary)
    where = f"output {spec.name!r}"
    _check_params(params, _OUTPUT_PARAMS, where)
    binary = _flag(params, "binary_data", binary, where)
    if CLASSIFICATION in params and "class_count" in params:
        raise ServeError(f"{where}: give classification or its alias class_count, not both")
    key = CLASSIFICATION if CLASSIFICATION in params else "class_count"
    if key not in params:
        return RequestedOutput(spec, binary)
    count = params[key]
    if type(count) is not int or count < 1:
        raise ServeError(f"{where}: {key} must be a positive integer, got {count!r:.40}")
    if spec.name not in model.class_scores:
        raise ServeError(f"{where}: {key} {_no_classes(model, spec)}")
    return RequestedOutput(spec, binary, count)


def _no_classes(model: ServedModel, spec: TensorSpec) -> str:
    if not model.class_scores:
        return f"needs class scores; model {model.name!r} has no labels"
    scores = ", ".join(repr(name) for name in model.class_scores)
    return (
        f"needs class scores (a floating [-1, {len(model.labels or [])}] output), not "
        f"{spec.datatype} {list(spec.shape)}; ask it of {scores}"
    )


def _check_params(params: Any, allowed: frozenset[str], where: str) -> None:
    if type(params) is not dict:
        raise ServeError(f"{where}: 'parameters' must be an object, got {params!r:.40}")
    if not params.keys() <= allowed:
        unknown = sorted(params.keys() - allowed)
        raise ServeError(
            f"{where}: unsupported parameter(s) {unknown!r:.120} (canon serve implements: "
            f"{', '.join(sorted(allowed))})"
        )
    if type(params.get("content_type", "")) is not str:
        raise ServeError(
            f"{where}: content_type must be a string, got {params['content_type']!r:.40}"
        )


def _flag(params: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = params.get(key, default)
    if type(value) is not bool:
        raise ServeError(f"{where}: {key} must be true or false, got {value!r:.40}")
    return value
