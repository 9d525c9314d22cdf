"""``privacy:`` — differentially private training (DP-SGD with Opacus).

The noise multiplier is derived from the target ε for the configured steps and sample rate;
the ε actually spent (less when a run stops early) is what the run records.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from canonml.spec.base import StrictModel


class DPSpec(StrictModel):
    """DP-SGD: per-example clipping to ``max_grad_norm`` and Gaussian noise, Poisson-sampled
    batches (each example in a batch with probability batch_size / N), and an accountant."""

    epsilon: Annotated[float, Field(gt=0.0)] = Field(
        description="the privacy budget ε for the whole training (smaller: more private)",
        examples=[3.0],
    )
    delta: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        None,
        description="δ; must be below 1/N (N: training examples). Default: the smaller of "
        "1e-5 and 1/(10 N)",
    )
    max_grad_norm: Annotated[float, Field(gt=0.0)] = Field(
        1.0, description="each example's gradient is clipped to this L2 norm (C)"
    )
    accountant: Literal["rdp", "prv"] = Field(
        "rdp", description="Opacus' privacy accountant: rdp (Rényi DP) or prv (tighter)"
    )
    strict: bool = Field(
        False,
        description="stop with an error instead of replacing layers DP-SGD cannot train "
        "(BatchNorm mixes examples; it becomes GroupNorm, with a warning, when false)",
    )

    @property
    def is_private(self) -> bool:
        return math.isfinite(self.epsilon)


class PrivacySpec(StrictModel):
    """What protects the training data."""

    dp: DPSpec | None = Field(None, description="differentially private training (DP-SGD)")


def default_delta(n: int) -> float:
    """δ when the spec leaves it out: below 1/N with room to spare."""
    return min(1e-5, 1.0 / (10 * max(n, 1)))


class AuditSpec(StrictModel):
    """A membership-inference audit of the trained model (``canonml.evaluate.audit``)."""

    shadows: Annotated[int, Field(ge=0, le=32)] = Field(
        4,
        description="shadow models for the LiRA-style attack, trained by the same spec on data "
        "disjoint from the audited examples (0: the loss attack alone)",
    )
    resamples: Annotated[int, Field(ge=0, le=10_000)] = Field(
        200, description="bootstrap resamples for each attack's AUC interval"
    )
    examples: Annotated[int, Field(ge=20)] = Field(
        2000, description="at most this many members and as many non-members are scored"
    )
