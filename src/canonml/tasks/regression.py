"""``task: regression`` — a number per example, standardised on train and mapped back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.target import as_numbers
from canonml.model_io import ModelIO
from canonml.spec.data import PreprocessSpec
from canonml.spec.task import RegressionTask
from canonml.tasks import TASKS
from canonml.tasks.base import PlotJob, Predictions, StandardGraphTask, model_outputs

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.spec.root import Spec
    from canonml.train.steps import Augment, Step

NAME = RegressionTask.model_fields["name"].default


def unscale(values: np.ndarray, target: dict[str, float] | None) -> np.ndarray:
    """Standardised targets or outputs back in the data's units."""
    return values if target is None else values * target["scale"] + target["shift"]


@TASKS.register(NAME)
class Regression(StandardGraphTask):
    name = NAME
    spec_class = RegressionTask

    def encode_targets(self, data: Dataset) -> Dataset:
        return as_numbers(data, self.name)

    def fit_target(self, y: np.ndarray, spec: PreprocessSpec) -> dict[str, Any] | None:
        if not spec.scale_target:
            return None
        # Models learn faster on a target near N(0, 1); predictions are mapped back.
        std = float(np.std(y))
        return {"shift": float(np.mean(y)), "scale": std if std > 1e-12 else 1.0}

    def target_array(self, y: np.ndarray, fitted: dict[str, Any] | None) -> np.ndarray:
        if fitted is not None:
            y = (y - fitted["shift"]) / fitted["scale"]
        return y.astype(np.float32, copy=False)

    def model_io(
        self,
        input_shape: tuple[int, ...],
        labels: list[str] | None,
        state: dict[str, Any] | None = None,
    ) -> ModelIO:
        return ModelIO(tuple(input_shape), 1)

    def make_step(self, spec: Spec, model: torch.nn.Module, augment: Augment | None) -> Step:
        from canonml.tasks.steps import RegressionStep

        return RegressionStep(model, spec.train, augment)

    def predict(self, model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
        target = data.preprocess.get("target")
        out = model_outputs(model, split.x)[:, 0]  # (N,)
        return Predictions(unscale(split.y.astype(np.float64), target), unscale(out, target))

    def graph_predictions(
        self, outputs: list[np.ndarray], split: Split, data: Prepared
    ) -> Predictions:
        target = data.preprocess.get("target")
        y = unscale(split.y.astype(np.float64), target)
        return Predictions(y, outputs[0].astype(np.float64))  # the graph's are in units

    def soft_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        import torch

        return torch.nn.functional.mse_loss(student, teacher)  # no temperature for values

    def plots(self, ev: Any, out: Path) -> list[PlotJob]:
        from canonml.evaluate import plots

        if not len(ev.y_true):
            return []
        return [
            (
                "predicted_vs_actual",
                plots.predicted_vs_actual,
                (ev.y_true, ev.y_pred, out / "predicted_vs_actual.png"),
                "Predicted vs actual",
            ),
            (
                "residuals",
                plots.residuals,
                (ev.y_true, ev.y_pred, out / "residuals.png"),
                "Residuals vs predicted",
            ),
        ]

    # ---- the package

    def outputs(self, labels: list[str] | None) -> list[dict[str, Any]]:
        return [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]

    def head(self, out: torch.Tensor, target: dict[str, float] | None) -> Any:
        pred = out[:, 0]  # (B,)
        return pred if target is None else pred * target["scale"] + target["shift"]

    def reference(self, out: np.ndarray, target: dict[str, float] | None) -> list[np.ndarray]:
        return [unscale(out[:, 0], target)]

    def rows(
        self, refs: list[str], outputs: dict[str, np.ndarray], labels: list[str] | None
    ) -> list[dict[str, Any]]:
        return [
            {"input": ref, "prediction": float(v)}
            for ref, v in zip(refs, outputs["prediction"], strict=True)
        ]

    def what_it_does(self, signature: dict[str, Any], target: str | None, inputs: str) -> str:
        return f"predicts {f'`{target}`' if target else 'a number'} from {inputs}"

    def pipeline_tag(self, kind: str) -> str:
        return f"{kind}-{self.name}" if kind == "tabular" else self.name
