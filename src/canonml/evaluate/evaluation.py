"""``Evaluation``: everything the test split says about a model (numbers for files and plots)."""

from __future__ import annotations

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
    headline: str  # "accuracy" (classification) or "r2" (regression)
    interval: tuple[float, float] | None  # bootstrap 95% interval of the headline metric
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None
    label_names: list[str] | None = None
    per_class: list[dict[str, Any]] = field(default_factory=list)  # precision/recall/f1/support
    confusion: list[list[int]] | None = None
    cv: dict[str, Any] | None = None  # {"folds": k, "metrics": {name: {"mean", "std", "values"}}}

    def summary(self) -> dict[str, Any]:
        """JSON-able form for ``evaluation.json`` (no per-example arrays)."""
        return {
            "task": self.task,
            "headline": self.headline,
            "interval": list(self.interval) if self.interval else None,
            "metrics": self.metrics,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "label_names": self.label_names,
            "cv": self.cv,
        }
