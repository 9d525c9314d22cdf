"""``Spec``: the whole spec, its top-level keys and the cross-section rules."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from canonml.spec.base import StrictModel
from canonml.spec.data import DataSpec
from canonml.spec.evaluate import EvaluateSpec
from canonml.spec.license import HELP, normalize_license
from canonml.spec.model import MLPSpec, ModelSpec
from canonml.spec.task import TASK_VARIANTS, ClassificationTask, Task, task_class, task_name
from canonml.spec.track import Track, TrackSpec
from canonml.spec.train import TrainSpec


class Spec(StrictModel):
    """One run: data → model → training → evaluation, tracked."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)] = Field(
        description="run and package name: lower-case letters, digits and '-'"
    )
    task: Task = Field(default_factory=ClassificationTask)
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

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """Fill the defaults that depend on the task, once, before anything is validated:
        ``evaluate.metrics`` (all of the task's), ``data.split.stratify`` (by class for
        classification) and ``data.preprocess.scale`` where the task has its own. A
        value the user gave is never rewritten; the rules check it."""
        if not isinstance(raw, dict):
            return raw
        variant = task_class(task_name(raw.get("task")))
        if variant is None:
            return raw  # the task field reports the unknown name
        raw = dict(raw)
        evaluate = raw.get("evaluate")
        if isinstance(evaluate, dict | type(None)) and (evaluate or {}).get("metrics") is None:
            raw["evaluate"] = {**(evaluate or {}), "metrics": list(variant.metrics)}
        data = raw.get("data")
        split = data.get("split") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(split, dict | type(None)):
            if (split or {}).get("stratify") is None:
                raw["data"] = data = {
                    **data,
                    "split": {**(split or {}), "stratify": variant.stratify},
                }
        pre = data.get("preprocess") if isinstance(data, dict) else None
        if variant.scale and isinstance(data, dict) and isinstance(pre, dict | type(None)):
            if (pre or {}).get("scale") is None:  # a reconstruction's [0, 1] inputs
                raw["data"] = {**data, "preprocess": {**(pre or {}), "scale": variant.scale}}
        return variant.raw_defaults(raw)

    @model_validator(mode="after")
    def _cross_section(self) -> Spec:
        task = self.task
        for i, m in enumerate(self.evaluate.metrics or []):
            if m not in task.metrics:
                raise _at(
                    f"evaluate.metrics[{i}]",
                    f"'{m}' is not a {task.name} metric; known: {', '.join(task.metrics)}",
                )
        loss = self.train.loss
        if loss != "auto" and loss not in task.losses:
            owner = next((v for v in TASK_VARIANTS if loss in v.losses), None)
            needs = f" needs task: {owner.model_fields['name'].default};" if owner else ":"
            raise _at("train.loss", f"{loss}{needs} use {' or '.join((*task.losses, 'auto'))}")
        if self.data.split.stratify and not task.stratify:
            raise _at(
                "data.split.stratify",
                f"task {task.name} has no classes to stratify the split by; set it to false "
                "or leave it out",
            )
        arch = self.model.arch
        if arch not in task.archs:
            owner = next((v for v in TASK_VARIANTS if arch in v.archs), None)
            other = f"a {owner.model_fields['name'].default} model; " if owner else ""
            raise _at(
                "model.arch",
                f"{arch} is {other}task {task.name} trains {', '.join(task.archs)}"
                + (f" (or set task: {owner.model_fields['name'].default})" if owner else ""),
            )
        if self.evaluate.anomaly is not None and not task.scores_anomalies:
            raise _at(
                "evaluate.anomaly",
                f"anomaly detection scores reconstruction error; task {task.name} has none "
                "(use task: reconstruction)",
            )
        if self.data.scheme == "csv" and task.needs_target and not self.data.target:
            raise _at("data.target", "a csv source needs the target column's name")
        problem = task.cross_check(self)
        if problem is not None:
            raise _at(*problem)
        return self


class CrossFieldError(ValueError):
    """A rule across sections; ``path`` says where the problem is."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def _at(path: str, message: str) -> CrossFieldError:
    return CrossFieldError(path, message)
