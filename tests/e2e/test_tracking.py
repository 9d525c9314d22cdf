"""Tracking end to end: `canon run` records in MLflow; a broken store never loses a run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from canonml.track.store import mlflow_warnings_ignored
from tests.conftest import stop_process


@pytest.mark.slow
def test_digits_run_is_in_mlflow_with_metrics_and_history(tmp_path: Path, cli: Any) -> None:
    result = cli("run", "--template", "digits-mlp", "--out", str(tmp_path / "runs"))
    assert result.code == 0, result.stderr
    assert "warning" not in result.stderr
    run_dir = Path(result.stdout.split("run directory:")[1].split()[0])
    if not run_dir.is_absolute():
        run_dir = tmp_path / run_dir
    from mlflow.tracking import MlflowClient

    with mlflow_warnings_ignored():
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("canon")
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 1
        run = runs[0]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert {k: run.data.metrics[k] for k in metrics} == metrics
        epochs = len((run_dir / "history.csv").read_text().splitlines()) - 1
        val_loss = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in val_loss) == list(range(1, epochs + 1))
        assert run.data.params["model.hidden"] == "[128]"
        assert run.data.tags["canon.task"] == "classification"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.json", "spec.yaml", "report.html", "plots"} <= artifacts
    assert run.info.status == "FINISHED"
    listed = cli("runs")
    assert run.info.run_id[:8] in listed.stdout and "0.9" in listed.stdout


@pytest.mark.parametrize("broken", ["unwritable", "locked"])
def test_broken_store_warns_once_and_keeps_the_run(
    tmp_path: Path, cli: Any, write_spec: Any, broken: str
) -> None:
    if broken == "unwritable":
        (tmp_path / "afile").write_text("not a directory")
        uri = f"sqlite:///{tmp_path / 'afile' / 'x.db'}"
        lock = None
    else:
        db = tmp_path / "locked.db"
        uri = f"sqlite:///{db}"
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("CREATE TABLE t (x)")
        lock.execute("BEGIN EXCLUSIVE")
    spec = {
        "name": "tiny",
        "data": {"source": "sklearn:iris"},
        "train": {"epochs": 2},
        "track": {"uri": uri, "timeout": 60},
    }
    try:
        result = cli("run", str(write_spec(spec)), "--out", str(tmp_path / "runs"))
    finally:
        if lock is not None:
            lock.close()
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "the run directory is complete" in warnings[0]
    run_dir = next((tmp_path / "runs" / "tiny").iterdir())
    for name in ("spec.yaml", "metrics.json", "history.csv", "report.html", "model.safetensors"):
        assert (run_dir / name).is_file()


def test_runs_without_a_store_is_a_clear_error(tmp_path: Path, cli: Any) -> None:
    result = cli("runs", "--uri", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "none.db" in result.stderr


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tracked tabular run whose package is logged and registered as an MLflow model."""
    import yaml

    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("registered")
    spec = {
        "name": "cancer",
        "data": {"source": "sklearn:breast_cancer"},
        "model": {"arch": "mlp", "hidden": [16]},
        "train": {"epochs": 3},
        "track": {"register": "cancer-classifier"},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = run_cli("run", "spec.yaml", "--out", "runs", cwd=root)
    assert result.code == 0, result.stderr
    assert "registered as 'cancer-classifier'" in result.stdout
    run_dir = root / result.stdout.split("run directory:")[1].split()[0]
    return {"root": root, "run_dir": run_dir, "stdout": result.stdout}


def _tracked_run(root: Path) -> Any:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("canon").experiment_id])
    return client, run


