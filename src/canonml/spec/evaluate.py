"""``evaluate:`` — test-set metrics, bootstrap interval, cross-validation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from canonml.spec.base import StrictModel

# Names of canonml.evaluate.metrics.METRICS per task; a contract test keeps them equal.
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "max_error")
HEADLINE = {"classification": "accuracy", "regression": "r2"}


class EvaluateSpec(StrictModel):
    metrics: list[str] | None = Field(
        None, description="test metrics for metrics.json (default: all for the task)"
    )
    ci: Annotated[int, Field(ge=0, le=100_000)] = Field(
        1000, description="bootstrap resamples for the headline metric's 95% interval (0: off)"
    )
    cv: Annotated[int, Field(ge=2, le=50)] | None = Field(
        None, description="k-fold cross-validation on train+val: k models, mean ± std"
    )
