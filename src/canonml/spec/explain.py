"""``explain:`` — attributions of the trained model's predictions (Captum), with two checks
that say whether they can be trusted (``canonml.evaluate.explain``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from canonml.spec.base import StrictModel

METHODS = ("integrated_gradients", "saliency", "gradient_shap", "occlusion")
Method = Literal["integrated_gradients", "saliency", "gradient_shap", "occlusion"]
Baseline = Literal["zeros", "mean"]


class ExplainSpec(StrictModel):
    """Which attribution method, for how many shown examples, against which baseline."""

    method: Method = Field(
        "integrated_gradients",
        description="Captum's method: integrated_gradients, saliency (|gradient|), "
        "gradient_shap or occlusion (gradient-free)",
    )
    samples: Annotated[int, Field(ge=1, le=64)] = Field(
        8, description="test examples shown in the report (some wrong, most right)"
    )
    baseline: Baseline = Field(
        "zeros",
        description="what a removed input becomes: zeros (of the model's scaled input: a "
        "feature's mean under standard scaling, black under min-max) or mean (the training "
        "mean of each input)",
    )
    steps: Annotated[int, Field(ge=2, le=1024)] = Field(
        32, description="integration steps (integrated_gradients) or samples (gradient_shap)"
    )
    window: Annotated[int, Field(ge=1, le=64)] = Field(
        2, description="occlusion: the side of the square patch in pixels (tables: 1 feature)"
    )
    checks: Annotated[int, Field(ge=10, le=10_000)] = Field(
        200,
        description="test examples the deletion test and the randomisation check use",
    )
