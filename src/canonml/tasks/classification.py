"""``task: classification`` — class labels; softmax probabilities and the argmax label."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.model_io import ModelIO
from canonml.spec.task import ClassificationTask
from canonml.tasks import TASKS
from canonml.tasks import text_classification as text
from canonml.tasks.base import (
    LabelTargets,
    PlotJob,
    Predictions,
    StandardGraphTask,
    model_outputs,
    softmax,
)

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.rundir import RunDir
    from canonml.spec.root import Spec
    from canonml.train.callbacks import Callback
    from canonml.train.steps import Augment, Step

# Triton's name for its classification extension (top-K "score:index:label" strings), which
# canon serve implements for this task's probabilities output.
SERVE_EXTENSION = ClassificationTask.model_fields["name"].default
TOLERANCE = 1e-4  # canon verify's closeness, for telling near-ties from wrong labels


@TASKS.register(ClassificationTask.model_fields["name"].default)
class Classification(LabelTargets, StandardGraphTask):
    name = ClassificationTask.model_fields["name"].default
    spec_class = ClassificationTask

    # Text (token ids) differs from rows and images in each method below that branches on
    # the data's kind; canonml.tasks.text_classification holds those parts.

    def model_io(
        self,
        input_shape: tuple[int, ...],
        labels: list[str] | None,
        state: dict[str, Any] | None = None,
    ) -> ModelIO:
        io = super().model_io(input_shape, labels, state)
        if state and state.get("kind") == "text":
            return ModelIO(io.input_shape, io.n_outputs, io.n_classes, int(state["pad_id"]))
        return io

    def make_step(self, spec: Spec, model: torch.nn.Module, augment: Augment | None) -> Step:
        if spec.data.is_text_source:
            return text.make_step(spec, model)
        from canonml.tasks.steps import ClassificationStep

        return ClassificationStep(model, spec.train, augment)

    def callbacks(
        self, spec: Spec, step: Step, data: Prepared, run_dir: RunDir | None
    ) -> list[Callback]:
        if data.kind != "text":
            return []
        head = getattr(spec.model, "head", None)
        probe = getattr(head, "init", "random") == "probe"
        return text.callbacks(step, data, run_dir, spec.seed, probe)

    def predict(self, model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
        if data.kind == "text":
            return text.predict(model, split, data)
        proba = softmax(model_outputs(model, split.x))  # (N, K)
        return Predictions(split.y, proba.argmax(axis=1), proba)

    def graph_predictions(
        self, outputs: list[np.ndarray], split: Split, data: Prepared
    ) -> Predictions:
        proba = outputs[0].astype(np.float64)  # (N, K) probabilities, (N,) labels
        return Predictions(split.y, outputs[1].astype(np.int64), proba)

    def soft_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        import torch

        # Hinton et al. 2015: KL between the softened distributions, times T² so the
        # gradients keep their size as T changes.
        t = temperature
        return torch.nn.functional.kl_div(
            torch.log_softmax(student / t, dim=1),
            torch.log_softmax(teacher / t, dim=1),
            reduction="batchmean",
            log_target=True,
        ) * (t * t)

    def plots(self, ev: Any, out: Path) -> list[PlotJob]:
        from canonml.evaluate import plots

        jobs: list[PlotJob] = []
        if ev.confusion is not None:
            jobs.append(
                (
                    "confusion_matrix",
                    plots.confusion_matrix,
                    (ev.confusion, ev.label_names, out / "confusion_matrix.png"),
                    "Confusion matrix (colour: share of the true class)",
                )
            )
        if ev.proba is not None and len(ev.y_true):
            curves = plots.roc_points(ev.y_true, ev.proba, ev.label_names)
            jobs.append(
                (
                    "roc",
                    plots.roc_plot,
                    (curves, out / "roc.png"),
                    "ROC curves (multi-class: one-vs-rest)",
                )
            )
        return jobs

    # ---- the package

    def signature_for(self, signature: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        return text.signature_for(signature, spec) if signature["kind"] == "text" else signature

    def graph_module(self, model: torch.nn.Module, signature: dict[str, Any]) -> Any:
        if signature["kind"] == "text":
            return text.graph_module(model)
        return super().graph_module(model, signature)

    def export_graph(self, model: torch.nn.Module, signature: dict[str, Any]) -> bytes:
        if signature["kind"] == "text":
            return text.export_graph(model, signature)
        return super().export_graph(model, signature)

    def verify_samples(
        self, signature: dict[str, Any], n: int
    ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]] | None:
        return text.verify_samples(signature, n) if signature["kind"] == "text" else None

    def outputs(self, labels: list[str] | None) -> list[dict[str, Any]]:
        return [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(labels or [])]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ]

    def head(self, out: torch.Tensor, target: dict[str, float] | None) -> Any:
        import torch

        return torch.softmax(out, dim=1), torch.argmax(out, dim=1)  # (B, K), (B,)

    def reference(self, out: np.ndarray, target: dict[str, float] | None) -> list[np.ndarray]:
        proba = softmax(out)
        return [proba, proba.argmax(axis=1)]

    def exact_outputs(self) -> tuple[str, ...]:
        return ("label",)  # an argmax: compared where the top two are not a near-tie

    def output_problems(
        self, want: list[np.ndarray], got: list[np.ndarray], tolerance: float = TOLERANCE
    ) -> list[str]:
        if len(got) != 2:
            return []
        proba, label = want[0], got[1]
        top = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else np.ones((len(proba), 2))
        clear = (top[:, 1] - top[:, 0]) > 2 * tolerance  # not a near-tie
        bad = int(np.sum(clear & (proba.argmax(axis=1) != label)))
        if bad:
            return [f"model.onnx: output 'label' disagrees with PyTorch's argmax on {bad} samples"]
        return []

    def rows(
        self, refs: list[str], outputs: dict[str, np.ndarray], labels: list[str] | None
    ) -> list[dict[str, Any]]:
        proba, rows = outputs["probabilities"], []
        for ref, p, k in zip(refs, proba, outputs["label"], strict=True):
            names = labels if labels and len(labels) == len(p) else [str(i) for i in range(len(p))]
            rows.append(
                {
                    "input": ref,
                    "label": names[int(k)],
                    "probability": float(p[int(k)]),
                    "probabilities": {n: float(v) for n, v in zip(names, p, strict=True)},
                }
            )
        return rows

    def what_it_does(self, signature: dict[str, Any], target: str | None, inputs: str) -> str:
        labels = signature.get("labels") or []
        more = f", … ({len(labels) - 12} more)" if len(labels) > 12 else ""
        shown = ", ".join(labels[:12]) + more
        return f"classifies {inputs} into {len(labels)} classes ({shown})"

    def pipeline_tag(self, kind: str) -> str:
        return f"{kind}-{self.name}"  # tabular-, image-, text-classification: all Hub tasks
