"""``Task``: everything that differs between tasks, in one object per task (DESIGN §7).

The stages call a task instead of branching on its name:

- ``data/prepare``: targets from raw data, what a split stratifies by, what is learned from
  the training targets (``canonml.data.target.Targets``);
- ``models/``: the shapes the model is built for (``model_io``);
- ``train/``: the tensors a batch is sliced from and the ``Step`` (model, optimizers, loss);
- ``evaluate/``: predictions on a split in the data's units (the metrics are the names its
  task spec lists); ``evaluate/report``: its plots;
- ``package/``: the graph's outputs and head, PyTorch's reference outputs for ``verify``,
  ``canon predict``'s rows, the model card's words.

Task modules import torch only inside methods: ``canon predict`` and ``canon serve`` use a
task without it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from canonml.data.dataset import Dataset
from canonml.model_io import ModelIO
from canonml.spec.data import PreprocessSpec
from canonml.spec.task import TaskSpec

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.package.reader import Package
    from canonml.rundir import RunDir
    from canonml.spec.root import Spec
    from canonml.train.callbacks import Callback
    from canonml.train.steps import Augment, Step

# A plot the report draws: (key, function of canonml.evaluate.plots, its arguments, caption).
PlotJob = tuple[str, Any, tuple[Any, ...], str]


@dataclass
class Predictions:
    """A model's predictions on a split, in the data's units.

    ``y_true``/``y_pred``: class indices or values; ``proba`` ``(N, K)`` class probabilities
    (None when the task has none); ``extra`` anything else the task's report shows.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None
    extra: dict[str, Any] | None = None


@dataclass
class Graph:
    """A graph a package holds besides ``model.onnx`` (a VAE's decoder), exported and
    verified like it: ``module`` (a ``torch.nn.Module``, eval mode) maps the ``inputs`` to the
    ``outputs`` in order (each name, OIP datatype, shape; ``-1`` = the batch axis).

    ``feeds(n)``: ``n`` seeded inputs for ``canon verify``; ``sampler``: the signature's
    ``sampler`` entry (less ``file``) when ``canon sample`` can draw from the graph.
    """

    module: Any
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    feeds: Callable[[int], dict[str, np.ndarray]]
    sampler: dict[str, Any] | None = None


