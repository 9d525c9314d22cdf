"""``canon serve`` on a text classifier: raw text in as the BYTES input ``text``.

The package is the one ``test_fine_tune`` makes (a tiny GPT pretrained on the reviews'
characters, fine-tuned on a small Chinese review file), with shorter runs. ``canon serve``
runs in its own process with micro-batching on (4 samples, 250 ms). Triton's official HTTP
client sends texts as JSON strings and as binary BYTES data and must get the probabilities
``canon predict`` prints for the same texts; concurrent requests of different lengths share
one padded batch and still get their own answers; each bad request is a 400 naming the
input; headless Chromium types a review and sees the chart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import canonml
from tests.conftest import run_cli, served
from tests.e2e.test_fine_tune import NEG, POS, reviews, tune_spec
from tests.e2e.test_language_model import lm_spec
from tests.e2e.test_serve import section, shown_probabilities

pytestmark = pytest.mark.serve
MODEL = "tiny-tune"
TEXTS = ["这家店很好，服务也不错", "太差了"]
# Four lengths, so that one batch of them pads all but the longest.
MANY = ["很好", "环境糟糕，失望。", "质量很好，非常满意，下次还来。再来", "差"]
INFER = f"/v2/models/{MODEL}/infer"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-text")
    lines = [f"{s}第{i % 10}次" for i in range(60) for s in (POS[i % 3], NEG[i % 3])]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lm = lm_spec(f"corpus:{root / 'corpus.txt'}", epochs=1)
    pretrained = canonml.run({**lm, "evaluate": {"ci": 0}}, out=root / "runs").run_dir
    spec = tune_spec(f"text:{reviews(root / 'reviews.csv', 30)}", str(pretrained), pooling="last")
    spec["train"]["epochs"] = 2
    spec["evaluate"]["baselines"] = False
    return canonml.run(spec, out=root / "runs").run_dir / "package"


@pytest.fixture(scope="module")
def server(package: Path) -> Iterator[str]:
    """``canon serve PKG`` on a free port of 127.0.0.1 with batching on, stopped afterwards."""
    with served(package, "--max-batch", "4", "--max-wait-ms", "250") as url:
        yield url


def predicted(package: Path, texts: list[str], tmp_path: Path) -> np.ndarray:
    """``canon predict``'s probabilities (N, K), in label order, for ``texts`` (in-process)."""
    from canonml.package.predict import predict_inputs

    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = predict_inputs(package, [str(tmp_path / "texts.txt")])
    return np.array([list(r["probabilities"].values()) for r in rows])


def infer_texts(url: str, texts: list[Any], **entry: Any) -> httpx.Response:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}
    return httpx.post(url + INFER, json={"inputs": [{**tensor, **entry}]}, timeout=10)


def bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(len(b).to_bytes(4, "little") + b for b in items)


def binary_request(url: str, items: list[bytes], size: int | None = None) -> httpx.Response:
    blob = bytes_tensor(items)
    params = {"binary_data_size": len(blob) if size is None else size}
    header = json.dumps(
        {
            "inputs": [
                {"name": "text", "datatype": "BYTES", "shape": [len(items)], "parameters": params}
            ]
        }
    ).encode()
    return httpx.post(
        url + INFER,
        content=header + blob,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=10,
    )


def test_metadata_lists_one_bytes_input(server: str) -> None:
    meta = httpx.get(f"{server}/v2/models/{MODEL}").json()
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]


def test_triton_client_matches_canon_predict(server: str, package: Path, tmp_path: Path) -> None:
    import tritonclient.http as triton

    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    result = run_cli("predict", str(package), str(tmp_path / "texts.txt"), "--json")
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    labels = list(rows[0]["probabilities"])
    expected = np.array([[r["probabilities"][n] for n in labels] for r in rows])

    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.get_model_metadata(MODEL)["inputs"][0]["datatype"] == "BYTES"
    for binary in (False, True):  # JSON strings, and Triton's binary BYTES encoding
        tensor = triton.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
        answer = client.infer(MODEL, [tensor], request_id=f"text-{binary}")
        assert answer.get_response()["id"] == f"text-{binary}"
        np.testing.assert_allclose(answer.as_numpy("probabilities"), expected, atol=1e-6)
        assert [labels[k] for k in answer.as_numpy("label")] == [r["label"] for r in rows]
    # The classification extension ranks the probabilities: b"score:index:label".
    top = [triton.InferRequestedOutput("probabilities", class_count=2)]
    strings = client.infer(MODEL, [tensor], outputs=top).as_numpy("probabilities")
    client.close()
    fields = [[s.decode().split(":") for s in row] for row in strings]
    best = np.argsort(-expected, axis=1, kind="stable")
    assert [[int(i) for _, i, _ in row] for row in fields] == best.tolist()
    assert [[name for _, _, name in row] for row in fields] == [
        [labels[k] for k in row] for row in best
    ]
    scores = np.array([[float(p) for p, _, _ in row] for row in fields])
    np.testing.assert_allclose(scores, np.take_along_axis(expected, best, axis=1), atol=1e-6)