@pytest.mark.slow
def test_the_package_is_an_mlflow_model_that_predicts_like_canon_predict(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    import mlflow
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    root, run_dir = registered["root"], registered["run_dir"]
    monkeypatch.chdir(root)
    rows = load_breast_cancer().data[:7]
    np.save(root / "rows.npy", rows)
    predicted = cli("predict", str(run_dir / "package"), "rows.npy", "--json", cwd=root)
    assert predicted.code == 0, predicted.stderr
    answers = json.loads(predicted.stdout)
    canon = np.array([list(r["probabilities"].values()) for r in answers])
    with mlflow_warnings_ignored():
        mlflow.set_tracking_uri("sqlite:///mlflow.db")
        client, run = _tracked_run(root)
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
        out = model.predict({"input": rows.astype(np.float32)})
        assert np.abs(out["probabilities"] - canon).max() <= 1e-5
        meta = model.metadata
        assert (
            meta.metadata["labels"] == ["malignant", "benign"]
            and meta.metadata["task"] == "classification"
        )
        assert meta.metadata["features"][0] == "mean radius"
        assert meta.get_input_schema().input_names() == ["input"]
        assert meta.saved_input_example_info is not None
        # The registry holds it as version 1, pointing at this run's model.
        version = client.get_model_version("cancer-classifier", "1")
        assert version.run_id == run.info.run_id
        registry = mlflow.pyfunc.load_model("models:/cancer-classifier/1")
        again = registry.predict({"input": rows.astype(np.float32)})["probabilities"]
        assert np.abs(again - canon).max() <= 1e-5
        # MLflow 3's Models page lists logged models; the test metrics are linked to it.
        (logged,) = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id], output_format="list"
        )
        linked = {m.key: m.value for m in logged.metrics or []}
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert {k: linked[k] for k in metrics} == pytest.approx(metrics)


@pytest.mark.slow
def test_a_bare_mlflow_ui_in_the_folder_lists_the_run(registered: dict[str, Any]) -> None:
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = registered["root"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = json.dumps({"experiment_ids": [], "max_results": 10}).encode()
        deadline, found = time.monotonic() + 90, None
        while time.monotonic() < deadline and found is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
                    "?experiment_name=canon",
                    timeout=5,
                ) as answer:
                    experiment = json.load(answer)["experiment"]["experiment_id"]
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
                    data=json.dumps({"experiment_ids": [experiment]}).encode() or body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as answer:
                    found = json.load(answer)["runs"]
            except OSError:
                time.sleep(0.5)
    finally:
        stop_process(ui)
    assert found is not None, "mlflow ui did not answer"
    assert len(found) == 1 and found[0]["info"]["status"] == "FINISHED"
    names = {m["key"] for m in found[0]["data"]["metrics"]}
    assert {"accuracy", "val_loss"} <= names


def test_mlflow_tracking_uri_in_the_environment_is_where_the_run_lands(
    tmp_path: Path, cli: Any, write_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import tiny_spec

    store = tmp_path / "elsewhere" / "team.db"
    spec = tiny_spec(track=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    result = cli("run", str(write_spec(spec)), "--out", "runs", "--set", "train.epochs=1")
    assert result.code == 0, result.stderr
    assert f"in sqlite:///{store}" in result.stdout and "experiment 'team'" in result.stdout
    assert store.is_file() and not (tmp_path / "mlflow.db").exists()
    listed = cli("runs", "--json")  # reads the same environment
    assert listed.code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["name"].startswith("tiny-") and row["status"] == "FINISHED"
    assert set(json.loads((Path(row["run_dir"]) / "metrics.json").read_text())) <= set(
        row["metrics"]
    )


@pytest.mark.parametrize(
    ("spec_track", "sets", "fragment"),
    [
        (False, ["track.register=m"], "--set track.register: 'track' is false"),
        ({"register": "m"}, ["track=false"], "track.register: the spec registers the model"),
        ({"register": ""}, [], "track.register: String should have at least 1 character"),
        ({"register": "a/b c"}, [], "track.register: a registered model name needs"),
        ({"register": "  "}, [], "track.register: a registered model name needs"),
    ],
)
def test_register_without_tracking_is_a_clear_error(
    cli: Any, write_spec: Any, spec_track: Any, sets: list[str], fragment: str
) -> None:
    from tests.conftest import tiny_spec

    args = [a for s in sets for a in ("--set", s)]
    result = cli("validate", str(write_spec(tiny_spec(track=spec_track))), *args)
    assert result.code == 2 and "Traceback" not in result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