class Task(abc.ABC):
    """The behaviour of one task; ``spec_class`` holds its facts on the spec side."""

    name: ClassVar[str]
    spec_class: ClassVar[type[TaskSpec]]
    # The spec's task section (its options: a GAN's d_steps, samples), set by ``get_task``;
    # None when the task was called by name (the defaults apply).
    options: TaskSpec | None = None

    # ---- data (canonml.data.target.Targets)

    @abc.abstractmethod
    def encode_targets(self, data: Dataset) -> Dataset:
        """``data`` with ``y`` as the task trains on it."""

    def strata(self, y: np.ndarray) -> np.ndarray | None:
        return None

    def fit_target(self, y: np.ndarray, spec: PreprocessSpec) -> dict[str, Any] | None:
        return None

    def target_array(self, y: np.ndarray, fitted: dict[str, Any] | None) -> np.ndarray:
        return y

    def train_rows(self, spec: Spec, y: np.ndarray) -> np.ndarray | None:
        return None

    # ---- models

    def model_io(
        self,
        input_shape: tuple[int, ...],
        labels: list[str] | None,
        state: dict[str, Any] | None = None,
    ) -> ModelIO:
        """The shapes to build the model for (``labels``: the data's class names, if any;
        ``state``: the fitted preprocessing, e.g. a tokenizer's vocabulary size)."""
        return ModelIO(tuple(input_shape), len(labels) if labels else 1, len(labels or []) or None)

    # ---- training

    def tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        """What a training batch is sliced from (``fit`` slices each tensor alike)."""
        import torch

        return (torch.from_numpy(split.x), torch.from_numpy(split.y))

    def example(
        self, split: Split, model: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The model's inputs for one example (batch axis 1): to summarise and time it
        (``model``: for inputs that are not the data's, such as a generator's noise)."""
        import torch

        return (torch.from_numpy(split.x[:1]),)

    def summary(self, model: torch.nn.Module, split: Split) -> list[dict[str, Any]]:
        """The report's architecture table (one row per layer; a GAN lists G and D)."""
        from canonml.models.summary import summarize

        return summarize(model, self.example(split, model))

    @abc.abstractmethod
    def make_step(self, spec: Spec, model: torch.nn.Module, augment: Augment | None) -> Step:
        """The training step over ``model`` (it builds its optimizers from ``spec.train``)."""

    def callbacks(
        self, spec: Spec, step: Step, data: Prepared, run_dir: RunDir | None
    ) -> list[Callback]:
        """Training callbacks of the task's own (sample grids per epoch, a collapse alarm),
        run after the loop's own; ``run_dir`` is None for cross-validation folds."""
        return []

    # ---- evaluation

    @abc.abstractmethod
    def predict(self, model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
        """The model's predictions on ``split`` (``data`` holds what was learned)."""

    def score(self, names: tuple[str, ...], predicted: Predictions) -> dict[str, float]:
        """The metrics ``names`` of ``predicted`` (scikit-learn's, by default)."""
        from canonml.evaluate.metrics import compute_metrics

        return compute_metrics(names, predicted.y_true, predicted.y_pred, predicted.proba)

    def interval(
        self, headline: str, predicted: Predictions, resamples: int, seed: int
    ) -> tuple[float, float] | None:
        """The headline's 95% interval (a bootstrap over the split, by default)."""
        from canonml.evaluate.evaluate import bootstrap

        p = predicted
        return bootstrap(headline, p.y_true, p.y_pred, p.proba, resamples, seed)

    def plots(self, predictions: Any, out: Path) -> list[PlotJob]:
        """The task's figures of a test evaluation (``canonml.evaluate.evaluation.Evaluation``)."""
        return []

    # ---- the package

    def verify_samples(
        self, signature: dict[str, Any], n: int
    ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]] | None:
        """Seeded inputs for ``canon verify`` of a graph of the task's own: (ONNX Runtime
        feeds, the PyTorch model's inputs); None: raw rows or images for the standard graph."""
        return None

    @abc.abstractmethod
    def graph_module(self, model: torch.nn.Module, signature: dict[str, Any]) -> Any:
        """The module exported as ``model.onnx`` (eval mode): it maps the signature's inputs
        to its outputs, in order."""

    def export_graph(self, model: torch.nn.Module, signature: dict[str, Any]) -> bytes:
        """The ONNX bytes of ``model.onnx``: ``graph_module`` exported with a dynamic batch
        axis; a task whose graph has other dynamic axes (a decoder's sequence and KV cache)
        exports its own."""
        from canonml.package.export import export_module

        names = [o["name"] for o in signature["outputs"]]
        return export_module(self.graph_module(model, signature), signature["inputs"], names)

    def package_problems(self, pkg: Package, model: torch.nn.Module) -> list[str]:
        """``canon verify``'s checks of the task's own beyond parity on sample inputs (a
        language model's cached against uncached decoding)."""
        return []

    def extra_graphs(self, model: torch.nn.Module, signature: dict[str, Any]) -> dict[str, Graph]:
        """Graphs the package holds besides ``model.onnx``, by file name (an autoencoder's
        ``encoder.onnx`` and ``decoder.onnx``); the writer exports them, ``verify`` checks
        them against PyTorch."""
        return {}

    def signature_for(self, signature: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """The package signature for the task's own graph (``spec``: the resolved spec as
        plain data): a generator's ``noise`` (and ``label``) inputs and its ``sampler``
        entry; by default the standard signature (raw ``input``) unchanged."""
        return signature

    @abc.abstractmethod
    def outputs_for(self, labels: list[str] | None, input_shape: list[int]) -> list[dict[str, Any]]:
        """The graph's outputs for inputs of ``input_shape`` (one example): name, OIP
        datatype, shape (``-1`` = the batch axis), as the signature lists them."""

    @abc.abstractmethod
    def reference_outputs(
        self, model: torch.nn.Module, inputs: tuple[np.ndarray, ...], signature: dict[str, Any]
    ) -> list[np.ndarray]:
        """PyTorch's side of ``verify``: what ``model.onnx`` must give for the model inputs
        ``inputs``."""

    def output_problems(
        self, want: list[np.ndarray], got: list[np.ndarray], tolerance: float = 1e-4
    ) -> list[str]:
        """Problems beyond per-output closeness (``verify``, at ``tolerance``), e.g. a wrong
        argmax."""
        return []

    def exact_outputs(self) -> tuple[str, ...]:
        """Outputs compared by ``output_problems`` rather than by closeness."""
        return ()

    @abc.abstractmethod
    def rows(
        self, refs: list[str], outputs: dict[str, np.ndarray], labels: list[str] | None
    ) -> list[dict[str, Any]]:
        """``canon predict``'s rows: one JSON-able dict per input."""

    @abc.abstractmethod
    def what_it_does(self, signature: dict[str, Any], target: str | None, inputs: str) -> str:
        """The model card's "What the model does: it ..." ending (``inputs`` in words)."""

    def pipeline_tag(self, kind: str) -> str:
        """The Hugging Face Hub task tag for data of ``kind`` (tabular, image)."""
        return self.name


class LabelTargets:
    """Targets that are class labels (index into the data's label names), stratified by."""

    def encode_targets(self, data: Dataset) -> Dataset:
        from canonml.data.target import as_labels

        return as_labels(data)

    def strata(self, y: np.ndarray) -> np.ndarray | None:
        return y

    def target_array(self, y: np.ndarray, fitted: dict[str, Any] | None) -> np.ndarray:
        return y.astype(np.int64, copy=False)


class StandardGraphTask(Task):
    """A task whose ``model.onnx`` is the standard graph: raw inputs → the fitted
    preprocessing (in the graph) → the model → the task's ``head``."""

    @abc.abstractmethod
    def outputs(self, labels: list[str] | None) -> list[dict[str, Any]]:
        """The graph's outputs: name, OIP datatype, shape (``-1`` = the batch axis)."""

    @abc.abstractmethod
    def head(self, out: torch.Tensor, target: dict[str, float] | None) -> Any:
        """Inside the exported graph: the model's output → the package's outputs."""

    @abc.abstractmethod
    def reference(self, out: np.ndarray, target: dict[str, float] | None) -> list[np.ndarray]:
        """What the graph must give for the PyTorch model's raw output ``out`` (``verify``)."""

    def graph_predictions(
        self, outputs: list[np.ndarray], split: Split, data: Prepared
    ) -> Predictions:
        """Predictions on ``split`` from the graph's ``outputs`` for it (a compressed
        variant's, run by ONNX Runtime), in the data's units like ``predict``; a task whose
        spec says ``compresses`` defines it."""
        raise NotImplementedError(f"{type(self).__name__} has no compressed variants")

    def soft_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """Distillation: the loss of the student's raw outputs against the teacher's (a
        task whose spec says ``compresses`` defines it)."""
        raise NotImplementedError(f"{type(self).__name__} has no distillation loss")

    def graph_module(self, model: torch.nn.Module, signature: dict[str, Any]) -> Any:
        from canonml.package.export import inference_module

        return inference_module(model, signature, self)

    def outputs_for(self, labels: list[str] | None, input_shape: list[int]) -> list[dict[str, Any]]:
        return self.outputs(labels)

    def reference_outputs(
        self, model: torch.nn.Module, inputs: tuple[np.ndarray, ...], signature: dict[str, Any]
    ) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            out = model(*(torch.from_numpy(a) for a in inputs)).double().numpy()
        return self.reference(out, signature["preprocessing"].get("target"))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (numpy; the graph uses torch's)."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def model_outputs(model: torch.nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """``model``'s outputs for inputs ``x`` in eval mode, in batches, as float64 numpy."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(x[start : start + batch])).double().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 1))