def test_json_requests_and_classification(server: str, package: Path, tmp_path: Path) -> None:
    expected = predicted(package, TEXTS, tmp_path)
    r = infer_texts(server, TEXTS)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["probabilities"]["shape"] == [2, 2] and out["label"]["shape"] == [2]
    got = np.array(out["probabilities"]["data"]).reshape(2, 2)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert out["label"]["data"] == expected.argmax(axis=1).tolist()
    body = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS}],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 1}}],
    }
    (only,) = httpx.post(server + INFER, json=body, timeout=10).json()["outputs"]
    assert only["datatype"] == "BYTES" and only["shape"] == [2, 1]
    labels = json.loads((package / "canon.json").read_text("utf-8"))["signature"]["labels"]
    assert [s.split(":")[2] for s in only["data"]] == [labels[k] for k in expected.argmax(1)]
    # Binary BYTES data sent by hand: the same answer as the JSON strings.
    r = binary_request(server, [t.encode() for t in TEXTS])
    assert r.status_code == 200, r.text
    probs = next(o for o in r.json()["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(np.array(probs["data"]).reshape(2, 2), expected, atol=1e-6)


def test_concurrent_texts_share_a_padded_batch(server: str, package: Path, tmp_path: Path) -> None:
    def batches() -> tuple[float, float]:
        found = {}
        for line in httpx.get(server + "/metrics").text.splitlines():
            for key in ("canon_batch_size_sum", "canon_batch_size_count"):
                if line.startswith(f'{key}{{model="{MODEL}"}}'):
                    found[key] = float(line.split()[-1])
        return found.get("canon_batch_size_sum", 0.0), found.get("canon_batch_size_count", 0.0)

    expected = predicted(package, MANY, tmp_path)
    answers: dict[int, list[float]] = {}
    start = threading.Barrier(len(MANY))

    def ask(i: int) -> None:
        start.wait()
        r = infer_texts(server, [MANY[i]])
        answers[i] = next(o for o in r.json()["outputs"] if o["name"] == "probabilities")["data"]

    before = batches()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(MANY))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    after = batches()
    got = np.array([answers[i] for i in range(len(MANY))])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert after[0] - before[0] == len(MANY)  # every text ran once ...
    assert after[1] - before[1] < len(MANY)  # ... and some of them in one call


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            {"datatype": "FP32", "data": [1.0, 2.0]},
            "datatype 'FP32' does not match the model's BYTES",
        ),
        ({"data": ["好", 3]}, "element 1 is 3, not a string"),
        ({"data": ["好", ["差"]]}, "element 1 is ['差'], not a string"),
        ({"shape": [0], "data": []}, "empty batch"),
        ({"shape": [3]}, "data has 2 elements but shape [3] needs 3"),
        ({"shape": [2, 1]}, "shape [2, 1] does not match the model's [-1]"),
        ({"data": "好"}, "'data' must be a list of strings"),
        ({"data": ["好", "  "]}, "element 1 is blank"),
        ({"name": "input_ids"}, "unknown input; the model takes 'text'"),
    ],
)
def test_bad_text_requests_are_400_naming_the_input(
    server: str, entry: dict[str, Any], fragment: str
) -> None:
    r = infer_texts(server, ["好", "差"], **entry)
    assert r.status_code == 400
    error = r.json()["error"]
    assert fragment in error
    if "name" not in entry:
        assert error.startswith("input 'text': ")


@pytest.mark.parametrize(
    ("items", "size", "fragment"),
    [
        ([b"\xff\xfe", "好".encode()], None, "element 0 is not valid UTF-8"),
        (["好".encode(), "差".encode()], 9, "binary_data_size 9 ends inside element 1"),
        (["好".encode(), "差".encode()], 30, "binary data ends 16 bytes short"),
    ],
)
def test_bad_binary_texts_are_400(
    server: str, items: list[bytes], size: int | None, fragment: str
) -> None:
    r = binary_request(server, items, size)
    assert r.status_code == 400
    assert r.json()["error"].startswith("input 'text': ") and fragment in r.json()["error"]
    assert httpx.get(server + "/v2/health/live").status_code == 200  # the server lives on


def test_serving_a_text_classifier_never_imports_torch(package: Path) -> None:
    code = (
        "import sys\nfrom starlette.testclient import TestClient\n"
        "from canonml.serve import build_app\n"
        "with TestClient(build_app(sys.argv[1:])) as c:\n"
        "    body = {'inputs': [{'name': 'text', 'datatype': 'BYTES', 'shape': [1],"
        " 'data': ['很好']}]}\n"
        f"    assert c.post('/v2/models/{MODEL}/infer', json=body).status_code == 200\n"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(package)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.browser
def test_page_text_box_shows_the_prediction(
    server: str, package: Path, browser: Any, tmp_path: Path
) -> None:
    review = "房间干净，环境不错。"
    browser.get(server + "/")
    sec = section(browser, MODEL)
    sec.find_element("css selector", "form.text textarea").send_keys(review)
    sec.find_element("css selector", "button.predict").click()
    shown = shown_probabilities(sec)
    labels = json.loads((package / "canon.json").read_text("utf-8"))["signature"]["labels"]
    expected = predicted(package, [review], tmp_path)[0]
    assert list(shown) == labels
    assert list(shown.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    sent = json.loads(sec.get_attribute("data-request"))["inputs"][0]
    assert sent == {"name": "text", "shape": [1], "datatype": "BYTES", "data": [review]}
    headline = sec.find_element("css selector", ".result .label").text
    assert headline == labels[int(np.argmax(expected))]
