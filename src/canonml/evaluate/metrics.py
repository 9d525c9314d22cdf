"""Test-set metrics, computed with scikit-learn's functions (``METRICS`` registry)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from canonml.registry import Registry

# A metric takes (y_true, y_pred) — class indices or regression values — and returns a float.
Metric = Callable[[np.ndarray, np.ndarray], float]
METRICS: Registry[Metric] = Registry("metric", "evaluate.metrics")


def _sklearn(function: str, **kwargs: Any) -> Metric:
    """A metric that calls ``sklearn.metrics.<function>`` (imported on first use)."""

    def metric(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn import metrics

        return float(getattr(metrics, function)(y_true, y_pred, **kwargs))

    metric.__name__ = function
    return metric


for _name, _metric in {
    "accuracy": _sklearn("accuracy_score"),
    "balanced_accuracy": _sklearn("balanced_accuracy_score"),
    "f1_macro": _sklearn("f1_score", average="macro", zero_division=0),
    "f1_weighted": _sklearn("f1_score", average="weighted", zero_division=0),
    "mse": _sklearn("mean_squared_error"),
    "mae": _sklearn("mean_absolute_error"),
    "r2": _sklearn("r2_score"),
}.items():
    METRICS.register(_name)(_metric)


@METRICS.register("rmse")
def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return math.sqrt(METRICS.get("mse")(y_true, y_pred))


def compute_metrics(names: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{name: value}`` for each requested metric, in the requested order."""
    if len(y_true) == 0:
        return {}
    return {name: METRICS.get(name)(y_true, y_pred) for name in names}
