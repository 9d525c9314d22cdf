"""``search:`` — hyper-parameter search with Optuna over any spec values
(``canonml.search``): one objective with pruning of unpromising trials, or several
(a Pareto front to pick a trial from)."""

from __future__ import annotations

import builtins
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from canonml.spec.base import StrictModel

Direction = Literal["maximize", "minimize"]
StrictInt = Annotated[builtins.int, Field(strict=True)]
# Measures of a trained trial besides its history's metrics (val_accuracy, val_loss, ...).
MEASURES = ("latency_ms", "parameters")


class Distribution(StrictModel):
    """Exactly one of: ``loguniform: [lo, hi]``, ``uniform: [lo, hi]``, ``int: [lo, hi]``
    (whole numbers, both ends included) or ``choice: [a, b, ...]`` (any spec values)."""

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int: tuple[StrictInt, StrictInt] | None = None  # noqa: A003  # the spec's word
    choice: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [
            k for k in ("loguniform", "uniform", "int", "choice") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of loguniform: [lo, hi], uniform: [lo, hi], int: [lo, hi] "
                f"or choice: [...], got {given or 'none'}"
            )
        kind = given[0]
        if kind != "choice":
            lo, hi = getattr(self, kind)
            if not lo < hi:
                raise ValueError(
                    f"{kind}: the low end must be below the high end, got [{lo}, {hi}]"
                )
            if kind == "loguniform" and lo <= 0:
                raise ValueError(f"loguniform: both ends must be > 0, got [{lo}, {hi}]")
        return self

    @property
    def kind(self) -> str:
        return next(
            k for k in ("loguniform", "uniform", "int", "choice") if getattr(self, k) is not None
        )

    def first(self) -> Any:
        """A value the distribution can give (to check the spec path before searching)."""
        return self.choice[0] if self.choice is not None else getattr(self, self.kind)[0]


class Objective(StrictModel):
    metric: str = Field(
        description="a logged metric (val_accuracy, val_loss, val_r2, ...; its value at the "
        "epoch the model ends with) or latency_ms (the exported ONNX graph at batch 1) "
        "or parameters"
    )
    direction: Direction | Literal["auto"] = "auto"


class SearchSpec(StrictModel):
    """Optuna over ``params`` (spec paths → distributions); the best spec is trained as the
    final run."""

    trials: Annotated[int, Field(ge=1, le=100_000)] = 20
    metric: str = Field(
        "auto",
        description="what a trial is scored by (its value at the epoch the model ends with: "
        "the last, or the one early stopping restored): auto is the task's headline on the "
        "validation split (val_accuracy, val_r2, ...)",
    )
    direction: Direction | Literal["auto"] = Field(
        "auto", description="auto: maximize a score, minimize a loss, error, latency or size"
    )
    objectives: Annotated[list[Objective], Field(min_length=2)] | None = Field(
        None,
        description="several objectives instead of metric/direction: the trials' Pareto "
        "front is plotted and tabled, and canon search --pick N trains trial N",
    )
    params: Annotated[dict[str, Distribution], Field(min_length=1)] = Field(
        description="dotted spec paths (train.optimizer.lr, model.hidden, ...) to their "
        "distributions"
    )
    pruner: Literal["auto", "median", "hyperband", "none"] = Field(
        "auto",
        description="stop unpromising trials early from their per-epoch metric; auto: median "
        "for one objective, none for several (Optuna cannot prune those)",
    )
    sampler: Literal["tpe", "random"] = "tpe"
    startup_trials: Annotated[int, Field(ge=0, le=10_000)] = Field(
        5, description="trials before the pruner and TPE start to act (random ones)"
    )
    warmup_epochs: Annotated[int, Field(ge=0)] = Field(
        5, description="epochs of a trial before the pruner may stop it"
    )

    @field_validator("params")
    @classmethod
    def _paths(cls, value: dict[str, Distribution]) -> dict[str, Distribution]:
        for path in value:
            if path.split(".")[0] in ("name", "search", "track", "seed"):
                raise ValueError(f"{path}: the search cannot vary this key")
        return value

    @model_validator(mode="after")
    def _pruning(self) -> SearchSpec:
        if self.objectives is not None and self.pruner not in ("auto", "none"):
            raise ValueError(
                "pruner: Optuna prunes single-objective studies only; with objectives use "
                "pruner: none (or auto)"
            )
        return self

    def goals(self, headline: str, maximise: bool) -> list[tuple[str, str]]:
        """(metric, direction) of every objective, with the autos resolved."""
        raw = self.objectives or [Objective(metric=self.metric, direction=self.direction)]
        out: list[tuple[str, str]] = []
        for o in raw:
            metric = f"val_{headline}" if o.metric == "auto" else o.metric
            direction = o.direction
            if direction == "auto":
                lower = metric in MEASURES or any(
                    w in metric for w in ("loss", "error", "mse", "mae")
                )
                headline_min = metric == f"val_{headline}" and not maximise
                direction = "minimize" if lower or headline_min else "maximize"
            out.append((metric, direction))
        return out
