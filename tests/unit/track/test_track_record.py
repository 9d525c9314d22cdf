"""A run's record: flattened params, per-epoch metrics with step=epoch, tags."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from canonml.track.record import (
    MAX_PARAM_VALUE,
    clean_key,
    final_metrics,
    flatten_params,
    headline,
    history_metrics,
    run_record,
)
from canonml.track.store import describe, is_transient, resolve_uri, retry, sqlite_path


def test_flatten_params_writes_dotted_keys_and_json_values() -> None:
    spec = {
        "name": "digits-mlp",
        "train": {"optimizer": {"lr": 0.001, "name": "adam"}, "early_stopping": None},
        "model": {"hidden": [128, 64], "batch_norm": False},
        "explain": {},
    }
    assert flatten_params(spec) == {
        "name": "digits-mlp",
        "train.optimizer.lr": "0.001",
        "train.optimizer.name": "adam",
        "train.early_stopping": "null",
        "model.hidden": "[128, 64]",
        "model.batch_norm": "false",
        "explain": "{}",
    }


def test_params_respect_mlflow_limits() -> None:
    params = flatten_params({"data": {"columns": "x" * 9000, "bad key!": 1}})
    assert len(params["data.columns"]) == MAX_PARAM_VALUE
    assert params["data.bad key_"] == "1"
    assert clean_key("a" * 300) == "a" * 250


def test_history_metrics_use_the_epoch_as_step() -> None:
    rows: list[dict[str, Any]] = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "lr": 0.1, "seconds": 0.5},
        {"epoch": 2, "train_loss": 0.5, "val_loss": "1.5", "lr": 0.1, "seconds": 0.5},
    ]
    got = history_metrics(rows, start_ms=1000)
    assert ("val_loss", 2.0, 1500, 1) in got
    assert ("val_loss", 1.5, 2000, 2) in got  # read back from history.csv: strings
    assert {key for key, *_ in got} == {"train_loss", "val_loss", "lr"}
    assert len(got) == 6


def test_final_metrics_are_step_zero_and_keep_nan() -> None:
    got = final_metrics({"accuracy": 0.5, "roc_auc": float("nan")}, now_ms=7)
    assert got[0] == ("accuracy", 0.5, 7, 0)
    assert got[1][0] == "roc_auc" and math.isnan(got[1][1])


@pytest.mark.parametrize(
    ("task", "metrics", "expected"),
    [
        ("classification", {"f1_macro": 0.9, "accuracy": 0.95}, "accuracy"),
        ("regression", {"mse": 1.0, "r2": 0.5}, "r2"),
        ("regression", {"mse": 1.0}, "mse"),
        ("classification", {}, "accuracy"),
    ],
)
def test_headline(task: str, metrics: dict[str, float], expected: str) -> None:
    assert headline(task, metrics) == expected


def test_run_record_tags(tmp_path: Path) -> None:
    run_dir = tmp_path / "20260101-000000-abcd"
    spec = {"name": "iris", "task": "classification", "seed": 0}
    record = run_record(spec, run_dir, [{"epoch": 1}], {"accuracy": 1}, fingerprint="f" * 64)
    assert record.name == "iris-20260101-000000-abcd"
    assert record.tags["canon.task"] == "classification"
    assert record.tags["canon.fingerprint"] == "f" * 64
    assert record.tags["canon.headline"] == "accuracy"
    assert record.tags["canon.run_id"] == "20260101-000000-abcd"
    assert record.tags["canon.version"]
    assert record.params == {"name": "iris", "task": "classification", "seed": "0"}
    assert record.metrics == {"accuracy": 1.0}


def test_relative_sqlite_uris_resolve_against_the_working_directory(tmp_path: Path) -> None:
    assert resolve_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_uri("http://host:5000", tmp_path) == "http://host:5000"
    assert sqlite_path("sqlite:///a/b.db?timeout=2") == Path("a/b.db")
    assert sqlite_path("sqlite://") is None


def test_describe_and_retry_only_transient_errors() -> None:
    locked = RuntimeError("(sqlite3.OperationalError) database is locked\n[SQL: SELECT 1]")
    assert describe(locked) == "database is locked"
    assert is_transient(locked) and not is_transient(ValueError("no such table"))
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise locked
        return "ok"

    assert retry(flaky, attempts=3, backoff=0.0) == "ok"
    calls.clear()
    with pytest.raises(RuntimeError):
        retry(flaky, attempts=2, backoff=0.0)
    with pytest.raises(ValueError):
        retry(lambda: (_ for _ in ()).throw(ValueError("bad uri")), attempts=5, backoff=10.0)
