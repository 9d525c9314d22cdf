"""Issue 4 end to end: report contents, cross-validation, `canon evaluate` on other data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

import canonml
from tests.conftest import tiny_spec


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    return canonml.run("template:iris", out, overrides=["train.epochs=15", "track=false"]).run_dir


def images_in(report: Path) -> int:
    return len(re.findall(r"data:image/png;base64,", report.read_text(encoding="utf-8")))


def test_report_is_self_contained_with_curves_and_confusion(iris_run: Path) -> None:
    html = (iris_run / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    plots = {p.name for p in (iris_run / "plots").glob("*.png")}
    assert {"learning_curves.png", "confusion_matrix.png", "roc.png"} <= plots
    assert images_in(iris_run / "report.html") >= len(plots)
    for heading in ("Summary", "Data", "Model", "Training", "Test results", "Spec"):
        assert heading in html
    assert "95% CI" in html


def test_regression_report_has_prediction_and_residual_plots(tmp_path: Path) -> None:
    spec = tiny_spec(task="regression", data={"source": "sklearn:diabetes"})
    run_dir = canonml.run(spec, tmp_path).run_dir
    plots = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert {"predicted_vs_actual.png", "residuals.png", "learning_curves.png"} <= plots
    assert "confusion_matrix.png" not in plots
    assert images_in(run_dir / "report.html") >= 3


def test_cross_validation_reports_every_fold(tmp_path: Path) -> None:
    result = canonml.run(
        "template:iris", tmp_path, overrides=["evaluate.cv=5", "train.epochs=10", "track=false"]
    )
    cv = json.loads((result.run_dir / "evaluation.json").read_text())["cv"]
    assert cv["folds"] == 5
    acc = cv["metrics"]["accuracy"]
    assert len(acc["values"]) == 5
    assert acc["mean"] == pytest.approx(sum(acc["values"]) / 5)
    assert acc["std"] >= 0
    assert "± " in (result.run_dir / "report.html").read_text(encoding="utf-8") or "&plusmn;" in (
        result.run_dir / "report.html"
    ).read_text(encoding="utf-8")


def test_evaluate_again_on_own_split_matches_the_run(iris_run: Path, cli: Any) -> None:
    result = cli("evaluate", str(iris_run))
    assert result.code == 0, result.stderr
    again = json.loads((iris_run / "evaluations" / "test.json").read_text())
    assert (
        again["metrics"]["accuracy"]
        == json.loads((iris_run / "metrics.json").read_text())["accuracy"]
    )


def test_evaluate_on_a_csv_with_the_same_schema(iris_run: Path, tmp_path: Path, cli: Any) -> None:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    path = tmp_path / "flowers.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*bunch.feature_names, "species"])
        for x, y in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*x, bunch.target_names[y]])
    result = cli("evaluate", str(iris_run), "--data", f"csv:{path}", "--target", "species")
    assert result.code == 0, result.stderr
    assert "150 examples" in result.stdout
    written = json.loads(next((iris_run / "evaluations").glob("csv*flowers.csv.json")).read_text())
    assert written["metrics"]["accuracy"] > 0.85


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "sklearn:wine"], "--data: sklearn:wine has columns"),
        (["--data", "sklaern:iris"], "--data: unknown scheme 'sklaern'"),
        (["--data", "csv:x.csv"], "--data: a csv source needs its target column"),
    ],
)
def test_evaluate_bad_data_exits_2(iris_run: Path, cli: Any, args: list[str], message: str) -> None:
    result = cli("evaluate", str(iris_run), *args)
    assert result.code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_with_corrupt_weights(tmp_path: Path, cli: Any) -> None:
    run_dir = canonml.run(tiny_spec(), tmp_path).run_dir
    (run_dir / "model.safetensors").write_bytes(b"garbage")
    result = cli("evaluate", str(run_dir))
    assert result.code == 2 and "model.safetensors: corrupt" in result.stderr
