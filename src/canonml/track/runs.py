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
from canonml.track.record import HEADLINES
from canonml.track.store import describe, mlflow_warnings_ignored, resolve_uri, sqlite_path

DEFAULT_URI = "sqlite:///mlruns.db"
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse")
# Reading should fail fast: against a server that is down MLflow retries for minutes.
_READ_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def list_runs(
    uri: str = DEFAULT_URI,
    experiment: str = "canon",
    limit: int = 20,
    sort: str | None = None,
) -> Table:
    """The ``limit`` most recent runs of ``experiment`` (or the best by metric ``sort``).

    Raises ``CanonError`` for a missing store or experiment, an unknown ``sort`` metric or a
    store that cannot be read.
    """
    if limit < 1:
        raise CanonError(f"--limit: must be >= 1, got {limit}")
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
    return _runs_table(runs, experiment, sort)


def compare_runs(run_ids: Sequence[str], uri: str = DEFAULT_URI) -> Table:
    """The metrics of ``run_ids`` (MLflow run ids or canon run ids) side by side."""
    if not run_ids:
        raise CanonError("--compare: give one or more run ids (from 'canon runs')")
    with _client(uri) as (client, where):
        runs = [_find_run(client, run_id, where) for run_id in run_ids]
    names = sorted({k for r in runs for k in r.data.metrics}, key=_metric_order)
    table = Table(title="metrics (last value of each; test metrics first)")
    table.add_column("metric")
    for r in runs:
        table.add_column(f"{r.info.run_name}\n{r.info.run_id}", justify="right")
    for name in names:
        table.add_row(name, *(_number(r.data.metrics.get(name)) for r in runs))
    table.add_row("duration", *(_duration(r) for r in runs))
    return table


# ---------------------------------------------------------------------------- internals


@contextmanager
def _client(uri: str) -> Iterator[tuple[Any, str]]:
    """An ``MlflowClient`` for ``uri``; every failure inside becomes a ``CanonError``."""
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


def _runs_table(runs: Sequence[Any], experiment: str, sort: str | None) -> Table:
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
        row = [r.info.run_id, r.info.run_name or "", _date(r.info.start_time), _headline(r)]
        if sort:
            row.append(_number(r.data.metrics.get(sort)))
        table.add_row(*row, _duration(r))
    return table


def _headline(run: Any) -> str:
    name = run.data.tags.get("canon.headline") or HEADLINES.get(run.data.tags.get("canon.task", ""))
    if not name or name not in run.data.metrics:
        return "—"
    return f"{name} {_number(run.data.metrics[name])}"


def _descending(metric: str) -> bool:
    return not any(word in metric.lower() for word in _LOWER_IS_BETTER)


def _metric_order(name: str) -> tuple[bool, str]:
    return (name == "lr" or name.startswith(("train_", "val_")), name)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _date(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M") if ms else "—"


def _duration(run: Any) -> str:
    status = run.info.status
    if status == "RUNNING" or not run.info.end_time:
        return status.lower()
    seconds = (run.info.end_time - run.info.start_time) / 1000
    text = f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return text if status == "FINISHED" else f"{text} ({status.lower()})"
