"""Random bodies at the infer route: always a JSON answer below 500, and the server lives on."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.serve

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any JSON value (no NaN: json.dumps would write the non-JSON literal; a test row covers it).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
NAMES = st.sampled_from(["input", "a", "b", "probabilities", "label", "x", ""])
DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES", "fp32", "", "UINT8"])
DIMS = st.integers(min_value=-2, max_value=6) | st.sampled_from([2**63, 2**64 - 1, 0])
TENSOR = st.fixed_dictionaries(
    {"name": NAMES, "datatype": DATATYPES, "shape": st.lists(DIMS, max_size=5)},
    optional={
        "data": st.lists(
            st.floats(-1e40, 1e40, allow_nan=False) | st.integers(-300, 300), max_size=70
        )
        | JSON_VALUES,
        "parameters": st.dictionaries(st.sampled_from(["binary_data_size", "x"]), JSON_VALUES),
    },
)
OUTPUT_PARAMETERS = st.sampled_from(["binary_data", "classification", "class_count", "x"])
OUTPUT = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "parameters": st.dictionaries(
            OUTPUT_PARAMETERS, st.booleans() | st.integers(-1, 12) | JSON_VALUES, max_size=3
        )
    },
)
# Bodies near the protocol's shape reach the deep checks; arbitrary values the shallow ones.
BODIES = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=3)},
    optional={
        "id": JSON_VALUES,
        "outputs": st.lists(OUTPUT, max_size=3) | JSON_VALUES,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": st.booleans()})
        | JSON_VALUES,
    },
)

NUMBERS = st.floats(-1e38, 1e38, allow_nan=False) | st.integers(-(10**9), 10**9)
# Well-formed requests to the 4-feature "tab" model, with any numbers in them.
VALID = st.integers(1, 4).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "inputs": st.tuples(
                st.fixed_dictionaries(
                    {
                        "name": st.just("input"),
                        "datatype": st.just("FP32"),
                        "shape": st.just([n, 4]),
                        "data": st.lists(NUMBERS, min_size=4 * n, max_size=4 * n),
                    }
                )
            ).map(list)
        },
        optional={"id": st.text(max_size=8), "outputs": st.just([{"name": "probabilities"}])},
    )
)


def check(client: httpx.Client, model: str, content: bytes, headers: Any = None) -> None:
    r = client.post(f"/v2/models/{model}/infer", content=content, headers=headers)
    assert r.status_code in (200, 400, 404, 413), (r.status_code, r.text, content[:300])
    length = r.headers.get("inference-header-content-length")  # binary outputs follow the JSON
    body = json.loads(r.content[: int(length)] if length else r.content)
    assert ("outputs" in body) if r.status_code == 200 else (list(body) == ["error"])
    if length:
        sizes = [o["parameters"]["binary_data_size"] for o in body["outputs"] if "data" not in o]
        assert sum(sizes) == len(r.content) - int(length)


@FUZZ
@given(body=BODIES, model=st.sampled_from(["tab", "img", "pair", "reg"]))
def test_protocol_shaped_bodies(client: httpx.Client, body: dict[str, Any], model: str) -> None:
    check(client, model, json.dumps(body).encode())


@FUZZ
@given(body=VALID)
def test_well_formed_bodies_with_any_numbers(client: httpx.Client, body: dict[str, Any]) -> None:
    r = client.post("/v2/models/tab/infer", json=body)
    assert r.status_code == 200, r.text
    outputs = r.json()["outputs"]
    assert outputs[0]["shape"] == [body["inputs"][0]["shape"][0], 3]
    if "id" in body:
        assert r.json()["id"] == body["id"]


@FUZZ
@given(value=JSON_VALUES)
def test_any_json_value(client: httpx.Client, value: Any) -> None:
    check(client, "tab", json.dumps(value).encode())


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    raw=st.binary(max_size=200),
    # Header values HTTP allows (uvicorn itself answers a malformed request line or header).
    header=st.none() | st.from_regex(r"[0-9a-z+-]{1,6}", fullmatch=True),
)
def test_any_bytes_and_binary_header(client: httpx.Client, raw: bytes, header: str | None) -> None:
    headers = None if header is None else {"Inference-Header-Content-Length": header}
    check(client, "tab", raw, headers)


def test_the_server_lives_after_the_fuzz(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
