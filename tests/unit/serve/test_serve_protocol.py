"""OIP v2 inference over HTTP: good requests give the model's values, each bad one a 4xx row."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import numpy as np
import pytest

from tests.unit.serve.packages import FixturePackage

pytestmark = pytest.mark.serve

GOOD: dict[str, Any] = {
    "id": "r1",
    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
}
PAIR: dict[str, Any] = {
    "inputs": [
        {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
        {"name": "b", "shape": [1, 2], "datatype": "FP32", "data": [3, 4]},
    ]
}


def with_input(**fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    body["inputs"][0].update(fields)
    return body


def session_outputs(packages: list[FixturePackage], name: str, x: np.ndarray) -> list[Any]:
    package = next(p for p in packages if p.name == name)
    return list(package.session().run(None, {"input": x}))


def test_infer_returns_every_output_with_the_id(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    r = client.post("/v2/models/tab/infer", json=GOOD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("tab", "1", "r1")
    probs, label = session_outputs(packages, "tab", np.array([[1, 2, 3, 4]], np.float32))
    by_name = {o["name"]: o for o in body["outputs"]}
    assert list(by_name) == ["probabilities", "label"]
    assert by_name["probabilities"]["shape"] == [1, 3]
    assert by_name["probabilities"]["datatype"] == "FP32"
    np.testing.assert_array_equal(np.float32(by_name["probabilities"]["data"]), probs.ravel())
    assert by_name["label"] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [1],
        "data": [*label],
    }


def test_nested_data_a_batch_and_an_output_selection(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    x = np.arange(24, dtype=np.float32).reshape(3, 1, 8) / 7  # (3, 8) digits-like rows
    image = x.reshape(3, 1, 1, 8).repeat(8, axis=2)  # (B, C, H, W) = (3, 1, 8, 8)
    body = {
        "inputs": [
            {"name": "input", "shape": [3, 1, 8, 8], "datatype": "FP32", "data": image.tolist()}
        ],
        "outputs": [{"name": "label"}],
    }
    r = client.post("/v2/models/img/infer", json=body)
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    _, label = session_outputs(packages, "img", image)
    assert out == {"name": "label", "datatype": "INT64", "shape": [3], "data": label.tolist()}
    assert r.json()["id"]  # a server-made id when the request gives none


def test_regression_and_two_input_models(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "input", "shape": [2, 5], "datatype": "FP32", "data": [0] * 10}]}
    (out,) = client.post("/v2/models/reg/infer", json=body).json()["outputs"]
    assert (out["name"], out["shape"], out["datatype"]) == ("prediction", [2], "FP32")
    r = client.post("/v2/models/pair/infer", json=PAIR)
    assert r.status_code == 200 and r.json()["outputs"][1]["shape"] == [1]


def _bad(**fields: Any) -> bytes:
    import json

    return json.dumps(with_input(**fields)).encode()


def _raw(text: str) -> bytes:
    return text.encode()


_PAIR_ONE = {"inputs": [PAIR["inputs"][0]]}
_PAIR_BATCH = copy.deepcopy(PAIR)
_PAIR_BATCH["inputs"][1].update(shape=[2, 2], data=[1, 2, 3, 4])
_DUP = {"inputs": GOOD["inputs"] * 2}
_OUT = {**GOOD, "outputs": [{"name": "logits"}]}
_ROW = '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, %s]}]}'

# (model, body, status, fragments the error must hold) — one row per rejection in the issue.
BAD = {
    "datatype differs": ("tab", _bad(datatype="FP64"), 400, ["'input'", "FP64", "FP32"]),
    "unknown input": ("tab", _bad(name="pixels"), 400, ["'pixels'", "unknown input", "'input'"]),
    "missing input": ("pair", _PAIR_ONE, 400, ["'b'", "missing", "[-1, 2]"]),
    "no inputs": ("tab", {"inputs": []}, 400, ["'input'", "missing"]),
    "duplicate input": ("tab", _DUP, 400, ["'input'", "more than once"]),
    "unknown output": ("tab", _OUT, 400, ["'logits'", "unknown output", "'probabilities'"]),
    "negative dimension": ("tab", _bad(shape=[-1, 4]), 400, ["'input'", "negative"]),
    "dimension past int64": ("tab", _bad(shape=[2**63, 4]), 400, ["'input'", "overflows"]),
    "count past int64": ("tab", _bad(shape=[2**32, 2**32]), 400, ["'input'", "overflows"]),
    "count != shape": ("tab", _bad(data=[1, 2, 3]), 400, ["'input'", "3 elements", "needs 4"]),
    "NaN literal": ("tab", _raw(_ROW % "NaN, 4"), 400, ["'input'", "NaN"]),
    "Infinity literal": ("tab", _raw(_ROW % "-Infinity, 4"), 400, ["'input'", "Infinity"]),
    "number past a double": ("tab", _raw(_ROW % "1e400, 4"), 400, ["'input'", "double"]),
    "shape != metadata": ("tab", _bad(shape=[1, 5], data=[0] * 5), 400, ["'input'", "[-1, 4]"]),
    "rank != metadata": ("img", _bad(shape=[1, 64], data=[0] * 64), 400, ["[-1, 1, 8, 8]"]),
    "nesting != shape": ("tab", _bad(shape=[2, 4], data=[[1, 2]] * 4), 400, ["'input'", "nested"]),
    "ragged data": ("tab", _bad(data=[[1, 2, 3], [4]]), 400, ["'input'", "regular array"]),
    "string data": ("tab", _bad(data=["1", "2", "3", "4"]), 400, ["'input'", "string"]),
    "boolean data": ("tab", _bad(data=[True] * 4), 400, ["'input'", "boolean"]),
    "null data": ("tab", _bad(data=None), 400, ["'input'", "'data'"]),
    "past FP32": ("tab", _bad(data=[1e39, 0, 0, 0]), 400, ["'input'", "out of range"]),
    "shape not ints": ("tab", _bad(shape=[1.0, 4]), 400, ["'input'", "list of integers"]),
    "empty batch": ("tab", _bad(shape=[0, 4], data=[]), 400, ["'input'", "empty batch"]),
    "batch sizes differ": ("pair", _PAIR_BATCH, 400, ["batch size"]),
    "unknown input field": ("tab", _bad(dims=[1]), 400, ["'input'", "dims"]),
    "id not a string": ("tab", {**GOOD, "id": 7}, 400, ["'id'"]),
    "body not an object": ("tab", [GOOD], 400, ["JSON object"]),
    "not JSON": ("tab", _raw("{inputs: 1}"), 400, ["not valid JSON"]),
    "unknown model": ("nope", GOOD, 404, ["'nope'", "served: img, pair, reg, tab"]),
    "too large": ("tab", _bad(data=[1] * 40000), 413, ["limit", "--max-body"]),
}


_REG = {"inputs": [{"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]}


def _req(**params: Any) -> dict[str, Any]:
    return {**GOOD, "parameters": params}


def _out(name: str, body: dict[str, Any] = GOOD, **params: Any) -> dict[str, Any]:
    return {**body, "outputs": [{"name": name, "parameters": params}]}


_BOTH = with_input(parameters={"binary_data_size": 16})
_UNKNOWN_IN = with_input(parameters={"x": 1})
_NOT_DICT = {**GOOD, "outputs": [{"name": "label", "parameters": 1}]}
_REG_TOP = _out("prediction", _REG, classification=1)
_PROBS = "'probabilities'"


def _top(**params: Any) -> dict[str, Any]:
    return _out("probabilities", **params)


# (model, body, "fragment|fragment" of the 400's message): the parameters of the binary tensor
# data and classification extensions are served; any other one is refused, never ignored.
BAD_PARAMETERS = {
    "unknown request parameter": ("tab", _req(sequence_id=1), "sequence_id|binary_data_output"),
    "binary_data_output not bool": ("tab", _req(binary_data_output=1), "binary_data_output|true"),
    "parameters not an object": ("tab", {**GOOD, "parameters": [1]}, "the request|'parameters'"),
    "unknown input parameter": ("tab", _UNKNOWN_IN, "'input'|['x']|binary_data_size"),
    "data and binary data": ("tab", _BOTH, "'input'|'data' or binary_data_size, not both"),
    "unknown output parameter": ("tab", _out("label", x=1), "'label'|['x']|class_count"),
    "output parameters not dict": ("tab", _NOT_DICT, "'label'|'parameters' must be an object"),
    "binary_data not a bool": ("tab", _out("label", binary_data="yes"), "'label'|binary_data|true"),
    "labels classified": ("tab", _out("label", classification=2), "'label'|INT64 [-1]|" + _PROBS),
    "class_count of labels": ("tab", _out("label", class_count=2), "'label'|class_count|" + _PROBS),
    "regression classified": ("reg", _REG_TOP, "'prediction'|classification|'reg' has no labels"),
    "classification 0": ("tab", _top(classification=0), "classification|positive integer, got 0"),
    "class_count -1": ("tab", _top(class_count=-1), "class_count|positive integer, got -1"),
    "classification 2.0": ("tab", _top(classification=2.0), _PROBS + "|got 2.0"),
    "classification true": ("tab", _top(classification=True), _PROBS + "|got True"),
    "classification '2'": ("tab", _top(classification="2"), _PROBS + "|got '2'"),
    "classification null": ("tab", _top(classification=None), _PROBS + "|got None"),
    "both names": ("tab", _top(classification=2, class_count=2), _PROBS + "|not both"),
}


@pytest.mark.parametrize("model,body,status,fragments", BAD.values(), ids=BAD.keys())
def test_bad_request_is_a_json_error_naming_the_input(
    client: httpx.Client, model: str, body: Any, status: int, fragments: list[str]
) -> None:
    if isinstance(body, bytes):
        r = client.post(f"/v2/models/{model}/infer", content=body)
    else:
        r = client.post(f"/v2/models/{model}/infer", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    (error,) = r.json().values()
    assert list(r.json()) == ["error"]
    for fragment in fragments:
        assert fragment in error


@pytest.mark.parametrize("model,body,fragments", BAD_PARAMETERS.values(), ids=BAD_PARAMETERS)
def test_bad_parameter_is_a_400_naming_it(
    client: httpx.Client, model: str, body: Any, fragments: str
) -> None:
    r = client.post(f"/v2/models/{model}/infer", json=body)
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["error"]
    for fragment in fragments.split("|"):
        assert fragment in r.json()["error"]


def test_a_body_sent_in_chunks_is_limited_too(client: httpx.Client) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024  # 100 KiB of whitespace, no Content-Length

    r = client.post("/v2/models/tab/infer", content=chunks())
    assert r.status_code == 413 and "--max-body" in r.json()["error"]


def test_binary_tensor_extension_input(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    import json

    x = np.array([[0.5, -1, 2, 3]], dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    r = client.post(
        "/v2/models/tab/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    probs, _ = session_outputs(packages, "tab", x)
    np.testing.assert_array_equal(np.float32(r.json()["outputs"][0]["data"]), probs.ravel())
    short = client.post(
        "/v2/models/tab/infer",
        content=header + x.tobytes()[:8],
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert short.status_code == 400 and "'input'" in short.json()["error"]
