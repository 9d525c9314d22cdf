"""``canon runs``: recent runs as a table and runs side by side, read back through MLflow."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from canonml.errors import CanonError
from canonml.track import compare_runs, list_runs
from tests.unit.track.conftest import METRICS, Tracked

pytest.importorskip("mlflow")


def _text(table: Table) -> str:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(table)
    return out.getvalue()


def test_list_runs_shows_the_run_and_its_headline_metric(tracked: Tracked) -> None:
    text = _text(list_runs(tracked.uri, "canon", limit=5))
    assert tracked.run_id in text
    assert "tiny-20260101-120000-abcd" in text
    assert f"accuracy {METRICS['accuracy']:.4g}" in text
    for column in ("run id", "name", "date", "headline", "duration"):
        assert column in text


def test_list_runs_sorted_by_a_metric_adds_its_column(tracked: Tracked) -> None:
    text = _text(list_runs(tracked.uri, sort="f1_macro"))
    assert "best f1_macro first" in text and f"{METRICS['f1_macro']:.4g}" in text


def test_compare_runs_puts_metrics_side_by_side(tracked: Tracked) -> None:
    text = _text(compare_runs([tracked.run_id, "20260101-120000-abcd"], tracked.uri))
    rows = [line.strip("│┃ ").split("│") for line in text.splitlines()]
    lines = {row[0].strip(): [c.strip() for c in row[1:]] for row in rows if len(row) > 1}
    assert lines["accuracy"] == [f"{METRICS['accuracy']:.4g}"] * 2  # found by either id
    assert lines["val_loss"] == [f"{1.5 / 5:.4g}"] * 2  # the last epoch's value


def test_a_relative_sqlite_uri_reads_from_the_working_directory(
    tracked: Tracked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(tracked.db, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    assert tracked.run_id in _text(list_runs())


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda uri: list_runs(uri, "nope"), "--experiment: no experiment 'nope' in"),
        (lambda uri: list_runs(uri, sort="accuracyy"), "--sort: no run has a metric 'accuracyy'"),
        (lambda uri: list_runs(uri, limit=0), "--limit: must be >= 1, got 0"),
        (lambda uri: compare_runs(["0" * 32], uri), f"--compare: no run '{'0' * 32}'"),
        (lambda uri: compare_runs([], uri), "--compare: give one or more run ids"),
        (lambda uri: list_runs(uri + ".missing"), "no tracking database at"),
        (lambda uri: list_runs("nosuchscheme://x"), "cannot read the tracking store nosuchscheme"),
    ],
)
def test_bad_requests_are_one_line_errors(tracked: Tracked, call: object, fragment: str) -> None:
    with pytest.raises(CanonError) as info:
        call(tracked.uri)  # type: ignore[operator]
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
