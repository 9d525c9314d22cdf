"""``canon search``: Optuna trials over spec paths with the median pruner, the study in
SQLite (continued after kill -9 with its finished trials kept), each trial an MLflow child
run, the best spec trained as the final run with the search in its report; several
objectives give a Pareto front and ``--pick``; a key that is not a spec path exits 2."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_cli

SEARCH = {
    "trials": 6,
    "startup_trials": 3,
    "warmup_epochs": 2,
    "params": {
        "train.optimizer.lr": {"loguniform": [1.0e-3, 3.0e-2]},
        "model.hidden": {"choice": [[16], [64], [64, 32]]},
        "model.dropout": {"uniform": [0.0, 0.4]},
    },
}


def spec_file(folder: Path, **changes: Any) -> Path:
    spec: dict[str, Any] = {
        "name": "digits-search",
        "data": {"source": "sklearn:digits", "split": {"val": 0.15, "test": 0.2}},
        "model": {"arch": "mlp", "hidden": [64]},
        "train": {"epochs": 5, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}},
        "evaluate": {"ci": 0},
        "search": SEARCH,
    }
    spec.update(changes)
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def finished_trials(db: Path) -> int:
    if not db.is_file():
        return 0
    with sqlite3.connect(db) as con:
        try:
            rows = con.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')")
            return int(rows.fetchone()[0])
        except sqlite3.OperationalError:  # the tables are not made yet
            return 0


def test_a_search_prunes_tracks_and_trains_the_best_spec(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    cli = run_cli("search", str(spec), "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert cli.code == 0, cli.stderr
    assert "final run:" in cli.stdout and "accuracy" in cli.stdout
    (run_dir,) = [p for p in (tmp_path / "runs" / "digits-search").iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "search.json").read_text("utf-8"))
    assert len(summary["trials"]) == 6
    assert summary["counts"]["COMPLETE"] + summary["counts"]["PRUNED"] == 6
    best = max(
        (t for t in summary["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["values"][0]
    )
    assert summary["chosen"] == best["number"]
    final = yaml.safe_load((run_dir / "spec.yaml").read_text("utf-8"))
    assert final["model"]["hidden"] == best["params"]["model.hidden"]
    assert final["train"]["optimizer"]["lr"] == pytest.approx(best["params"]["train.optimizer.lr"])
    assert final.get("search") is None  # the final run does not search again
    page = (run_dir / "report.html").read_text("utf-8")
    assert "Hyper-parameter search" in page and "Optimisation history" in page
    # The study beside the tracking store; every trial an MLflow child of the study's run.
    assert finished_trials(tmp_path / "optuna.db") == 6
    import mlflow

    from canonml.track.store import mlflow_warnings_ignored

    with mlflow_warnings_ignored():
        client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        (exp,) = [e for e in client.search_experiments() if e.name == "canon"]
        runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("canon_study")]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 6


def test_a_killed_search_continues_with_its_finished_trials(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, track=False, search={**SEARCH, "trials": 7, "pruner": "none"})
    cmd = [sys.executable, "-m", "canonml", "search", str(spec), "--no-final", "--out", "runs"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "runs" / "optuna.db"
    deadline = time.monotonic() + 120
    try:
        while finished_trials(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    kept = finished_trials(db)
    assert 2 <= kept < 7, kept
    cli = run_cli("search", str(spec), "--no-final", "--out", "runs", cwd=tmp_path)
    assert cli.code == 0, cli.stderr
    assert f"{7 - kept} trials to run ({kept} done)" in cli.stderr
    assert finished_trials(db) == 7
    # Run again: the study is complete, nothing more is trained.
    again = run_cli("search", str(spec), "--no-final", "--out", "runs", cwd=tmp_path)
    assert again.code == 0 and "trials to run" not in again.stderr


def test_several_objectives_give_a_pareto_front_and_a_picked_trial(tmp_path: Path) -> None:
    search = {
        "trials": 4,
        "objectives": [{"metric": "val_accuracy"}, {"metric": "parameters"}],
        "params": {"model.hidden": {"choice": [[8], [32], [128, 64]]}},
    }
    spec = spec_file(tmp_path, track=False, search=search, train={"epochs": 3})
    cli = run_cli("search", str(spec), "--out", "runs", cwd=tmp_path)
    assert cli.code == 0, cli.stderr
    assert "Pareto front: trials" in cli.stdout and "--pick N" in cli.stdout
    assert not list((tmp_path / "runs" / "digits-search").glob("2*"))  # nothing picked yet
    picked = run_cli("search", str(spec), "--out", "runs", "--pick", "0", cwd=tmp_path)
    assert picked.code == 0, picked.stderr
    (run_dir,) = (tmp_path / "runs" / "digits-search").glob("2*")
    summary = json.loads((run_dir / "search.json").read_text("utf-8"))
    assert summary["chosen"] == 0 and "pareto" in summary["plots"]
    assert (run_dir / summary["plots"]["pareto"]).is_file()


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"model.hiddn": {"choice": [[8]]}}, "search.params.model.hiddn: not a spec path"),
        ({"train.optimizer.lr": {"loguniform": [0.0, 1.0]}}, "search.params"),
        (
            {"model.dropout": {"uniform": [0.0, 1.5]}},
            "search.params.model.dropout: the value 1.5 is not allowed there",
        ),
        ({"train.epochs": {"int": [5, 2]}}, "search.params"),
    ],
)
def test_a_bad_search_exits_2_naming_the_key(tmp_path: Path, params: Any, where: str) -> None:
    spec = spec_file(tmp_path, track=False, search={"trials": 2, "params": params})
    cli = run_cli("search", str(spec), "--out", "runs", cwd=tmp_path)
    assert cli.code == 2 and where in cli.stderr, cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
