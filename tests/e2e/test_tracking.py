"""Tracking end to end: `canon run` records in MLflow; a broken store never loses a run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from canonml.track.store import mlflow_warnings_ignored


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
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
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
