"""``Evaluation``: everything the test split says about a model (numbers for files and plots)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Evaluation:
    """Test-set results of one model.

    ``metrics`` holds every metric of the task; ``selected`` the ones ``evaluate.metrics``
    sends to ``metrics.json``. Arrays are kept for plots: ``y_true``/``y_pred`` as class
    indices (classification) or values in the data's units (regression); ``proba`` ``(N, K)``.
    """

    task: str
    metrics: dict[str, float]
    selected: dict[str, float]
    headline: str  # the task's headline metric
    interval: tuple[float, float] | None  # bootstrap 95% interval of the headline metric
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None
    label_names: list[str] | None = None
    per_class: list[dict[str, Any]] = field(default_factory=list)  # precision/recall/f1/support
    confusion: list[list[int]] | None = None
    cv: dict[str, Any] | None = None  # {"folds": k, "metrics": {name: {"mean", "std", "values"}}}
    extra: dict[str, Any] = field(default_factory=dict)  # what the task's report shows besides

    def summary(self) -> dict[str, Any]:
        """JSON-able form for ``evaluation.json`` (no per-example arrays); a task's
        ``extra["details"]`` (what reproduces its numbers) as ``details``."""
        summary = {
            "task": self.task,
            "headline": self.headline,
            "interval": list(self.interval) if self.interval else None,
            "metrics": _finite(self.metrics),
            "per_class": self.per_class,
            "confusion": self.confusion,
            "label_names": self.label_names,
            "cv": _finite(self.cv),
        }
        if "details" in self.extra:
            summary["details"] = _finite(self.extra["details"])
        return summary


def _finite(value: Any) -> Any:
    """JSON has no NaN: a metric undefined on a split (ROC AUC with one class) becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
