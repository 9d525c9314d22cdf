"""``task: generation`` — new images from noise (and a class, when conditional): GANs.

Pixels. The task's ``data.preprocess.scale`` is minmax (its default; ``spec/task.py`` refuses
others), so the splits hold pixels in [0, 1]; the task trains on ``2x − 1``, the tanh
generator's [-1, 1], and maps what the generator makes back to the data's raw units with the
same fitted constants, per channel: ``raw = (g + 1) / 2 · scale + shift`` — in numpy for
evaluation, inside ``model.onnx`` for ``canon sample`` and ``canon serve``.

Evaluation (``predict``): ``task.samples`` images (10,000) from seeded noise, the classes
cycled when conditional, seen by the data set's reference classifier
(``canonml.evaluate.reference``, trained once and cached by the data's fingerprint): the FD
of the samples vs the test split beside the floor (real train vs test), the fitted-Gaussian
baseline and the uniform-noise ceiling, every set of the same size N
(``canonml.evaluate.fidelity``); class coverage and mean confidence; for a conditional
model the classifier's accuracy on the classes asked for. The classifier's sha256, N, the
splits and the definition's version go to ``evaluation.json`` (``details``) and to the
report's Samples section, beside the grids: FD alone can mislead.

The package: ``model.onnx`` is the generator — ``noise`` FP32 [-1, latent] (and ``label``
INT64 [-1] when conditional) in, ``images`` FP32 [-1, C, H, W] in raw pixel units out, the
weights inside the graph — and the signature's ``sampler`` entry tells ``canon sample`` and
the try-it page how to draw from it (``canonml.package.sample``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.evaluate import sample_plots  # registers the report's Samples section
from canonml.spec.task import GenerationTask
from canonml.tasks import TASKS
from canonml.tasks.base import LabelTargets, PlotJob, Predictions, Task

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.evaluate.reference import Reference
    from canonml.rundir import RunDir
    from canonml.spec.root import Spec
    from canonml.train.callbacks import Callback
    from canonml.train.steps import Augment, Step

NAME = GenerationTask.model_fields["name"].default
SEED = 0  # noise of the evaluation and the baselines' draws: every run measured alike
FD_SAMPLES = 500  # generated images per FD during training (vs the validation split)
FD_POINTS = 20  # about this many FD points over a run, and the last epoch
GRID_COLUMNS = 10
COVERAGE_SHARE = 0.02  # a class is covered when ≥ 2% of the samples are assigned to it


@TASKS.register(NAME)
class Generation(LabelTargets, Task):
    name = NAME
    spec_class = GenerationTask

    @property
    def facts(self) -> GenerationTask:
        return self.options if isinstance(self.options, GenerationTask) else GenerationTask()

    # ---- data: class labels are kept (a conditional model is asked for a class): LabelTargets

    # ---- training

    def tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        import torch

        x = split.x * np.float32(2) - np.float32(1)  # minmax's [0, 1] → the tanh's [-1, 1]
        return (torch.from_numpy(x), torch.from_numpy(split.y))  # y: a conditional pair's

    def example(
        self, split: Split, model: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, ...]:
        import torch

        if model is None:
            raise ValueError("a generator's input is noise: pass the model to example()")
        z = torch.zeros(1, int(model.latent))  # type: ignore[arg-type]
        labels = torch.zeros(1, dtype=torch.long)
        return (z, labels) if model.n_classes is not None else (z,)

    def summary(self, model: torch.nn.Module, split: Split) -> list[dict[str, Any]]:
        import torch

        from canonml.models.summary import summarize

        noise = self.example(split, model)
        image = torch.from_numpy(split.x[:1] * np.float32(2) - np.float32(1))
        rows = []
        for part, inputs in (("generator", noise), ("discriminator", (image, *noise[1:]))):
            for row in summarize(getattr(model, part), inputs):
                rows.append({**row, "layer": f"{part}.{row['layer']}"})
        return rows

    def make_step(self, spec: Spec, model: torch.nn.Module, augment: Augment | None) -> Step:
        from canonml.tasks.adversarial import AdversarialStep

        return AdversarialStep(model, spec)  # type: ignore[arg-type]  # a GAN pair

    def callbacks(
        self, spec: Spec, step: Step, data: Prepared, run_dir: RunDir | None
    ) -> list[Callback]:
        from canonml.evaluate.fidelity import frechet_distance
        from canonml.tasks.adversarial import AdversarialStep, CollapseAlarm, SampleMonitor

        assert isinstance(step, AdversarialStep)
        hint = f"lower train.optimizer.lr, got {spec.train.optimizer.lr:g}"
        d_opt = self.facts.d_optimizer
        if d_opt is not None:
            hint += f", or task.d_optimizer.lr, got {d_opt.lr:g}"
        alarm = CollapseAlarm(step, run_dir.path if run_dir else None, hint)
        if run_dir is None:  # a cross-validation fold: no files, no FD
            return [alarm]
        state, epochs = data.preprocess, spec.train.epochs
        score = None
        if len(data.val) >= 2:
            ref = reference(data)
            val = ref.features(raw_pixels(data.val.x, state))

            def score(images: np.ndarray) -> float:
                return frechet_distance(ref.features(from_tanh(images, state)), val)

        plots = run_dir.path / "plots"
        pixel_max = _pixel_max(data)

        def draw(images: np.ndarray, epoch: int) -> None:
            from canonml.package.sample import write_grid

            rows = step.gan.n_classes or GRID_COLUMNS
            path = plots / f"samples_epoch_{epoch:03d}.png"
            write_grid(path, from_tanh(images, state), pixel_max, rows, GRID_COLUMNS)

        every = max(1, round(epochs / FD_POINTS))
        fd_epochs = {e for e in range(1, epochs + 1) if e % every == 0} | {1, epochs}
        grid_epochs = {max(1, math.ceil(epochs * q)) for q in (0.0, 0.25, 0.5, 1.0)}
        return [alarm, SampleMonitor(step, fd_epochs, score, grid_epochs, draw, FD_SAMPLES)]

    # ---- evaluation

    def predict(self, model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
        import torch

        from canonml.evaluate import fidelity
        from canonml.tasks.adversarial import cycled_labels, generate

        gan: Any = model
        state, k = data.preprocess, gan.n_classes
        ref = reference(data)
        train, real = raw_pixels(data.train.x, state), raw_pixels(split.x, state)
        base = fidelity.fd_baselines(ref, train, real, seed=SEED)
        n = max(self.facts.samples, base["n"])
        z = torch.randn(n, gan.latent, generator=torch.Generator().manual_seed(SEED))
        labels = cycled_labels(n, k)
        images = from_tanh(generate(gan, z, labels), state)  # (n, C, H, W), raw units
        fd = fidelity.fd_of(ref, images, real, n=base["n"], seed=SEED)
        scored = images[: self.facts.samples]  # coverage, confidence: task.samples of them
        seen = ref.predict(scored)
        cover = fidelity.coverage(ref, scored, threshold=COVERAGE_SHARE)
        asked = None if labels is None else labels[: len(scored)].numpy()
        metrics = {
            "fd": fd,
            "fd_floor": base["floor"],
            "fd_gaussian": base["gaussian"],
            "fd_noise": base["noise"],
            "fd_ratio": fd / base["noise"] if base["noise"] > 0 else math.nan,
            "coverage": cover["classes_covered"],
            "confidence": cover["mean_confidence"],
            "conditional_accuracy": math.nan
            if asked is None
            else fidelity.conditional_accuracy(ref, scored, asked),
        }
        shares = np.bincount(seen, minlength=ref.n_classes) / len(seen)
        grid_z = torch.randn(
            (k or GRID_COLUMNS) * GRID_COLUMNS,
            gan.latent,
            generator=torch.Generator().manual_seed(1),
        )
        grid_labels = None if k is None else torch.arange(k).repeat_interleave(GRID_COLUMNS)
        extra = {
            "metrics": metrics,
            "details": _details(ref, base, len(scored), shares, split is data.test),
            "grid": from_tanh(generate(gan, grid_z, grid_labels), state),
            "grid_rows": data.label_names if k is not None else None,
            "pixel_max": _pixel_max(data),
            "class_shares": shares.tolist(),
        }
        y_true = asked if asked is not None else np.full(len(seen), -1, dtype=np.int64)
        return Predictions(y_true, seen, None, extra)

    def score(self, names: tuple[str, ...], predicted: Predictions) -> dict[str, float]:
        values = (predicted.extra or {}).get("metrics", {})
        # conditional_accuracy is left out (not NaN) where no class can be asked for.
        return {k: float(values[k]) for k in names if math.isfinite(values.get(k, math.nan))}

    def interval(
        self, headline: str, predicted: Predictions, resamples: int, seed: int
    ) -> tuple[float, float] | None:
        return None  # resampling with replacement biases FD upwards: no bootstrap interval

    def plots(self, ev: Any, out: Path) -> list[PlotJob]:
        sp, ex = sample_plots, ev.extra
        if "grid" not in ex:
            return []
        jobs: dict[str, tuple[Any, tuple[Any, ...]]] = {
            "samples": (sp.sample_grid, (ex["grid"], ex["grid_rows"], ex["pixel_max"])),
            "class_shares": (sp.class_shares, (ex["class_shares"], ev.label_names, COVERAGE_SHARE)),
        }
        grids = sorted(out.glob("samples_epoch_*.png"))  # written during training
        if grids:
            epochs = [int(p.stem.rsplit("_", 1)[1]) for p in grids]
            jobs["samples_over_epochs"] = (sp.epoch_grids, (grids, epochs))
        history = _read_history(out.parent / "history.csv")  # out: the run's plots/
        if history:
            jobs["gan_training"] = (sp.gan_training, (history,))
        return [
            (key, fn, (*args, out / f"{key}.png"), sp.FIGURES[key])
            for key, (fn, args) in jobs.items()
        ]

    # ---- the package: model.onnx is the generator

    def signature_for(self, signature: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        model = spec["model"]
        latent, conditional = int(model["latent"]), bool(model.get("conditional"))
        labels = signature.get("labels") or []
        inputs = [{"name": "noise", "datatype": "FP32", "shape": [-1, latent]}]
        if conditional:  # a class index; the server refuses one outside the range
            inputs.append(
                {"name": "label", "datatype": "INT64", "shape": [-1], "range": [0, len(labels) - 1]}
            )
        shape = signature["image_shape"]
        sampler = {
            "file": "model.onnx",
            "inputs": {i["name"]: i["name"] for i in inputs},
            "input": "noise",
            "output": "images",
            "latent": latent,
            "prior": "normal",
            "conditional": conditional,
            "classes": len(labels) if conditional else None,
        }
        return {
            **signature,
            "inputs": inputs,
            "outputs": [{"name": "images", "datatype": "FP32", "shape": [-1, *shape]}],
            "features": [f"noise_{i}" for i in range(latent)],  # the graph input's columns
            "sampler": sampler,
        }

    def graph_module(self, model: torch.nn.Module, signature: dict[str, Any]) -> Any:
        from canonml.tasks.adversarial import SamplerGraph

        shift, scale = _affine(signature["preprocessing"])
        return SamplerGraph(model, shift, scale).eval()  # type: ignore[arg-type]  # a GAN

    def verify_samples(
        self, signature: dict[str, Any], n: int
    ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]] | None:
        sampler = signature["sampler"]
        noise = np.random.default_rng(0).standard_normal((n, sampler["latent"]))
        feeds: dict[str, np.ndarray] = {"noise": noise.astype(np.float32)}
        if sampler["conditional"]:
            feeds["label"] = np.arange(n, dtype=np.int64) % int(sampler["classes"])
        return feeds, tuple(feeds.values())

    def reference_outputs(
        self, model: torch.nn.Module, inputs: tuple[np.ndarray, ...], signature: dict[str, Any]
    ) -> list[np.ndarray]:
        import torch

        from canonml.tasks.adversarial import generate

        z = torch.from_numpy(inputs[0])
        labels = torch.from_numpy(inputs[1]) if len(inputs) > 1 else None
        g = generate(model, z, labels).astype(np.float64)  # type: ignore[arg-type]
        return [from_tanh(g, signature["preprocessing"])]

    def outputs_for(self, labels: list[str] | None, input_shape: list[int]) -> list[dict[str, Any]]:
        # Images of the data's shape (signature_for replaces the raw input with the noise).
        return [{"name": "images", "datatype": "FP32", "shape": [-1, *input_shape]}]

    def rows(
        self, refs: list[str], outputs: dict[str, np.ndarray], labels: list[str] | None
    ) -> list[dict[str, Any]]:
        return [
            {"input": r, "image": x.tolist()} for r, x in zip(refs, outputs["images"], strict=True)
        ]

    def what_it_does(self, signature: dict[str, Any], target: str | None, inputs: str) -> str:
        sampler = signature.get("sampler") or {}
        shape = "×".join(str(d) for d in signature.get("image_shape") or [])
        text = (
            f"generates new {shape} images like its training data from "
            f"{sampler.get('latent')}-number standard normal noise (`noise`)"
        )
        if sampler.get("conditional"):
            names = signature.get("labels") or []
            more = f", … ({len(names) - 12} more)" if len(names) > 12 else ""
            text += f", of a requested class (`label`: index of {', '.join(names[:12])}{more})"
        return text + "; draw images with `canon sample`"

    def pipeline_tag(self, kind: str) -> str:
        return "unconditional-image-generation"


# ---- pixels: the splits' [0, 1], the generator's [-1, 1], the data's raw units


def _affine(state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (shift, scale) of the fitted image preprocessing, ``(1, C, 1, 1)``."""
    shift = np.asarray(state["shift"], dtype=np.float64).reshape(1, -1, 1, 1)
    scale = np.asarray(state["scale"], dtype=np.float64).reshape(1, -1, 1, 1)
    return shift, scale


