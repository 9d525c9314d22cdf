"""Triton's extensions: binary tensor data both ways, and classification (top-K strings)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from tests.unit.serve.packages import FixturePackage

pytestmark = pytest.mark.serve

X = np.array([[0.5, -1, 2, 3], [3, 2, 1, 0]], dtype=np.float32)
INPUT = {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}


def tab_outputs(packages: list[FixturePackage], x: np.ndarray = X) -> list[Any]:
    return list(next(p for p in packages if p.name == "tab").session().run(None, {"input": x}))


def split(r: httpx.Response) -> tuple[dict[str, Any], bytes]:
    """The JSON header of a binary response and the binary data after it."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    length = int(r.headers["inference-header-content-length"])
    return json.loads(r.content[:length]), r.content[length:]


def test_v2_lists_the_extensions_served(client: httpx.Client) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data", "classification"]


def test_binary_data_output_gives_every_output_as_raw_bytes(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    body = {"inputs": [INPUT], "parameters": {"binary_data_output": True}}
    header, data = split(client.post("/v2/models/tab/infer", json=body))
    probs, label = tab_outputs(packages)
    assert [(o["name"], o["datatype"], o["shape"]) for o in header["outputs"]] == [
        ("probabilities", "FP32", [2, 3]),
        ("label", "INT64", [2]),
    ]
    assert [o["parameters"] for o in header["outputs"]] == [
        {"binary_data_size": 24},
        {"binary_data_size": 16},
    ]
    assert all("data" not in o for o in header["outputs"])
    assert data == probs.astype("<f4").tobytes() + label.astype("<i8").tobytes()


def test_binary_data_on_one_output_overrides_the_request(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    outputs = [
        {"name": "label", "parameters": {"binary_data": True}},
        {"name": "probabilities", "parameters": {"binary_data": False}},
    ]
    body = {"inputs": [INPUT], "outputs": outputs, "parameters": {"binary_data_output": True}}
    header, data = split(client.post("/v2/models/tab/infer", json=body))
    probs, label = tab_outputs(packages)
    label_out, probs_out = header["outputs"]
    assert label_out["parameters"] == {"binary_data_size": 16} and "data" not in label_out
    np.testing.assert_array_equal(np.float32(probs_out["data"]), probs.ravel())
    assert "parameters" not in probs_out
    assert np.frombuffer(data, "<i8").tolist() == label.tolist()
    # All outputs asked for as JSON: a plain JSON answer, with no binary header.
    body["outputs"] = [{"name": "label", "parameters": {"binary_data": False}}]
    r = client.post("/v2/models/tab/infer", json=body)
    assert r.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in r.headers
    assert r.json()["outputs"][0]["data"] == label.tolist()


def expected_top(probs: np.ndarray, k: int) -> list[list[str]]:
    """Triton's strings: C's %f score, index, label; highest first."""
    rows = [sorted(range(len(p)), key=lambda i: -p[i])[:k] for p in probs.tolist()]
    return [
        [f"{p[i]:f}:{i}:class-{i}" for i in row]
        for p, row in zip(probs.tolist(), rows, strict=True)
    ]


@pytest.mark.parametrize("key", ["classification", "class_count"])
@pytest.mark.parametrize("count,answered", [(1, 1), (2, 2), (3, 3), (50, 3)])  # capped at 3
def test_classification_in_json(
    client: httpx.Client, packages: list[FixturePackage], key: str, count: int, answered: int
) -> None:
    outputs = [{"name": "probabilities", "parameters": {key: count}}, {"name": "label"}]
    r = client.post("/v2/models/tab/infer", json={"inputs": [INPUT], "outputs": outputs})
    assert r.status_code == 200, r.text
    top, label = r.json()["outputs"]
    probs, labels = tab_outputs(packages)
    assert (top["datatype"], top["shape"]) == ("BYTES", [2, answered])
    assert top["data"] == sum(expected_top(probs, answered), [])
    assert [int(s.split(":")[1]) for s in top["data"][::answered]] == labels.tolist()
    assert label["data"] == labels.tolist()  # the other output stays a tensor


def test_classification_as_binary_bytes_elements(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    outputs = [{"name": "probabilities", "parameters": {"classification": 2, "binary_data": True}}]
    header, data = split(
        client.post("/v2/models/tab/infer", json={"inputs": [INPUT], "outputs": outputs})
    )
    (top,) = header["outputs"]
    assert (top["datatype"], top["shape"]) == ("BYTES", [2, 2])
    assert top["parameters"] == {"binary_data_size": len(data)}
    strings, rest = [], data
    while rest:  # each element: a 4-byte little-endian length, then the UTF-8 bytes
        n = int.from_bytes(rest[:4], "little")
        strings.append(rest[4 : 4 + n].decode())
        rest = rest[4 + n :]
    assert strings == sum(expected_top(tab_outputs(packages)[0], 2), [])


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_class_count_matches_the_probabilities(
    client: httpx.Client, packages: list[FixturePackage], binary: bool
) -> None:
    import tritonclient.http as triton

    x = np.random.default_rng(0).uniform(0, 16, size=(4, 1, 8, 8)).astype(np.float32)
    probs = next(p for p in packages if p.name == "img").session().run(None, {"input": x})[0]
    triton_client = triton.InferenceServerClient(url=str(client.base_url).removeprefix("http://"))
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = [
        triton.InferRequestedOutput("probabilities", binary_data=binary, class_count=3),
        triton.InferRequestedOutput("label", binary_data=binary),
    ]
    result = triton_client.infer("img", [tensor], outputs=wanted)
    triton_client.close()
    top = result.as_numpy("probabilities")  # (4, 3) of "score:index:label"
    assert top.shape == (4, 3)
    rows = [[(s if isinstance(s, str) else s.decode()).split(":") for s in row] for row in top]
    indices = np.array([[int(i) for _, i, _ in row] for row in rows])
    scores = np.array([[float(p) for p, _, _ in row] for row in rows])
    np.testing.assert_array_equal(indices, np.argsort(-probs, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(scores, np.sort(probs, axis=1)[:, ::-1][:, :3], atol=1e-6)
    assert [[name for _, _, name in row] for row in rows] == [
        [f"class-{i}" for i in row] for row in indices
    ]
    assert result.as_numpy("label").tolist() == indices[:, 0].tolist()


def test_the_content_type_hint_of_kserve_and_mlserver_clients_is_accepted(
    client: httpx.Client, packages: list[FixturePackage]
) -> None:
    body = {
        "parameters": {"content_type": "np"},
        "inputs": [{**INPUT, "parameters": {"content_type": "np"}}],
        "outputs": [{"name": "label", "parameters": {"content_type": "np"}}],
    }
    r = client.post("/v2/models/tab/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == tab_outputs(packages)[1].tolist()
    bad = {"inputs": [{**INPUT, "parameters": {"content_type": 3}}]}
    r = client.post("/v2/models/tab/infer", json=bad)
    assert r.status_code == 400 and "content_type must be a string" in r.json()["error"]
