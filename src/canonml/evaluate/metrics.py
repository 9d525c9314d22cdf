"""Test-set metrics, computed with scikit-learn's functions (``METRICS`` registry)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from canonml.registry import Registry

# A metric takes (y_true, y_pred) — class indices or regression values — and returns a float.
Metric = Callable[[np.ndarray, np.ndarray], float]
METRICS: Registry[Metric] = Registry("metric", "evaluate.metrics")


@METRICS.register("accuracy")
def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, p))


@METRICS.register("balanced_accuracy")
def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, p))


@METRICS.register("f1_macro")
def _f1_macro(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, p, average="macro", zero_division=0))


@METRICS.register("f1_weighted")
def _f1_weighted(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, p, average="weighted", zero_division=0))


@METRICS.register("mse")
def _mse(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import mean_squared_error

    return float(mean_squared_error(y, p))


@METRICS.register("rmse")
def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return math.sqrt(_mse(y, p))


@METRICS.register("mae")
def _mae(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y, p))


@METRICS.register("r2")
def _r2(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, p))


def compute_metrics(names: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{name: value}`` for each requested metric, in the requested order."""
    if len(y_true) == 0:
        return {}
    return {name: METRICS.get(name)(y_true, y_pred) for name in names}
