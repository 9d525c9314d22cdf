"""``canon serve`` on real packages: Triton's own client, ``canon predict``, the page, workers.

Packages come from short real runs (digits MLP, breast cancer). The Triton HTTP client must
read the metadata and get the probabilities ``canon predict`` prints; headless Chromium
fills the form and draws on the canvas of the page, and the chart must show the answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.unit.serve.live import running

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
TEMPLATES = {"digits-mlp": ["train.epochs=2"], "breast-cancer": ["train.epochs=3"]}


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import canonml
    from canonml.package import write_package

    root = tmp_path_factory.mktemp("serve-e2e")
    out = {}
    for template, overrides in TEMPLATES.items():
        run = canonml.run(
            f"template:{template}", root / "runs", overrides=[*overrides, "track=false"]
        )
        out[template] = write_package(run.run_dir, root / template)
    return out


@pytest.fixture(scope="module")
def server(packages: dict[str, Path]) -> Iterator[str]:
    from canonml.serve import build_app

    with running(build_app(list(packages.values()))) as url:
        yield url


def digits(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data[:n].reshape(n, 1, 8, 8).astype(np.float32)  # raw 0..16 pixels


@pytest.mark.serve
def test_triton_client_matches_canon_predict(
    server: str, packages: dict[str, Path], tmp_path: Path
) -> None:
    import tritonclient.http as triton

    x = digits(5)
    np.save(tmp_path / "x.npy", x)
    result = run_cli("predict", str(packages["digits-mlp"]), str(tmp_path / "x.npy"), "--json")
    assert result.code == 0, result.stderr
    expected = np.array([list(r["probabilities"].values()) for r in json.loads(result.stdout)])

    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits-mlp")
    meta = client.get_model_metadata("digits-mlp")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label"]
    for binary in (False, True):  # JSON data, and the binary tensor extension's default
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        answer = client.infer("digits-mlp", [tensor], request_id=f"triton-{binary}")
        assert answer.get_response()["id"] == f"triton-{binary}"
        np.testing.assert_allclose(answer.as_numpy("probabilities"), expected, atol=1e-6)
        assert answer.as_numpy("label").tolist() == expected.argmax(axis=1).tolist()
    wanted = [triton.InferRequestedOutput("label", binary_data=False)]
    answer = client.infer("digits-mlp", [tensor], outputs=wanted)
    assert answer.as_numpy("probabilities") is None and answer.as_numpy("label") is not None
    # The classification extension: the top 3 as b"score:index:label", highest first.
    top = [triton.InferRequestedOutput("probabilities", class_count=3)]
    strings = client.infer("digits-mlp", [tensor], outputs=top).as_numpy("probabilities")
    client.close()
    fields = [[s.decode().split(":") for s in row] for row in strings]
    best = np.argsort(-expected, axis=1, kind="stable")[:, :3]
    assert [[int(i) for _, i, _ in row] for row in fields] == best.tolist()
    assert [[name for _, _, name in row] for row in fields] == best.astype(str).tolist()
    scores = np.array([[float(p) for p, _, _ in row] for row in fields])
    np.testing.assert_allclose(scores, np.take_along_axis(expected, best, axis=1), atol=1e-6)


@pytest.mark.serve
def test_canon_serve_process_with_workers_and_token_from_env(packages: dict[str, Path]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pkg = str(packages["breast-cancer"])
    env = {**os.environ, "CANON_TOKEN": "tok"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "canonml", "serve", pkg, "--port", str(port), "--workers", "2"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_live(url, proc)
        body = {
            "inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [1] * 30}]
        }
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.post("/v2/models/breast-cancer/infer", json=body).status_code == 401
            auth = {"Authorization": "Bearer tok"}
            r = c.post("/v2/models/breast-cancer/infer", json=body, headers=auth)
            assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [1, 2]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # also closes the stderr pipe


@pytest.mark.serve
def test_serving_a_real_package_never_imports_torch(packages: dict[str, Path]) -> None:
    code = (
        "import sys\nfrom canonml.serve import build_app\n"
        "build_app(sys.argv[1:])\n"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    paths = [str(p) for p in packages.values()]
    proc = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def wait_live(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(url + "/v2/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("canon serve did not come up in 30 s")


def section(driver: Any, model: str) -> Any:
    return driver.find_element("css selector", f'section[data-model="{model}"]')


def shown_probabilities(sec: Any) -> dict[str, float]:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(sec.parent, 10).until(lambda _: sec.find_elements("css selector", ".bar"))
    bars = sec.find_elements("css selector", ".result .bar")
    return {b.get_attribute("data-label"): float(b.get_attribute("data-p")) for b in bars}


@pytest.mark.browser
def test_page_form_and_canvas_show_the_prediction(
    server: str, packages: dict[str, Path], browser: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from sklearn.datasets import load_breast_cancer

    browser.get(server + "/")
    # Tabular: one field per feature, named as in the data; fill a real patient and predict.
    cancer = section(browser, "breast-cancer")
    data = load_breast_cancer()
    row = data.data[0]
    fields = cancer.find_elements("css selector", "form.features input")
    assert [f.get_attribute("name") for f in fields] == list(data.feature_names)
    for field, value in zip(fields, row, strict=True):
        field.clear()
        field.send_keys(repr(float(value)))
    cancer.find_element("css selector", "button.predict").click()
    shown = shown_probabilities(cancer)
    assert set(shown) == {"malignant", "benign"}
    assert shown == pytest.approx(server_probabilities(server, "breast-cancer", cancer), abs=1e-6)

    # Image: a canvas 8 × 32 px for the 8 × 8 digits; draw a stroke and predict.
    digit = section(browser, "digits-mlp")
    canvas = digit.find_element("css selector", "canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("256", "256")
    # A vertical stroke down the middle (offsets are from the canvas centre).
    strokes = ActionChains(browser).move_to_element_with_offset(canvas, 0, -90).click_and_hold()
    strokes.move_by_offset(0, 60).move_by_offset(0, 60).move_by_offset(0, 50).release().perform()
    digit.find_element("css selector", "button.predict").click()
    shown = shown_probabilities(digit)
    assert list(shown) == [str(i) for i in range(10)] and sum(shown.values()) == pytest.approx(1)
    assert shown == pytest.approx(server_probabilities(server, "digits-mlp", digit), abs=1e-6)
    sent = json.loads(digit.get_attribute("data-request"))["inputs"][0]
    assert sent["shape"] == [1, 1, 8, 8] and 0 < max(sent["data"]) <= 16  # drawn, in 0..16
    headline = digit.find_element("css selector", ".result .label").text
    assert headline == max(shown, key=lambda k: shown[k])
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))


def server_probabilities(server: str, model: str, sec: Any) -> dict[str, float]:
    """What the server answers to the request the page sent (kept in ``data-request``)."""
    body = json.loads(sec.get_attribute("data-request"))
    meta = {m["name"]: m for m in httpx.get(server + "/ui/models").json()}[model]
    r = httpx.post(f"{server}/v2/models/{model}/infer", json=body)
    probabilities = next(o for o in r.json()["outputs"] if o["name"] == "probabilities")
    return dict(zip(meta["labels"], probabilities["data"], strict=True))
