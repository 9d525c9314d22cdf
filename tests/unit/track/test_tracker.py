"""Recording a run through the worker: a real SQLite store, and every way it can fail."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from canonml.spec.track import TrackSpec
from canonml.track import MlflowTracker, NullTracker, make_tracker
from canonml.track import tracker as tracker_module
from tests.unit.track.conftest import EPOCHS, METRICS, Tracked, client, make_run_dir, record

pytest.importorskip("mlflow")

# Small retry settings: a failing store gives up in about a second.
QUICK: dict[str, Any] = {"attempts": 2, "backoff": 0.05, "busy_timeout": 0.1}


def test_the_run_is_in_the_store_with_its_final_metrics(tracked: Tracked) -> None:
    c = client(tracked.uri)
    exp = c.get_experiment_by_name("canon")
    [run] = c.search_runs([exp.experiment_id], "tags.`canon.task` = 'classification'")
    assert run.info.run_id == tracked.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny-20260101-120000-abcd"
    for key, value in METRICS.items():
        assert run.data.metrics[key] == value
    assert run.info.end_time >= run.info.start_time


def test_per_epoch_metrics_have_one_value_per_epoch(tracked: Tracked) -> None:
    c = client(tracked.uri)
    val_loss = c.get_metric_history(tracked.run_id, "val_loss")
    assert sorted(m.step for m in val_loss) == list(range(1, EPOCHS + 1))
    assert [m.value for m in sorted(val_loss, key=lambda m: m.step)] == [
        1.5 / e for e in range(1, EPOCHS + 1)
    ]
    assert len(c.get_metric_history(tracked.run_id, "lr")) == EPOCHS
    assert c.get_metric_history(tracked.run_id, "seconds") == []
    assert c.get_metric_history(tracked.run_id, "epoch") == []


def test_params_tags_and_artifacts(tracked: Tracked) -> None:
    c = client(tracked.uri)
    run = c.get_run(tracked.run_id)
    assert run.data.params["train.optimizer.lr"] == "0.001"
    assert run.data.params["model.hidden"] == "[8]"
    assert run.data.tags["canon.task"] == "classification"
    assert run.data.tags["canon.fingerprint"] == "ab" * 32
    assert run.data.tags["canon.run_dir"] == str(tracked.run_dir.resolve())
    assert run.data.tags["canon.version"]
    assert run.data.tags["mlflow.runName"] == run.info.run_name
    top = {f.path for f in c.list_artifacts(tracked.run_id)}
    assert top == {"metrics.json", "spec.yaml", "history.csv", "report.html", "plots"}
    assert [f.path for f in c.list_artifacts(tracked.run_id, "plots")] == ["plots/loss.png"]
    # Artefacts live beside the database, not in whatever directory the run started from.
    assert (tracked.db.parent / "mlartifacts").is_dir()


def test_an_aborted_run_is_marked_failed(tracked: Tracked, tmp_path: Path) -> None:
    uri = _copy_store(tracked, tmp_path)
    tracker = MlflowTracker(TrackSpec(uri=uri), cwd=tmp_path, **QUICK)
    tracker.start("tiny")
    assert tracker.wait_ready(60)
    tracker.abort()
    c = client(uri)
    runs = c.search_runs(
        [c.get_experiment_by_name("canon").experiment_id], "attributes.status = 'FAILED'"
    )
    assert len(runs) == 1


def test_an_unwritable_database_gives_one_warning(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    uri = f"sqlite:///{tmp_path}/afile/x.db"
    warning = _record(uri, tmp_path)
    assert warning is not None
    assert warning.startswith(f"tracking: could not record the run in {uri} (")
    assert "afile is a file, not a directory" in warning
    assert warning.endswith("; the run directory is complete")
    assert "\n" not in warning


def test_a_locked_database_gives_a_warning_after_retrying(tracked: Tracked, tmp_path: Path) -> None:
    uri = _copy_store(tracked, tmp_path)
    lock = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        warning = _record(uri, tmp_path)
        assert time.monotonic() - started < 30
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert warning == (
        f"tracking: could not record the run in {uri} (database is locked); "
        "the run directory is complete"
    )


def test_a_store_locked_at_the_start_is_tried_again_at_the_end(
    tracked: Tracked, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    uri = _copy_store(tracked, tmp_path)
    tracker = MlflowTracker(TrackSpec(uri=uri), cwd=tmp_path, **QUICK)
    lock = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        tracker.start("tiny")
        assert tracker.wait_ready(60)  # ready, with the error remembered
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert tracker.finish(record(make_run_dir(tmp_path))) is None
    c = client(uri)
    assert c.get_run(tracker.run_id).data.metrics["accuracy"] == METRICS["accuracy"]
    assert capfd.readouterr() == ("", "")  # the worker never writes to the terminal


def test_abort_before_the_store_is_open_stops_at_once(tracked: Tracked, tmp_path: Path) -> None:
    uri = _copy_store(tracked, tmp_path)
    tracker = MlflowTracker(TrackSpec(uri=uri), cwd=tmp_path, **QUICK)
    tracker.start("tiny")
    started = time.monotonic()
    tracker.abort()
    assert time.monotonic() - started < 2
    c = client(uri)
    assert len(c.search_runs([c.get_experiment_by_name("canon").experiment_id])) == 1


def test_a_bad_uri_gives_a_warning(tmp_path: Path) -> None:
    warning = _record("nosuchscheme://somewhere", tmp_path)
    assert warning is not None and "nosuchscheme://somewhere" in warning


def test_a_server_that_is_down_gives_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    warning = _record("http://127.0.0.1:9", tmp_path)
    assert warning is not None and "http://127.0.0.1:9" in warning


def test_a_worker_that_does_not_answer_in_time_gives_a_warning(tmp_path: Path) -> None:
    warning = _record(f"sqlite:///{tmp_path}/m.db", tmp_path, timeout=0.01)
    assert warning is not None and "no answer within 0.01 s" in warning


def test_without_mlflow_the_warning_gives_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker_module, "_mlflow_installed", lambda: False)
    warning = _record("sqlite:///mlflow.db", tmp_path)
    assert warning is not None and "pip install 'canonml[track]'" in warning
    assert not (tmp_path / "mlflow.db").exists()


def test_track_false_records_nothing(tmp_path: Path) -> None:
    tracker = make_tracker(False)
    assert isinstance(tracker, NullTracker)
    tracker.start("x")
    assert tracker.finish(record(make_run_dir(tmp_path))) is None
    assert isinstance(make_tracker(TrackSpec(), cwd=tmp_path), MlflowTracker)


def _record(uri: str, cwd: Path, timeout: float = 60.0) -> str | None:
    tracker = MlflowTracker(TrackSpec(uri=uri, timeout=timeout), cwd=cwd, **QUICK)
    tracker.start("tiny")
    return tracker.finish(record(make_run_dir(cwd)))


def _copy_store(tracked: Tracked, tmp_path: Path) -> str:
    """A copy of the session's store: an existing store, without its creation's cost."""
    shutil.copy(tracked.db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"
