"""A real MLflow store in a temp directory, with one run recorded through the worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from canonml.spec.track import TrackSpec
from canonml.track import MlflowTracker, RunRecord, run_record
from canonml.track.store import mlflow_warnings_ignored

EPOCHS = 5
METRICS = {"accuracy": 0.96875, "f1_macro": 0.9655}
SPEC: dict[str, Any] = {
    "name": "tiny",
    "task": "classification",
    "seed": 0,
    "data": {"source": "sklearn:iris", "split": {"val": 0.1, "test": 0.2}},
    "model": {"arch": "mlp", "hidden": [8]},
    "train": {"epochs": EPOCHS, "optimizer": {"name": "adam", "lr": 0.001}},
}


@dataclass
class Tracked:
    uri: str
    db: Path
    run_dir: Path
    record: RunRecord
    run_id: str


def make_run_dir(root: Path, run_id: str = "20260101-120000-abcd") -> Path:
    """A run directory as ``canon run`` leaves it."""
    run = root / "runs" / "tiny" / run_id
    (run / "plots").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"\0" * 64)
    (run / "plots" / "loss.png").write_bytes(b"\x89PNG")
    (run / "metrics.json").write_text(json.dumps(METRICS, sort_keys=True))
    (run / "spec.yaml").write_text("name: tiny\n")
    (run / "history.csv").write_text("epoch,train_loss\n")
    (run / "report.html").write_text("<html></html>")
    (run / ".metrics.json.x.tmp").write_text("half-written")
    return run


def history(epochs: int = EPOCHS) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.5 / e,
            "val_accuracy": e / 10,
            "lr": 0.001,
            "seconds": 0.25,
        }
        for e in range(1, epochs + 1)
    ]


def record(run_dir: Path) -> RunRecord:
    return run_record(SPEC, run_dir, history(), METRICS, fingerprint="ab" * 32)


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    with mlflow_warnings_ignored():
        return MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="session")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracked]:
    """One run recorded into a fresh store (the store's creation is the slow part)."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("store")
    db = root / "mlflow.db"
    tracker = MlflowTracker(TrackSpec(uri="sqlite:///mlflow.db"), cwd=root)
    tracker.start("tiny")
    run_dir = make_run_dir(root)
    rec = record(run_dir)
    warning = tracker.finish(rec)
    assert warning is None
    assert tracker.run_id is not None
    yield Tracked(f"sqlite:///{db}", db, run_dir, rec, tracker.run_id)
