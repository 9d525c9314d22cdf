"""Test-set metrics, computed with scikit-learn's functions (``METRICS`` registry)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from canonml.registry import Registry

# A metric takes (y_true, y_pred, proba): class indices or regression values, and (N, K)
# class probabilities (None for regression); it returns a float (NaN where undefined).
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]
METRICS: Registry[Metric] = Registry("metric", "evaluate.metrics")


def _sklearn(function: str, **kwargs: Any) -> Metric:
    """A metric that calls ``sklearn.metrics.<function>(y_true, y_pred)``."""

    def metric(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
        from sklearn import metrics

        return float(getattr(metrics, function)(y_true, y_pred, **kwargs))

    metric.__name__ = function
    return metric


for _name, _metric in {
    "accuracy": _sklearn("accuracy_score"),
    "balanced_accuracy": _sklearn("balanced_accuracy_score"),
    "precision_macro": _sklearn("precision_score", average="macro", zero_division=0),
    "recall_macro": _sklearn("recall_score", average="macro", zero_division=0),
    "f1_macro": _sklearn("f1_score", average="macro", zero_division=0),
    "precision_weighted": _sklearn("precision_score", average="weighted", zero_division=0),
    "recall_weighted": _sklearn("recall_score", average="weighted", zero_division=0),
    "f1_weighted": _sklearn("f1_score", average="weighted", zero_division=0),
    "mse": _sklearn("mean_squared_error"),
    "mae": _sklearn("mean_absolute_error"),
    "r2": _sklearn("r2_score"),
    "max_error": _sklearn("max_error"),
}.items():
    METRICS.register(_name)(_metric)


@METRICS.register("rmse")
def _rmse(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    return math.sqrt(METRICS.get("mse")(y_true, y_pred, proba))


@METRICS.register("roc_auc")
def _roc_auc(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """Binary: AUC of the positive class; multi-class: one-vs-rest macro over present classes."""
    from sklearn.metrics import roc_auc_score

    if proba is None:
        return math.nan
    if proba.shape[1] == 2:
        both = len(np.unique(y_true)) == 2
        return float(roc_auc_score(y_true, proba[:, 1])) if both else math.nan
    scores = [
        roc_auc_score(y_true == k, proba[:, k])
        for k in range(proba.shape[1])
        if 0 < (y_true == k).sum() < len(y_true)
    ]
    return float(np.mean(scores)) if scores else math.nan


@METRICS.register("log_loss")
def _log_loss(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    from sklearn.metrics import log_loss

    if proba is None:
        return math.nan
    return float(log_loss(y_true, proba, labels=list(range(proba.shape[1]))))


# Metrics over many bootstrap resamples at once: ``fn(y_true, y_pred, idx)`` with ``idx``
# ``(R, N)`` row indices returns ``(R,)`` values, equal to ``METRICS[name]`` on each row of idx.
Batched = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
BATCHED: dict[str, Batched] = {}


def _batched_accuracy(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    hit = (y_true == y_pred).astype(np.float64)
    return hit[idx].mean(axis=1)


def _batched_r2(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    # sklearn's r2_score with force_finite: a constant resample scores 1.0 if it is predicted
    # exactly, else 0.0.
    t, p = y_true.astype(np.float64)[idx], y_pred.astype(np.float64)[idx]  # (R, N)
    residual = ((t - p) ** 2).sum(axis=1)
    total = ((t - t.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - residual / total
    return np.where(total != 0, r2, np.where(residual == 0, 1.0, 0.0))


def _batched_mse(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    error = (y_true.astype(np.float64) - y_pred.astype(np.float64)) ** 2
    return error[idx].mean(axis=1)


BATCHED.update(accuracy=_batched_accuracy, r2=_batched_r2, mse=_batched_mse)


def compute_metrics(
    names: list[str] | tuple[str, ...],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
) -> dict[str, float]:
    """``{name: value}`` for each requested metric, in the requested order."""
    if len(y_true) == 0:
        return {}
    return {name: METRICS.get(name)(y_true, y_pred, proba) for name in names}
