"""Open Inference Protocol v2 inference responses: JSON, binary tensor data, classification.

An output asked for as binary data (Triton's binary tensor data extension) leaves its
``data`` out of the JSON, says its ``binary_data_size`` in its ``parameters``, and its raw
little-endian bytes follow the JSON in the order of the outputs; the caller sends the JSON's
length as ``Inference-Header-Content-Length``. An output asked for with ``classification``
(Triton's classification extension) is answered as a BYTES tensor of ``"score:index:label"``
strings instead of its scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from canonml.serve.model import ServedModel
from canonml.serve.protocol import InferRequest, RequestedOutput


def encode_response(
    model: ServedModel, req: InferRequest, values: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON part when binary data follows it."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in req.outputs:
        spec, value = out.spec, values[out.spec.name]
        if out.binary or out.classes:
            entry, blob = _extended(out, value, model.labels)
            outputs.append(entry)
            if out.binary:
                blobs.append(blob)
            continue
        outputs.append(  # the plain case, kept lean: it is every request of a JSON client
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": list(value.shape),
                "data": np.ascontiguousarray(value).ravel(),  # row-major, native order
            }
        )
    header = orjson.dumps(
        {
            "model_name": model.name,
            "model_version": model.version,
            "id": req.id,
            "outputs": outputs,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not blobs:  # one per binary output, even an empty one
        return header, None
    return b"".join([header, *blobs]), len(header)


def _extended(
    out: RequestedOutput, value: np.ndarray, labels: list[str] | None
) -> tuple[dict[str, Any], bytes]:
    """The entry of an output asked for as binary data or as classes, and its binary data."""
    spec = out.spec
    if out.classes:
        strings = classify(value, out.classes, labels)  # B × K "score:index:label"
        shape = [len(strings), len(strings[0])]
        entry: dict[str, Any] = {"name": spec.name, "datatype": "BYTES", "shape": shape}
        flat = [s for row in strings for s in row]
        if not out.binary:
            entry["data"] = flat
            return entry, b""
        blob = _bytes_tensor(flat)
    else:
        entry = {"name": spec.name, "datatype": spec.datatype, "shape": list(value.shape)}
        blob = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    entry["parameters"] = {"binary_data_size": len(blob)}
    return entry, blob


def classify(scores: np.ndarray, count: int, labels: list[str] | None) -> list[list[str]]:
    """The ``count`` highest scores of each row as ``"score:index[:label]"``, highest first.

    As Triton does: the score is printed as C's ``%f`` (std::to_string), and ``count`` is
    capped at the number of classes. Equal scores keep the lower index first.
    """
    count = min(count, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :count]  # (B, K) class indices
    top = np.take_along_axis(scores, order, axis=1)  # (B, K) their scores
    names = labels or []
    return [
        [
            f"{s:f}:{i}:{names[i]}" if names else f"{s:f}:{i}"
            for s, i in zip(row_scores.tolist(), row_order.tolist(), strict=True)
        ]
        for row_scores, row_order in zip(top, order, strict=True)
    ]


def _bytes_tensor(strings: list[str]) -> bytes:
    """BYTES elements as binary data: each one a 4-byte little-endian length, then its bytes."""
    parts = []
    for text in strings:
        data = text.encode()
        parts += [len(data).to_bytes(4, "little"), data]
    return b"".join(parts)
