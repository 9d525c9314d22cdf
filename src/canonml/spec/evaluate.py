"""``evaluate:`` — which test-set metrics go to metrics.json."""

from __future__ import annotations

from pydantic import Field

from canonml.spec.base import StrictModel

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")


class EvaluateSpec(StrictModel):
    metrics: list[str] | None = Field(
        None, description="test metrics for metrics.json (default: all for the task)"
    )
