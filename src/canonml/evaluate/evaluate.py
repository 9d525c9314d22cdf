"""Evaluate a trained model on a split: predictions, every metric, interval, per-class table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.evaluate.evaluation import Evaluation
from canonml.evaluate.metrics import BATCHED, METRICS
from canonml.spec.root import Spec
from canonml.tasks import get_task
from canonml.tasks.base import Predictions, Task

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split


def evaluate_model(
    spec: Spec,
    task: Task,
    model: torch.nn.Module,
    data: Prepared,
    split: Split | None = None,
    ci: int | None = None,
) -> Evaluation:
    """Every metric of the task on ``split`` (default: the test split).

    ``ci`` overrides ``evaluate.ci`` (bootstrap resamples; 0 turns the interval off).
    """
    split = split if split is not None else data.test
    predicted = task.predict(model, split, data)
    resamples = spec.evaluate.ci if ci is None else ci
    return evaluation_from(spec, predicted, data.label_names, resamples)


def evaluation_from(
    spec: Spec, predicted: Predictions, label_names: list[str] | None, resamples: int
) -> Evaluation:
    """Build an ``Evaluation`` from a task's predictions (pure)."""
    facts = spec.task
    y_true, y_pred, proba = predicted.y_true, predicted.y_pred, predicted.proba
    task = get_task(facts)
    metrics = task.score(facts.metrics, predicted)
    chosen = spec.evaluate.metrics or list(facts.metrics)
    selected = {k: metrics[k] for k in chosen if k in metrics}
    ev = Evaluation(
        task=facts.name,
        metrics=metrics,
        selected={k: v for k, v in selected.items() if math.isfinite(v)},
        headline=facts.headline,
        interval=task.interval(facts.headline, predicted, resamples, spec.seed),
        y_true=y_true,
        y_pred=y_pred,
        proba=proba,
        label_names=label_names,
        extra=predicted.extra or {},
    )
    if proba is not None and label_names:
        ev.per_class, ev.confusion = _per_class(y_true, y_pred, label_names)
    return ev


def bootstrap(
    metric: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    resamples: int,
    seed: int,
) -> tuple[float, float] | None:
    """95% percentile interval of ``metric`` over ``resamples`` bootstrap resamples.

    Resample ``r`` is ``rng.integers(0, n, n)``, the r-th draw of ``default_rng(seed)``.
    Metrics in ``BATCHED`` score many resamples in one numpy pass (chunks of about 4 M
    indices, so a large test split does not hold every resample at once); others call the
    scikit-learn metric once per resample.
    """
    n = len(y_true)
    if resamples == 0 or n < 2:
        return None
    rng = np.random.default_rng(seed)
    batched = BATCHED.get(metric)
    values = np.empty(resamples)
    chunk = max(1, (1 << 22) // n) if batched is not None else 1
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = np.stack([rng.integers(0, n, n) for _ in range(start, stop)])  # (R, N)
        if batched is not None:
            values[start:stop] = batched(y_true, y_pred, idx)
        else:
            fn, rows = METRICS.get(metric), idx[0]
            values[start] = fn(y_true[rows], y_pred[rows], None if proba is None else proba[rows])
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def _per_class(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    rows = [
        {
            "label": name,
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(label_names)
    ]
    return rows, confusion_matrix(y_true, y_pred, labels=labels).tolist()
