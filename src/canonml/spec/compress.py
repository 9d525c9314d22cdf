"""``compress:`` — smaller or faster variants of the trained model, each measured against it
(``canonml.compress``): pruning, int8 quantisation of the ONNX graph, distillation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from canonml.spec.base import StrictModel
from canonml.spec.model import ModelSpec


class PruneSpec(StrictModel):
    """Magnitude pruning of the weights (``torch.nn.utils.prune``), made permanent."""

    amount: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.5, description="the share of weights (or, structured, of units and channels) removed"
    )
    structured: bool = Field(
        False,
        description="false: global unstructured pruning (zeros: the stored file keeps its "
        "size, only its zipped size shrinks); true: whole units and conv channels are "
        "removed (L1 norm per layer), so the model itself is smaller (mlp, cnn)",
    )
    epochs: Annotated[int, Field(ge=0, le=1000)] = Field(
        2, description="fine-tuning epochs after pruning (the mask held fixed); 0: none"
    )

    @property
    def name(self) -> str:
        """The variant's name: ``pruned-50``, ``pruned-structured-50``."""
        return f"pruned{'-structured' if self.structured else ''}-{round(self.amount * 100):g}"


class QuantizeSpec(StrictModel):
    """ONNX Runtime int8 quantisation of the exported graph."""

    mode: Literal["auto", "static", "dynamic"] = Field(
        "auto",
        description="static: QDQ int8 with activation ranges calibrated on the train split "
        "(what convolutions need); dynamic: int8 weights of the dense layers, activations "
        "quantised at run time; auto: static when the graph has convolutions, else dynamic",
    )
    calibration: Annotated[int, Field(ge=8, le=100_000)] = Field(
        256, description="training examples the static ranges are calibrated on"
    )


class DistillSpec(StrictModel):
    """Knowledge distillation (Hinton et al. 2015) into a smaller student."""

    student: ModelSpec = Field(description="the student's model section (arch, sizes)")
    temperature: Annotated[float, Field(gt=0.0, le=100.0)] = 4.0
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.7,
        description="the weight of the soft-target loss (T²·KL to the teacher's softened "
        "outputs); 1 − alpha weighs the loss on the true labels",
    )
    epochs: Annotated[int, Field(gt=0, le=100_000)] | None = Field(
        None, description="the student's epochs (default: train.epochs)"
    )
    baseline: bool = Field(
        True, description="also train the same student alone, for the comparison"
    )


class CompressSpec(StrictModel):
    """Which variants to make; each becomes a package under ``compressed/`` and a row of
    ``compression.json`` (sizes, non-zero parameters, latency, test metric)."""

    prune: list[PruneSpec] = Field(
        default_factory=list,
        description="one pruning (amount, or its settings) or a list of them, each a variant",
    )
    quantize: QuantizeSpec | None = None
    distill: DistillSpec | None = None
    repeats: Annotated[int, Field(ge=3, le=10_000)] = Field(
        100, description="timed runs per latency and round (the median is reported)"
    )
    threads: Annotated[int, Field(ge=1, le=256)] = Field(
        1, description="ONNX Runtime intra-op threads for the latency measurements"
    )

    @field_validator("quantize", mode="before")
    @classmethod
    def _int8(cls, value: Any) -> Any:
        if value == "int8" or value is True:
            return {}
        if isinstance(value, str):
            raise ValueError(f"must be int8 or {{mode: auto|static|dynamic}}, got {value!r}")
        return None if value is False else value

    @field_validator("prune", mode="before")
    @classmethod
    def _prunings(cls, value: Any) -> Any:
        if value is None or value is False:
            return []
        items = value if isinstance(value, list) else [value]
        return [
            {"amount": v} if isinstance(v, int | float) and not isinstance(v, bool) else v
            for v in items
        ]

    @property
    def variants(self) -> list[str]:
        """The variants asked for, in the table's order."""
        out = [p.name for p in self.prune]
        if self.quantize is not None:
            out.append("int8")
        if self.distill is not None:
            out.append("distilled")
        return out
