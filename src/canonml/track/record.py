"""What a finished run sends to the tracker: params, metrics, tags — built purely from values.

MLflow's limits shape it: a param value holds at most 6000 characters, a key 250, and keys
use letters, digits and ``_-. :/`` only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonml.spec.task import task_class, task_name

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
NOT_METRICS = ("epoch", "seconds")  # history columns that are the step or wall time


@dataclass
class RunRecord:
    """One finished run, ready to log.

    ``history`` holds the per-epoch rows (``epoch`` is the step), ``metrics`` exactly
    ``metrics.json``, ``artifact_dir`` the run directory (everything but ``checkpoints/``).
    """

    name: str
    params: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifact_dir: Path | None = None


def run_record(
    spec: Mapping[str, Any],
    run_dir: str | Path,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, float],
    *,
    fingerprint: str | None = None,
) -> RunRecord:
    """The record of a run from its resolved spec (``spec.model_dump(mode="json")``)."""
    from canonml import __version__

    path = Path(run_dir).resolve()
    task = task_name(spec.get("task"))
    tags = {
        "canon.task": task,
        "canon.version": __version__,
        "canon.run_dir": str(path),
        "canon.run_id": path.name,
        "canon.headline": headline(task, metrics),
    }
    if fingerprint:
        tags["canon.fingerprint"] = fingerprint
    return RunRecord(
        name=f"{spec.get('name', 'run')}-{path.name}",
        params=flatten_params(spec),
        history=[dict(row) for row in history],
        metrics={k: float(v) for k, v in metrics.items()},
        tags={k: v[:MAX_TAG_VALUE] for k, v in tags.items() if v},
        artifact_dir=path,
    )


def model_message(
    package_dir: str | Path, example: list[Any] | None, register: str | None
) -> dict[str, Any]:
    """What the worker needs to log a package as the run's MLflow model."""
    return {
        "package_dir": str(Path(package_dir).resolve()),
        "example": example,
        "register": register,
    }


def headline(task: str, metrics: Mapping[str, float]) -> str:
    """The one metric a runs table shows: the task's headline, or else the first there is."""
    preferred = task_headline(task)
    if preferred in metrics or not metrics:
        return preferred or ""
    return next(iter(metrics))


def task_headline(task: Any) -> str | None:
    """The headline metric of a task (a name or a spec's task value), if it is known."""
    variant = task_class(task_name(task))
    return variant.headline if variant is not None else None


def flatten_params(spec: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"optimizer": {"lr": 0.001}}}`` → ``{"train.optimizer.lr": "0.001"}``.

    Lists and scalars other than strings are written as JSON (``[128]``, ``true``, ``null``).
    """
    out: dict[str, str] = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[clean_key(name)] = text[:MAX_PARAM_VALUE]
    return out


def clean_key(key: str) -> str:
    """A key MLflow accepts: other characters become ``_``, at most 250 of them."""
    return re.sub(r"[^\w\-. :/]", "_", key)[:MAX_KEY] or "_"


def history_metrics(
    rows: Iterable[Mapping[str, Any]], start_ms: int
) -> list[tuple[str, float, int, int]]:
    """Per-epoch ``(key, value, timestamp_ms, step)`` for every numeric column of ``rows``.

    ``step`` is the row's ``epoch``; timestamps add each row's ``seconds`` to ``start_ms``.
    """
    out: list[tuple[str, float, int, int]] = []
    elapsed = 0.0
    for i, row in enumerate(rows, start=1):
        step = _int(row.get("epoch"), i)
        seconds: Any = row.get("seconds")
        if _is_number(seconds):
            elapsed += float(seconds)
        stamp = start_ms + int(elapsed * 1000)
        for key, value in row.items():
            if key not in NOT_METRICS and _is_number(value):
                out.append((clean_key(key), float(value), stamp, step))
    return out


def final_metrics(metrics: Mapping[str, float], now_ms: int) -> list[tuple[str, float, int, int]]:
    """``metrics.json`` as ``(key, value, timestamp_ms, 0)``."""
    return [(clean_key(k), float(v), now_ms, 0) for k, v in metrics.items() if _is_number(v)]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        float(value)  # history.csv rows read back hold strings
    except ValueError:
        return False
    return True


def _int(value: Any, default: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return int(number) if math.isfinite(number) else default
