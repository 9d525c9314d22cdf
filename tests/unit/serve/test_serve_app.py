"""Health, metadata, the token, metrics and the page of the OIP v2 server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from canonml.errors import CanonError
from canonml.serve import create_app
from tests.unit.serve.live import running
from tests.unit.serve.packages import FixturePackage

pytestmark = pytest.mark.serve

INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}]}


def test_health_bodies_are_the_strict_ones(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/tab/ready").json() == {"name": "tab", "ready": True}
    assert client.get("/v2/models/tab/versions/1/ready").json() == {"name": "tab", "ready": True}


def test_server_metadata_on_v2_and_v2_slash(client: httpx.Client) -> None:
    for path in ("/v2", "/v2/"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.json() == {
            "name": "canonml",
            "version": "0.1.0",
            "extensions": ["binary_tensor_data", "classification"],
        }


def test_model_metadata_lists_inputs_and_outputs(client: httpx.Client) -> None:
    meta = client.get("/v2/models/tab").json()
    assert meta == {
        "name": "tab",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }
    assert client.get("/v2/models/tab/versions/1").json() == meta


@pytest.mark.parametrize(
    "method,path,status,fragment",
    [
        ("GET", "/v2/models/nope", 404, "unknown model 'nope'"),
        ("GET", "/v2/models/nope/ready", 404, "unknown model 'nope'"),
        ("GET", "/v2/models/tab/versions/7", 404, "no version '7'"),
        ("POST", "/v2/models/tab/versions/7/infer", 404, "no version '7'"),
        ("GET", "/v3", 404, "no route '/v3'"),
        ("GET", "/v2/models/tab/infer", 405, "Method Not Allowed"),
        ("DELETE", "/v2/health/live", 405, "Method Not Allowed"),
    ],
)
def test_every_error_is_json(
    client: httpx.Client, method: str, path: str, status: int, fragment: str
) -> None:
    r = client.request(method, path, json=INFER)
    assert r.status_code == status
    assert list(r.json()) == ["error"] and fragment in r.json()["error"]


def test_token_guards_all_but_health_and_the_page_shell(packages: list[FixturePackage]) -> None:
    good = {"Authorization": "Bearer s3cret"}
    with running(create_app(packages, token="s3cret")) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/").status_code == 200
        for path in ("/v2", "/v2/models/tab", "/v2/models/tab/ready", "/ui/models", "/metrics"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert "Bearer" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
            assert c.get(path, headers=good).status_code == 200
        bad = {"Authorization": "Bearer wrong"}
        assert c.post("/v2/models/tab/infer", json=INFER, headers=bad).status_code == 401
        assert c.post("/v2/models/tab/infer", json=INFER, headers=good).status_code == 200


def test_metrics_count_requests_by_model_and_status(packages: list[FixturePackage]) -> None:
    with running(create_app(packages)) as url, httpx.Client(base_url=url) as c:
        for _ in range(3):
            c.post("/v2/models/tab/infer", json=INFER)
        c.post("/v2/models/tab/infer", json={"inputs": []})
        c.post("/v2/models/nope/infer", json=INFER)
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'canon_requests_total{model="tab",status="200"} 3.0' in text
    assert 'canon_requests_total{model="tab",status="400"} 1.0' in text
    assert 'canon_requests_total{model="",status="404"} 1.0' in text
    assert 'canon_request_latency_seconds_count{model="tab"} 4.0' in text
    assert 'canon_batch_size_sum{model="tab"} 3.0' in text
    for name in ("tab", "img", "reg", "pair"):
        load = re.search(rf'canon_model_load_seconds{{model="{name}"}} (\S+)', text)
        assert load is not None and 0 < float(load.group(1)) < 30


def test_page_is_self_contained_and_describes_each_model(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(src|href)=\"?(https?:)?//", page.text)  # nothing from a CDN
    assert 'createElement("canvas")' in page.text and "bar" in page.text  # canvas, chart
    info = {m["name"]: m for m in client.get("/ui/models").json()}
    assert info["tab"]["kind"] == "tabular" and info["tab"]["features"][0] == "feature 0"
    assert info["img"]["kind"] == "image" and info["img"]["image_shape"] == [1, 8, 8]
    assert info["img"]["pixel_max"] == 16.0 and info["img"]["labels"][9] == "class-9"


def test_two_packages_with_one_name_are_refused(packages: list[FixturePackage]) -> None:
    with pytest.raises(CanonError, match="both named 'tab'"):
        create_app([packages[0], packages[0]])


def test_serving_never_imports_torch(packages: list[FixturePackage]) -> None:
    root = Path(__file__).parents[3]
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.unit.serve.packages import make_package\n"
        "from canonml.serve import create_app\n"
        "import tempfile\n"
        "pkg = make_package(Path(tempfile.mkdtemp()))\n"
        "create_app([pkg])\n"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


class Flaky:
    """A session that fails on a poisoned sample, as a broken graph might at run time."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def run(self, names: list[str], feeds: dict[str, Any]) -> Any:
        if (feeds["input"] == 666).any():
            raise RuntimeError("kernel exploded")
        return self.session.run(names, feeds)


def test_a_model_failure_is_a_json_500_and_the_server_lives_on(
    packages: list[FixturePackage],
) -> None:
    tab = packages[0]
    flaky = FixturePackage(tab.path, tab.manifest)
    flaky.session = lambda threads=1: Flaky(tab.session(threads))  # type: ignore[method-assign]
    poisoned = {"inputs": [{**INFER["inputs"][0], "data": [666, 0, 0, 0]}]}
    with running(create_app([flaky])) as url, httpx.Client(base_url=url) as c:
        r = c.post("/v2/models/tab/infer", json=poisoned)
        assert r.status_code == 500 and "kernel exploded" in r.json()["error"]
        assert c.post("/v2/models/tab/infer", json=INFER).status_code == 200
