"""``Spec``: the whole spec, its top-level keys and the cross-section rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from canonml.spec.base import StrictModel
from canonml.spec.data import DataSpec
from canonml.spec.evaluate import CLASSIFICATION_METRICS, REGRESSION_METRICS, EvaluateSpec
from canonml.spec.license import HELP, normalize_license
from canonml.spec.model import MLPSpec, ModelSpec
from canonml.spec.track import Track, TrackSpec
from canonml.spec.train import TrainSpec

Task = Literal["classification", "regression"]


class Spec(StrictModel):
    """One run: data → model → training → evaluation, tracked."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)] = Field(
        description="run and package name: lower-case letters, digits and '-'"
    )
    task: Task = "classification"
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    license: str | None = Field(
        None,
        description=f"the model's license for its card and manifest: {HELP}; "
        "unset means the card says it was not specified",
    )
    data: DataSpec
    model: ModelSpec = Field(default_factory=lambda: MLPSpec())
    train: TrainSpec = Field(default_factory=lambda: TrainSpec())
    evaluate: EvaluateSpec = Field(default_factory=lambda: EvaluateSpec())
    track: Track = Field(default_factory=lambda: TrackSpec())

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str | None) -> str | None:
        return None if value is None else normalize_license(value)

    @model_validator(mode="after")
    def _cross_section(self) -> Spec:
        known = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        if self.evaluate.metrics is None:
            self.evaluate.metrics = list(known)
        for i, m in enumerate(self.evaluate.metrics):
            if m not in known:
                raise _at(
                    f"evaluate.metrics[{i}]",
                    f"'{m}' is not a {self.task} metric; known: {', '.join(known)}",
                )
        loss = self.train.loss
        if self.task == "classification" and loss not in ("auto", "cross_entropy"):
            raise _at("train.loss", f"'{loss}' is a regression loss; use cross_entropy or auto")
        if self.task == "regression":
            if loss == "cross_entropy":
                raise _at("train.loss", "cross_entropy needs task: classification; use mse")
            if self.data.split.stratify:
                self.data.split.stratify = False  # a continuous target has no strata
        if self.data.scheme == "csv" and not self.data.target:
            raise _at("data.target", "a csv source needs the target column's name")
        return self


class CrossFieldError(ValueError):
    """A rule across sections; ``path`` says where the problem is."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def _at(path: str, message: str) -> CrossFieldError:
    return CrossFieldError(path, message)
