"""``model:`` — the architecture, as plain data a package can rebuild the model from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from canonml.spec.base import StrictModel

Activation = Literal["relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu", "elu"]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Width = Annotated[int, Field(gt=0)]


class MLPSpec(StrictModel):
    """Dense layers: Linear → [BatchNorm] → activation → Dropout, then a linear head."""

    arch: Literal["mlp"] = "mlp"
    hidden: list[Width] = Field(default_factory=lambda: [128])
    activation: Activation = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False


class CNNSpec(StrictModel):
    """Conv blocks (Conv3×3 → [BatchNorm] → activation, pooled between blocks) → dense head."""

    arch: Literal["cnn"] = "cnn"
    channels: Annotated[list[Width], Field(min_length=1)] = Field(
        default_factory=lambda: [32, 64, 64]
    )
    kernel_size: Annotated[int, Field(gt=0, le=11)] = 3
    pool: Literal["max", "avg", "none"] = "max"
    # Pool after these blocks (1-based); default: every block but the last.
    pool_after: list[Annotated[int, Field(gt=0)]] | None = None
    dense: list[Width] = Field(default_factory=lambda: [64])
    activation: Activation = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False


# Discriminated on ``arch``; a contract test keeps these tags equal to MODELS' names.
ModelSpec = Annotated[MLPSpec | CNNSpec, Field(discriminator="arch")]
