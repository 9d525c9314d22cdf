"""``task: reconstruction`` — inputs through a code and back: autoencoders and VAEs.

The target is the input (scaled to [0, 1]: ``data.preprocess.scale`` defaults to minmax);
the source's class labels, where it has them, are kept only to pick the normal classes of
``evaluate.anomaly`` (which train and validate alone) and to label the report. Metrics
are in the model's input units: ``reconstruction_mse`` (per-value squared error),
``pca_mse`` (PCA with as many components as the code, fitted on train), ``elbo`` (a
VAE's −ELBO in nats per example, Bernoulli likelihood) and ``anomaly_roc_auc`` (the
per-example error separating the classes left out of training). With anomalies in the test
split, the reconstruction metrics are over its normal examples.

The package's ``model.onnx`` takes raw inputs and gives ``anomaly_score`` (the per-example
MSE) and ``reconstruction`` (raw units); ``encoder.onnx`` and ``decoder.onnx`` beside it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.target import as_labels
from canonml.errors import SpecError
from canonml.evaluate.report import ReportContext, facts, section
from canonml.model_io import ModelIO
from canonml.spec.task import ReconstructionTask
from canonml.tasks import TASKS
from canonml.tasks.base import Graph, PlotJob, Predictions, Task

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.spec.root import Spec
    from canonml.train.callbacks import Callback
    from canonml.train.steps import Augment, Step

NAME = ReconstructionTask.model_fields["name"].default
UNLABELLED = -1  # y of every example when the source has no class labels
SHOWN = 10  # examples in the reconstruction grid, steps of the interpolation strip
GRID = 10  # the VAE's latent map is GRID × GRID decoded codes


@TASKS.register(NAME)
class Reconstruction(Task):
    name = NAME
    spec_class = ReconstructionTask

    def __init__(self) -> None:
        # The source's class names, from encode_targets: how train_rows reads
        # evaluate.anomaly.normal_classes given by name.
        self.label_names: list[str] | None = None

    # ---- data

    def encode_targets(self, data: Dataset) -> Dataset:
        if data.label_names is not None or data.y.dtype.kind in "OUS":
            data = as_labels(data)
        else:  # no labels (numbers without class names): nothing to keep
            data.y, data.label_names = np.full(len(data), UNLABELLED, dtype=np.int64), None
        self.label_names = data.label_names
        return data

    def strata(self, y: np.ndarray) -> np.ndarray | None:
        return y if len(y) and int(y.min()) != UNLABELLED else None

    def target_array(self, y: np.ndarray, fitted: dict[str, Any] | None) -> np.ndarray:
        return y.astype(np.int64, copy=False)

    def train_rows(self, spec: Spec, y: np.ndarray) -> np.ndarray | None:
        anomaly = spec.evaluate.anomaly
        if anomaly is None:
            return None
        return np.isin(y, self.normal_indices(anomaly.normal_classes, spec.data.source))

    def normal_indices(self, classes: list[int | str], source: str) -> list[int]:
        """``evaluate.anomaly.normal_classes`` as class indices; a SpecError naming the entry
        for a class the data lacks."""
        names = self.label_names
        if not names:
            raise SpecError(
                "evaluate.anomaly",
                f"data.source {source} has no class labels to tell normal examples from "
                "anomalies; use a labelled source (a csv with data.target, class folders)",
            )
        known = f"the data's classes: {', '.join(names[:20])}" + (", …" if len(names) > 20 else "")
        indices = []
        for i, c in enumerate(classes):
            key = f"evaluate.anomaly.normal_classes[{i}]"
            if isinstance(c, int) and not 0 <= c < len(names):
                raise SpecError(
                    key, f"class index {c} is not in the data (0–{len(names) - 1}; {known})"
                )
            if isinstance(c, str) and c not in names:
                raise SpecError(key, f"'{c}' is not a class of the data; {known}")
            indices.append(c if isinstance(c, int) else names.index(c))
        if len(set(indices)) == len(names):
            raise SpecError(
                "evaluate.anomaly.normal_classes",
                f"lists all {len(names)} classes; leave at least one out (the anomalies to find)",
            )
        return sorted(set(indices))

    # ---- models and training

    def model_io(
        self,
        input_shape: tuple[int, ...],
        labels: list[str] | None,
        state: dict[str, Any] | None = None,
    ) -> ModelIO:
        return ModelIO(tuple(input_shape))

    def tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        import torch

        return (torch.from_numpy(split.x),)  # the labels do not train

    def make_step(self, spec: Spec, model: torch.nn.Module, augment: Augment | None) -> Step:
        from canonml.spec.model import VAESpec
        from canonml.tasks.autoencoding import AutoencoderStep, VAEStep

        if isinstance(spec.model, VAESpec):
            return VAEStep(model, spec.train, spec.model, augment)
        return AutoencoderStep(model, spec.train, augment)

    def callbacks(self, spec: Spec, step: Step, data: Prepared, run_dir: Any) -> list[Callback]:
        from canonml.tasks.autoencoding import KLWarmup, VAEStep

        return [KLWarmup(step)] if isinstance(step, VAEStep) and step.vae.kl_warmup else []

    # ---- evaluation

    def predict(self, model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
        from canonml.tasks import autoencoding as ae

        x, y = split.x, split.y
        x_hat = ae.reconstructions(model, x)
        n = len(x)
        errors = ((x_hat.astype(np.float64) - x) ** 2).reshape(n, -1).mean(axis=1)  # (N,)
        normal = _normal(y, data.train.y)
        extra: dict[str, Any] = {
            "errors": errors,
            "normal": normal,  # None: no anomalies in the split
            "scored": normal if normal is not None else np.ones(n, dtype=bool),
            "latent": int(model.latent),  # type: ignore[arg-type]
            "pca": _pca_errors(data.train.x, x, int(model.latent)),  # type: ignore[arg-type]
            "elbo": ae.negative_elbo(model, x) if ae.is_vae(model) and ae.bounded(model) else None,
        }
        if normal is not None:
            train_classes = np.unique(data.train.y)
            extra["normal_classes"] = [_name(data.label_names, int(k)) for k in train_classes]
        if x.ndim == 4 and x.shape[1] in (1, 3) and n >= 2:
            extra |= ae.pictures(model, x, x_hat, y, data.label_names)
        return Predictions(y, errors, None, extra)

    def score(self, names: tuple[str, ...], predicted: Predictions) -> dict[str, float]:
        from sklearn.metrics import roc_auc_score

        ex = predicted.extra or {}
        errors, scored = ex.get("errors"), ex.get("scored")
        if errors is None or scored is None or not scored.any():
            return {}
        values = {"reconstruction_mse": float(errors[scored].mean())}
        if ex.get("elbo") is not None:
            values["elbo"] = float(ex["elbo"][scored].mean())
        if ex.get("normal") is not None:
            values["anomaly_roc_auc"] = float(roc_auc_score(~ex["normal"], errors))
        if ex.get("pca") is not None:
            values["pca_mse"] = float(ex["pca"][scored].mean())
        return {k: values[k] for k in names if k in values}

    def interval(
        self, headline: str, predicted: Predictions, resamples: int, seed: int
    ) -> tuple[float, float] | None:
        # The bootstrap of evaluate.bootstrap (resample r: the r-th rng.integers(0, n, n)),
        # of the mean per-example error, many resamples per numpy pass.
        ex = predicted.extra or {}
        if headline != "reconstruction_mse" or ex.get("errors") is None:
            return None
        errors = ex["errors"][ex["scored"]]
        n = len(errors)
        if resamples == 0 or n < 2:
            return None
        rng = np.random.default_rng(seed)
        values = np.empty(resamples)
        chunk = max(1, (1 << 22) // n)
        for start in range(0, resamples, chunk):
            stop = min(start + chunk, resamples)
            idx = np.stack([rng.integers(0, n, n) for _ in range(start, stop)])  # (R, N)
            values[start:stop] = errors[idx].mean(axis=1)
        return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))

    def plots(self, ev: Any, out: Path) -> list[PlotJob]:
        from canonml.evaluate import generative_plots as gp

        ex, jobs = ev.extra, list[PlotJob]()
        if "originals" in ex:
            jobs.append(
                (
                    "reconstructions",
                    gp.reconstructions,
                    (
                        ex["originals"],
                        ex["reconstructed"],
                        ex["titles"],
                        out / "reconstructions.png",
                    ),
                    "Test images (top) and their reconstructions (bottom)",
                )
            )
            jobs.append(
                (
                    "interpolation",
                    gp.strip,
                    (ex["interpolation"], ex["ends"], out / "interpolation.png"),
                    "Latent interpolation: the codes of two test images mixed in equal steps "
                    "and decoded",
                )
            )
        if "latent_map" in ex:
            jobs.append(
                (
                    "latent_map",
                    gp.latent_map,
                    (ex["latent_map"], GRID, out / "latent_map.png"),
                    "Latent map: codes decoded over latent dimensions {} (columns) and {} "
                    "(rows, highest on top), the two most active, at the prior's 5–95% "
                    "quantiles; the other dimensions 0".format(*ex["dimensions"]),
                )
            )
        if ex.get("normal") is not None:
            jobs.append(
                (
                    "anomaly_errors",
                    gp.error_histograms,
                    (
                        ex["errors"],
                        ev.y_true,
                        ev.label_names,
                        ex["normal"],
                        out / "anomaly_errors.png",
                    ),
                    "Reconstruction error per test example, by class (blue: normal classes, "
                    "which trained; red: anomalies)",
                )
            )
        return jobs

    # ---- the package

    def graph_module(self, model: torch.nn.Module, signature: dict[str, Any]) -> Any:
        from canonml.tasks.reconstruction_graphs import ReconstructionGraph, preprocess

        return ReconstructionGraph(model, preprocess(signature)).eval()

    def outputs_for(self, labels: list[str] | None, input_shape: list[int]) -> list[dict[str, Any]]:
        return [
            {"name": "anomaly_score", "datatype": "FP32", "shape": [-1]},
            {"name": "reconstruction", "datatype": "FP32", "shape": [-1, *input_shape]},
        ]

    def reference_outputs(
        self, model: torch.nn.Module, inputs: tuple[np.ndarray, ...], signature: dict[str, Any]
    ) -> list[np.ndarray]:
        from canonml.tasks.reconstruction_graphs import reference_outputs

        return reference_outputs(model, inputs[0], signature)

    def extra_graphs(self, model: torch.nn.Module, signature: dict[str, Any]) -> dict[str, Graph]:
        from canonml.tasks.reconstruction_graphs import encoder_and_decoder

        return encoder_and_decoder(model, signature)

    def rows(
        self, refs: list[str], outputs: dict[str, np.ndarray], labels: list[str] | None
    ) -> list[dict[str, Any]]:
        return [
            {"input": ref, "anomaly_score": float(s), "reconstruction": r.tolist()}
            for ref, s, r in zip(
                refs, outputs["anomaly_score"], outputs["reconstruction"], strict=True
            )
        ]

    def what_it_does(self, signature: dict[str, Any], target: str | None, inputs: str) -> str:
        graphs = signature.get("graphs") or {}
        code = ((graphs.get("decoder.onnx") or {}).get("inputs") or [{"shape": [-1, None]}])[0]
        size = f" of {code['shape'][1]} numbers" if code["shape"][1] else ""
        return (
            f"reconstructs {inputs} through a code{size} (the two halves are `encoder.onnx` and "
            "`decoder.onnx`) and scores each by its reconstruction error (`anomaly_score`: the "
            "mean squared error per value, inputs scaled as in training); a high score marks "
            "an input unlike the training data"
        )

    def pipeline_tag(self, kind: str) -> str:
        return "image-to-image" if kind == "image" else self.name


# ---- helpers (numpy)


def _normal(y: np.ndarray, train_y: np.ndarray) -> np.ndarray | None:
    """Which test examples are of a class that trained (None: every one, or no labels)."""
    if not len(y) or int(y.min()) == UNLABELLED or not len(train_y):
        return None
    normal = np.isin(y, np.unique(train_y))
    return normal if 0 < normal.sum() < len(normal) else None


def _name(labels: list[str] | None, k: int) -> str:
    return labels[k] if labels and 0 <= k < len(labels) else str(k)


def _pca_errors(train: np.ndarray, test: np.ndarray, latent: int) -> np.ndarray | None:
    """Per-example MSE of PCA with ``latent`` components fitted on ``train`` (None if it
    cannot be fitted)."""
    from sklearn.decomposition import PCA

    a, b = train.reshape(len(train), -1), test.reshape(len(test), -1)
    k = min(latent, a.shape[1], len(a))
    if len(a) < 2 or not len(b):
        return None
    pca = PCA(n_components=k, random_state=0).fit(a.astype(np.float64))
    back = pca.inverse_transform(pca.transform(b.astype(np.float64)))
    return np.asarray(((back - b) ** 2).mean(axis=1))


# ---- the report


@section("Reconstruction", order=55)
def _reconstruction(ctx: ReportContext) -> str | None:
    ev = ctx.evaluation
    if ev is None or ev.task != NAME or "reconstruction_mse" not in ev.metrics:
        return None
    m, ex = ev.metrics, ev.extra
    over = "the normal examples" if ex.get("normal") is not None else "every example"
    rows: list[tuple[str, object]] = [
        ("test reconstruction MSE", f"{m['reconstruction_mse']:.4f}"),
    ]
    if "pca_mse" in m:
        better = "below" if m["reconstruction_mse"] < m["pca_mse"] else "not below"
        rows.append(
            (f"PCA, {ex.get('latent')} components (fitted on train)", f"{m['pca_mse']:.4f}")
        )
        rows.append(("the model against PCA", f"{better} PCA with the same code size"))
    if "elbo" in m:
        rows.append(("−ELBO (nats per example, lower is better)", f"{m['elbo']:.2f}"))
    if "anomaly_roc_auc" in m:
        normal, errors = ex["normal"], ex["errors"]
        labels = ev.label_names or []
        others = sorted({_name(labels, int(k)) for k in ev.y_true[~normal]}, key=_order(labels))
        rows += [
            (
                "anomaly ROC-AUC (reconstruction error, anomalies positive)",
                f"{m['anomaly_roc_auc']:.4f}",
            ),
            ("normal classes (trained on)", ", ".join(ex.get("normal_classes") or [])),
            ("anomalous classes (test only)", ", ".join(others)),
            (
                "mean error: normal / anomalous",
                f"{errors[normal].mean():.4f} / {errors[~normal].mean():.4f}",
            ),
        ]
    note = (
        f"<p>Over {over} of the test split; errors are squared differences per value, in "
        f"the units the model reconstructs (data.preprocess.scale: "
        f"{html.escape(ctx.spec.data.preprocess.scale)}; minmax puts inputs in [0, 1]).</p>"
    )
    return note + facts(rows)


def _order(labels: list[str]) -> Any:
    return lambda name: labels.index(name) if name in labels else len(labels)
