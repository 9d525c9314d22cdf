"""``canon runs``: recent runs, and runs side by side, read back through MLflow's client."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.table import Table

from canonml.errors import CanonError, MissingExtraError
from canonml.spec.track import experiment_name, tracking_uri
from canonml.track.record import task_headline
from canonml.track.store import describe, mlflow_warnings_ignored, resolve_uri, sqlite_path

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse")
# Reading should fail fast: against a server that is down MLflow retries for minutes.
_READ_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def find_runs(
    uri: str | None = None,
    experiment: str | None = None,
    limit: int = 20,
    sort: str | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs of ``experiment`` (or the best by metric ``sort``).

    ``uri`` and ``experiment`` default as in every MLflow client: ``$MLFLOW_TRACKING_URI``
    (else ``sqlite:///mlflow.db``) and ``$MLFLOW_EXPERIMENT_NAME`` (else ``canon``). Each run
    is a plain dict (see ``run_summary``). Raises ``CanonError`` for a missing store or
    experiment, an unknown ``sort`` metric or a store that cannot be read.
    """
    if limit < 1:
        raise CanonError(f"--limit: must be >= 1, got {limit}")
    experiment = experiment_name(experiment)
    with _client(uri) as (client, where):
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = sorted(e.name for e in client.search_experiments())
            raise CanonError(
                f"--experiment: no experiment '{experiment}' in {where}; "
                f"known: {', '.join(names) or 'none'}"
            )
        order = [f"metrics.`{sort}` {'DESC' if _descending(sort) else 'ASC'}"] if sort else []
        runs = client.search_runs(
            [found.experiment_id],
            max_results=limit,
            order_by=order + ["attributes.start_time DESC"],
        )
    if sort and runs and not any(sort in r.data.metrics for r in runs):
        known = sorted({k for r in runs for k in r.data.metrics})
        raise CanonError(f"--sort: no run has a metric '{sort}'; known: {', '.join(known)}")
    return [run_summary(r) for r in runs]


def get_runs(run_ids: Sequence[str], uri: str | None = None) -> list[dict[str, Any]]:
    """The runs ``run_ids`` (MLflow run ids or canon run ids), as ``run_summary`` dicts."""
    if not run_ids:
        raise CanonError("--compare: give one or more run ids (from 'canon runs')")
    with _client(uri) as (client, where):
        return [run_summary(_find_run(client, run_id, where)) for run_id in run_ids]


def run_summary(run: Any) -> dict[str, Any]:
    """One MLflow run as JSON-able data: ids, name, times, status, headline and metrics."""
    info, tags = run.info, run.data.tags
    seconds = (info.end_time - info.start_time) / 1000 if info.end_time else None
    name = tags.get("canon.headline") or task_headline(tags.get("canon.task", ""))
    return {
        "run_id": info.run_id,
        "name": info.run_name or "",
        "canon_run_id": tags.get("canon.run_id"),
        "run_dir": tags.get("canon.run_dir"),
        "task": tags.get("canon.task"),
        "start_time": _iso(info.start_time),
        "status": info.status,
        "duration_s": seconds,
        "headline": name if name in run.data.metrics else None,
        "metrics": dict(sorted(run.data.metrics.items())),
    }


def list_runs(
    uri: str | None = None,
    experiment: str | None = None,
    limit: int = 20,
    sort: str | None = None,
) -> Table:
    """``find_runs`` as the table ``canon runs`` prints."""
    runs = find_runs(uri, experiment, limit, sort)
    return runs_table(runs, experiment_name(experiment), sort)


def compare_runs(run_ids: Sequence[str], uri: str | None = None) -> Table:
    """The metrics of ``run_ids`` side by side (the table of ``canon runs --compare``)."""
    return compare_table(get_runs(run_ids, uri))


def runs_table(runs: Sequence[dict[str, Any]], experiment: str, sort: str | None) -> Table:
    table = Table(
        title=f"runs in experiment '{experiment}'" + (f", best {sort} first" if sort else "")
    )
    for name, justify in (("run id", "left"), ("name", "left"), ("date", "left")):
        table.add_column(name, justify=justify, no_wrap=name == "run id")  # type: ignore[arg-type]
    table.add_column("headline", justify="right")
    if sort:
        table.add_column(sort, justify="right")
    table.add_column("duration", justify="right")
    for r in runs:
        headline = r["headline"]
        shown = f"{headline} {_number(r['metrics'][headline])}" if headline else "—"
        row = [r["run_id"], r["name"], _date(r["start_time"]), shown]
        if sort:
            row.append(_number(r["metrics"].get(sort)))
        table.add_row(*row, _duration(r))
    return table


def compare_table(runs: Sequence[dict[str, Any]]) -> Table:
    names = sorted({k for r in runs for k in r["metrics"]}, key=_metric_order)
    table = Table(title="metrics (last value of each; test metrics first)")
    table.add_column("metric")
    for r in runs:
        table.add_column(f"{r['name']}\n{r['run_id']}", justify="right")
    for name in names:
        table.add_row(name, *(_number(r["metrics"].get(name)) for r in runs))
    table.add_row("duration", *(_duration(r) for r in runs))
    return table


# ---------------------------------------------------------------------------- internals


@contextmanager
def _client(uri: str | None) -> Iterator[tuple[Any, str]]:
    """An ``MlflowClient`` for ``uri``; every failure inside becomes a ``CanonError``."""
    uri = tracking_uri(uri)
    resolved = resolve_uri(uri, Path.cwd())
    path = sqlite_path(resolved)
    if path is not None and not path.is_file():
        raise CanonError(
            f"no tracking database at {path} ('canon run' creates it; "
            "give the store's URI with --uri, as in track.uri)"
        )
    with _env_defaults(_READ_ENV), mlflow_warnings_ignored():
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingExtraError("mlflow", "track") from None
        try:
            yield MlflowClient(tracking_uri=resolved), uri
        except CanonError:
            raise
        except Exception as e:
            raise CanonError(f"cannot read the tracking store {uri}: {describe(e)}") from None


@contextmanager
def _env_defaults(values: dict[str, str]) -> Iterator[None]:
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _find_run(client: Any, run_id: str, where: str) -> Any:
    """A run by MLflow id, else by the canon run id (``YYYYmmdd-HHMMSS-xxxx``) tag."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        pass
    ids = [e.experiment_id for e in client.search_experiments()]
    quoted = run_id.replace("'", "")
    found = (
        client.search_runs(ids, f"tags.`canon.run_id` = '{quoted}'", max_results=1) if ids else []
    )
    if not found:
        raise CanonError(f"--compare: no run '{run_id}' in {where} (see 'canon runs' for ids)")
    return found[0]


def _descending(metric: str) -> bool:
    return not any(word in metric.lower() for word in _LOWER_IS_BETTER)


def _metric_order(name: str) -> tuple[bool, str]:
    return (name == "lr" or name.startswith(("train_", "val_")), name)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _iso(ms: int | None) -> str | None:
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds") if ms else None


def _date(iso: str | None) -> str:
    return iso.replace("T", " ")[:16] if iso else "—"


def _duration(run: dict[str, Any]) -> str:
    status, seconds = run["status"], run["duration_s"]
    if status == "RUNNING" or seconds is None:
        return str(status).lower()
    text = f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return text if status == "FINISHED" else f"{text} ({status.lower()})"