def raw_pixels(x: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Preprocessed images (minmax's [0, 1]) back in raw units, float32."""
    shift, scale = _affine(state)
    return (x * scale + shift).astype(np.float32)


def from_tanh(images: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """The generator's images in [-1, 1] in raw units, float32 (as ``model.onnx`` gives)."""
    return raw_pixels((np.asarray(images, dtype=np.float64) + 1.0) / 2.0, state)


def reference(data: Prepared) -> Reference:
    """The data set's reference classifier (cached by fingerprint), checked on the test split."""
    from canonml.evaluate.reference import reference_classifier

    state, test = data.preprocess, data.test
    return reference_classifier(
        raw_pixels(data.train.x, state),
        data.train.y,
        data.fingerprint,
        n_classes=len(data.label_names) if data.label_names else None,
        pixel_max=_pixel_max(data),
        x_check=raw_pixels(test.x, state) if len(test) else None,
        y_check=test.y if len(test) else None,
    )


def _pixel_max(data: Prepared) -> float | None:
    value = data.info.get("pixel_max")
    return float(value) if value else None


def _details(
    ref: Reference, base: dict[str, Any], n: int, shares: np.ndarray, on_test: bool
) -> dict[str, Any]:
    """What reproduces the numbers (``evaluation.json``'s ``details``)."""
    covered = int(np.sum(shares >= COVERAGE_SHARE))
    return {
        "reference": {
            "sha256": ref.sha256,
            "version": base["reference_version"],
            "accuracy": ref.accuracy,
            "checked_on": ref.checked_on,
            "classes": ref.n_classes,
        },
        "fd": {
            "n": base["n"],
            "vs_split": base["vs_split"] if on_test else "evaluated",
            "n_vs": base["n_test"],
            "floor_split": base["floor_split"],
            "model_samples": base["n"],
            "seed": base["seed"],
        },
        "coverage": {
            "samples": n,
            "threshold": COVERAGE_SHARE,
            "classes_covered": covered,
            "classes": ref.n_classes,
        },
    }


def _read_history(path: Path) -> list[dict[str, float]]:
    """``history.csv`` as rows of numbers (empty cells left out)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]
